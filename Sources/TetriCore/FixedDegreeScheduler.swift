/// The fixed-degree baseline (`sp1`, `sp2`, `sp4`, `sp8`): the node is cut into `gpus / k`
/// static groups of `k` consecutive GPUs; one FCFS queue; a request runs to completion at
/// degree `k` in one block; the head of the queue takes the lowest-numbered idle group.
/// With a topology the groups are cut node by node, island by island
/// (``NodeTopology/staticOrder(gpus:)``), so that no group spans nodes; GPUs left over at the
/// end of a node stay unused.
public struct FixedDegreeScheduler: Scheduler {
    public let degree: Int
    public let groups: [GPUSet]

    public var name: String { "sp\(degree)" }

    /// - Throws: when the cost model does not profile `degree` or the node has fewer GPUs.
    public init(degree: Int, gpus: Int, model: CostModel) throws(PolicyError) {
        guard model.degreeIndex(degree) != nil else {
            throw .degreeNotProfiled(policy: "sp\(degree)", degree: degree, profile: model.name)
        }
        let node = min(gpus, model.topology?.gpusPerNode ?? gpus)
        guard degree <= node else { throw .tooFewGPUs(policy: "sp\(degree)", needs: degree, gpus: node) }
        self.degree = degree
        guard let topology = model.topology else {
            self.groups = (0..<(gpus / degree)).map { GPUSet(range: ($0 * degree)..<(($0 + 1) * degree)) }
            return
        }
        var groups: [GPUSet] = []
        for order in topology.staticOrder(gpus: gpus) {
            for start in stride(from: 0, through: order.count - degree, by: degree) {
                let group = GPUSet(order[start..<(start + degree)])
                // A group that crosses islands where the profile forbids it is left out.
                if model.resolutions.indices.allSatisfy({ model.stepTime(resolution: $0, on: group) != nil }) {
                    groups.append(group)
                }
            }
        }
        self.groups = groups
    }

    public mutating func decide(_ view: ClusterView) -> Decision {
        var free = view.free
        var starts: [BlockStart] = []
        var nextGroup = 0
        for r in view.requests where r.isFresh {
            while nextGroup < groups.count && !groups[nextGroup].isSubset(of: free) { nextGroup += 1 }
            guard nextGroup < groups.count else { break }
            let g = groups[nextGroup]
            free = free.subtracting(g)
            starts.append(BlockStart(request: r.id, gpus: g, steps: r.remainingSteps))
        }
        return Decision(starts: starts)
    }
}

/// Problems building a policy, each naming the policy.
public enum PolicyError: Error, Equatable, CustomStringConvertible {
    case unknownPolicy(String)
    case degreeNotProfiled(policy: String, degree: Int, profile: String)
    case tooFewGPUs(policy: String, needs: Int, gpus: Int)
    case invalidGPUCount(Int)
    case invalidGranularity(Int)

    public var description: String {
        switch self {
        case .unknownPolicy(let p):
            "unknown policy '\(p)'; expected one of: \(Policies.names.joined(separator: ", "))"
        case .degreeNotProfiled(let p, let d, let prof): "policy \(p) needs degree \(d), which profile \(prof) lacks"
        case .tooFewGPUs(let p, let n, let g): "policy \(p) needs at least \(n) GPUs, the node has \(g)"
        case .invalidGPUCount(let g): "GPU count must be in 1...\(GPUSet.capacity), got \(g)"
        case .invalidGranularity(let g): "step granularity must be at least 1, got \(g)"
        }
    }
}
