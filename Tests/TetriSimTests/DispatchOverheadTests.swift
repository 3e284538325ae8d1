import Foundation
import Testing

@testable import TetriCore
@testable import TetriSim

@Suite struct DispatchOverheadTests {
    @Test func theProfileFieldIsOptionalAndValidated() throws {
        let base =
            #"{"name": "p", "gpus": 1, "degrees": [1], "resolutions": {"64x64": {"latent_tokens": 16, "step_ms": {"1": 10}}}"#
        let without = try JSONDecoder().decode(Profile.self, from: Data((base + "}").utf8))
        #expect(without.dispatchOverheadMs == nil)
        #expect(try CostModel(profile: without).dispatchOverhead == 0)
        let with = try JSONDecoder().decode(Profile.self, from: Data((base + #", "dispatch_overhead_ms": 1.25}"#).utf8))
        #expect(with.dispatchOverheadMs == 1.25)
        #expect(try CostModel(profile: with).dispatchOverhead == 1_250)
        // An explicit value overrides the profile's, zero included.
        #expect(try CostModel(profile: with, dispatchOverhead: 0).dispatchOverhead == 0)
        #expect(try CostModel(profile: without, dispatchOverhead: 3_000).dispatchOverhead == 3_000)
        // It survives a round trip through JSON.
        let again = try JSONDecoder().decode(Profile.self, from: JSONEncoder().encode(with))
        #expect(again == with)
        var bad = with
        bad.dispatchOverheadMs = -1
        #expect(throws: ProfileError.invalidDispatchOverhead(-1)) { try CostModel(profile: bad) }
        #expect("\(ProfileError.invalidDispatchOverhead(-1))".contains("dispatch_overhead_ms"))
    }

    @Test func everyFixedDegreeBlockPaysItOnce() throws {
        var m = try model()
        m.dispatchOverhead = 2_000
        let t = try Trace([TraceRequest(id: 0, arrival: 0, resolution: square(1024), steps: 50, slo: 10_000_000)])
        var s = try Policies.make("sp4", model: m, gpus: 8)
        let out = try Simulator.run(trace: t, model: m, gpus: 8, scheduler: &s, recordBlocks: true)
        #expect(out.blocks.count == 1)
        #expect(out.completions[0].finish == 50 * m.stepTime(resolution: 2, degree: 4) + 2_000)
    }

    @Test func roundBlocksPayItPerBlockAndStillFitTheirRounds() throws {
        // A lone 2048² request under rssp (degree 8): a tick is T_ref + the overhead, so each round
        // still holds 5 steps and one dispatch at the paper's 5 ticks; 10 blocks of 5 steps, each
        // 5 × 136.9 ms + 2 ms.
        var m = try model()
        m.dispatchOverhead = 2_000
        let t = try Trace([TraceRequest(id: 0, arrival: 0, resolution: square(2048), steps: 50, slo: 100_000_000)])
        var s = try Policies.make("rssp", model: m, gpus: 8, granularity: 5)
        let out = try Simulator.run(trace: t, model: m, gpus: 8, scheduler: &s, recordBlocks: true)
        #expect(out.blocks.map(\.steps) == Array(repeating: 5, count: 10))
        #expect(out.blocks.allSatisfy { $0.end - $0.start == 5 * 136_900 + 2_000 })
        #expect(out.completions[0].finish == 50 * 136_900 + 10 * 2_000)
        let round = try RoundScheduler(configuration: .init(name: "t", granularity: 5), model: m, gpus: 8)
        #expect(round.tick == 138_900)
        #expect(round.round == 5 * 138_900)
    }

    @Test func everyPolicysBlocksPayItAndNothingElse() throws {
        var m = try model()
        m.dispatchOverhead = 3_000
        var spec = WorkloadSpec(model: m)
        spec.count = 40
        spec.ratePerMinute = 20
        spec.sloScale = 1.5
        let t = try spec.generate()
        let steps = Dictionary(uniqueKeysWithValues: t.requests.map { ($0.id, m.resolutionIndex($0.resolution)!) })
        for p in Policies.names {
            guard var s = try? Policies.make(p, model: m, gpus: 8) else { continue }
            let out = try Simulator.run(trace: t, model: m, gpus: 8, scheduler: &s, recordBlocks: true)
            #expect(!out.blocks.isEmpty)
            for b in out.blocks {
                let step = m.stepTime(resolution: steps[b.request]!, degree: b.degree)
                #expect(b.end - b.start == Micros(b.steps) * step + 3_000, "\(p): \(b)")
            }
        }
    }
}
