import Testing

@testable import TetriCore

/// Long steps and the slack reserve, on FLUX with one-tick rounds (136.9 ms: the 2048² class's
/// step at degree 8), where a 2048² step at degree 4 (250.8 ms) does not fit a round.
@Suite struct LongStepTests {
    func tetriserve(longSteps: Bool = true, reserve: Int = RoundScheduler.defaultSlackReserve) throws
        -> RoundScheduler
    {
        var c = try #require(Policies.roundConfiguration("tetriserve", model: flux, gpus: 8))
        c.longSteps = longSteps
        c.slackReserve = reserve
        return try RoundScheduler(configuration: c, model: flux, gpus: 8)
    }

    /// A 2048² request with 20 of its 50 steps left, waiting at time 0 on a node whose first
    /// `free` GPUs are free.
    func waiting2048(deadline: Micros, free: Int, id: Int = 3) -> ClusterView {
        ClusterView(
            now: 0, gpus: 8, free: GPUSet(first: free),
            requests: [
                RequestView(id: id, resolution: 3, arrival: 0, deadline: deadline, totalSteps: 50, remainingSteps: 20)
            ])
    }

    @Test func tetriserveHasBothAndTheOtherPoliciesNeither() throws {
        let c = try #require(Policies.roundConfiguration("tetriserve", model: flux, gpus: 8))
        #expect(c.longSteps && c.slackReserve == RoundScheduler.defaultSlackReserve)
        for name in ["tetriserve-dp", "tetriserve-placement", "tetriserve-literal", "rssp", "rssp-best"] {
            let o = try #require(Policies.roundConfiguration(name, model: flux, gpus: 8))
            #expect(!o.longSteps && o.slackReserve == 0, "\(name)")
        }
        #expect(try tetriserve().reserve == Micros(RoundScheduler.defaultSlackReserve) * 136_900)
    }

    /// Only the class that sets the tick (2048², whose fastest step fills a round) gets long
    /// steps: 1024² at degree 1 (153.2 ms) stays out, as without them.
    @Test func onlyTheClassThatSetsTheTickGetsLongSteps() throws {
        let s = try tetriserve()
        #expect(s.classes[3].widths == [1, 2, 4, 8] && s.classes[3].long == [true, true, true, false])
        #expect(s.classes[2].widths == [2, 4, 8] && s.classes[2].long == [false, false, false])
        #expect(s.classes[0].long == [false, false, false, false])
        let off = try tetriserve(longSteps: false)
        #expect(off.classes[3].widths == [8] && off.classes[2].widths == [2, 4, 8])
        // No long step exceeds half the tightest SLO, the bound a round keeps to: with 1.5 s,
        // degree 1 (823.8 ms) goes, degree 2 (463.8 ms) stays.
        var c = try #require(Policies.roundConfiguration("tetriserve", model: flux, gpus: 8))
        c.sloFloor = 1_500_000
        let floored = try RoundScheduler(configuration: c, model: flux, gpus: 8)
        #expect(floored.classes[3].widths == [2, 4, 8] && floored.classes[3].long == [true, true, false])
    }

    /// Four GPUs free and a 2048² request with 20 steps left: degree 4 is offered as one step
    /// that runs past the boundary, and survives exactly when the 19 steps left fit from its end
    /// (19 rounds at degree 8). Without long steps nothing fits the free GPUs.
    @Test func aLongStepRunsOnceAndIsJudgedFromItsEnd() throws {
        let edge: Micros = 250_800 + 19 * 136_900
        for (deadline, survives) in [(edge, true), (edge - 1, false)] {
            let view = waiting2048(deadline: deadline, free: 4)
            var s = try tetriserve()
            let p = s.roundProblem(view, boundary: s.round)
            let long = p.options.filter { $0.width == 4 }
            if survives {
                #expect(p.items == [0])
                #expect(long.count == 1 && long[0].steps == 1 && long[0].survives)
            } else {
                // "none" does not survive either (21 rounds > edge): the request is late, and a
                // late request gets only steps that fit the round.
                #expect(p.late == [0])
            }
            let d = s.decide(view)
            #expect(d.starts == (survives ? [BlockStart(request: 3, gpus: GPUSet(first: 4), steps: 1)] : []))
            #expect(d.wakeAt == s.round)
            var off = try tetriserve(longSteps: false)
            #expect(off.decide(view).starts.isEmpty)
            #expect(off.roundProblem(view, boundary: off.round).options.allSatisfy { $0.width != 4 })
        }
    }

    /// With a modelled hand-off, a long step is judged as if the request must move back to its
    /// fastest degree afterwards: the survival edge moves by one hand-off.
    @Test func aLongStepCountsTheHandOffBack() throws {
        let model = try CostModel(profile: fluxProfile, handoff: .fromMilliseconds(20))
        let edge: Micros = 250_800 + 20_000 + 19 * 136_900
        for (deadline, survives) in [(edge, true), (edge - 1, false)] {
            let view = waiting2048(deadline: deadline, free: 4)
            let c = try #require(Policies.roundConfiguration("tetriserve", model: model, gpus: 8))
            let s = try RoundScheduler(configuration: c, model: model, gpus: 8)
            let p = s.roundProblem(view, boundary: s.round)
            // Not surviving, the request is late (no option of it survives) and has no options.
            #expect(p.options.contains { $0.width == 4 && $0.steps == 1 && $0.survives } == survives)
            #expect(p.late == (survives ? [] : [0]))
        }
    }

    /// The reserve adds to each surviving option's price the whole node's GPU-time for every
    /// microsecond of slack below it (four ticks here), and nothing above. Degrees 1, 2 and 4 are
    /// long steps for this class.
    @Test func theSlackPriceIsTheNodeTimeOfTheSlackShortOfTheReserve() throws {
        let reserve: Micros = 4 * 136_900
        for extra: Micros in [0, 200_000, reserve - 1, reserve, 2 * reserve] {
            // Slack after a degree-8 step: the deadline less one round and 19 more.
            let deadline = 20 * 136_900 + extra
            let view = waiting2048(deadline: deadline, free: 8, id: 0)
            let on = try tetriserve(reserve: 4)
            let off = try tetriserve(reserve: 0)
            let a = on.roundProblem(view, boundary: on.round).options
            let b = off.roundProblem(view, boundary: off.round).options
            #expect(a.map(\.width) == b.map(\.width) && a.map(\.survives) == b.map(\.survives))
            for (x, y) in zip(a, b) where x.survives && x.steps < 20 {
                // Waiting costs a round; a step at degree 8 fits the round; the others are long
                // steps, judged from their end.
                let step: [Int: Micros] = [1: 823_800, 2: 463_800, 4: 250_800, 8: 136_900]
                let resume = x.width == 0 ? 136_900 : max(136_900, step[x.width]!)
                let slack = deadline - resume - Micros(20 - x.steps) * 136_900
                #expect(x.cost - y.cost == 8 * max(0, reserve - slack), "width \(x.width), extra \(extra)")
            }
            // The degree-8 option keeps all the slack there is, so it pays only what is short.
            #expect(a.first { $0.width == 8 }!.cost - b.first { $0.width == 8 }!.cost == 8 * max(0, reserve - extra))
        }
    }
}
