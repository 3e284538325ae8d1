import Testing

@testable import TetriCore

@Suite struct LatentDefectTests {
    @Test func lastBlockSurvivalCountsTheHandOffPlacementCharges() throws {
        var m = flux
        m.handoff = 20_000
        let s = try RoundScheduler(configuration: .init(name: "tetriserve", granularity: 5), model: m, gpus: 8)
        let now: Micros = 10_000_000
        // Two 1024² steps left, last on GPU 0 alone. Degree 2 finishes in 2 × 98.6 ms = 197.2 ms,
        // inside a 207.2 ms deadline without the hand-off, outside with it (a new GPU pair means a
        // move). Degree 1 on GPU 0 again would pay no hand-off but takes 306.4 ms.
        let r = RequestView(
            id: 7, resolution: 2, arrival: 0, deadline: now + 207_200, totalSteps: 50, remainingSteps: 2,
            lastGPUs: GPUSet([0]))
        let view = ClusterView(now: now, gpus: 8, free: GPUSet(first: 8), requests: [r])
        let p = s.roundProblem(view, boundary: now + s.round)
        let byWidth = Dictionary(
            uniqueKeysWithValues: p.options.filter { $0.width > 0 }.map { ($0.width, $0.survives) })
        #expect(byWidth == [1: false, 2: false, 4: true, 8: true])
        // Without a hand-off the pair would make it.
        m.handoff = 0
        let free = try RoundScheduler(configuration: .init(name: "tetriserve", granularity: 5), model: m, gpus: 8)
        let q = free.roundProblem(view, boundary: now + free.round)
        #expect(q.options.first { $0.width == 2 }?.survives == true)
    }

    @Test func staysOnItsGPUsWithoutAHandOffCharge() throws {
        var m = flux
        m.handoff = 20_000
        let s = try RoundScheduler(configuration: .init(name: "tetriserve", granularity: 5), model: m, gpus: 8)
        let r = RequestView(
            id: 1, resolution: 2, arrival: 0, deadline: 0, totalSteps: 50, remainingSteps: 2, lastGPUs: GPUSet([2, 3]))
        #expect(s.handoffCharged(r, width: 2, free: GPUSet(first: 8)) == 0)
        #expect(s.handoffCharged(r, width: 4, free: GPUSet(first: 8)) == 20_000)
        #expect(s.handoffCharged(r, width: 2, free: GPUSet([0, 1, 2])) == 20_000)
        var fresh = r
        fresh.lastGPUs = GPUSet()
        #expect(s.handoffCharged(fresh, width: 4, free: GPUSet(first: 8)) == 0)
    }

    @Test func aTieBetweenWaitingAndRunningRuns() {
        // One group: wait or run on 2 GPUs, both surviving at the same cost.
        let options: [GroupKnapsack.Option] = [
            .init(width: 0, survives: true, cost: 100), .init(width: 2, survives: true, cost: 100),
        ]
        #expect(GroupKnapsack.solve(options: options, groupStart: [0, 2], capacity: 4) == [1])
        // A cheaper wait still waits.
        let cheaper: [GroupKnapsack.Option] = [
            .init(width: 0, survives: true, cost: 99), .init(width: 2, survives: true, cost: 100),
        ]
        #expect(GroupKnapsack.solve(options: cheaper, groupStart: [0, 2], capacity: 4) == [0])
    }

    @Test func rsspBestPicksTheCheapestDegreeThatMeetsEachBaseSLO() throws {
        // FLUX, 50 steps: 256² 1.40 s at 1 (≤ 1.5 s); 512² 2.49 s at 1 > 2 s, 1.97 s at 2; 1024²
        // 4.93 s at 2 > 3 s, 2.985 s at 4; 2048² misses 5 s even at 8 (6.845 s): the largest.
        #expect(Policies.rsspBestDegrees(model: flux, gpus: 8) == [1, 2, 4, 8])
        #expect(Policies.rsspDegrees(model: flux, gpus: 8) == [1, 1, 2, 8])
        // On 4 GPUs the largest usable degree is 4.
        #expect(Policies.rsspBestDegrees(model: flux, gpus: 4) == [1, 2, 4, 4])
        // Looser SLOs let cheaper degrees through: at 2× 512² fits 4 s at degree 1 (2.49 s) and
        // 1024² fits 6 s at degree 2 (4.93 s); 2048² needs degree 8 for 10 s (12.54 s at 4).
        let loose = Policies.baseSLO.map { $0 * 2 }
        #expect(Policies.rsspBestDegrees(model: flux, gpus: 8, baseSLO: loose) == [1, 1, 2, 8])
        // GPU-time decides, not the degree: a degree that is faster and cheaper per step wins.
        let p = Profile(
            name: "odd", description: "", gpus: 4, degrees: [1, 2],
            resolutions: ["64x64": .init(latentTokens: 1, stepMs: ["1": 30, "2": 10])])
        let odd = try CostModel(profile: p)
        #expect(Policies.rsspBestDegrees(model: odd, gpus: 4, baseSLO: [10_000_000]) == [2])
    }
}

@Suite struct RoundLengthRuleTests {
    func round(_ floor: Micros?, granularity: Int = 5) throws -> Micros {
        var c = RoundScheduler.Configuration(name: "tetriserve", granularity: granularity)
        c.sloFloor = floor
        return try RoundScheduler(configuration: c, model: flux, gpus: 8).round
    }

    @Test func aRoundFitsInHalfTheTightestSLO() throws {
        // FLUX: T_ref = 136.9 ms. A 1.5 s floor allows ⌊750 / 136.9⌋ = 5 ticks: the paper's g = 5.
        #expect(try round(1_500_000) == 5 * 136_900)
        #expect(try round(nil) == 5 * 136_900)
        // Never more than the granularity asks for.
        #expect(try round(10_000_000) == 5 * 136_900)
        #expect(try round(10_000_000, granularity: 2) == 2 * 136_900)
        // A 0.6 s floor: ⌊300 / 136.9⌋ = 2 ticks; below two ticks' worth, one tick.
        #expect(try round(600_000) == 2 * 136_900)
        #expect(try round(100_000) == 136_900)
    }

    @Test func policiesPassTheFloorToRoundSchedulers() throws {
        let s = try #require(
            try Policies.make("tetriserve", model: flux, gpus: 8, granularity: 5, sloFloor: 600_000) as? RoundScheduler)
        #expect(s.round == 2 * 136_900)
        let r = try #require(
            try Policies.make("rssp-best", model: flux, gpus: 8, granularity: 5, sloFloor: 600_000) as? RoundScheduler)
        #expect(r.round == 2 * 136_900)
    }
}
