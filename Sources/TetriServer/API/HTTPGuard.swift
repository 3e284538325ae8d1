import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Synchronization

/// Connection limits and shutdown bounds of the HTTP server.
public struct HTTPOptions: Sendable {
    /// A connection that sends nothing for this long (headers not complete, a body that stalls, an
    /// idle keep-alive connection) is closed.
    public var idleTimeout: Duration = .seconds(60)
    /// Connections served at once; further ones wait in the listen backlog.
    public var maxConnections: Int = 256
    /// How long the drain on SIGTERM waits for admitted jobs before the server exits anyway.
    public var drainTimeout: Duration = .seconds(600)
    /// After the drain, how long open connections may finish their exchange before they are closed.
    public var closeGrace: Duration = .seconds(2)
    /// Host names (besides loopback ones) that requests may name in `Host` when the server is
    /// bound to a loopback address, or at all when any are given.
    public var allowedHosts: [String] = []

    public init() {}
}

/// What the whole server is doing: serving, or draining before exit. Shared by the routes, the
/// request guard and the shutdown service.
public final class ServerLifecycle: Sendable {
    let drainingFlag = Atomic<Bool>(false)

    public init() {}

    /// True once SIGTERM (or SIGINT) started the drain: new jobs get 503, reads are answered.
    public var isDraining: Bool { drainingFlag.load(ordering: .relaxed) }

    func startDraining() { drainingFlag.store(true, ordering: .relaxed) }
}

/// Response headers the handlers set for the request log (they also tell clients the job).
enum LogHeaders {
    static let jobID = HTTPField.Name("x-job-id")!
    static let sloMet = HTTPField.Name("x-slo-met")!
}

/// The first middleware of every route (and of unmatched requests): checks `Host` and
/// `Content-Type`, refuses new work while draining, answers wrong methods with 405, renders every
/// error in OpenAI's shape, and logs the request.
struct RequestGuard<Context: RequestContext>: RouterMiddleware {
    let lifecycle: ServerLifecycle
    /// Lower-cased host names `Host` may name (nil: any).
    let allowedHosts: Set<String>?
    let logger: Logger

    init(lifecycle: ServerLifecycle, bindHost: String, allowedHosts: [String], logger: Logger) {
        self.lifecycle = lifecycle
        self.logger = logger
        let extra = allowedHosts.map { Self.hostName($0) }
        if Self.isLoopback(bindHost) || !extra.isEmpty {
            self.allowedHosts = Set(["localhost"] + extra)
        } else {
            self.allowedHosts = nil
        }
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        let started = ContinuousClock.now
        var response: Response
        do {
            try check(request)
            response = try await next(request, context)
        } catch {
            response = try render(error, request: request, context: context)
        }
        log(request, response, since: started)
        return response
    }

    func check(_ request: Request) throws(APIError) {
        if let allowedHosts, let host = request.head.authority {
            let name = Self.hostName(host)
            guard allowedHosts.contains(name) || Self.isLoopback(name) else {
                throw APIError(
                    .forbidden,
                    "Host '\(host)' is not allowed: this server answers to loopback names"
                        + " (add others with --allowed-host)", type: "invalid_request_error", code: "host_not_allowed")
            }
        }
        if request.method == .post {
            let type = request.headers[.contentType]?.split(separator: ";").first.map {
                $0.trimmingCharacters(in: .whitespaces).lowercased()
            }
            guard type == "application/json" else {
                throw APIError(
                    .unsupportedMediaType,
                    "Content-Type must be application/json, got "
                        + (request.headers[.contentType].map { "'\($0)'" } ?? "none"),
                    code: "unsupported_media_type")
            }
            guard !lifecycle.isDraining else {
                throw APIError(
                    .serviceUnavailable, AdmissionError.shuttingDown.description, type: "server_error",
                    code: "shutting_down")
            }
        }
    }

    /// Any error as a response in OpenAI's shape; a path served with other methods gets 405.
    func render(_ error: any Error, request: Request, context: Context) throws -> Response {
        var api: APIError
        switch error {
        case let e as APIError:
            api = e
        case let e as HTTPError:
            if e.status == .notFound, case let allowed = ImageRoutes.methods(forPath: request.uri.path),
                !allowed.isEmpty
            {
                api = APIError(
                    .methodNotAllowed, "\(request.method.rawValue) is not allowed on \(request.uri.path)",
                    code: "method_not_allowed")
                api.headers[.allow] = allowed.map(\.rawValue).joined(separator: ", ")
            } else if e.status == .notFound {
                api = APIError(
                    .notFound, "no route \(request.method.rawValue) \(request.uri.path)", type: "not_found_error")
            } else {
                api = APIError(
                    e.status, e.body ?? e.status.reasonPhrase,
                    type: e.status.code >= 500 ? "server_error" : "invalid_request_error")
                for field in e.headers { api.headers.append(field) }
            }
        case let e as any HTTPResponseError:
            api = APIError(e.status, "\(e)", type: e.status.code >= 500 ? "server_error" : "invalid_request_error")
        default:
            logger.error("unhandled error", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            api = APIError(.internalServerError, "internal error", type: "server_error")
        }
        var response = try api.response(from: request, context: context)
        if request.method == .head { response = response.createHeadResponse() }
        return response
    }

    func log(_ request: Request, _ response: Response, since started: ContinuousClock.Instant) {
        let elapsed = started.duration(to: .now)
        let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        var metadata: Logger.Metadata = [
            "method": "\(request.method.rawValue)", "path": "\(request.uri.path)", "status": "\(response.status.code)",
            "latency_ms": "\(String(format: "%.1f", ms))",
        ]
        if let job = response.headers[LogHeaders.jobID] { metadata["job_id"] = "\(job)" }
        if let met = response.headers[LogHeaders.sloMet] { metadata["slo_met"] = "\(met)" }
        logger.info("request", metadata: metadata)
    }

    /// The host part of a `Host` value, lower-cased, without port or IPv6 brackets.
    static func hostName(_ host: String) -> String {
        let h = host.lowercased()
        if h.hasPrefix("[") {
            let inner = h.dropFirst().prefix { $0 != "]" }
            return String(inner)
        }
        if h.filter({ $0 == ":" }).count == 1, let colon = h.firstIndex(of: ":") { return String(h[..<colon]) }
        return h
    }

    /// localhost, 127.0.0.0/8 and ::1.
    static func isLoopback(_ host: String) -> Bool {
        let h = hostName(host)
        if h == "localhost" || h == "::1" || h == "0:0:0:0:0:0:0:1" { return true }
        let parts = h.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }
}
