import ArgumentParser
import Foundation
import TetriCore
import TetriSim

#if canImport(Glibc)
    import Glibc
#endif

struct LoadgenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loadgen",
        abstract: "Replay a trace against a running server and report SLO attainment, latency and errors.",
        discussion: """
            Each trace row becomes POST /v1/images/generations at its arrival time (divided by --time-scale, \
            which must match the server's), with its size, steps and slo_ms, and seed = id. A request counts as \
            met when the server answers 200 with slo_met; 429s, other errors and misses count against it. \
            Latencies are the server's inference_time_s (virtual seconds on a time-scaled server).
            """
    )

    @Option(help: "Server base URL.")
    var url: String = "http://127.0.0.1:8080"

    @Option(help: "Trace CSV (id,arrival_s,width,height,steps,slo_s).")
    var trace: String

    @Option(help: "Requests in flight at most; later arrivals wait for a slot.")
    var concurrency: Int = 256

    @Option(name: .customLong("time-scale"), help: "Replay this many times faster (match the server's --time-scale).")
    var timeScale: Double = 1

    @Option(help: "Prompt sent with every request.")
    var prompt: String = "a lighthouse on a cliff at dawn"

    @Option(help: "Write a JSON summary here.")
    var json: String?

    func run() async throws {
        guard concurrency >= 1 else { throw UserError("--concurrency must be >= 1, got \(concurrency)") }
        guard timeScale > 0 else { throw UserError("--time-scale must be > 0") }
        guard let base = URL(string: url), base.scheme == "http", let host = base.host else {
            throw UserError("--url must be an http URL such as http://127.0.0.1:8080, got '\(url)'")
        }
        let port = base.port ?? 80
        guard let text = try? String(contentsOfFile: trace, encoding: .utf8) else {
            throw UserError("cannot read trace '\(trace)'")
        }
        let trace = try userFacing { try Trace(csv: text) }
        let path = (base.path.hasSuffix("/") ? String(base.path.dropLast()) : base.path) + "/v1/images/generations"
        let start = ContinuousClock.now
        let results = await withTaskGroup(of: LoadResult.self) { group in
            var inFlight = 0
            var out: [LoadResult] = []
            for r in trace.requests {
                while inFlight >= concurrency {
                    if let done = await group.next() {
                        out.append(done)
                        inFlight -= 1
                    }
                }
                let at = start + .microseconds(Double(r.arrival) / timeScale)
                try? await Task.sleep(until: at, clock: .continuous)
                inFlight += 1
                let body: [String: Any] = [
                    "prompt": prompt, "size": r.resolution.description, "num_inference_steps": r.steps,
                    "slo_ms": Double(r.slo) / 1000, "seed": r.id,
                ]
                let data = (try? JSONSerialization.data(withJSONObject: body)) ?? Data()
                group.addTask {
                    await LoadResult.send(host: host, port: port, path: path, body: data, request: r)
                }
                if out.count % 10 == 0 { progress(out.count, trace.requests.count) }
            }
            for await done in group {
                out.append(done)
                progress(out.count, trace.requests.count)
            }
            return out
        }
        FileHandle.standardError.write(Data("\n".utf8))
        let summary = LoadSummary(results)
        print(summary.text)
        if let json {
            try userFacing { try writeFile(summary.json, to: json) }
        }
    }

    func progress(_ done: Int, _ total: Int) {
        FileHandle.standardError.write(Data("\rloadgen: \(done)/\(total) answered".utf8))
    }
}

/// The outcome of one replayed request.
struct LoadResult: Sendable {
    var id: Int
    var resolution: String
    var status: Int
    var met: Bool
    var latency: Double?
    var error: String?

    static func send(host: String, port: Int, path: String, body: Data, request r: TraceRequest) async -> LoadResult {
        var out = LoadResult(id: r.id, resolution: r.resolution.description, status: 0, met: false)
        do {
            let (status, data) = try await MiniHTTP.post(host: host, port: port, path: path, body: body)
            out.status = status
            let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
            if status == 200 {
                out.met = obj?["slo_met"] as? Bool ?? false
                out.latency = (obj?["inference_time_s"] as? NSNumber)?.doubleValue
            } else {
                out.error = ((obj?["error"] as? [String: Any])?["message"] as? String) ?? "HTTP \(status)"
            }
        } catch {
            out.error = "\(error)"
        }
        return out
    }
}

