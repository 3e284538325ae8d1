import Testing

@testable import TetriCore
@testable import TetriSim

/// A 2048² request at SLO scale 1.5 (7.5 s for 6.845 s at degree 8) and a smaller request that
/// arrives while it runs, on FLUX with one-tick rounds: pairs that `tetriserve` meets both of,
/// and what each of long steps and the slack reserve contributes.
@Suite struct LongStepSimulationTests {
    func finishes(_ second: Int, at arrival: Micros, longSteps: Bool, reserve: Int) throws -> [Bool] {
        let m = try model()
        let slo: [Int: Micros] = [256: 2_250_000, 512: 3_000_000, 1024: 4_500_000]
        let trace = try Trace([
            TraceRequest(id: 0, arrival: 0, resolution: square(2048), steps: 50, slo: 7_500_000),
            TraceRequest(id: 1, arrival: arrival, resolution: square(second), steps: 50, slo: slo[second]!),
        ])
        var c = try #require(Policies.roundConfiguration("tetriserve", model: m, gpus: 8))
        c.longSteps = longSteps
        c.slackReserve = reserve
        var s: any Scheduler = try RoundScheduler(configuration: c, model: m, gpus: 8)
        return try Simulator.run(trace: trace, model: m, gpus: 8, scheduler: &s).completions.map(\.met)
    }

    @Test func bothRequestsOfEachPairAreMet() throws {
        let full = RoundScheduler.defaultSlackReserve
        for (second, arrival) in [(1024, 4_790_000 as Micros), (512, 4_790_000), (256, 5_500_000)] {
            #expect(try finishes(second, at: arrival, longSteps: true, reserve: full) == [true, true], "\(second)")
        }
        // The 512² request needs the 2048² one to step down to degree 4 for a while: without
        // long steps (degree 4 does not fit a one-tick round) it is missed.
        #expect(try finishes(512, at: 4_790_000, longSteps: false, reserve: full) == [true, false])
        // With long steps but no reserve, the 2048² request spends its slack on degree-4 steps
        // while the 1024² one waits, and then misses its deadline.
        #expect(try finishes(1024, at: 4_790_000, longSteps: true, reserve: 0) == [false, true])
        // Neither mechanism: the 256² request takes GPUs from the 2048² one, which misses.
        #expect(try finishes(256, at: 5_500_000, longSteps: false, reserve: 0) == [false, true])
    }
}
