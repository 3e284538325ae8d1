/// The validated, indexed form of a ``Profile``: `T(resolution, degree)` in microseconds.
///
/// Resolution classes are indexed by increasing pixel count and degrees by increasing value, so
/// that schedulers work on small integer indices in their hot loops.
public struct CostModel: Sendable, Equatable {
    public let name: String
    /// GPUs on the profiled node.
    public let gpus: Int
    /// The SP degrees the profile covers, ascending.
    public let degrees: [Int]
    /// Resolution classes, ascending by pixel count.
    public let resolutions: [Resolution]
    /// Latent tokens of each resolution class.
    public let latentTokens: [Int]
    /// `stepTime[r][d]`: microseconds per step of resolution `r` at degree `degrees[d]`.
    public internal(set) var stepTime: [[Micros]]
    /// Extra time a block pays when a request's GPU set differs from its previous block's
    /// (latent hand-off and group re-formation). Zero unless set.
    public var handoff: Micros
    /// How the GPUs are linked (nodes, islands, crossing times); nil when the profile does not
    /// say, and then any GPUs form a group at the profiled speed.
    public var topology: NodeTopology?
    /// Fixed time every block pays on top of its steps (dispatch to the devices and back): the
    /// profile's `dispatch_overhead_ms` unless overridden, zero when it gives none.
    public var dispatchOverhead: Micros

    /// - Parameter dispatchOverhead: overrides the profile's `dispatch_overhead_ms` when set.
    public init(profile: Profile, handoff: Micros = 0, dispatchOverhead: Micros? = nil) throws(ProfileError) {
        guard profile.gpus > 0 else { throw .invalidGPUCount(profile.gpus) }
        guard !profile.degrees.isEmpty else { throw .noDegrees }
        let degrees = profile.degrees.sorted()
        for d in degrees where d <= 0 || d > profile.gpus {
            throw .invalidDegree(d, gpus: profile.gpus)
        }
        if Set(degrees).count != degrees.count { throw .duplicateDegree }
        guard !profile.resolutions.isEmpty else { throw .noResolutions }
        var parsed: [(Resolution, Profile.Entry)] = []
        for (key, entry) in profile.resolutions {
            guard let res = Resolution(parsing: key) else { throw .badResolutionKey(key) }
            parsed.append((res, entry))
        }
        parsed.sort { $0.0 < $1.0 }
        var times: [[Micros]] = []
        for (res, entry) in parsed {
            guard entry.latentTokens > 0 else { throw .invalidTokens(res.description) }
            var row: [Micros] = []
            for d in degrees {
                guard let ms = entry.stepMs[String(d)] else {
                    throw .missingStepTime(resolution: res.description, degree: d)
                }
                guard ms.isFinite, ms > 0 else {
                    throw .invalidStepTime(resolution: res.description, degree: d, ms)
                }
                row.append(max(1, Micros.fromMilliseconds(ms)))
            }
            times.append(row)
        }
        guard handoff >= 0 else { throw .invalidHandoff }
        var topology: NodeTopology? = nil
        if let t = profile.topology {
            topology = try Self.topology(t, profile: profile, degrees: degrees, resolutions: parsed, profiled: times)
        }
        if let ms = profile.dispatchOverheadMs, !(ms.isFinite && ms >= 0) { throw .invalidDispatchOverhead(ms) }
        guard (dispatchOverhead ?? 0) >= 0 else { throw .invalidDispatchOverhead(Double(dispatchOverhead!) / 1000) }
        self.name = profile.name
        self.gpus = profile.gpus
        self.degrees = degrees
        self.resolutions = parsed.map(\.0)
        self.latentTokens = parsed.map(\.1.latentTokens)
        self.stepTime = times
        self.handoff = handoff
        self.dispatchOverhead = dispatchOverhead ?? profile.dispatchOverheadMs.map { Micros.fromMilliseconds($0) } ?? 0
        self.topology = topology
    }

