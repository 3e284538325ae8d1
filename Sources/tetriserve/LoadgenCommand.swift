import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
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
            Latencies are the server's inference_time_s (virtual seconds on a time-scaled server). \
            When the first requests get no answer (no server at --url) loadgen stops at once with an \
            error; it exits non-zero whenever any request got no answer (refused, reset or past --timeout). \
            The last line on standard error is loadgen's own CPU time over the run.
            """
    )

    @Option(help: "Server base URL.")
    var url: String = "http://127.0.0.1:8080"

    @Option(help: "Trace CSV (id,arrival_s,width,height,steps,slo_s).")
    var trace: String

    @Option(parsing: .unconditional, help: "Requests in flight at most; later arrivals wait for a slot.")
    var concurrency: Int = 256

    @Option(
        name: .customLong("time-scale"), parsing: .unconditional,
        help: "Replay this many times faster (match the server's --time-scale).")
    var timeScale: Double = 1

    @Option(
        parsing: .unconditional,
        help: "Seconds to wait for one answer (real time); a request without an answer by then counts as none.")
    var timeout: Double = 600

    @Option(help: "Prompt sent with every request.")
    var prompt: String = "a lighthouse on a cliff at dawn"

    @Option(help: "Write a JSON summary here.")
    var json: String?

    func validate() throws {
        guard concurrency >= 1 else { throw ValidationError("--concurrency must be >= 1, got \(concurrency)") }
        guard timeScale > 0 && timeScale.isFinite else { throw ValidationError("--time-scale must be > 0") }
        guard timeout > 0 && timeout.isFinite else { throw ValidationError("--timeout must be > 0") }
        guard let base = URL(string: url), ["http", "https"].contains(base.scheme ?? ""), base.host != nil else {
            throw ValidationError("--url must be an http URL such as http://127.0.0.1:8080, got '\(url)'")
        }
    }

    func run() async throws {
        let started = ContinuousClock.now
        let usageBefore = CPUTime.now()
        guard let text = try? String(contentsOfFile: trace, encoding: .utf8) else {
            throw UserError("cannot read trace '\(trace)'")
        }
        let trace = try userFacing { try Trace(csv: text) }
        let endpoint = (url.hasSuffix("/") ? String(url.dropLast()) : url) + "/v1/images/generations"
        var configuration = HTTPClient.Configuration()
        configuration.httpVersion = .http1Only
        // One connection per request in flight (each waits for its whole generation).
        configuration.connectionPool = .init(
            idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: concurrency)
        // A failed connect fails its request at once instead of retrying until the connect timeout.
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout = .init(connect: .seconds(10), read: nil)
        let client = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: configuration)
        let results: [LoadResult]
        do {
            results = try await replay(trace, client: client, endpoint: endpoint)
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
        let summary = LoadSummary(results)
        print(summary.text)
        let cpu = CPUTime.now() - usageBefore
        let wall = started.duration(to: .now)
        let wallSeconds = Double(wall.components.seconds) + Double(wall.components.attoseconds) / 1e18
        log(
            String(
                format: "loadgen CPU: %.2f s user + %.2f s system over %.1f s = %.1f%% of one core", cpu.user,
                cpu.system, wallSeconds, 100 * (cpu.user + cpu.system) / max(wallSeconds, 1e-9)))
        if let json {
            try userFacing { try writeFile(summary.json, to: json) }
        }
        let unanswered = results.filter { $0.status == 0 }
        if let first = unanswered.first {
            throw UserError(
                "\(unanswered.count) of \(results.count) requests got no answer (first: request \(first.id): "
                    + "\(first.error ?? "no response"))")
        }
    }

    /// What the replay waits for next: an answer, or the next arrival time.
    enum Event: Sendable {
        case answered(LoadResult)
        case arrival
    }

    /// Sends each request at its arrival time with at most --concurrency in flight; collects the
    /// answers as they come, and stops with an error when the first answers are all missing.
    func replay(_ trace: Trace, client: HTTPClient, endpoint: String) async throws -> [LoadResult] {
        let total = trace.requests.count
        let progress = ProgressReporter(label: "loadgen", unit: "answered")
        let start = ContinuousClock.now
        let timeout = TimeAmount.nanoseconds(Int64(self.timeout * 1e9))
        return try await withThrowingTaskGroup(of: Event.self) { group in
            var out: [LoadResult] = []
            out.reserveCapacity(total)
            var inFlight = 0
            var answered = false
            func take(_ event: Event) throws {
                guard case .answered(let result) = event else { return }
                inFlight -= 1
                out.append(result)
                if result.status != 0 {
                    answered = true
                } else if !answered {
                    throw UserError(
                        "no answer from \(url) to the first request(s): \(result.error ?? "no response"); "
                            + "is a server running there (tetriserve serve)?")
                }
                progress.update(out.count, of: total)
            }
            for r in trace.requests {
                let at = start + .microseconds(Double(r.arrival) / timeScale)
                if at > .now {
                    // Take answers while waiting for this arrival, so that a failure stops the replay at once.
                    group.addTask {
                        try? await Task.sleep(until: at, clock: .continuous)
                        return .arrival
                    }
                    while let event = try await group.next() {
                        if case .arrival = event { break }
                        try take(event)
                    }
                }
                while inFlight >= concurrency, let event = try await group.next() { try take(event) }
                let body: [String: Any] = [
                    "prompt": prompt, "size": r.resolution.description, "num_inference_steps": r.steps,
                    "slo_ms": Double(r.slo) / 1000, "seed": r.id,
                ]
                let data = (try? JSONSerialization.data(withJSONObject: body)) ?? Data()
                inFlight += 1
                group.addTask {
                    .answered(
                        await LoadResult.send(client: client, url: endpoint, body: data, timeout: timeout, request: r))
                }
            }
            while let event = try await group.next() { try take(event) }
            return out
        }
    }
}

/// The outcome of one replayed request.
struct LoadResult: Sendable {
    var id: Int
    var resolution: String
    /// The HTTP status, or 0 when no answer came (refused, reset, timed out).
    var status: Int
    var met: Bool
    var latency: Double?
    var error: String?

    /// The fields of a 200 answer that the summary needs.
    struct Answer: Decodable {
        var sloMet: Bool?
        var inferenceTime: Double?

        enum CodingKeys: String, CodingKey {
            case sloMet = "slo_met"
            case inferenceTime = "inference_time_s"
        }
    }

    struct ErrorAnswer: Decodable {
        struct Body: Decodable { var message: String? }
        var error: Body?
    }

    static func send(
        client: HTTPClient, url: String, body: Data, timeout: TimeAmount, request r: TraceRequest
    ) async -> LoadResult {
        var out = LoadResult(id: r.id, resolution: r.resolution.description, status: 0, met: false)
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        // A fresh connection per request, as each one waits out its own generation anyway: a
        // kept-alive connection that the server closes as the next request goes out would lose
        // that request (a POST is not retried).
        request.headers.add(name: "Connection", value: "close")
        request.body = .bytes(ByteBuffer(bytes: body))
        do {
            let response = try await client.execute(request, timeout: timeout)
            let bytes = try await response.body.collect(upTo: 256 << 20)
            out.status = Int(response.status.code)
            let data = Data(bytes.readableBytesView)
            if out.status == 200 {
                let answer = try? JSONDecoder().decode(Answer.self, from: data)
                out.met = answer?.sloMet ?? false
                out.latency = answer?.inferenceTime
            } else {
                out.error =
                    (try? JSONDecoder().decode(ErrorAnswer.self, from: data))?.error?.message ?? "HTTP \(out.status)"
            }
        } catch {
            out.error = describe(error)
        }
        return out
    }

    /// A short description of a transport error (the system's words for socket errors).
    static func describe(_ error: any Error) -> String {
        if let io = error as? IOError { return String(cString: strerror(io.errnoCode)) }
        if let e = error as? HTTPClientError, e == .deadlineExceeded { return "no answer within --timeout" }
        return "\(error)"
    }
}

/// This process's CPU time so far (getrusage), in seconds.
struct CPUTime {
    var user: Double
    var system: Double

    static func now() -> CPUTime {
        var usage = rusage()
        getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return CPUTime(user: seconds(usage.ru_utime), system: seconds(usage.ru_stime))
    }

    static func - (a: CPUTime, b: CPUTime) -> CPUTime { CPUTime(user: a.user - b.user, system: a.system - b.system) }
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
        let unanswered = Dictionary(grouping: results.filter { $0.status == 0 }, by: { $0.error ?? "no response" })
        for (why, rs) in unanswered.sorted(by: { $0.value.count > $1.value.count }) {
            s += "\nno answer ×\(rs.count): \(why)"
        }
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
