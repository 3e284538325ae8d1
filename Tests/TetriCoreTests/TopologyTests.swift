import Foundation
import Testing

@testable import TetriCore

/// A 4-GPU node of two fast pairs, {0, 1} and {2, 3}: a degree-2 group outside a pair crosses
/// islands and runs at the crossing time (8 ms and 20 ms instead of 6 ms and 16 ms) when
/// `priced`, or is forbidden.
func pairsProfile(priced: Bool = true, islands: [[Int]]? = [[0, 1], [2, 3]], gpusPerNode: Int? = 4) -> Profile {
    Profile(
        name: "pairs", description: "", gpus: 4, degrees: [1, 2, 4],
        resolutions: [
            "256x256": .init(latentTokens: 1, stepMs: ["1": 10, "2": 6, "4": 4]),
            "512x512": .init(latentTokens: 4, stepMs: ["1": 30, "2": 16, "4": 9]),
        ],
        topology: .init(
            gpusPerNode: gpusPerNode, islands: islands,
            crossIslandStepMs: priced ? ["256x256": ["2": 8], "512x512": ["2": 20]] : nil))
}

@Suite struct TopologyTests {
    func pairs(priced: Bool = true) throws -> CostModel { try CostModel(profile: pairsProfile(priced: priced)) }

    /// The same step times with no topology: any GPUs form a group at the profiled speed.
    func flat() throws -> CostModel {
        var p = pairsProfile()
        p.topology = nil
        return try CostModel(profile: p)
    }

    /// A scheduler with a fixed degree per class (256² → `small`, 512² → `large`), g = 5:
    /// `T_ref` is the larger class's step at its degree, a round five of them.
    func fixed(_ model: CostModel, small: Int, large: Int) throws -> RoundScheduler {
        try RoundScheduler(
            configuration: .init(name: "fixed", granularity: 5, fixedDegrees: [small, large]), model: model, gpus: 4)
    }

    func request(_ id: Int, _ resolution: Int, remaining: Int = 20, running: GPUSet? = nil) -> RequestView {
        RequestView(
            id: id, resolution: resolution, arrival: 0, deadline: 1_000_000_000, totalSteps: 50,
            remainingSteps: remaining, lastGPUs: running ?? GPUSet(), isRunning: running != nil)
    }

    @Test func theProfileTopologyIsReadAndIndexed() throws {
        let json = """
            {"name": "p", "gpus": 4, "degrees": [1, 2], "resolutions": {"256x256": {"latent_tokens": 1,
             "step_ms": {"1": 10, "2": 6}}}, "topology": {"gpus_per_node": 4, "islands": [[2, 3], [1, 0]],
             "cross_island_step_ms": {"256x256": {"2": 7.5}}}}
            """
        let m = try CostModel(profile: JSONDecoder().decode(Profile.self, from: Data(json.utf8)))
        let t = try #require(m.topology)
        #expect(t.gpusPerNode == 4)
        #expect(t.islandMembers == [[2, 3], [0, 1]])
        #expect(t.island == [1, 1, 0, 0])
        #expect(t.minIslands == [0, 1, 1, 2, 2])
        #expect(t.crossStepTime == [[nil, 7_500]])
        #expect(t.islandIndex(of: 6) == 2)  // node 1, island 0 ({2, 3} of that node)
        #expect(t.nodes(gpus: 6) == [GPUSet(range: 0..<4), GPUSet([4, 5])])
        #expect(t.staticOrder(gpus: 8) == [[2, 3, 0, 1], [6, 7, 4, 5]])
        // Without a topology object the model has none.
        #expect(try flat().topology == nil)
    }

