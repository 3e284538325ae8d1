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
    /// OpenAI fields that were accepted but have no effect here, one sentence each.
    var warnings: [String] = []

    /// Fields this server reads.
    static let knownFields: Set<String> = [
        "prompt", "model", "n", "size", "response_format", "output_format", "user", "num_inference_steps", "seed",
        "guidance_scale", "negative_prompt", "slo_ms", "deadline", "request_id",
    ]

    /// Fields of OpenAI's image API that clients send by default or users commonly set, which
    /// have no meaning for this model: accepted, ignored, and named in the response's `warnings`.
    static let ignoredOpenAIFields: Set<String> = [
        "quality", "style", "background", "moderation", "output_compression", "partial_images", "stream",
    ]

    /// The largest width or height a `size` may name (any served size is far below it; the
    /// bound keeps pixel and token arithmetic far from overflow).
    static let maxSide = 16_384
    /// The largest `seed`: integers JSON numbers carry exactly (2^53 − 1).
    static let maxSeed = 9_007_199_254_740_991
    /// How far from now (either way) a `deadline` may lie, and the largest `slo_ms`: one day.
    static let maxHorizonMs = 86_400_000.0
    /// The deepest nesting of arrays and objects a body may have.
    static let maxDepth = 32

    /// Parses and validates a body; every problem names its field (`param`).
    static func parse(
        _ data: Data, backend: any ExecutionBackend, defaultSteps: Int, allowRequestID: Bool, maxImages: Int
    ) throws(APIError) -> ImageRequest {
        guard nestingDepth(data) <= maxDepth else {
            throw APIError(.badRequest, "the request body nests arrays or objects more than \(maxDepth) levels deep")
        }
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw APIError(.badRequest, "the request body is not valid JSON")
        }
        guard let obj = root as? [String: Any] else {
            throw APIError(.badRequest, "the request body must be a JSON object")
        }
        for key in obj.keys.sorted() where !knownFields.contains(key) && !ignoredOpenAIFields.contains(key) {
            throw .invalid(key, "unknown field '\(key)'")
        }
        let f = Fields(obj)
        let warnings = try openAIWarnings(f)
        guard let prompt = try f.string("prompt") else { throw .invalid("prompt", "'prompt' is required") }
        guard !prompt.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw .invalid("prompt", "'prompt' must not be empty")
        }
        guard prompt.count <= 4000 else { throw .invalid("prompt", "'prompt' must be at most 4000 characters") }
        if let model = try f.string("model"), model != backend.modelName {
            throw .invalid("model", "unknown model '\(model)'; this server serves '\(backend.modelName)'")
        }
        let n = try f.int("n", in: 1...maxImages) ?? 1
        let size = try f.string("size")
        let res: Resolution
        if let size {
            guard let r = Resolution(parsing: size) else {
                throw .invalid("size", "'size' must be WIDTHxHEIGHT, such as '\(backend.costModel.resolutionNames[0])'")
            }
            guard r.width <= maxSide && r.height <= maxSide else {
                throw .invalid("size", "'size' width and height must be between 1 and \(maxSide)")
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
        let steps = try f.int("num_inference_steps", in: 1...200) ?? defaultSteps
        let seed = try f.int("seed", in: 0...maxSeed) ?? 0
        if try f.double("guidance_scale") != nil {
            throw .invalid("guidance_scale", "this model has no guidance; leave 'guidance_scale' out")
        }
        if try f.string("negative_prompt") != nil {
            throw .invalid("negative_prompt", "this model has no negative prompt; leave 'negative_prompt' out")
        }
        let slo = try f.double("slo_ms")
        let deadline = try f.double("deadline")
        if let slo {
            guard slo > 0 && slo <= maxHorizonMs else {
                throw .invalid("slo_ms", "'slo_ms' must be in (0, 86400000] (milliseconds, at most one day)")
            }
        }
        if let deadline {
            let now = Date().timeIntervalSince1970 * 1000
            guard abs(deadline - now) <= maxHorizonMs else {
                throw .invalid(
                    "deadline", "'deadline' must be unix milliseconds within one day of now (now is \(Int(now)))")
            }
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
            deadlineUnixMs: deadline, requestID: requestID, user: user, warnings: warnings)
    }

    /// Checks the OpenAI-only fields and says which of them are ignored.
    static func openAIWarnings(_ f: Fields) throws(APIError) -> [String] {
        var warnings: [String] = []
        for key in ["quality", "style", "moderation"] where try f.string(key) != nil {
            warnings.append("'\(key)' has no effect on this model and was ignored")
        }
        if let background = try f.string("background") {
            guard ["auto", "opaque", "transparent"].contains(background) else {
                throw .invalid("background", "'background' must be auto, opaque or transparent")
            }
            if background == "transparent" {
                warnings.append("'background: transparent' is not supported; the image is opaque")
            }
        }
        if try f.int("output_compression", in: 0...100) != nil {
            warnings.append("'output_compression' applies to jpeg and webp only; PNG output was not compressed further")
        }
        if try f.int("partial_images", in: 0...3) != nil {
            warnings.append("'partial_images' needs streaming, which this server does not offer; it was ignored")
        }
        if try f.bool("stream") == true {
            throw .invalid("stream", "streaming responses are not supported; leave 'stream' out or set it to false")
        }
        return warnings
    }

    /// The deepest nesting of arrays and objects in a JSON text (strings skipped), found before
    /// parsing so that a deeply nested body costs no recursion.
    static func nestingDepth(_ data: Data) -> Int {
        var depth = 0
        var deepest = 0
        var inString = false
        var escaped = false
        for byte in data {
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                deepest = max(deepest, depth)
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
            default: break
            }
        }
        return deepest
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

    /// An integer in `range`; numbers outside it (however large) name the range.
    func int(_ key: String, in range: ClosedRange<Int>) throws(APIError) -> Int? {
        guard let v = present(key) else { return nil }
        guard !Self.isBoolean(v), let n = v as? NSNumber, n.doubleValue.isFinite,
            n.doubleValue == n.doubleValue.rounded()
        else {
            throw .invalid(key, "'\(key)' must be an integer")
        }
        let d = n.doubleValue
        // Compared as doubles first: converting an out-of-range double to Int would trap.
        guard d >= Double(range.lowerBound) && d <= Double(range.upperBound), range.contains(Int(d)) else {
            throw .invalid(key, "'\(key)' must be an integer between \(range.lowerBound) and \(range.upperBound)")
        }
        return Int(d)
    }

    func bool(_ key: String) throws(APIError) -> Bool? {
        guard let v = present(key) else { return nil }
        guard Self.isBoolean(v), let b = v as? Bool else { throw .invalid(key, "'\(key)' must be true or false") }
        return b
    }

    func double(_ key: String) throws(APIError) -> Double? {
        guard let v = present(key) else { return nil }
        guard !Self.isBoolean(v), let n = v as? NSNumber, n.doubleValue.isFinite else {
            throw .invalid(key, "'\(key)' must be a number")
        }
        return n.doubleValue
    }
}
