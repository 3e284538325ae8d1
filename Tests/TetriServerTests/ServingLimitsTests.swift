import DiTEngine
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing

@testable import TetriCore
@testable import TetriServer
@testable import TetriSim

/// Simulated FLUX devices with request memory like the CPU engine's shared-memory heap: each
/// request holds `bytesPerToken` × its class's latent tokens from admission until it is terminal.
/// Any size up to 2048² is accepted and scheduled as the smallest class at least as large.
struct MemoryBoundBackend: ForwardingBackend {
    let inner: SimulatedBackend
    let bytesPerToken: Int
    let capacity: Int

    func validate(width: Int, height: Int) -> String? {
        costClass(width: width, height: height) == nil ? "too large" : nil
    }

    func costClass(width: Int, height: Int) -> Int? {
        costModel.resolutions.firstIndex { $0.width >= width && $0.height >= height }
    }

    func memoryCost(width: Int, height: Int) -> Int {
        costClass(width: width, height: height).map { costModel.latentTokens[$0] * bytesPerToken } ?? 0
    }

    var memoryCapacity: Int? { capacity }

    func begin(_ job: GenerationJob) async throws -> Int {
        let r = costModel.resolutions[costClass(width: job.width, height: job.height)!]
        var scheduled = job
        (scheduled.width, scheduled.height) = (r.width, r.height)
        return try await inner.begin(scheduled)
    }

    func shutdown() async {}
}

/// A test backend that forwards every requirement to a simulated backend except those it
/// implements itself.
protocol ForwardingBackend: ExecutionBackend {
    var inner: SimulatedBackend { get }
}

extension ForwardingBackend {
    var kind: String { inner.kind }
    var modelName: String { inner.modelName }
    var devices: Int { inner.devices }
    var costModel: CostModel { inner.costModel }
    func validate(width: Int, height: Int) -> String? { inner.validate(width: width, height: height) }
    func costClass(width: Int, height: Int) -> Int? { inner.costClass(width: width, height: height) }
    func begin(_ job: GenerationJob) async throws -> Int { try await inner.begin(job) }
    func run(
        handle: Int, from: Int, steps: Int, devices: [Int], start: Micros, progress: @escaping @Sendable (Int) -> Void
    ) async throws {
        try await inner.run(
            handle: handle, from: from, steps: steps, devices: devices, start: start, progress: progress)
    }
    func finish(handle: Int) async throws -> [UInt8] { try await inner.finish(handle: handle) }
    func release(handle: Int) async { await inner.release(handle: handle) }
    func shutdown() async { await inner.shutdown() }
}

func makeMemoryLoop(timeScale: Double = 20, capacityTokens: Int, maxQueue: Int = 64) throws -> RoundLoop {
    let model = try CostModel(profile: fluxProfile)
    let clock = ServingClock(timeScale: timeScale)
    let backend = MemoryBoundBackend(
        inner: SimulatedBackend(model: model, devices: 8, clock: clock), bytesPerToken: 16,
        capacity: capacityTokens * 16)
    var logger = Logger(label: "test")
    logger.logLevel = .critical
    return RoundLoop(
        backend: backend, scheduler: try Policies.make("tetriserve", model: model, gpus: 8), clock: clock,
        configuration: .init(maxQueue: maxQueue), metrics: ServerMetrics(), logger: logger)
}

func makeLoop(configuration: RoundLoop.Configuration, timeScale: Double) throws -> RoundLoop {
    let model = try CostModel(profile: fluxProfile)
    let clock = ServingClock(timeScale: timeScale)
    var logger = Logger(label: "test")
    logger.logLevel = .critical
    return RoundLoop(
        backend: SimulatedBackend(model: model, devices: 8, clock: clock),
        scheduler: try Policies.make("tetriserve", model: model, gpus: 8), clock: clock,
        configuration: configuration, metrics: ServerMetrics(), logger: logger)
}

func makeApp(_ loop: RoundLoop, keys: [String]) -> some ApplicationProtocol {
    var logger = Logger(label: "test")
    logger.logLevel = .critical
    var configuration = ServingConfiguration(baseSLO: [1.5, 2, 3, 5])
    configuration.apiKeys = APIKeys(keys)
    return Server.application(
        routes: ImageRoutes(loop: loop, configuration: configuration), host: "127.0.0.1", port: 0, logger: logger)
}

