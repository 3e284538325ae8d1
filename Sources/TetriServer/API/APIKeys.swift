import Foundation
import HTTPTypes
import Hummingbird

/// Optional API keys (`--api-key`, `TETRISERVE_API_KEYS`). With keys configured, every `/v1/`
/// request needs `Authorization: Bearer KEY` with one of them; each key owns the jobs and
/// `request_id`s made with it, and another key (or none) cannot see them. Without keys, every
/// caller is the same anonymous owner.
public struct APIKeys: Sendable {
    public let keys: [String]

    public init(_ keys: [String]) {
        self.keys = keys
    }

    public var isEnabled: Bool { !keys.isEmpty }

    /// Whether a listening address is reachable from this machine only (start-up warns when a
    /// server without keys listens on any other).
    public static func isLoopback(host: String) -> Bool {
        host == "localhost" || host == "::1" || host == "[::1]" || host.hasPrefix("127.")
    }

    /// Keys from repeated `--api-key` options and the comma-separated `TETRISERVE_API_KEYS`,
    /// blanks dropped, duplicates once.
    public static func from(options: [String], environment: String?) -> APIKeys {
        let env = (environment ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        var seen: Set<String> = []
        return APIKeys((options + env).filter { !$0.isEmpty && seen.insert($0).inserted })
    }

    /// The owner of a request: "" without keys; the owner name of its key (`key-N`, N its
    /// position) when it carries a configured one; nil when keys are configured and it carries
    /// none or a wrong one.
    public func owner(of request: Request) -> String? {
        guard isEnabled else { return "" }
        guard let header = request.headers[.authorization] else { return nil }
        let prefix = "bearer "
        guard header.count > prefix.count, header.prefix(prefix.count).lowercased() == prefix else { return nil }
        let given = Array(header.dropFirst(prefix.count).trimmingCharacters(in: .whitespaces).utf8)
        var match: Int?
        for (i, key) in keys.enumerated() where Self.equalInConstantTime(Array(key.utf8), given) { match = i }
        return match.map { "key-\($0)" }
    }

    /// Compares without stopping at the first difference, so the time taken does not tell how
    /// much of a guess was right.
    static func equalInConstantTime(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var diff = UInt8(truncatingIfNeeded: a.count ^ b.count)
        for i in 0..<max(a.count, b.count) {
            diff |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
        }
        return diff == 0
    }
}

/// Answers `401` in OpenAI's shape to `/v1/` requests without a valid key (when keys are
/// configured). Health and metrics stay open for probes and scrapers.
struct APIKeyMiddleware<Context: RequestContext>: RouterMiddleware {
    let keys: APIKeys

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        guard keys.isEnabled, request.uri.path.hasPrefix("/v1/") else { return try await next(request, context) }
        guard keys.owner(of: request) != nil else {
            let given = request.headers[.authorization] != nil
            var error = APIError(
                .unauthorized,
                given
                    ? "Incorrect API key provided. Send 'Authorization: Bearer KEY' with a key this server was started with."
                    : "You didn't provide an API key. Send 'Authorization: Bearer KEY'.",
                code: "invalid_api_key")
            error.headers[.wwwAuthenticate] = "Bearer"
            throw error
        }
        return try await next(request, context)
    }
}
