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

/// The FLUX.1-dev / 8×H100 profile the package ships (`profiles/flux1-dev-h100x8.json`).
let fluxProfile: Profile = {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    let data = try! Data(contentsOf: root.appendingPathComponent("profiles/flux1-dev-h100x8.json"))
    return try! JSONDecoder().decode(Profile.self, from: data)
}()

/// A simulated 8-GPU FLUX node, `timeScale` times faster than real time.
func makeLoop(
    timeScale: Double = 100, policy: String = "tetriserve", maxQueue: Int = 64, rejectInfeasible: Bool = false
) throws -> RoundLoop {
    let model = try CostModel(profile: fluxProfile)
    let clock = ServingClock(timeScale: timeScale)
    let backend = SimulatedBackend(model: model, devices: 8, clock: clock)
    var logger = Logger(label: "test")
    logger.logLevel = .critical
    return RoundLoop(
        backend: backend, scheduler: try Policies.make(policy, model: model, gpus: 8), clock: clock,
        configuration: .init(maxQueue: maxQueue, rejectInfeasible: rejectInfeasible), metrics: ServerMetrics(),
        logger: logger)
}

func makeApp(_ loop: RoundLoop) -> some ApplicationProtocol {
    var logger = Logger(label: "test")
    logger.logLevel = .critical
    let routes = ImageRoutes(loop: loop, configuration: ServingConfiguration(baseSLO: [1.5, 2, 3, 5]))
    return Server.application(routes: routes, host: "127.0.0.1", port: 0, logger: logger)
}

func json(_ buffer: ByteBuffer) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(buffer: buffer)) as? [String: Any])
}

/// The headers of a JSON POST (the server answers 415 without them).
let jsonHeaders: HTTPFields = [.contentType: "application/json"]

func body(_ object: [String: Any]) -> ByteBuffer {
    ByteBuffer(bytes: try! JSONSerialization.data(withJSONObject: object))
}

@Suite struct HTTPAPITests {
    @Test func synchronousGenerationReturnsPNGAndTiming() async throws {
        let app = makeApp(try makeLoop())
        try await app.test(.live) { client in
            try await client.execute(
                uri: "/v1/images/generations", method: .post, headers: jsonHeaders,
                body: body(["prompt": "a red fox", "size": "512x512", "n": 2, "seed": 7, "slo_ms": 60_000])
            ) { res in
                #expect(res.status == .ok)
                let obj = try json(res.body)
                let data = try #require(obj["data"] as? [[String: Any]])
                #expect(data.count == 2)
                #expect(data.map { $0["seed"] as? Int } == [7, 8])
                let b64 = try #require(data[0]["b64_json"] as? String)
                let png = try #require(Data(base64Encoded: b64))
                #expect(png.prefix(8) == Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]))
                #expect(obj["slo_met"] as? Bool == true)
                let history = try #require(obj["degree_history"] as? [[String: Any]])
                #expect(history.map { $0["steps"] as! Int }.reduce(0, +) == 50)
                #expect((obj["inference_time_s"] as? Double ?? 0) > 0)
            }
        }
    }

