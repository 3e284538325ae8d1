import Foundation
import TetriCore

/// A parsed, validated `POST /v1/images/generations` or `/v1/images/jobs` body.
struct ImageRequest: Sendable {
    var prompt: String
    var n: Int
    var width: Int
    var height: Int
    var steps: Int
    var seed: UInt64
    /// Relative SLO in milliseconds, or nil.
    var sloMs: Double?
    /// Absolute deadline in unix milliseconds, or nil.
    var deadlineUnixMs: Double?
    var requestID: String?
    var user: String?

    static let knownFields: Set<String> = [
        "prompt", "model", "n", "size", "response_format", "output_format", "user", "num_inference_steps", "seed",
        "guidance_scale", "negative_prompt", "slo_ms", "deadline", "request_id",
    ]

    /// Parses and validates a body; every problem names its field (`param`).
    static func parse(
        _ data: Data, backend: any ExecutionBackend, defaultSteps: Int, allowRequestID: Bool, maxImages: Int
    ) throws(APIError) -> ImageRequest {
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw APIError(.badRequest, "the request body is not valid JSON")
        }
        guard let obj = root as? [String: Any] else {
            throw APIError(.badRequest, "the request body must be a JSON object")
        }
        for key in obj.keys.sorted() where !knownFields.contains(key) {
            throw .invalid(key, "unknown field '\(key)'")
        }
        let f = Fields(obj)
        guard let prompt = try f.string("prompt") else { throw .invalid("prompt", "'prompt' is required") }
        guard !prompt.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw .invalid("prompt", "'prompt' must not be empty")
        }
        guard prompt.count <= 4000 else { throw .invalid("prompt", "'prompt' must be at most 4000 characters") }
        if let model = try f.string("model"), model != backend.modelName {
            throw .invalid("model", "unknown model '\(model)'; this server serves '\(backend.modelName)'")
        }
        let n = try f.int("n") ?? 1
        guard n >= 1 && n <= maxImages else { throw .invalid("n", "'n' must be between 1 and \(maxImages)") }
        let size = try f.string("size")
        let res: Resolution
        if let size {
            guard let r = Resolution(parsing: size) else {
                throw .invalid("size", "'size' must be WIDTHxHEIGHT, such as '\(backend.costModel.resolutionNames[0])'")
            }
            res = r
        } else {
            res = backend.costModel.resolutions[backend.costModel.resolutions.count / 2]
        }
        if let problem = backend.validate(width: res.width, height: res.height) {
            throw .invalid("size", "unsupported size '\(res)': \(problem)")
        }
        if let format = try f.string("response_format"), format != "b64_json" {
            throw .invalid("response_format", "only 'b64_json' is supported")
        }
        if let format = try f.string("output_format"), format != "png" {
            throw .invalid("output_format", "only 'png' is supported")
        }
        let steps = try f.int("num_inference_steps") ?? defaultSteps
        guard steps >= 1 && steps <= 200 else {
            throw .invalid("num_inference_steps", "'num_inference_steps' must be between 1 and 200")
        }
        let seed = try f.int("seed") ?? 0
        guard seed >= 0 else { throw .invalid("seed", "'seed' must be a non-negative integer") }
        if try f.double("guidance_scale") != nil {
            throw .invalid("guidance_scale", "this model has no guidance; leave 'guidance_scale' out")
        }
        if try f.string("negative_prompt") != nil {
            throw .invalid("negative_prompt", "this model has no negative prompt; leave 'negative_prompt' out")
        }
        let slo = try f.double("slo_ms")
        let deadline = try f.double("deadline")
        if let slo {
            guard slo > 0 && slo <= 86_400_000 else { throw .invalid("slo_ms", "'slo_ms' must be in (0, 86400000]") }
        }
        if let deadline {
            guard deadline > 0 else { throw .invalid("deadline", "'deadline' must be unix milliseconds") }
        }
        if slo != nil && deadline != nil { throw .invalid("deadline", "give either 'slo_ms' or 'deadline', not both") }
        let requestID = try f.string("request_id")
        if let requestID {
            guard allowRequestID else {
                throw .invalid("request_id", "'request_id' is only accepted by /v1/images/jobs")
            }
            guard !requestID.isEmpty && requestID.count <= 128 else {
                throw .invalid("request_id", "'request_id' must be 1 to 128 characters")
            }
        }
        let user = try f.string("user")
        if let user, user.count > 256 { throw .invalid("user", "'user' must be at most 256 characters") }
        return ImageRequest(
            prompt: prompt, n: n, width: res.width, height: res.height, steps: steps, seed: UInt64(seed), sloMs: slo,
            deadlineUnixMs: deadline, requestID: requestID, user: user)
    }
}

/// Typed access to JSON fields with errors that name the field.
struct Fields {
    let obj: [String: Any]

    init(_ obj: [String: Any]) { self.obj = obj }

    func present(_ key: String) -> Any? {
        guard let v = obj[key], !(v is NSNull) else { return nil }
        return v
    }

    func string(_ key: String) throws(APIError) -> String? {
        guard let v = present(key) else { return nil }
        guard let s = v as? String else { throw .invalid(key, "'\(key)' must be a string") }
        return s
    }

    /// JSON `true`/`false` decode as NSNumber too; they are told apart by their class.
    static let booleanType: Any.Type = type(of: NSNumber(value: true) as Any)

    static func isBoolean(_ v: Any) -> Bool { type(of: v) == booleanType }

    func int(_ key: String) throws(APIError) -> Int? {
        guard let v = present(key) else { return nil }
        guard !Self.isBoolean(v), let n = v as? NSNumber, let d = Double(exactly: n.doubleValue), d == d.rounded(),
            abs(d) < 9e15
        else {
            throw .invalid(key, "'\(key)' must be an integer")
        }
        return Int(d)
    }

    func double(_ key: String) throws(APIError) -> Double? {
        guard let v = present(key) else { return nil }
        guard !Self.isBoolean(v), let n = v as? NSNumber, n.doubleValue.isFinite else {
            throw .invalid(key, "'\(key)' must be a number")
        }
        return n.doubleValue
    }
}
