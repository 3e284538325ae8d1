/// The cost-profile file (`profiles/*.json`): the per-step time of each resolution class at
/// each sequence-parallel degree on one kind of node.
///
/// ```json
/// {"name": "...", "description": "...", "gpus": 8, "degrees": [1, 2, 4, 8],
///  "resolutions": {"256x256": {"latent_tokens": 256, "step_ms": {"1": 28.0, "2": 26.6}}},
///  "topology": {"gpus_per_node": 4, "islands": [[0, 1], [2, 3]],
///               "cross_island_step_ms": {"256x256": {"2": 29.0}}}}
/// ```
///
/// `topology` is optional; without it every GPU reaches every other at the profiled speed.
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

    /// How the GPUs are linked (the optional `topology` object).
    ///
    /// - `gpus_per_node`: GPUs per node; a group never spans nodes. Defaults to `gpus`.
    /// - `islands`: GPU indices within a node (`0..<gpus_per_node`) grouped into fast-link
    ///   islands (e.g. NVLink pairs); every index in exactly one island. The same pattern repeats
    ///   on every node. Left out, the whole node is one island.
    /// - `cross_island_step_ms`: the step time of a group that touches more islands than its
    ///   degree needs, by resolution and degree as in `step_ms`. A crossing group at a degree the
    ///   table leaves out (or with no table) is forbidden. `step_ms` is the time of a group placed
    ///   in as few islands as its degree allows.
    public struct Topology: Codable, Sendable, Equatable {
        public var gpusPerNode: Int?
        public var islands: [[Int]]?
        public var crossIslandStepMs: [String: [String: Double]]?

        public init(
            gpusPerNode: Int? = nil, islands: [[Int]]? = nil, crossIslandStepMs: [String: [String: Double]]? = nil
        ) {
            self.gpusPerNode = gpusPerNode
            self.islands = islands
            self.crossIslandStepMs = crossIslandStepMs
        }

        enum CodingKeys: String, CodingKey, CaseIterable {
            case gpusPerNode = "gpus_per_node"
            case islands
            case crossIslandStepMs = "cross_island_step_ms"
        }

        struct AnyKey: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }

        /// Decodes the object; a field this version does not know is an error, not ignored.
        public init(from decoder: any Decoder) throws {
            let all = try decoder.container(keyedBy: AnyKey.self)
            let known = Set(CodingKeys.allCases.map(\.rawValue))
            for key in all.allKeys where !known.contains(key.stringValue) {
                throw DecodingError.dataCorruptedError(
                    forKey: key, in: all,
                    debugDescription:
                        "unknown topology field '\(key.stringValue)'; expected gpus_per_node, islands, cross_island_step_ms"
                )
            }
            let c = try decoder.container(keyedBy: CodingKeys.self)
            gpusPerNode = try c.decodeIfPresent(Int.self, forKey: .gpusPerNode)
            islands = try c.decodeIfPresent([[Int]].self, forKey: .islands)
            crossIslandStepMs = try c.decodeIfPresent([String: [String: Double]].self, forKey: .crossIslandStepMs)
        }
    }

    public var name: String
    public var description: String
    public var gpus: Int
    public var degrees: [Int]
    public var resolutions: [String: Entry]
    /// How the GPUs are linked; nil when the profile does not say.
    public var topology: Topology?
    /// Optional: the fixed time each execution block costs on top of its steps (handing the block
    /// to the devices, their start, the answer back), in milliseconds. Measured on the CPU engine
    /// by `tetriserve bench dispatch`; absent means zero.
    public var dispatchOverheadMs: Double?

    enum CodingKeys: String, CodingKey {
        case name, description, gpus, degrees, resolutions, topology
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
        topology = try c.decodeIfPresent(Topology.self, forKey: .topology)
        dispatchOverheadMs = try c.decodeIfPresent(Double.self, forKey: .dispatchOverheadMs)
    }

    public init(
        name: String, description: String, gpus: Int, degrees: [Int], resolutions: [String: Entry],
        topology: Topology? = nil,
        dispatchOverheadMs: Double? = nil
    ) {
        self.name = name
        self.description = description
        self.gpus = gpus
        self.degrees = degrees
        self.resolutions = resolutions
        self.topology = topology
        self.dispatchOverheadMs = dispatchOverheadMs
    }
}
