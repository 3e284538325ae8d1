import Foundation
import HTTPTypes
import Hummingbird

/// An error in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
public struct APIError: Error, HTTPResponseError, CustomStringConvertible {
    public var status: HTTPResponse.Status
    public var message: String
    public var type: String
    public var param: String?
    public var code: String?
    public var headers: HTTPFields = [:]

    public init(
        _ status: HTTPResponse.Status, _ message: String, param: String? = nil, type: String = "invalid_request_error",
        code: String? = nil
    ) {
        self.status = status
        self.message = message
        self.param = param
        self.type = type
        self.code = code
    }

    public var description: String { "\(status.code) \(message)" + (param.map { " (param \($0))" } ?? "") }

    /// The same error, answered with `Connection: close` (the server then closes the connection).
    func closingConnection() -> APIError {
        var e = self
        e.headers[.connection] = "close"
        return e
    }

    static func invalid(_ param: String, _ message: String) -> APIError {
        APIError(.badRequest, message, param: param)
    }

    static func notFound(_ what: String) -> APIError {
        APIError(.notFound, what, type: "not_found_error")
    }

    var body: [String: Any] {
        let param: Any = self.param ?? NSNull()
        let code: Any = self.code ?? NSNull()
        return ["error": ["message": message, "type": type, "param": param, "code": code]]
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = self.headers
        headers[.contentType] = "application/json"
        let data = try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// A JSON response from a dictionary.
func jsonResponse(_ object: [String: Any], status: HTTPResponse.Status = .ok) throws -> Response {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    return Response(
        status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
}