    @Test func jobLifecycleAndIdempotentRetry() async throws {
        let app = makeApp(try makeLoop(timeScale: 2))
        try await app.test(.live) { client in
            let request = ["prompt": "a boat", "size": "1024x1024", "request_id": "r-1", "num_inference_steps": 30]
            let id = try await client.execute(
                uri: "/v1/images/jobs", method: .post, headers: jsonHeaders, body: body(request)
            ) { res in
                #expect(res.status == .accepted)
                let obj = try json(res.body)
                #expect(obj["steps_total"] as? Int == 30)
                return try #require(obj["id"] as? String)
            }
            // The same request_id gives the same job back.
            try await client.execute(uri: "/v1/images/jobs", method: .post, headers: jsonHeaders, body: body(request)) {
                res in
                #expect(res.status == .ok)
                let obj = try json(res.body)
                #expect(obj["id"] as? String == id)
            }
            var status = ""
            var sawNotReady = false
            for _ in 0..<500 {
                status = try await client.execute(uri: "/v1/images/jobs/\(id)", method: .get) { res in
                    let obj = try json(res.body)
                    let done = obj["steps_done"] as? Int ?? -1
                    #expect(done >= 0 && done <= 30)
                    return obj["status"] as? String ?? ""
                }
                if status == "succeeded" { break }
                if status == "running" || status == "queued" {
                    // 409 while it runs (200 if it finished in between).
                    let code = try await client.execute(uri: "/v1/images/jobs/\(id)/content", method: .get) { res in
                        res.status
                    }
                    #expect(code == .conflict || code == .ok)
                    if code == .conflict { sawNotReady = true }
                }
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(status == "succeeded")
            #expect(sawNotReady)
            try await client.execute(uri: "/v1/images/jobs/\(id)/content", method: .get) { res in
                #expect(res.status == .ok)
                #expect(res.headers[.contentType] == "image/png")
                #expect(Data(buffer: res.body).prefix(4) == Data([0x89, 0x50, 0x4E, 0x47]))
            }
        }
    }

    @Test func cancellingARunningJobFreesItsDevices() async throws {
        let loop = try makeLoop(timeScale: 1)
        let app = makeApp(loop)
        try await app.test(.live) { client in
            let id = try await client.execute(
                uri: "/v1/images/jobs", method: .post, headers: jsonHeaders,
                body: body(["prompt": "slow", "size": "2048x2048", "slo_ms": 600_000])
            ) { res in try #require(try json(res.body)["id"] as? String) }
            for _ in 0..<100 {
                if await loop.status(id)?.status == .running { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(await loop.status(id)?.status == .running)
            try await client.execute(uri: "/v1/images/jobs/\(id)", method: .delete) { res in
                #expect(res.status == .ok)
            }
            let final = await loop.wait(id)
            #expect(final?.status == .cancelled)
            #expect((final?.stepsDone ?? 99) < 50)
            #expect(await loop.load.running == 0)
            #expect(await loop.free == GPUSet(first: 8))
            try await client.execute(uri: "/v1/images/jobs/\(id)/content", method: .get) { res in
                #expect(res.status == .gone)
            }
        }
    }

    @Test func metricsExposeRequestsAndScheduler() async throws {
        let loop = try makeLoop()
        let app = makeApp(loop)
        try await app.test(.live) { client in
            let job = GenerationJob(prompt: "x", width: 256, height: 256, steps: 10, seed: 1)
            let s = try await loop.submit(job, deadline: 10_000_000)
            #expect(await loop.wait(s.id)?.status == .succeeded)
            try await client.execute(uri: "/metrics", method: .get) { res in
                let text = String(buffer: res.body)
                #expect(text.contains("tetriserve_requests_total{"))
                #expect(text.contains("resolution=\"256x256\""))
                #expect(text.contains("tetriserve_e2e_request_latency_seconds_bucket"))
                #expect(text.contains("tetriserve_scheduler_decision_seconds_count"))
                #expect(text.contains("tetriserve_block_degree_bucket"))
                #expect(text.contains("tetriserve_num_requests_waiting"))
                #expect(text.contains("tetriserve_busy_devices"))
            }
            try await client.execute(uri: "/v1/models", method: .get) { res in
                let data = try #require(try json(res.body)["data"] as? [[String: Any]])
                #expect(data.first?["id"] as? String == "simulated-flux1-dev-h100x8")
            }
        }
    }

    @Test func badInputGetsAClear4xxAndTheServerKeepsServing() async throws {
        let app = makeApp(try makeLoop())
        let cases: [(ByteBuffer, HTTPResponse.Status, String?, String)] = [
            (ByteBuffer(string: "{not json"), .badRequest, nil, "not valid JSON"),
            (ByteBuffer(string: "[1,2]"), .badRequest, nil, "JSON object"),
            (body(["size": "256x256"]), .badRequest, "prompt", "required"),
            (body(["prompt": 3]), .badRequest, "prompt", "must be a string"),
            (body(["prompt": "x", "n": "two"]), .badRequest, "n", "integer"),
            (body(["prompt": "x", "n": 2]), .badRequest, "n", "between 1 and 1"),
            (body(["prompt": "x", "size": "640x480"]), .badRequest, "size", "unsupported size"),
            (body(["prompt": "x", "size": "big"]), .badRequest, "size", "WIDTHxHEIGHT"),
            (body(["prompt": "x", "slo_ms": -5]), .badRequest, "slo_ms", "slo_ms"),
            (body(["prompt": "x", "num_inference_steps": 500]), .badRequest, "num_inference_steps", "1 and 200"),
            (body(["prompt": "x", "seed": -1]), .badRequest, "seed", "between 0 and"),
            (body(["prompt": "x", "model": "dall-e-3"]), .badRequest, "model", "unknown model"),
            (body(["prompt": "x", "response_format": "url"]), .badRequest, "response_format", "b64_json"),
            (body(["prompt": "x", "colour": "red"]), .badRequest, "colour", "unknown field"),
            (body(["prompt": "x", "request_id": ""]), .badRequest, "request_id", "1 to 128"),
        ]
        try await app.test(.live) { client in
            // The jobs endpoint shares the parser and keeps the connection open between requests.
            for (payload, status, param, fragment) in cases {
                try await client.execute(uri: "/v1/images/jobs", method: .post, headers: jsonHeaders, body: payload) {
                    res in
                    #expect(res.status == status, "\(fragment)")
                    let err = try #require(try json(res.body)["error"] as? [String: Any])
                    #expect((err["message"] as? String ?? "").contains(fragment), "\(err)")
                    #expect(err["param"] as? String == param)
                    #expect(err["type"] as? String == "invalid_request_error")
                }
            }
            for uri in ["/v1/images/jobs/job-999", "/v1/images/jobs/nope/content"] {
                try await client.execute(uri: uri, method: .get) { res in #expect(res.status == .notFound) }
            }
            try await client.execute(uri: "/v1/images/jobs/job-999", method: .delete) { res in
                #expect(res.status == .notFound)
            }
            try await client.execute(uri: "/healthz", method: .get) { res in
                #expect(res.status == .ok)
                let obj = try json(res.body)
                #expect(obj["status"] as? String == "ok")
            }
        }
        // The synchronous endpoint answers the same way (its connection closes after each answer).
        let perConnection: [(ByteBuffer, HTTPResponse.Status, String?, String)] = [
            (body(["prompt": "x", "n": 9]), .badRequest, "n", "between 1 and 4"),
            (body(["prompt": "x", "request_id": "a"]), .badRequest, "request_id", "only accepted"),
            (ByteBuffer(string: "{"), .badRequest, nil, "not valid JSON"),
            (body(["prompt": String(repeating: "x", count: 70_000)]), .contentTooLarge, nil, "larger than"),
        ]
        for (payload, status, param, fragment) in perConnection {
            try await app.test(.live) { client in
                try await client.execute(
                    uri: "/v1/images/generations", method: .post, headers: jsonHeaders, body: payload
                ) { res in
                    #expect(res.status == status)
                    let err = try #require(try json(res.body)["error"] as? [String: Any])
                    #expect((err["message"] as? String ?? "").contains(fragment), "\(err)")
                    #expect(err["param"] as? String == param)
                }
            }
        }
    }

    @Test func fullQueueAnswers429WithRetryAfter() async throws {
        let app = makeApp(try makeLoop(timeScale: 20, maxQueue: 2))
        try await app.test(.live) { client in
            for i in 0..<2 {
                try await client.execute(
                    uri: "/v1/images/jobs", method: .post, headers: jsonHeaders,
                    body: body(["prompt": "p\(i)", "size": "2048x2048"])
                ) { res in #expect(res.status == .accepted) }
            }
            try await client.execute(
                uri: "/v1/images/jobs", method: .post, headers: jsonHeaders,
                body: body(["prompt": "p3", "size": "256x256"])
            ) { res in
                #expect(res.status == .tooManyRequests)
                #expect(Int(res.headers[.retryAfter] ?? "") ?? 0 >= 1)
                let err = try #require(try json(res.body)["error"] as? [String: Any])
                #expect(err["code"] as? String == "queue_full")
            }
        }
    }
}

@Suite struct AdmissionTests {
    @Test func infeasibleDeadlinesAreRefusedWhenAsked() async throws {
        let app = makeApp(try makeLoop(timeScale: 20, rejectInfeasible: true))
        try await app.test(.live) { client in
            // 50 steps of 2048² take at least 6.845 s (degree 8): a 5 s SLO cannot be met.
            try await client.execute(
                uri: "/v1/images/jobs", method: .post, headers: jsonHeaders,
                body: body(["prompt": "p", "size": "2048x2048", "slo_ms": 5000])
            ) { res in
                #expect(res.status == .unprocessableContent)
                let err = try #require(try json(res.body)["error"] as? [String: Any])
                #expect(err["code"] as? String == "deadline_infeasible")
                #expect((err["message"] as? String ?? "").contains("6.845 s"))
            }
            try await client.execute(
                uri: "/v1/images/jobs", method: .post, headers: jsonHeaders,
                body: body(["prompt": "p", "size": "2048x2048", "slo_ms": 7000])
            ) { res in #expect(res.status == .accepted) }
        }
    }
}

@Suite struct DisconnectTests {
    /// Sends a synchronous request over a raw socket and closes it before the answer.
    func sendAndHangUp(port: Int, body: String) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(fd >= 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        #expect(connected == 0)
        let request =
            "POST /v1/images/generations HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
        _ = request.withCString { send(fd, $0, strlen($0), 0) }
        usleep(200_000)
        close(fd)
    }

    @Test func aClientThatGoesAwayCancelsItsRequest() async throws {
        let loop = try makeLoop(timeScale: 1)
        let app = makeApp(loop)
        try await app.test(.live) { client in
            let port = try #require(client.port)
            try sendAndHangUp(port: port, body: #"{"prompt": "gone", "size": "2048x2048", "slo_ms": 600000}"#)
            var status: JobStatus?
            for _ in 0..<200 {
                status = await loop.list(limit: 1)?.jobs.first?.status
                if status == .cancelled { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(status == .cancelled)
            #expect(await loop.load.running == 0)
        }
    }
}
