import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTP1
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
        (.get, "/v1/images/jobs"),
        (.get, "/v1/images/jobs/{id}"),
        (.delete, "/v1/images/jobs/{id}"),
        (.get, "/v1/images/jobs/{id}/content"),
        (.get, "/v1/images/jobs/{id}/events"),
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
    public func add(to router: Router<ServeRequestContext>) -> [(method: HTTPRequest.Method, path: String)] {
        // First: middleware wraps only the routes added after it.
        if configuration.apiKeys.isEnabled {
            router.add(middleware: APIKeyMiddleware<ServeRequestContext>(keys: configuration.apiKeys))
        }
        var registered: [(method: HTTPRequest.Method, path: String)] = []
        func on(
            _ method: HTTPRequest.Method, _ path: String,
            _ handler: @escaping @Sendable (Request, ServeRequestContext) async throws -> Response
        ) {
            router.on(RouterPath(path), method: method, use: handler)
            let openAPIPath =
                "/"
                + path.split(separator: "/").map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : $0 }
                .joined(separator: "/")
            registered.append((method, openAPIPath))
        }
        on(.post, "v1/images/generations") { request, context in try await generate(request, context: context) }
        on(.post, "v1/images/jobs") { request, _ in try await createJob(request) }
        on(.get, "v1/images/jobs") { request, _ in try await listJobs(request) }
        on(.get, "v1/images/jobs/:id") { request, context in
            let id = try context.parameters.require("id")
            let s = try found(await loop.lookup(id, owner: try owner(request)), id)
            var response = try jsonResponse(jobJSON(s))
            response.headers[LogHeaders.jobID] = s.id
            return response
        }
        on(.get, "v1/images/jobs/:id/content") { request, context in
            let id = try context.parameters.require("id")
            let caller = try owner(request)
            let s = try found(await loop.lookup(id, owner: caller), id)
            switch s.status {
            case .succeeded:
                guard let png = await loop.image(id, owner: caller) else { throw APIError.notFound("no job '\(id)'") }
                return Response(
                    status: .ok, headers: [.contentType: "image/png"], body: .init(byteBuffer: ByteBuffer(bytes: png)))
            case .queued, .running:
                throw APIError(
                    .conflict, "job '\(id)' is \(s.status.rawValue); its image is not ready", code: "not_ready")
            case .failed, .cancelled, .cancelling:
                throw APIError(.gone, "job '\(id)' \(s.status.rawValue) and has no image", code: s.status.rawValue)
            }
        }
        on(.get, "v1/images/jobs/:id/events") { request, context in
            let id = try context.parameters.require("id")
            return eventStream(try found(await loop.events(id, owner: try owner(request)), id))
        }
        on(.delete, "v1/images/jobs/:id") { request, context in
            let id = try context.parameters.require("id")
            let s = try found(await loop.cancel(id, owner: try owner(request)), id)
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

    /// The whole body, at most `maxBodyBytes` (413), within `bodyTimeout` (408); a body that is
    /// not valid HTTP framing (a bad chunk) gets 400. These answers come before the body has been
    /// read to its end, so they close the connection (`Connection: close`).
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
            throw APIError(.contentTooLarge, "the request body is larger than \(limit) bytes").closingConnection()
        } catch let e as APIError {
            throw e.closingConnection()
        } catch let e as HTTPParserError {
            throw APIError(.badRequest, "the request body is malformed: \(e)", code: "invalid_body").closingConnection()
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

    func submit(_ r: ImageRequest, index: Int, owner: String) async throws -> (snapshot: JobSnapshot, isNew: Bool) {
        let job = GenerationJob(
            prompt: r.prompt, width: r.width, height: r.height, steps: r.steps, seed: r.seed &+ UInt64(index))
        do {
            return try await loop.admit(job, deadline: deadline(r), requestID: r.requestID, owner: owner)
        } catch {
            throw Self.apiError(error)
        }
    }

    /// The caller's owner name (see ``APIKeys``); `401` without a valid key when keys are on.
    func owner(_ request: Request) throws -> String {
        guard let owner = configuration.apiKeys.owner(of: request) else {
            throw APIError(.unauthorized, "a valid API key is required", code: "invalid_api_key")
        }
        return owner
    }

    /// The value of a lookup, or `404` (unknown, or another key's) / `410` (evicted).
    func found<T: Sendable>(_ lookup: JobLookup<T>, _ id: String) throws -> T {
        switch lookup {
        case .found(let value): return value
        case .missing: throw APIError.notFound("no job '\(id)'")
        case .gone(let t): throw Self.goneError(t)
        }
    }

    static func goneError(_ t: JobStore.Tombstone) -> APIError {
        let why =
            t.reason == .expired
            ? "it was older than --result-ttl" : "results were over --result-memory, oldest removed first"
        return APIError(
            .gone, "job '\(t.id)' \(t.status.rawValue) and its result has been removed (\(why))",
            code: "result_evicted")
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
        case .memoryFull(_, let retry):
            var err = APIError(.tooManyRequests, e.description, type: "rate_limit_error", code: "memory_full")
            err.headers[.retryAfter] = String(retry)
            return err
        case .neverFits:
            return APIError(.serviceUnavailable, e.description, param: "size", type: "server_error", code: "too_large")
        case .evicted:
            return APIError(.gone, e.description, param: "request_id", code: "result_evicted")
        case .startFailed:
            return APIError(.serviceUnavailable, e.description, type: "server_error", code: "start_failed")
        }
    }

    /// `POST /v1/images/generations`: waits for the images. The client going away (closing its
    /// side of the connection) cancels its jobs: their devices free up at the next step boundary.
    /// The connection is watched by the server's ``ConnectionHandler``, which consumes nothing,
    /// so requests pipelined behind this one are answered after it, in order.
    func generate(_ request: Request, context: ServeRequestContext) async throws -> Response {
        let caller = try owner(request)
        let r = try parse(try await readBody(request.body), jobs: false)
        var keys: [String] = []
        do {
            for i in 0..<r.n { keys.append(try await submit(r, index: i, owner: caller).snapshot.id) }
        } catch {
            for k in keys { _ = await loop.cancel(k, owner: caller) }
            throw error
        }
        let loop = self.loop
        let ids = keys
        let wait: @Sendable () async -> [(JobSnapshot, [UInt8]?)] = {
            await withTaskCancellationHandler {
                var out: [(JobSnapshot, [UInt8]?)] = []
                for k in ids { if let s = await loop.result(k, owner: caller) { out.append(s) } }
                return out
            } onCancel: {
                // The client went away: free its devices at the next step boundary.
                Task { for k in ids { _ = await loop.cancel(k, owner: caller) } }
            }
        }
        let watch = await context.connectionWatch()
        let answered = await withTaskGroup(of: [(JobSnapshot, [UInt8]?)]?.self) { group in
            group.addTask { await wait() }
            if let watch {
                group.addTask {
                    await watch.waitUntilGone()
                    return nil
                }
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        guard let results = answered else {
            // Nobody reads this answer; it names the case in the request log (nginx's 499).
            throw APIError(
                HTTPResponse.Status(code: 499, reasonPhrase: "Client Closed Request"),
                "the client closed the connection; its jobs were cancelled", code: "client_closed")
        }
        let snaps = results.map(\.0)
        if let failed = snaps.first(where: { $0.status != .succeeded }) {
            // The job's own error text is for the operator's log; the client gets its kind.
            if failed.errorCode == "deadline_exceeded" {
                throw APIError(
                    .gatewayTimeout, failed.error ?? "dropped after its deadline", type: "server_error",
                    code: "deadline_exceeded")
            }
            throw APIError(
                .internalServerError, "the server failed to generate the image (job \(failed.id))",
                type: "server_error", code: "generation_failed")
        }
        var data: [[String: Any]] = []
        for (s, png) in results {
            guard let png else {
                throw APIError(
                    .internalServerError, "the server failed to generate the image (job \(s.id))",
                    type: "server_error", code: "generation_failed")
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
        return response
    }

    func createJob(_ request: Request) async throws -> Response {
        let caller = try owner(request)
        let r = try parse(try await readBody(request.body), jobs: true)
        let (s, isNew) = try await submit(r, index: 0, owner: caller)
        var object = jobJSON(s)
        if !r.warnings.isEmpty { object["warnings"] = r.warnings }
        var response = try jsonResponse(object, status: isNew ? .accepted : .ok)
        response.headers[LogHeaders.jobID] = s.id
        return response
    }

    /// `GET /v1/images/jobs?limit=N&after=ID`: the caller's jobs, newest first, paged like
    /// OpenAI's lists (`data`, `first_id`, `last_id`, `has_more`).
    func listJobs(_ request: Request) async throws -> Response {
        let caller = try owner(request)
        let query = request.uri.queryParameters
        var limit = 20
        if let text = query["limit"] {
            guard let n = Int(text), n >= 1 && n <= 100 else {
                throw APIError.invalid("limit", "'limit' must be an integer between 1 and 100")
            }
            limit = n
        }
        let after = query["after"].map(String.init)
        guard let page = await loop.list(owner: caller, limit: limit, after: after) else {
            throw APIError.invalid("after", "'after' must be the id of one of your jobs; no job '\(after ?? "")'")
        }
        return try jsonResponse([
            "object": "list", "data": page.jobs.map(jobJSON), "first_id": page.jobs.first?.id ?? NSNull(),
            "last_id": page.jobs.last?.id ?? NSNull(), "has_more": page.hasMore,
        ])
    }

    /// Server-Sent Events: `job` (the state when the stream opened), `step`, `degree`, and last
    /// `finished` (the job object in its terminal state).
    func eventStream(_ stream: AsyncStream<JobEvent>) -> Response {
        let routes = self
        return Response(
            status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
            body: ResponseBody { writer in
                for await event in stream {
                    try await writer.write(ByteBuffer(string: try routes.sse(event)))
                }
                try await writer.finish(nil)
            })
    }

    func sse(_ event: JobEvent) throws -> String {
        let (name, object): (String, [String: Any]) =
            switch event {
            case .snapshot(let s): ("job", jobJSON(s))
            case .step(let done, let total, let degree):
                ("step", ["steps_done": done, "steps_total": total, "degree": degree ?? NSNull()])
            case .degree(let seg, let done):
                ("degree", ["degree": seg.degree, "devices": seg.devices, "start_s": seg.startS, "steps_done": done])
            case .finished(let s): ("finished", jobJSON(s))
            }
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return "event: \(name)\ndata: \(String(decoding: data, as: UTF8.self))\n\n"
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
        o["error_code"] = s.errorCode ?? NSNull()
        return o
    }
}
