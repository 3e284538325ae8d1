import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import TetriCore

/// The HTTP API: OpenAI-shaped image generation, async jobs, models, health and metrics.
public struct ImageRoutes: Sendable {
    public let loop: RoundLoop
    public let configuration: ServingConfiguration
    /// Serving or draining (set by the shutdown service).
    public let lifecycle = ServerLifecycle()
    /// Unix milliseconds at the clock's origin.
    let originUnixMs: Double

    /// Every route the API serves, as the OpenAPI document names them (`{id}` for a parameter).
    /// ``add(to:)`` registers exactly these; a test holds them and `GET /openapi.json` together.
    public static let endpoints: [(method: HTTPRequest.Method, path: String)] = [
        (.post, "/v1/images/generations"),
        (.post, "/v1/images/jobs"),
        (.get, "/v1/images/jobs/{id}"),
        (.delete, "/v1/images/jobs/{id}"),
        (.get, "/v1/images/jobs/{id}/content"),
        (.get, "/v1/models"),
        (.get, "/healthz"),
        (.get, "/metrics"),
        (.get, "/openapi.json"),
    ]

    /// The methods served on a concrete path (HEAD wherever GET is), or none when no route matches.
    static func methods(forPath path: String) -> [HTTPRequest.Method] {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        var methods: [HTTPRequest.Method] = []
        for e in endpoints {
            let pattern = e.path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
            guard pattern.count == parts.count else { continue }
            let match = zip(pattern, parts).allSatisfy { p, s in p.hasPrefix("{") ? !s.isEmpty : p == s }
            if match && !methods.contains(e.method) {
                methods.append(e.method)
                if e.method == .get { methods.append(.head) }
            }
        }
        return methods
    }

    public init(loop: RoundLoop, configuration: ServingConfiguration) {
        self.loop = loop
        self.configuration = configuration
        let sinceOrigin = loop.clock.origin.duration(to: .now)
        self.originUnixMs =
            Date().timeIntervalSince1970 * 1000 - Double(sinceOrigin.components.seconds) * 1000
            - Double(sinceOrigin.components.attoseconds) / 1e15
    }

    var backend: any ExecutionBackend { loop.backend }
    var timeScale: Double { loop.clock.timeScale }

    /// Unix milliseconds of a virtual time.
    func unixMs(_ t: Micros) -> Double { originUnixMs + Double(t) / 1000 / timeScale }

