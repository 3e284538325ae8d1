import Foundation
import Testing

@testable import TetriCore
@testable import TetriSim

/// Simulations and decisions on profiles with a topology: no group ever spans a node, no group
/// crosses islands where the profile forbids it, and every block takes the step time of the GPUs
/// it ran on.
@Suite struct TopologySimulationTests {
    /// The shipped SD3 profile (NVLink pairs {0, 1} and {2, 3}, crossing priced).
    func sd3() throws -> CostModel { try ProfileFile.load("sd3-medium-a40x4") }

    /// The SD3 profile with the crossing table removed: crossing pairs are forbidden.
    func sd3Forbidden() throws -> CostModel {
        var p = try JSONDecoder().decode(Profile.self, from: ProfileFile.contents(of: "sd3-medium-a40x4"))
        p.topology?.crossIslandStepMs = nil
        return try CostModel(profile: p)
    }

    /// FLUX in nodes of 8.
    func fluxNodes() throws -> CostModel {
        var m = try model()
        m.topology = try NodeTopology(gpusPerNode: 8)
        return m
    }

    /// The step time a block's GPUs should have, from the profile's own tables: a degree-`k`
    /// group inside one node is compact when it touches no more islands than `k` needs.
    func expectedStep(_ m: CostModel, resolution r: Int, gpus: [Int]) -> Micros? {
        let t = m.topology!
        let d = m.degreeIndex(gpus.count)!
        let touched = Set(gpus.map { $0 / t.gpusPerNode * 100 + t.island[$0 % t.gpusPerNode] }).count
        let need = t.minIslands[gpus.count]
        if touched <= need { return m.stepTime[r][d] }
        return t.crossStepTime.isEmpty ? nil : t.crossStepTime[r][d]
    }

    @Test func anUnknownTopologyFieldIsRefusedByName() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("topology-typo-\(getpid()).json").path
        let text = #"{"name": "p", "gpus": 1, "degrees": [1], "resolutions": {}, "topology": {"gpu_per_node": 1}}"#
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(
            throws: FileError.malformed(
                path, "unknown topology field 'gpu_per_node'; expected gpus_per_node, islands, cross_island_step_ms")
        ) {
            try ProfileFile.load(path)
        }
    }

    @Test(arguments: Policies.names)
    func noGroupSpansANodeOrCrossesWhereForbidden(policy: String) throws {
        let cases: [(CostModel, Int)] = [
            (try fluxNodes(), 16), (try fluxNodes(), 24), (try sd3(), 4), (try sd3(), 8), (try sd3Forbidden(), 4),
            (try sd3Forbidden(), 12),
        ]
        var blocks = 0
        for (m, gpus) in cases {
            for (k, mix) in [Mix.uniform, .skewed].enumerated() {
                var spec = WorkloadSpec(model: m)
                spec.mix = mix
                spec.count = 40
                spec.ratePerMinute = Double(gpus) * 4
                spec.sloScale = 1 + Double(k) / 2
                spec.seed = UInt64(gpus * 10 + k)
                let trace = try spec.generate()
                guard var s = try? Policies.make(policy, model: m, gpus: gpus) else { continue }
                let out = try Simulator.run(trace: trace, model: m, gpus: gpus, scheduler: &s, recordBlocks: true)
                #expect(out.completions.allSatisfy { $0.finish > 0 }, "\(policy) on \(m.name), \(gpus) GPUs")
                let resolution = Dictionary(uniqueKeysWithValues: trace.requests.map { ($0.id, $0.resolution) })
                for b in out.blocks {
                    let set = GPUSet(b.gpus)
                    #expect(!m.topology!.spansNodes(set), "\(policy): block \(b) spans nodes")
                    let r = m.resolutionIndex(resolution[b.request]!)!
                    let step = try #require(expectedStep(m, resolution: r, gpus: b.gpus), "\(policy): \(b) forbidden")
                    #expect(b.end - b.start == Micros(b.steps) * step)
                    blocks += 1
                }
            }
        }
        #expect(blocks > 100)
    }

    @Test func decisionsAtClusterScaleStayInsideNodes() throws {
        for (m, gpus) in [(try fluxNodes(), 64), (try sd3(), 32), (try sd3Forbidden(), 16)] {
            for seed in 1...20 {
                let view = RandomStates.make(model: m, gpus: gpus, pending: 30 + seed * 10, seed: UInt64(seed))
                for policy in Policies.names {
                    guard var s = try? Policies.make(policy, model: m, gpus: gpus) else { continue }
                    var again = s
                    let d = s.decide(view)
                    #expect(d == again.decide(view))
                    var used = GPUSet()
                    var seen = Set<Int>()
                    for start in d.starts {
                        let r = try #require(view.requests.first { $0.id == start.request })
                        #expect(!r.isRunning)
                        #expect(seen.insert(start.request).inserted)
                        #expect(start.steps >= 1 && start.steps <= r.remainingSteps)
                        #expect(start.gpus.isSubset(of: view.free) && start.gpus.isDisjoint(with: used))
                        #expect(m.stepTime(resolution: r.resolution, on: start.gpus) != nil, "\(policy): \(start)")
                        used = used.union(start.gpus)
                    }
                    // The cluster is busy: a decision on a node-wide state starts work.
                    if policy.hasPrefix("tetriserve") { #expect(!d.starts.isEmpty) }
                }
            }
        }
    }

    @Test func tetriserveKeepsSD3PairsInsideTheirIslands() throws {
        // On the uniform mix at 1.0× (the SD3 experiment's first point) almost all degree-2 time
        // runs on NVLink pairs; only a pair forced by the GPUs other blocks hold crosses.
        let m = try sd3()
        var spec = WorkloadSpec(model: m)
        spec.count = 150
        let trace = try spec.generate()
        var s = try Policies.make("tetriserve", model: m, gpus: 4)
        let out = try Simulator.run(trace: trace, model: m, gpus: 4, scheduler: &s, recordBlocks: true)
        var pairs: Micros = 0
        var crossing: Micros = 0
        for b in out.blocks where b.degree == 2 {
            pairs += b.end - b.start
            if m.topology!.crossesIslands(GPUSet(b.gpus)) { crossing += b.end - b.start }
        }
        #expect(pairs > 0)
        #expect(Double(crossing) < 0.1 * Double(pairs))
    }
}

@Suite struct ClusterAdmissionTests {
    /// On a cluster each node decides for its own share with its own GPUs: a 2048² request that
    /// one node can meet alone (all 8 GPUs, 6.845 s of its 7.5 s) is not deferred, however many
    /// nodes the cluster has; two such requests on one node are one too many.
    @Test func aNodeAdmitsWhatItsOwnGPUsCanMeet() throws {
        var m = try model()
        m.topology = try NodeTopology(gpusPerNode: 8)
        let big = try #require(m.resolutionIndex(square(2048)))
        func request(_ id: Int) -> RequestView {
            RequestView(id: id, resolution: big, arrival: 0, deadline: 7_500_000 + Micros(id), totalSteps: 50)
        }
        for gpus in [8, 16, 32] {
            let configuration = try #require(Policies.roundConfiguration("tetriserve", model: m, gpus: gpus))
            let s = try RoundScheduler(configuration: configuration, model: m, gpus: gpus)
            let one = ClusterView(now: 0, gpus: 8, free: GPUSet(), requests: [request(0)])
            #expect(s.deferrals(one).isEmpty, "\(gpus) GPUs")
            let two = ClusterView(now: 0, gpus: 8, free: GPUSet(), requests: [request(0), request(1)])
            #expect(s.deferrals(two) == [1], "\(gpus) GPUs")
        }
    }
}