    /// Validates a profile's `topology` object against its degrees and resolution classes.
    private static func topology(
        _ t: Profile.Topology, profile: Profile, degrees: [Int], resolutions: [(Resolution, Profile.Entry)],
        profiled: [[Micros]]
    ) throws(ProfileError) -> NodeTopology {
        let perNode = t.gpusPerNode ?? profile.gpus
        if let largest = degrees.last, largest > perNode {
            throw .invalidTopology("degree \(largest) exceeds 'topology.gpus_per_node' \(perNode)")
        }
        var cross: [[Micros?]] = []
        if let table = t.crossIslandStepMs {
            guard t.islands != nil else {
                throw .invalidTopology("'topology.cross_island_step_ms' needs 'topology.islands'")
            }
            let names = Set(resolutions.map(\.0.description))
            for key in table.keys.sorted() where !names.contains(key) {
                throw .invalidTopology("'topology.cross_island_step_ms': resolution '\(key)' is not in 'resolutions'")
            }
            for (r, (res, _)) in resolutions.enumerated() {
                let row = table[res.description] ?? [:]
                for key in row.keys.sorted() where Int(key).map({ !degrees.contains($0) }) ?? true {
                    throw .invalidTopology(
                        "'topology.cross_island_step_ms' \(res): degree '\(key)' is not in 'degrees'")
                }
                var times: [Micros?] = []
                for (d, degree) in degrees.enumerated() {
                    guard let ms = row[String(degree)] else {
                        times.append(nil)
                        continue
                    }
                    guard ms.isFinite, ms > 0 else {
                        throw .invalidTopology(
                            "'topology.cross_island_step_ms' \(res) degree \(degree) must be a positive number, got \(ms)"
                        )
                    }
                    let time = max(1, Micros.fromMilliseconds(ms))
                    // The bound and the plans take `step_ms` as the fastest a step can run.
                    guard time >= profiled[r][d] else {
                        throw .invalidTopology(
                            "'topology.cross_island_step_ms' \(res) degree \(degree): \(ms) ms is faster than its 'step_ms'"
                        )
                    }
                    times.append(time)
                }
                cross.append(times)
            }
        }
        return try NodeTopology(gpusPerNode: perNode, islands: t.islands, crossStepTime: cross)
    }

    /// The index of a resolution class, or nil when the profile has no such class.
    public func resolutionIndex(_ res: Resolution) -> Int? {
        resolutions.firstIndex(of: res)
    }

    /// The index of a degree in ``degrees``, or nil.
    public func degreeIndex(_ degree: Int) -> Int? {
        degrees.firstIndex(of: degree)
    }

    /// Microseconds per step of resolution class `r` at degree `degree` (which must be profiled).
    public func stepTime(resolution r: Int, degree: Int) -> Micros {
        stepTime[r][degreeIndex(degree)!]
    }

    /// The resolution classes as `WxH` strings, ascending.
    public var resolutionNames: [String] { resolutions.map(\.description) }
}

/// Problems with a profile file, each naming the offending field.
public enum ProfileError: Error, Equatable, CustomStringConvertible {
    case invalidGPUCount(Int)
    case noDegrees
    case invalidDegree(Int, gpus: Int)
    case duplicateDegree
    case noResolutions
    case badResolutionKey(String)
    case invalidTokens(String)
    case missingStepTime(resolution: String, degree: Int)
    case invalidStepTime(resolution: String, degree: Int, Double)
    case invalidHandoff
    case invalidTopology(String)
    case invalidDispatchOverhead(Double)

    public var description: String {
        switch self {
        case .invalidGPUCount(let n): "profile field 'gpus' must be positive, got \(n)"
        case .noDegrees: "profile field 'degrees' is empty"
        case .invalidDegree(let d, let gpus): "profile degree \(d) is outside 1...\(gpus) (field 'degrees')"
        case .duplicateDegree: "profile field 'degrees' lists a degree twice"
        case .noResolutions: "profile field 'resolutions' is empty"
        case .badResolutionKey(let k): "profile resolution key '\(k)' is not of the form WIDTHxHEIGHT"
        case .invalidTokens(let r): "profile resolution \(r): 'latent_tokens' must be positive"
        case .missingStepTime(let r, let d): "profile resolution \(r): 'step_ms' has no entry for degree \(d)"
        case .invalidStepTime(let r, let d, let v):
            "profile resolution \(r): 'step_ms' for degree \(d) must be a positive number, got \(v)"
        case .invalidHandoff: "hand-off time must not be negative"
        case .invalidTopology(let why): "profile \(why)"
        case .invalidDispatchOverhead(let v):
            "profile field 'dispatch_overhead_ms' (or --dispatch-overhead-ms) must be a number >= 0, got \(v)"
        }
    }
}
