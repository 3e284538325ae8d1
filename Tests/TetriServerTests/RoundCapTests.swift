import Testing

@testable import TetriCore
@testable import TetriServer
@testable import TetriSim

@Suite struct ServerRoundCapTests {
    @Test func theServerCapsItsRoundAtHalfTheTightestDefaultSLO() throws {
        // cpu-local served with 20-step requests: the 64² class's default SLO is twice its fastest
        // 20-step time, 2 × 20 × 16.98 ms = 679.2 ms, and a round of more than one 203 ms tick
        // (512² at degree 2) would exceed half of it.
        let model = try ProfileFile.load("cpu-local")
        let serving = ServingConfiguration(baseSLO: ServingConfiguration.profileSLOs(model), defaultSteps: 20)
        #expect(serving.sloFloor == 679_200)
        let capped = try #require(
            try serving.scheduler(policy: "tetriserve", model: model, gpus: 2, granularity: 5) as? RoundScheduler)
        #expect(capped.tick == 203_326 + model.dispatchOverhead)
        #expect(capped.round == capped.tick)
        let uncapped = try #require(
            try serving.scheduler(policy: "tetriserve", model: model, gpus: 2, granularity: 5, capRound: false)
                as? RoundScheduler)
        #expect(uncapped.round == 5 * uncapped.tick)
        // The same rule as the simulator's: the floor given directly gives the same round.
        let simulated = try #require(
            try Policies.make("tetriserve", model: model, gpus: 2, granularity: 5, sloFloor: 679_200)
                as? RoundScheduler)
        #expect(simulated.round == capped.round)
        // rssp is a round scheduler too and gets the same cap.
        let rssp = try #require(
            try serving.scheduler(policy: "rssp", model: model, gpus: 2, granularity: 5) as? RoundScheduler)
        #expect(rssp.round == capped.round)
    }

    @Test func theFluxDefaultsKeepThePapersFiveStepRounds() throws {
        // The paper's SLOs at 50 steps: the floor is 1.5 s, whose half holds 5 ticks of 136.9 ms.
        let model = try ProfileFile.load("flux1-dev-h100x8")
        let serving = ServingConfiguration(baseSLO: ServingConfiguration.paperSLOs(classes: 4))
        #expect(serving.sloFloor == 1_500_000)
        let s = try #require(
            try serving.scheduler(policy: "tetriserve", model: model, gpus: 8, granularity: 5) as? RoundScheduler)
        #expect(s.round == 5 * 136_900)
        // A tighter --slo-scale shortens the round: 0.5 × 1.5 s leaves 375 ms, two ticks.
        var tight = serving
        tight.sloScale = 0.5
        let t = try #require(
            try tight.scheduler(policy: "tetriserve", model: model, gpus: 8, granularity: 5) as? RoundScheduler)
        #expect(t.round == 2 * 136_900)
    }
}
