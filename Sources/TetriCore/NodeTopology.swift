/// How the GPUs of a cluster are linked, in the validated form of a profile's `topology`:
/// nodes of `gpusPerNode` GPUs (ids `n·gpusPerNode ..< (n+1)·gpusPerNode`; a group never spans
/// nodes), each cut into the same pattern of fast-link islands (local indices), and the step
/// time of a group that crosses islands.
///
/// A group of degree `k` is **compact** when it touches no more islands than `k` needs (the
/// fewest islands of the pattern whose sizes add up to `k`); otherwise it **crosses** islands
/// and runs at ``crossStepTime`` when the profile gives one, or is forbidden.
public struct NodeTopology: Sendable, Equatable {
    public let gpusPerNode: Int
    /// `island[local]`: the island of each GPU index within a node.
    public let island: [Int]
    /// GPU indices within a node of each island, ascending.
    public let islandMembers: [[Int]]
    /// `minIslands[k]`: the fewest islands of the pattern that hold `k` GPUs (`k ≤ gpusPerNode`).
    public let minIslands: [Int]
    /// `crossStepTime[r][d]`: microseconds per step of resolution `r` at degree index `d` on a
    /// group that crosses islands; nil forbids such a group. Empty when the profile gives none.
    public internal(set) var crossStepTime: [[Micros?]]

    /// Islands per node.
    public var islandCount: Int { islandMembers.count }

    /// True when a node is cut into more than one island.
    public var hasIslands: Bool { islandMembers.count > 1 }

    /// Nodes of `gpusPerNode` GPUs, each one island, no crossing table.
    public init(gpusPerNode: Int) throws(ProfileError) {
        try self.init(gpusPerNode: gpusPerNode, islands: nil, crossStepTime: [])
    }

    /// - Parameter islands: local GPU indices per island, each index of `0..<gpusPerNode` in
    ///   exactly one; nil for one island per node.
    public init(gpusPerNode: Int, islands: [[Int]]?, crossStepTime: [[Micros?]]) throws(ProfileError) {
        guard gpusPerNode >= 1 else {
            throw .invalidTopology("'topology.gpus_per_node' must be positive, got \(gpusPerNode)")
        }
        let members = (islands ?? [Array(0..<gpusPerNode)]).map { $0.sorted() }
        var island = [Int](repeating: -1, count: gpusPerNode)
        for (i, ids) in members.enumerated() {
            guard !ids.isEmpty else { throw .invalidTopology("'topology.islands': island \(i) is empty") }
            for id in ids {
                guard id >= 0 && id < gpusPerNode else {
                    throw .invalidTopology(
                        "'topology.islands': GPU \(id) is outside 0..<\(gpusPerNode) ('topology.gpus_per_node')")
                }
                guard island[id] < 0 else { throw .invalidTopology("'topology.islands': GPU \(id) is listed twice") }
                island[id] = i
            }
        }
        if let missing = island.firstIndex(of: -1) {
            throw .invalidTopology("'topology.islands': GPU \(missing) of the node is in no island")
        }
        let sizes = members.map(\.count).sorted(by: >)
        var minIslands = [Int](repeating: 0, count: gpusPerNode + 1)
        for k in 1...gpusPerNode {
            var covered = 0
            var n = 0
            while covered < k {
                covered += sizes[n]
                n += 1
            }
            minIslands[k] = n
        }
        self.gpusPerNode = gpusPerNode
        self.island = island
        self.islandMembers = members
        self.minIslands = minIslands
        self.crossStepTime = crossStepTime
    }

    /// The node of a GPU.
    @inline(__always)
    public func node(of gpu: Int) -> Int { gpu / gpusPerNode }

    /// The island of a GPU, numbered across the cluster (`node · islandCount + local island`).
    @inline(__always)
    public func islandIndex(of gpu: Int) -> Int { node(of: gpu) * islandCount + island[gpu % gpusPerNode] }

    /// The GPU sets of the nodes of a cluster of `gpus` GPUs (the last one may be partial).
    public func nodes(gpus: Int) -> [GPUSet] {
        stride(from: 0, to: gpus, by: gpusPerNode).map { GPUSet(range: $0..<min(gpus, $0 + gpusPerNode)) }
    }

    /// The GPU sets of the islands of a cluster of `gpus` GPUs, indexed by ``islandIndex(of:)``
    /// (islands of a partial last node may be smaller or empty).
    public func islands(gpus: Int) -> [GPUSet] {
        var sets: [GPUSet] = []
        for base in stride(from: 0, to: gpus, by: gpusPerNode) {
            for ids in islandMembers {
                sets.append(GPUSet(ids.map { base + $0 }.filter { $0 < gpus }))
            }
        }
        return sets
    }

    /// True when the GPUs lie on more than one node.
    public func spansNodes(_ set: GPUSet) -> Bool {
        var node = -1
        for id in set {
            if node < 0 {
                node = self.node(of: id)
            } else if self.node(of: id) != node {
                return true
            }
        }
        return false
    }

    /// True when the GPUs touch more islands than a group of their size needs.
    public func crossesIslands(_ set: GPUSet) -> Bool {
        guard hasIslands else { return false }
        var touched: [Int] = []
        var count = 0
        for id in set {
            count += 1
            let i = islandIndex(of: id)
            if !touched.contains(i) { touched.append(i) }
        }
        return touched.count > minIslands[min(count, gpusPerNode)]
    }

    /// Each node's GPUs in the order static groups take them: island by island, ascending
    /// within an island. Cutting a node's order into runs of `k` gives compact groups whenever
    /// `k` divides the island size or the island size divides `k`.
    public func staticOrder(gpus: Int) -> [[Int]] {
        stride(from: 0, to: gpus, by: gpusPerNode).map { base in
            islandMembers.flatMap { ids in ids.map { base + $0 }.filter { $0 < gpus } }
        }
    }
}

extension CostModel {
    /// Microseconds per step of resolution class `r` on the GPU set `gpus`: the profiled time of
    /// its degree, or the profile's crossing time when the set crosses islands. Nil when the set
    /// spans nodes or crosses islands where the profile gives no crossing time, or when its degree
    /// is not profiled.
    public func stepTime(resolution r: Int, on gpus: GPUSet) -> Micros? {
        guard let d = degreeIndex(gpus.count) else { return nil }
        guard let topology else { return stepTime[r][d] }
        if topology.spansNodes(gpus) { return nil }
        if topology.crossesIslands(gpus) {
            return topology.crossStepTime.isEmpty ? nil : topology.crossStepTime[r][d]
        }
        return stepTime[r][d]
    }

    /// Why ``stepTime(resolution:on:)`` refuses a GPU set, or nil when it accepts it.
    public func placementProblem(resolution r: Int, on gpus: GPUSet) -> String? {
        guard degreeIndex(gpus.count) != nil else { return "degree \(gpus.count) not profiled" }
        guard let topology else { return nil }
        if topology.spansNodes(gpus) {
            return "GPUs \(gpus) span more than one node of \(topology.gpusPerNode)"
        }
        if stepTime(resolution: r, on: gpus) == nil {
            return "GPUs \(gpus) cross islands and the profile gives no crossing time at degree \(gpus.count)"
        }
        return nil
    }
}
