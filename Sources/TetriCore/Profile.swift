/// The cost-profile file (`profiles/*.json`): the per-step time of each resolution class at
/// each sequence-parallel degree on one kind of node.
///
/// ```json
/// {"name": "...", "description": "...", "gpus": 8, "degrees": [1, 2, 4, 8],
///  "resolutions": {"256x256": {"latent_tokens": 256, "step_ms": {"1": 28.0, "2": 26.6}}}}
/// ```
public struct Profile: Codable, Sendable, Equatable {
    /// One resolution class of a profile.
    public struct Entry: Codable, Sendable, Equatable {
        /// Latent tokens per image (sequence length of the transformer).
        public var latentTokens: Int
        /// Milliseconds per denoising step, keyed by the degree as a decimal string.
        public var stepMs: [String: Double]

        public init(latentTokens: Int, stepMs: [String: Double]) {
            self.latentTokens = latentTokens
            self.stepMs = stepMs
        }

        enum CodingKeys: String, CodingKey {
            case latentTokens = "latent_tokens"
            case stepMs = "step_ms"
        }
    }

    public var name: String
    public var description: String
    public var gpus: Int
    public var degrees: [Int]
    public var resolutions: [String: Entry]
    /// Optional: the fixed time each execution block costs on top of its steps (handing the block
    /// to the devices, their start, the answer back), in milliseconds. Measured on the CPU engine
    /// by `tetriserve bench dispatch`; absent means zero.
    public var dispatchOverheadMs: Double?

    enum CodingKeys: String, CodingKey {
        case name, description, gpus, degrees, resolutions
        case dispatchOverheadMs = "dispatch_overhead_ms"
    }

    /// Decodes a profile; `description` may be left out.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        description = try c.decodeIfPresent(String.self, forKey: .description) ?? ""
        gpus = try c.decode(Int.self, forKey: .gpus)
        degrees = try c.decode([Int].self, forKey: .degrees)
        resolutions = try c.decode([String: Entry].self, forKey: .resolutions)
        dispatchOverheadMs = try c.decodeIfPresent(Double.self, forKey: .dispatchOverheadMs)
    }

    public init(
        name: String, description: String, gpus: Int, degrees: [Int], resolutions: [String: Entry],
        dispatchOverheadMs: Double? = nil
    ) {
        self.name = name
        self.description = description
        self.gpus = gpus
        self.degrees = degrees
        self.resolutions = resolutions
        self.dispatchOverheadMs = dispatchOverheadMs
    }
}