func errorObject(_ buffer: ByteBuffer) throws -> [String: Any] {
    try #require(try json(buffer)["error"] as? [String: Any])
}

@Suite struct AdmissionMemoryTests {
    @Test func jobsBeyondTheRequestMemoryAreRefusedNotAcceptedAndFailed() async throws {
        // Room for 48 latents of 1024² (the issue's 60-job run held 48 in the pool's heap), 64 slots.
        let loop = try makeMemoryLoop(timeScale: 5, capacityTokens: 48 * 4096)
        let app = makeApp(loop)
        try await app.test(.live) { client in
            var accepted: [String] = []
            var refused = 0
            for i in 0..<60 {
                try await client.execute(
                    uri: "/v1/images/jobs", method: .post, headers: jsonHeaders,
                    body: body(["prompt": "p\(i)", "size": "1024x1024", "slo_ms": 600_000])
                ) { res in
                    if res.status == .accepted {
                        accepted.append(try #require(try json(res.body)["id"] as? String))
                    } else {
                        #expect(res.status == .tooManyRequests)
                        #expect(Int(res.headers[.retryAfter] ?? "") ?? 0 >= 1)
                        let err = try errorObject(res.body)
                        #expect(err["code"] as? String == "memory_full")
                        refused += 1
                    }
                }
            }
            #expect(accepted.count == 48 && refused == 12)
            #expect(await loop.memory.held == 48 * 4096 * 16)
            // None of the accepted ones fails; cancel them to finish quickly.
            for id in accepted { _ = await loop.cancel(id) }
            for id in accepted { #expect(await loop.wait(id)?.status == .cancelled) }
            #expect(await loop.memory.held == 0)
            // Memory freed: admitted again.
            try await client.execute(
                uri: "/v1/images/jobs", method: .post, headers: jsonHeaders,
                body: body(["prompt": "again", "size": "1024x1024"])
            ) { res in #expect(res.status == .accepted) }
        }
    }

    @Test func aRequestThatCanNeverFitGets503AndTheSyncEndpointNo500() async throws {
        // Room for one 1024² latent: 2048² can never fit.
        let loop = try makeMemoryLoop(timeScale: 1, capacityTokens: 4096)
        let app = makeApp(loop)
        try await app.test(.live) { client in
            try await client.execute(
                uri: "/v1/images/jobs", method: .post, headers: jsonHeaders,
                body: body(["prompt": "big", "size": "2048x2048"])
            ) { res in
                #expect(res.status == .serviceUnavailable)
                let err = try errorObject(res.body)
                #expect(err["code"] as? String == "too_large")
                #expect(err["param"] as? String == "size")
            }
            try await client.execute(
                uri: "/v1/images/jobs", method: .post, headers: jsonHeaders,
                body: body(["prompt": "holds it", "size": "1024x1024", "slo_ms": 600_000])
            ) { res in #expect(res.status == .accepted) }
            // The synchronous endpoint is refused the same way, before any work (last: it closes
            // the connection).
            try await client.execute(
                uri: "/v1/images/generations", method: .post, headers: jsonHeaders,
                body: body(["prompt": "sync", "size": "512x512", "n": 2])
            ) { res in
                #expect(res.status == .tooManyRequests)
                let err = try errorObject(res.body)
                #expect(err["code"] as? String == "memory_full")
                #expect(!(err["message"] as? String ?? "").contains("shared memory for requests"))
            }
        }
        #expect(await loop.list(limit: 100)?.jobs.count == 1)
    }
}

@Suite struct APIKeyTests {
    func bearer(_ key: String) -> HTTPFields { [.authorization: "Bearer \(key)", .contentType: "application/json"] }

    @Test func keysAreRequiredAndScopeJobsAndRequestIDs() async throws {
        let loop = try makeLoop(timeScale: 2)
        let app = makeApp(loop, keys: ["alpha-key", "beta-key"])
        try await app.test(.live) { client in
            let request = body(["prompt": "mine", "size": "256x256", "request_id": "same", "slo_ms": 600_000])
            for headers: HTTPFields in [
                jsonHeaders, bearer("wrong"), [.authorization: "Basic alpha-key", .contentType: "application/json"],
            ] {
                try await client.execute(uri: "/v1/images/jobs", method: .post, headers: headers, body: request) {
                    res in
                    #expect(res.status == .unauthorized)
                    #expect(res.headers[.wwwAuthenticate] == "Bearer")
                    let err = try errorObject(res.body)
                    #expect(err["code"] as? String == "invalid_api_key")
                    #expect(err["type"] as? String == "invalid_request_error")
                }
            }
            try await client.execute(uri: "/v1/models", method: .get) { res in #expect(res.status == .unauthorized) }
            try await client.execute(uri: "/healthz", method: .get) { res in #expect(res.status == .ok) }
            let a = try await client.execute(
                uri: "/v1/images/jobs", method: .post, headers: bearer("alpha-key"), body: request
            ) { res in
                #expect(res.status == .accepted)
                return try #require(try json(res.body)["id"] as? String)
            }
            // Unguessable: 128 random bits in hex.
            #expect(a.wholeMatch(of: /job-[0-9a-f]{32}/) != nil)
            // Another key: the same request_id is its own job; the first key's job is unknown to it.
            let b = try await client.execute(
                uri: "/v1/images/jobs", method: .post, headers: bearer("beta-key"), body: request
            ) { res in
                #expect(res.status == .accepted)
                return try #require(try json(res.body)["id"] as? String)
            }
            #expect(a != b)
            for (uri, method) in [
                ("/v1/images/jobs/\(a)", HTTPRequest.Method.get), ("/v1/images/jobs/\(a)/content", .get),
                ("/v1/images/jobs/\(a)/events", .get), ("/v1/images/jobs/\(a)", .delete),
            ] {
                try await client.execute(uri: uri, method: method, headers: bearer("beta-key")) { res in
                    #expect(res.status == .notFound, "\(method) \(uri)")
                }
            }
            try await client.execute(uri: "/v1/images/jobs", method: .get, headers: bearer("beta-key")) { res in
                let data = try #require(try json(res.body)["data"] as? [[String: Any]])
                #expect(data.map { $0["id"] as? String } == [b])
            }
            // The owner still sees and retries it.
            try await client.execute(
                uri: "/v1/images/jobs", method: .post, headers: bearer("alpha-key"), body: request
            ) { res in
                #expect(res.status == .ok)
                let obj = try json(res.body)
                #expect(obj["id"] as? String == a)
            }
            #expect(await loop.wait(a, owner: "key-0")?.status == .succeeded)
            try await client.execute(uri: "/v1/images/jobs/\(a)/content", method: .get, headers: bearer("alpha-key")) {
                res in #expect(res.status == .ok)
            }
        }
    }

    @Test func loopbackAddressesAreToldApart() {
        for host in ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"] { #expect(APIKeys.isLoopback(host: host)) }
        for host in ["0.0.0.0", "::", "192.168.1.5", "example.com", "128.0.0.1"] {
            #expect(!APIKeys.isLoopback(host: host))
        }
    }

    @Test func servingAnOpenAddressWithoutKeysWarnsAtStartUp() throws {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("serve-\(UUID().uuidString).log")
        #expect(FileManager.default.createFile(atPath: log.path, contents: nil))
        defer { try? FileManager.default.removeItem(at: log) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try WorkerPool.locateExecutable())
        p.arguments = ["serve", "--engine", "simulated", "--host", "0.0.0.0", "--port", "0"]
        p.currentDirectoryURL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        p.standardError = try FileHandle(forWritingTo: log)
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        var text = ""
        for _ in 0..<600 where !text.contains("without API keys") {
            usleep(100_000)
            text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        }
        p.terminate()
        p.waitUntilExit()
        #expect(text.contains("warning: listening on 0.0.0.0 without API keys"), "\(text)")
    }

    @Test func keysComeFromOptionsAndTheEnvironment() {
        let keys = APIKeys.from(options: ["a", "b"], environment: " c ,, a,d ")
        #expect(keys.keys == ["a", "b", "c", "d"])
        #expect(!APIKeys.from(options: [], environment: nil).isEnabled)
        #expect(APIKeys.equalInConstantTime(Array("abc".utf8), Array("abc".utf8)))
        #expect(!APIKeys.equalInConstantTime(Array("abc".utf8), Array("abd".utf8)))
        #expect(!APIKeys.equalInConstantTime(Array("abc".utf8), Array("abcd".utf8)))
        #expect(!APIKeys.equalInConstantTime(Array("".utf8), Array("a".utf8)))
    }
}

@Suite struct JobAccountingTests {
    @Test func cancelledJobsAreNeverOnTimeAndTheDeleteSaysSo() async throws {
        let loop = try makeLoop(timeScale: 1)
        let app = makeApp(loop)
        try await app.test(.live) { client in
            // A running job answers `cancelling`, then becomes `cancelled`.
            let running = try await client.execute(
                uri: "/v1/images/jobs", method: .post, headers: jsonHeaders,
                body: body(["prompt": "slow", "size": "2048x2048", "slo_ms": 600_000])
            ) { res in try #require(try json(res.body)["id"] as? String) }
            for _ in 0..<200 {
                if await loop.status(running)?.status == .running { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            try await client.execute(uri: "/v1/images/jobs/\(running)", method: .delete) { res in
                #expect(res.status == .ok)
                let obj = try json(res.body)
                #expect(obj["status"] as? String == "cancelling")
                #expect(obj["slo_met"] is NSNull)
            }
            let final = try #require(await loop.wait(running))
            #expect(final.status == .cancelled && final.sloMet == false && final.inferenceSeconds == nil)
            try await client.execute(uri: "/v1/images/jobs/\(running)", method: .get) { res in
                let obj = try json(res.body)
                #expect(obj["status"] as? String == "cancelled")
                #expect(obj["slo_met"] as? Bool == false)
                #expect(obj["inference_time_s"] is NSNull)
                #expect((obj["finished_at"] as? Int) != nil)
            }
            try await client.execute(uri: "/metrics", method: .get) { res in
                #expect(String(buffer: res.body).contains(#"outcome="cancelled""#))
            }
        }
    }

    @Test func degreeHistoryStartsAreSecondsAfterArrival() async throws {
        let loop = try makeLoop(timeScale: 20)
        let job = GenerationJob(prompt: "x", width: 512, height: 512, steps: 20, seed: 1)
        try await Task.sleep(for: .milliseconds(200))  // 4 virtual seconds after the server started
        let s = try await loop.submit(job, deadline: loop.clock.now() + 60_000_000)
        let final = try #require(await loop.wait(s.id))
        #expect(final.status == .succeeded && final.sloMet == true)
        // An idle node starts it at once: its first segment begins at its arrival, not 4 s in.
        let first = try #require(final.history.first)
        #expect(first.startS >= 0 && first.startS < 1)
    }
}

@Suite struct RetentionTests {
    @Test func evictedResultsAnswer410AndTheirRequestIDIsNotRunAgain() async throws {
        // Results are kept within two records' worth of bytes (the simulated image, the record, a
        // one-character prompt).
        let png = try SimulatedBackend.placeholder(
            GenerationJob(prompt: "p", width: 256, height: 256, steps: 5, seed: 0))
        let record = png.count + JobStore.recordOverhead + 1
        let loop = try makeLoop(configuration: .init(resultMemory: 2 * record + 10), timeScale: 50)
        let app = makeApp(loop)
        try await app.test(.live) { client in
            var ids: [String] = []
            for i in 0..<4 {
                let id = try await client.execute(
                    uri: "/v1/images/jobs", method: .post, headers: jsonHeaders,
                    body: body(["prompt": "p", "size": "256x256", "request_id": "r\(i)", "num_inference_steps": 5])
                ) { res in
                    #expect(res.status == .accepted)
                    return try #require(try json(res.body)["id"] as? String)
                }
                #expect(await loop.wait(id)?.status == .succeeded)
                ids.append(id)
            }
            for uri in ["/v1/images/jobs/\(ids[0])", "/v1/images/jobs/\(ids[0])/content"] {
                try await client.execute(uri: uri, method: .get) { res in
                    #expect(res.status == .gone)
                    let err = try errorObject(res.body)
                    #expect(err["code"] as? String == "result_evicted")
                    #expect((err["message"] as? String ?? "").contains("--result-memory"))
                }
            }
            // Retrying its request_id answers the same, and runs nothing.
            try await client.execute(
                uri: "/v1/images/jobs", method: .post, headers: jsonHeaders,
                body: body(["prompt": "p", "size": "256x256", "request_id": "r0", "num_inference_steps": 5])
            ) { res in
                #expect(res.status == .gone)
                let err = try errorObject(res.body)
                #expect(err["code"] as? String == "result_evicted" && err["param"] as? String == "request_id")
            }
            try await client.execute(uri: "/v1/images/jobs/\(ids[3])/content", method: .get) { res in
                #expect(res.status == .ok)
            }
            #expect(await loop.list(limit: 100)?.jobs.map(\.id) == [ids[3], ids[2]])
        }
    }

    @Test func resultsExpireAfterTheirTTL() async throws {
        let loop = try makeLoop(configuration: .init(resultTTLSeconds: 0.05), timeScale: 50)
        let job = GenerationJob(prompt: "x", width: 256, height: 256, steps: 5, seed: 1)
        let s = try await loop.submit(job, deadline: 60_000_000)
        #expect(await loop.wait(s.id)?.status == .succeeded)
        try await Task.sleep(for: .milliseconds(300))
        guard case .gone(let t) = await loop.lookup(s.id) else {
            Issue.record("the result should have expired")
            return
        }
        #expect(t.reason == .expired && t.status == .succeeded)
        #expect(await loop.memory.results == 0)
    }
}

@Suite struct MetricsLabelTests {
    @Test func resolutionLabelsAreClassesAndEveryMetricHasHelp() async throws {
        let loop = try makeMemoryLoop(timeScale: 50, capacityTokens: 1 << 20)
        let app = makeApp(loop)
        try await app.test(.live) { client in
            // Five sizes that all schedule as the 256² class.
            for side in [128, 160, 200, 240, 256] {
                let job = GenerationJob(prompt: "x", width: side, height: side, steps: 5, seed: 1)
                let s = try await loop.submit(job, deadline: loop.clock.now() + 60_000_000)
                #expect(await loop.wait(s.id)?.status == .succeeded)
            }
            try await client.execute(uri: "/metrics", method: .get) { res in
                let text = String(buffer: res.body)
                // Requests are labelled by the class they were scheduled as; the step-time gauge
                // has one series per profiled class, nothing else.
                let lines = text.split(separator: "\n")
                let requestLines = lines.filter { !$0.hasPrefix("tetriserve_step_time_seconds") }
                let labels = Set(requestLines.flatMap { $0.matches(of: /resolution="([^"]*)"/).map { String($0.1) } })
                #expect(labels == ["256x256"])
                let gaugeLabels = Set(
                    lines.filter { $0.hasPrefix("tetriserve_step_time_seconds{") }
                        .flatMap { $0.matches(of: /resolution="([^"]*)"/).map { String($0.1) } })
                #expect(gaugeLabels == Set(loop.backend.costModel.resolutionNames))
                let typed = text.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }.map {
                    $0.split(separator: " ")[2]
                }
                let helped = Set(
                    text.split(separator: "\n").filter { $0.hasPrefix("# HELP ") }.map { $0.split(separator: " ")[2] })
                #expect(typed.count >= 10)
                for name in typed { #expect(helped.contains(name), "no # HELP for \(name)") }
            }
        }
    }
}

@Suite struct DropLateTests {
    @Test func hopelessRequestsAreDroppedOnceLateByTheirSLOTimesX() async throws {
        // Eight 2048² requests with a 1 s SLO: each needs at least 6.8 s; dropped at 1 s + 0.5 × 1 s.
        let loop = try makeLoop(configuration: .init(dropLateAfter: 0.5), timeScale: 20)
        let app = makeApp(loop)
        var ids: [String] = []
        for i in 0..<8 {
            let job = GenerationJob(prompt: "p\(i)", width: 2048, height: 2048, steps: 50, seed: UInt64(i))
            ids.append(try await loop.submit(job, deadline: loop.clock.now() + 1_000_000).id)
        }
        for id in ids {
            let s = try #require(await loop.wait(id))
            #expect(s.status == .failed && s.errorCode == "deadline_exceeded" && s.sloMet == false)
            #expect(s.stepsDone < 50)
            #expect(s.finish.map { $0 - s.deadline >= 500_000 } == true)
        }
        #expect(await loop.free == GPUSet(first: 8))
        // The synchronous endpoint says so with 504.
        try await app.test(.live) { client in
            try await client.execute(
                uri: "/v1/images/generations", method: .post, headers: jsonHeaders,
                body: body(["prompt": "late", "size": "2048x2048", "slo_ms": 500])
            ) { res in
                #expect(res.status == .gatewayTimeout)
                let err = try errorObject(res.body)
                #expect(err["code"] as? String == "deadline_exceeded")
                #expect((err["message"] as? String ?? "").contains("--drop-late-after"))
            }
        }
        #expect(loop.metrics.render().contains(#"outcome="dropped""#))
    }

    @Test func withoutTheOptionLateRequestsStillFinish() async throws {
        let loop = try makeLoop(timeScale: 50)
        let job = GenerationJob(prompt: "p", width: 2048, height: 2048, steps: 10, seed: 1)
        let s = try await loop.submit(job, deadline: loop.clock.now() + 100_000)
        let final = try #require(await loop.wait(s.id))
        #expect(final.status == .succeeded && final.sloMet == false)
    }
}

@Suite struct ListAndEventsTests {
    @Test func jobsAreListedNewestFirstInPages() async throws {
        let loop = try makeLoop(timeScale: 50)
        let app = makeApp(loop)
        try await app.test(.live) { client in
            var ids: [String] = []
            for i in 0..<5 {
                let job = GenerationJob(prompt: "p\(i)", width: 256, height: 256, steps: 5, seed: UInt64(i))
                ids.append(try await loop.submit(job, deadline: loop.clock.now() + 60_000_000).id)
            }
            let page1 = try await client.execute(uri: "/v1/images/jobs?limit=2", method: .get) { res in
                #expect(res.status == .ok)
                return try json(res.body)
            }
            #expect(page1["object"] as? String == "list")
            #expect((page1["data"] as? [[String: Any]])?.map { $0["id"] as? String } == [ids[4], ids[3]])
            #expect(page1["has_more"] as? Bool == true && page1["last_id"] as? String == ids[3])
            try await client.execute(uri: "/v1/images/jobs?limit=10&after=\(ids[3])", method: .get) { res in
                let obj = try json(res.body)
                #expect((obj["data"] as? [[String: Any]])?.map { $0["id"] as? String } == [ids[2], ids[1], ids[0]])
                #expect(obj["has_more"] as? Bool == false)
            }
            for (query, param) in [("limit=0", "limit"), ("limit=x", "limit"), ("after=job-nope", "after")] {
                try await client.execute(uri: "/v1/images/jobs?\(query)", method: .get) { res in
                    #expect(res.status == .badRequest)
                    let err = try errorObject(res.body)
                    #expect(err["param"] as? String == param)
                }
            }
        }
    }

    @Test func eventsStreamStepsAndDegreesAndEndWithFinished() async throws {
        let loop = try makeLoop(timeScale: 1)
        let app = makeApp(loop)
        try await app.test(.live) { client in
            let id = try await client.execute(
                uri: "/v1/images/jobs", method: .post, headers: jsonHeaders,
                body: body(["prompt": "watch", "size": "1024x1024", "num_inference_steps": 20, "slo_ms": 600_000])
            ) { res in try #require(try json(res.body)["id"] as? String) }
            let events = try await client.execute(uri: "/v1/images/jobs/\(id)/events", method: .get) { res in
                #expect(res.status == .ok)
                #expect(res.headers[.contentType] == "text/event-stream")
                return try String(buffer: res.body).split(separator: "\n\n").map { block in
                    let lines = block.split(separator: "\n")
                    let name = String(try #require(lines.first { $0.hasPrefix("event: ") }).dropFirst(7))
                    let data = Data(try #require(lines.first { $0.hasPrefix("data: ") }).dropFirst(6).utf8)
                    return (name, try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any]))
                }
            }
            #expect(events.first?.0 == "job")
            #expect(events.last?.0 == "finished")
            #expect(events.last?.1["status"] as? String == "succeeded")
            #expect(events.count { $0.0 == "finished" } == 1)
            let steps = events.filter { $0.0 == "step" }.compactMap { $0.1["steps_done"] as? Int }
            #expect(steps == steps.sorted() && Set(steps).count == steps.count)
            #expect(steps.last == 20)
            // Every block start after the stream opened is a `degree` event; the final history
            // ends with the last of them (or, if the job never changed devices, the first event
            // already showed its one segment).
            let history = try #require(events.last?.1["degree_history"] as? [[String: Any]])
            let degrees = events.filter { $0.0 == "degree" }.map { $0.1["devices"] as? [Int] }
            let shown = try #require(events.first?.1["degree_history"] as? [[String: Any]])
            #expect(!degrees.isEmpty || !shown.isEmpty)
            if let last = degrees.last { #expect(last == history.last?["devices"] as? [Int]) }
            // A finished job's stream is its terminal event alone.
            try await client.execute(uri: "/v1/images/jobs/\(id)/events", method: .get) { res in
                let text = String(buffer: res.body)
                #expect(text.hasPrefix("event: finished\n") && text.components(separatedBy: "event: ").count == 2)
            }
        }
    }
}