/// A small blocking HTTP/1.1 client for the load generator: one connection per request on a
/// thread of its own, so that waiting for long generations costs no CPU (the machine's cores
/// belong to the workers under test).
enum MiniHTTP {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func post(host: String, port: Int, path: String, body: Data) async throws -> (Int, Data) {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                do {
                    continuation.resume(returning: try postBlocking(host: host, port: port, path: path, body: body))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    static func postBlocking(host: String, port: Int, path: String, body: Data) throws -> (Int, Data) {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var info: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &info) == 0, let first = info else {
            throw Failure(description: "cannot resolve \(host)")
        }
        defer { freeaddrinfo(info) }
        let fd = socket(first.pointee.ai_family, first.pointee.ai_socktype, first.pointee.ai_protocol)
        guard fd >= 0 else { throw Failure(description: "socket failed (errno \(errno))") }
        defer { close(fd) }
        guard connect(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else {
            throw Failure(description: "cannot connect to \(host):\(port) (errno \(errno))")
        }
        var request = Data(
            ("POST \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nContent-Type: application/json\r\n"
                + "Content-Length: \(body.count)\r\nConnection: close\r\n\r\n").utf8)
        request.append(body)
        try request.withUnsafeBytes { raw in
            var sent = 0
            while sent < raw.count {
                let n = send(fd, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
                guard n > 0 else { throw Failure(description: "send failed (errno \(errno))") }
                sent += n
            }
        }
        var response = Data()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw Failure(description: "recv failed (errno \(errno))") }
            if n == 0 { break }
            response.append(contentsOf: buffer[0..<n])
            if let (status, body) = complete(response) { return (status, body) }
        }
        guard let (status, body) = complete(response, closed: true) else {
            throw Failure(description: "the server closed the connection without a complete answer")
        }
        return (status, body)
    }

    /// The status and body once the response is complete (by Content-Length, or at close).
    static func complete(_ data: Data, closed: Bool = false) -> (Int, Data)? {
        guard let end = data.firstRange(of: Data("\r\n\r\n".utf8)) else { return nil }
        let head = String(decoding: data[..<end.lowerBound], as: UTF8.self)
        let lines = head.split(separator: "\r\n")
        guard let statusLine = lines.first, let status = Int(statusLine.split(separator: " ").dropFirst().first ?? "")
        else { return nil }
        let body = data[end.upperBound...]
        for line in lines.dropFirst() {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "content-length",
                let length = Int(parts[1].trimmingCharacters(in: .whitespaces))
            {
                return body.count >= length ? (status, Data(body.prefix(length))) : nil
            }
        }
        return closed ? (status, Data(body)) : nil
    }
}

/// SLO attainment, latency percentiles and errors over a replay.
struct LoadSummary {
    var results: [LoadResult]

    init(_ results: [LoadResult]) { self.results = results.sorted { $0.id < $1.id } }

    var met: Int { results.count { $0.met } }
    var sar: Double { results.isEmpty ? 0 : Double(met) / Double(results.count) }
    var latencies: [Double] { results.compactMap(\.latency).sorted() }
    var byStatus: [Int: Int] { Dictionary(grouping: results, by: \.status).mapValues(\.count) }

    var text: String {
        let l = latencies
        var s = "\(results.count) requests, \(met) met, SLO attainment \(String(format: "%.3f", sar))\n"
        for res in Set(results.map(\.resolution)).sorted(by: { Resolution(parsing: $0)! < Resolution(parsing: $1)! }) {
            let rs = results.filter { $0.resolution == res }
            s += "  \(res): \(rs.count { $0.met })/\(rs.count) met\n"
        }
        if !l.isEmpty {
            s += "latency s: mean \(String(format: "%.3f", l.reduce(0, +) / Double(l.count)))"
            for p in [50.0, 90, 99] { s += " p\(Int(p)) \(String(format: "%.3f", SimulationSummary.percentile(l, p)))" }
            s += "\n"
        }
        s +=
            "HTTP status: "
            + byStatus.keys.sorted().map { "\($0 == 0 ? "no answer" : String($0)) ×\(byStatus[$0]!)" }
            .joined(separator: ", ")
        if let e = results.first(where: { $0.error != nil })?.error { s += "\nfirst error: \(e)" }
        return s
    }

    var json: String {
        let l = latencies
        let obj: [String: Any] = [
            "requests": results.count, "met": met, "slo_attainment": sar,
            "latency_s": [
                "mean": l.isEmpty ? 0 : l.reduce(0, +) / Double(l.count), "p50": SimulationSummary.percentile(l, 50),
                "p90": SimulationSummary.percentile(l, 90), "p99": SimulationSummary.percentile(l, 99),
            ],
            "status": Dictionary(uniqueKeysWithValues: byStatus.map { (String($0.key), $0.value) }),
        ]
        let data = (try? JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}