    @Test func crossingAndNodeSpanningGroups() throws {
        let m = try pairs()
        let t = try #require(m.topology)
        #expect(!t.crossesIslands(GPUSet([0, 1])))
        #expect(!t.crossesIslands(GPUSet([2, 3])))
        #expect(t.crossesIslands(GPUSet([1, 2])))
        #expect(t.crossesIslands(GPUSet([0, 3])))
        #expect(!t.crossesIslands(GPUSet([3])))
        #expect(!t.crossesIslands(GPUSet([0, 1, 2, 3])))  // degree 4 needs both pairs
        #expect(t.crossesIslands(GPUSet([4, 6])))  // second node, crossing its pairs
        #expect(!t.spansNodes(GPUSet([4, 5, 6, 7])))
        #expect(t.spansNodes(GPUSet([3, 4])))
        #expect(m.stepTime(resolution: 1, on: GPUSet([2, 3])) == 16_000)
        #expect(m.stepTime(resolution: 1, on: GPUSet([1, 2])) == 20_000)
        #expect(m.stepTime(resolution: 0, on: GPUSet([0, 2])) == 8_000)
        #expect(m.stepTime(resolution: 0, on: GPUSet([3, 4])) == nil)
        #expect(m.stepTime(resolution: 0, on: GPUSet([0, 1, 2])) == nil)  // degree 3 not profiled
        #expect(try pairs(priced: false).stepTime(resolution: 1, on: GPUSet([1, 2])) == nil)
        #expect(try flat().stepTime(resolution: 1, on: GPUSet([1, 2])) == 16_000)
    }