    /// Registers the routes; returns them as (method, OpenAPI path) in registration order.
    @discardableResult
    public func add(to router: Router<BasicRequestContext>) -> [(method: HTTPRequest.Method, path: String)] {
        var registered: [(method: HTTPRequest.Method, path: String)] = []
        func on(
            _ method: HTTPRequest.Method, _ path: String,
            _ handler: @escaping @Sendable (Request, BasicRequestContext) async throws -> Response
        ) {
            router.on(RouterPath(path), method: method, use: handler)
            let openAPIPath =
                "/"
                + path.split(separator: "/").map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : $0 }
                .joined(separator: "/")
            registered.append((method, openAPIPath))
        }
        on(.post, "v1/images/generations") { request, _ in try await generate(request) }
        on(.post, "v1/images/jobs") { request, _ in try await createJob(request) }
        on(.get, "v1/images/jobs/:id") { _, context in
            let id = try context.parameters.require("id")
            guard let s = await loop.status(id) else { throw APIError.notFound("no job '\(id)'") }
            var response = try jsonResponse(jobJSON(s))
            response.headers[LogHeaders.jobID] = s.id
            return response
        }
        on(.get, "v1/images/jobs/:id/content") { _, context in
            let id = try context.parameters.require("id")
            guard let s = await loop.status(id) else { throw APIError.notFound("no job '\(id)'") }
            switch s.status {
            case .succeeded:
                guard let png = await loop.image(id) else { throw APIError.notFound("job '\(id)' has no image") }
                return Response(
                    status: .ok, headers: [.contentType: "image/png"], body: .init(byteBuffer: ByteBuffer(bytes: png)))
            case .queued, .running:
                throw APIError(
                    .conflict, "job '\(id)' is \(s.status.rawValue); its image is not ready", code: "not_ready")
            case .failed, .cancelled:
                throw APIError(.gone, "job '\(id)' \(s.status.rawValue) and has no image", code: s.status.rawValue)
            }
        }
        on(.delete, "v1/images/jobs/:id") { _, context in
            let id = try context.parameters.require("id")
            guard let s = await loop.cancel(id) else { throw APIError.notFound("no job '\(id)'") }
            var response = try jsonResponse(jobJSON(s))
            response.headers[LogHeaders.jobID] = s.id
            return response
        }
        on(.get, "v1/models") { _, _ in
            try jsonResponse([
                "object": "list",
                "data": [
                    [
                        "id": backend.modelName, "object": "model", "created": Int(originUnixMs / 1000),
                        "owned_by": "tetriserve",
                    ]
                ],
            ])
        }
        on(.get, "healthz") { _, _ in
            let load = await loop.load
            let unavailable = backend.unavailableDevices
            // degraded: a device is being replaced (or could not be); draining: shutting down.
            let status = lifecycle.isDraining ? "draining" : unavailable > 0 ? "degraded" : "ok"
            return try jsonResponse([
                "status": status, "engine": backend.kind, "model": backend.modelName, "devices": backend.devices,
                "unavailable_devices": unavailable, "policy": await loop.schedulerName, "waiting": load.waiting,
                "running": load.running, "time_scale": timeScale,
            ])
        }
        on(.get, "metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: ByteBuffer(string: loop.metrics.render())))
        }
        on(.get, "openapi.json") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: OpenAPI.document(modelName: backend.modelName))))
        }
        return registered
    }

    // MARK: Handlers

    /// The whole body, at most `maxBodyBytes` (413), within `bodyTimeout` (408).
    func readBody(_ body: RequestBody) async throws -> Data {
        let limit = configuration.maxBodyBytes
        let timeout = configuration.bodyTimeout
        do {
            return try await withThrowingTaskGroup(of: Data.self) { group in
                group.addTask { Data(buffer: try await body.collect(upTo: limit)) }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    throw APIError(
                        .requestTimeout, "the request body did not arrive within \(timeout)", code: "timeout")
                }
                defer { group.cancelAll() }
                return try await group.next()!
            }
        } catch is NIOTooManyBytesError {
            throw APIError(.contentTooLarge, "the request body is larger than \(limit) bytes")
        }
    }

    func parse(_ data: Data, jobs: Bool) throws -> ImageRequest {
        try ImageRequest.parse(
            data, backend: backend, defaultSteps: configuration.defaultSteps, allowRequestID: jobs,
            maxImages: jobs ? 1 : configuration.maxImages)
    }

    func deadline(_ r: ImageRequest) -> Micros {
        let now = loop.clock.now()
        // Both are range-checked by the parser; the conversions saturate rather than trap.
        if let slo = r.sloMs { return now + Micros(clamping: slo * 1000) }
        if let unix = r.deadlineUnixMs { return Micros(clamping: (unix - originUnixMs) * 1000 * timeScale) }
        let res = backend.costClass(width: r.width, height: r.height) ?? 0
        return now + configuration.defaultSLO(resolution: res, steps: r.steps)
    }

    func submit(_ r: ImageRequest, index: Int) async throws -> JobSnapshot {
        let job = GenerationJob(
            prompt: r.prompt, width: r.width, height: r.height, steps: r.steps, seed: r.seed &+ UInt64(index))
        do {
            return try await loop.submit(job, deadline: deadline(r), requestID: r.requestID)
        } catch {
            throw Self.apiError(error)
        }
    }

    static func apiError(_ e: AdmissionError) -> APIError {
        switch e {
        case .queueFull(_, let retry):
            var err = APIError(.tooManyRequests, e.description, type: "rate_limit_error", code: "queue_full")
            err.headers[.retryAfter] = String(retry)
            return err
        case .shuttingDown:
            return APIError(.serviceUnavailable, e.description, type: "server_error", code: "shutting_down")
        case .conflictingRequestID:
            return APIError(.conflict, e.description, param: "request_id")
        case .infeasible:
            return APIError(.unprocessableContent, e.description, param: "slo_ms", code: "deadline_infeasible")
        }
    }

    /// `POST /v1/images/generations`: waits for the images. The client going away cancels its
    /// jobs (their devices free up at the next step boundary); the connection closes after the
    /// response, as watching for that consumes the connection's inbound stream.
    func generate(_ request: Request) async throws -> Response {
        try await request.body.consumeWithCancellationOnInboundClose { body in
            let r = try parse(try await readBody(body), jobs: false)
            var keys: [String] = []
            do {
                for i in 0..<r.n { keys.append(try await submit(r, index: i).id) }
            } catch {
                for k in keys { _ = await loop.cancel(k) }
                throw error
            }
            let loop = self.loop
            let ids = keys
            let snaps = await withTaskCancellationHandler {
                var out: [JobSnapshot] = []
                for k in ids { if let s = await loop.wait(k) { out.append(s) } }
                return out
            } onCancel: {
                // The client went away: free its devices at the next step boundary.
                Task { for k in ids { _ = await loop.cancel(k) } }
            }
            if let failed = snaps.first(where: { $0.status != .succeeded }) {
                throw APIError(
                    .internalServerError, "generation \(failed.status.rawValue): \(failed.error ?? "no reason given")",
                    type: "server_error")
            }
            var data: [[String: Any]] = []
            for s in snaps {
                guard let png = await loop.image(s.id) else {
                    throw APIError(.internalServerError, "image of \(s.id) is gone", type: "server_error")
                }
                var item = timing(s)
                item["b64_json"] = Data(png).base64EncodedString()
                item["revised_prompt"] = NSNull()
                item["seed"] = Int(truncatingIfNeeded: s.job.seed)
                data.append(item)
            }
            var object: [String: Any] = [
                "created": Int(unixMs(snaps.map(\.arrival).min() ?? 0) / 1000),
                "data": data,
                "inference_time_s": snaps.compactMap(\.inferenceSeconds).max() ?? 0,
                "slo_met": snaps.allSatisfy { $0.sloMet == true },
                "degree_history": snaps.first.map { history($0) } ?? [],
            ]
            if !r.warnings.isEmpty { object["warnings"] = r.warnings }
            var response = try jsonResponse(object)
            response.headers[LogHeaders.jobID] = ids.joined(separator: ",")
            response.headers[LogHeaders.sloMet] = String(snaps.allSatisfy { $0.sloMet == true })
            // Watching for the client going away consumes the connection's inbound stream.
            response.headers[.connection] = "close"
            return response
        }
    }

    func createJob(_ request: Request) async throws -> Response {
        let r = try parse(try await readBody(request.body), jobs: true)
        var known: JobSnapshot?
        if let rid = r.requestID { known = await loop.statusForRequestID(rid) }
        let s = try await submit(r, index: 0)
        var object = jobJSON(s)
        if !r.warnings.isEmpty { object["warnings"] = r.warnings }
        var response = try jsonResponse(object, status: known == nil ? .accepted : .ok)
        response.headers[LogHeaders.jobID] = s.id
        return response
    }

    // MARK: Rendering

    func history(_ s: JobSnapshot) -> [[String: Any]] {
        s.history.map { ["degree": $0.degree, "steps": $0.steps, "devices": $0.devices, "start_s": $0.startS] }
    }

    func timing(_ s: JobSnapshot) -> [String: Any] {
        var o: [String: Any] = ["degree_history": history(s)]
        o["inference_time_s"] = s.inferenceSeconds ?? NSNull()
        o["slo_met"] = s.sloMet ?? NSNull()
        return o
    }

    func jobJSON(_ s: JobSnapshot) -> [String: Any] {
        var o = timing(s)
        o["id"] = s.id
        o["object"] = "image.job"
        o["status"] = s.status.rawValue
        o["request_id"] = s.requestID ?? NSNull()
        o["created"] = Int(unixMs(s.arrival) / 1000)
        o["size"] = "\(s.job.width)x\(s.job.height)"
        o["seed"] = Int(truncatingIfNeeded: s.job.seed)
        o["steps_done"] = s.stepsDone
        o["steps_total"] = s.job.steps
        o["current_degree"] = s.currentDegree ?? NSNull()
        o["deadline"] = Int(unixMs(s.deadline))
        o["estimated_finish"] = s.estimate.map { Int(unixMs($0)) } ?? NSNull()
        o["finished_at"] = s.finish.map { Int(unixMs($0)) } ?? NSNull()
        o["error"] = s.error ?? NSNull()
        return o
    }
}