    @Test func badTopologiesAreRefusedNamingTheField() throws {
        func error(_ p: Profile) -> String {
            do {
                _ = try CostModel(profile: p)
                return "accepted"
            } catch {
                return error.description
            }
        }
        #expect(
            error(pairsProfile(islands: [[0, 1], [1, 2, 3]])) == "profile 'topology.islands': GPU 1 is listed twice")
        #expect(
            error(pairsProfile(islands: [[0, 1], [2]]))
                == "profile 'topology.islands': GPU 3 of the node is in no island")
        #expect(
            error(pairsProfile(islands: [[0, 1], [2, 4]]))
                == "profile 'topology.islands': GPU 4 is outside 0..<4 ('topology.gpus_per_node')")
        #expect(
            error(pairsProfile(islands: [[0], [1]], gpusPerNode: 2))
                == "profile degree 4 exceeds 'topology.gpus_per_node' 2")
        #expect(
            error(pairsProfile(islands: nil))
                == "profile 'topology.cross_island_step_ms' needs 'topology.islands'")
        var faster = pairsProfile()
        faster.topology?.crossIslandStepMs = ["256x256": ["2": 5]]
        #expect(
            error(faster)
                == "profile 'topology.cross_island_step_ms' 256x256 degree 2: 5.0 ms is faster than its 'step_ms'")
        var unknown = pairsProfile()
        unknown.topology?.crossIslandStepMs = ["640x640": ["2": 50]]
        #expect(
            error(unknown) == "profile 'topology.cross_island_step_ms': resolution '640x640' is not in 'resolutions'")
        var badDegree = pairsProfile()
        badDegree.topology?.crossIslandStepMs = ["256x256": ["3": 50]]
        #expect(error(badDegree) == "profile 'topology.cross_island_step_ms' 256x256: degree '3' is not in 'degrees'")
        #expect(error(pairsProfile(gpusPerNode: 0)) == "profile degree 4 exceeds 'topology.gpus_per_node' 0")
        let typo = #"{"name": "p", "gpus": 1, "degrees": [1], "resolutions": {}, "topology": {"gpu_per_node": 1}}"#
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(Profile.self, from: Data(typo.utf8)) }
    }

    @Test func aPairGoesToTheFreeIslandNotAcrossIt() throws {
        // GPU 0 is busy; {1, 2} would cross the pairs, {2, 3} is a free pair.
        let view = ClusterView(
            now: 0, gpus: 4, free: GPUSet([1, 2, 3]),
            requests: [request(1, 0, running: GPUSet([0])), request(2, 1)])
        var s = try fixed(pairs(), small: 1, large: 2)
        #expect(s.decide(view).starts == [BlockStart(request: 2, gpus: GPUSet([2, 3]), steps: 5)])
        // Without islands placement takes the lowest-numbered free GPUs.
        var flat = try fixed(flat(), small: 1, large: 2)
        #expect(flat.decide(view).starts == [BlockStart(request: 2, gpus: GPUSet([1, 2]), steps: 5)])
    }

    @Test func aSingleGPUFillsAPartlyUsedPairSoAWholePairStaysFree() throws {
        // GPU 2 is busy: the degree-1 request takes GPU 3 (best fit), the pair {0, 1} stays whole
        // for the degree-2 request, although the degree-1 request comes first.
        let view = ClusterView(
            now: 0, gpus: 4, free: GPUSet([0, 1, 3]),
            requests: [request(1, 0, running: GPUSet([2])), request(5, 0), request(6, 1)])
        var s = try fixed(pairs(), small: 1, large: 2)
        #expect(
            s.decide(view).starts == [
                BlockStart(request: 5, gpus: GPUSet([3]), steps: 8),
                BlockStart(request: 6, gpus: GPUSet([0, 1]), steps: 5),
            ])
        var flat = try fixed(flat(), small: 1, large: 2)
        #expect(
            flat.decide(view).starts == [
                BlockStart(request: 5, gpus: GPUSet([0]), steps: 8),
                BlockStart(request: 6, gpus: GPUSet([1, 3]), steps: 5),
            ])
    }

    @Test func aCrossingPairIsPricedAtTheCrossingTimeOrForbidden() throws {
        // GPUs 0 and 2 are busy: the only free pair, {1, 3}, crosses. Request 3 has 20 steps of
        // 512² left at degree 2 and a deadline of 350 ms: waiting for the next round (80 ms, then
        // 20 steps in whole rounds of five: 80 + 320 ms) misses it, running now survives.
        var urgent = request(3, 1)
        urgent.deadline = 350_000
        let view = ClusterView(
            now: 0, gpus: 4, free: GPUSet([1, 3]),
            requests: [request(1, 0, running: GPUSet([0])), request(2, 0, running: GPUSet([2])), urgent])
        var priced = try fixed(pairs(), small: 1, large: 2)
        // The round is 5 × 16 ms = 80 ms; a crossing step takes 20 ms, so 4 steps fit, not 5.
        #expect(priced.round == 80_000)
        let problem = priced.roundProblem(view, boundary: 80_000)
        #expect(problem.compact == [true, true, false])
        #expect(problem.options.map(\.steps) == [0, 4])
        #expect(problem.options.map(\.survives) == [false, true])
        #expect(priced.decide(view).starts == [BlockStart(request: 3, gpus: GPUSet([1, 3]), steps: 4)])
        // With slack, the crossing steps' extra GPU-time makes waiting for a pair the cheaper plan.
        let relaxed = ClusterView(
            now: 0, gpus: 4, free: GPUSet([1, 3]),
            requests: [request(1, 0, running: GPUSet([0])), request(2, 0, running: GPUSet([2])), request(3, 1)])
        var patient = try fixed(pairs(), small: 1, large: 2)
        #expect(patient.decide(relaxed).starts == [])
        // Forbidden: no option runs on the crossing pair; the urgent request is late and waits.
        var forbidden = try fixed(pairs(priced: false), small: 1, large: 2)
        let none = forbidden.roundProblem(view, boundary: 80_000)
        #expect(none.items.isEmpty && none.late == [2])
        #expect(forbidden.decide(view).starts == [])
    }

    @Test func fixedGroupsFollowNodesAndIslands() throws {
        var islands = pairsProfile()
        islands.topology?.islands = [[0, 2], [1, 3]]
        let m = try CostModel(profile: islands)
        let sp2 = try FixedDegreeScheduler(degree: 2, gpus: 8, model: m)
        #expect(sp2.groups == [GPUSet([0, 2]), GPUSet([1, 3]), GPUSet([4, 6]), GPUSet([5, 7])])
        // A node of 3 GPUs leaves one GPU of each node out of the pairs.
        var threes = pairsProfile(priced: false, islands: nil, gpusPerNode: 3)
        threes.degrees = [1, 2]
        threes.resolutions = threes.resolutions.mapValues {
            .init(latentTokens: 1, stepMs: $0.stepMs.filter { $0.key != "4" })
        }
        let sp2b = try FixedDegreeScheduler(degree: 2, gpus: 6, model: try CostModel(profile: threes))
        #expect(sp2b.groups == [GPUSet([0, 1]), GPUSet([3, 4])])
        // Without a topology: consecutive groups, as before.
        #expect(
            try FixedDegreeScheduler(degree: 2, gpus: 6, model: flat()).groups.map(\.ids) == [
                [0, 1], [2, 3], [4, 5],
            ])
    }
}
