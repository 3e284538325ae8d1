import Testing

@testable import TetriCore

@Suite struct RoundSchedulerTests {
    /// The scenarios below were built for the paper's 5-tick rounds (684.5 ms on FLUX).
    func scheduler(_ name: String, gpus: Int = 8) throws -> RoundScheduler {
        try #require(try Policies.make(name, model: flux, gpus: gpus, granularity: 5) as? RoundScheduler)
    }

    /// A small random state: a few requests, some running, random slack (some late).
    func randomView(_ rng: inout TestRandom, gpus: Int, pending: Int) -> ClusterView {
        let now: Micros = 50_000_000
        var free = GPUSet(first: gpus)
        var reqs: [RequestView] = []
        for id in 0..<pending {
            let r = Int(rng.next() % 4)
            let remaining = 1 + Int(rng.next() % 50)
            let fastest = flux.stepTime[r].min()!
            let deadline = now + Micros(Double(remaining) * Double(fastest) * (0.5 + Double(rng.next() % 300) / 100))
            var last = GPUSet()
            var running = false
            let k = [1, 2, 4, 8].filter { $0 <= gpus }[Int(rng.next() % 4) % [1, 2, 4, 8].filter { $0 <= gpus }.count]
            if rng.next() % 4 == 0 && free.count >= k {
                last = free.lowest(k)
                free = free.subtracting(last)
                running = true
            } else if rng.next() % 2 == 0 {
                let start = Int(rng.next() % UInt64(gpus - k + 1))
                last = GPUSet(range: start..<(start + k))
            }
            reqs.append(
                RequestView(
                    id: id, resolution: r, arrival: now - 1_000_000, deadline: deadline, totalSteps: 50,
                    remainingSteps: remaining, lastGPUs: last, isRunning: running))
        }
        return ClusterView(now: now, gpus: gpus, free: free, requests: reqs)
    }

    @Test func roundPackingMaximisesSurvivorsOverEveryOptionChoice() throws {
        var rng = TestRandom(state: 99)
        var checked = 0
        for _ in 0..<2000 {
            let gpus = [1, 2, 4, 6, 8][Int(rng.next() % 5)]
            let view = randomView(&rng, gpus: gpus, pending: 1 + Int(rng.next() % 5))
            let s = try scheduler("tetriserve", gpus: gpus)
            let p = s.roundProblem(view, boundary: view.now + s.round)
            let packing = p.packing
            let chosen = GroupKnapsack.solve(options: packing, groupStart: p.groupStart, capacity: view.free.count)
            // Brute force over every combination of options.
            var best = GroupKnapsack.Score(survivors: -1, cost: 0)
            var choice = [Int](repeating: 0, count: p.items.count)
            func go(_ g: Int, _ width: Int) {
                if g == p.items.count {
                    let sc = GroupKnapsack.score(options: packing, chosen: choice)
                    if sc.isBetter(than: best) { best = sc }
                    return
                }
                for o in p.groupStart[g]..<p.groupStart[g + 1] where width + packing[o].width <= view.free.count {
                    choice[g] = o
                    go(g + 1, width + packing[o].width)
                }
            }
            go(0, 0)
            if !p.items.isEmpty {
                checked += 1
                #expect(GroupKnapsack.score(options: packing, chosen: chosen) == best)
            }
        }
        #expect(checked > 500)
    }

    @Test(arguments: Policies.names)
    func decisionsAreValidAndDeterministic(policy: String) throws {
        var rng = TestRandom(state: 5)
        for _ in 0..<300 {
            let view = randomView(&rng, gpus: 8, pending: 1 + Int(rng.next() % 12))
            var a = try Policies.make(policy, model: flux, gpus: 8)
            var b = try Policies.make(policy, model: flux, gpus: 8)
            let d = a.decide(view)
            #expect(d == b.decide(view))
            var used = GPUSet()
            var seen = Set<Int>()
            for s in d.starts {
                let r = try #require(view.requests.first { $0.id == s.request })
                #expect(!r.isRunning)
                #expect(seen.insert(s.request).inserted)
                #expect(s.steps >= 1 && s.steps <= r.remainingSteps)
                #expect(s.gpus.isSubset(of: view.free))
                #expect(s.gpus.isDisjoint(with: used))
                #expect(flux.degrees.contains(s.degree))
                used = used.union(s.gpus)
            }
            if let w = d.wakeAt { #expect(w > view.now) }
        }
    }

    @Test func roundLengthIsGranularityTimesSlowestClassFastestStep() throws {
        #expect(try scheduler("tetriserve").round == 5 * 136_900)
        let g2 = try #require(try Policies.make("tetriserve", model: flux, gpus: 8, granularity: 2) as? RoundScheduler)
        #expect(g2.round == 2 * 136_900)
        #expect(throws: PolicyError.invalidGranularity(0)) {
            try Policies.make("tetriserve", model: flux, gpus: 8, granularity: 0)
        }
    }

    @Test func loneRequestScalesUpOnlyWhenWorkConserving() throws {
        // A 1024² request with a loose deadline on an idle node.
        let view = ClusterView(
            now: 0, gpus: 8, free: GPUSet(first: 8),
            requests: [RequestView(id: 7, resolution: 2, arrival: 0, deadline: 60_000_000, totalSteps: 50)])
        var full = try scheduler("tetriserve")
        let d = full.decide(view)
        #expect(d.starts.count == 1)
        #expect(d.starts[0].degree == 8)
        #expect(d.wakeAt == full.round)
        // Packing alone picks the cheapest degree that keeps the deadline: degree 1 for a full round.
        var dp = try scheduler("tetriserve-dp")
        let e = dp.decide(view)
        #expect(e.starts == [BlockStart(request: 7, gpus: GPUSet([0]), steps: Int(dp.round / 153_200))])
    }

    @Test func urgentRequestGetsTheDegreeThatKeepsItsDeadline() throws {
        // 50 steps of 1024² within 2.5 s: only degree 8 (38.3 ms) keeps it; degree 4 takes 2.985 s.
        let view = ClusterView(
            now: 0, gpus: 8, free: GPUSet(first: 8),
            requests: [RequestView(id: 1, resolution: 2, arrival: 0, deadline: 2_500_000, totalSteps: 50)])
        var dp = try scheduler("tetriserve-dp")
        let d = dp.decide(view)
        #expect(d.starts.map(\.degree) == [8])
        #expect(d.starts[0].steps == Int(dp.round / 38_300))
    }

    @Test func lateRequestGetsOneSmallBlockAfterOnTimeOnes() throws {
        // Request 1 can no longer make it (2048², 50 steps, 1 s left); request 2 is on time.
        let view = ClusterView(
            now: 0, gpus: 8, free: GPUSet(first: 8),
            requests: [
                RequestView(id: 1, resolution: 3, arrival: 0, deadline: 1_000_000, totalSteps: 50),
                RequestView(id: 2, resolution: 0, arrival: 0, deadline: 1_400_000, totalSteps: 50),
            ])
        var dp = try scheduler("tetriserve-dp")
        let p = dp.roundProblem(view, boundary: dp.round)
        #expect(p.late == [0] && p.items == [1])
        let d = dp.decide(view)
        // The 256² request survives on degree 1 this round (24 steps of 28 ms; the other 26 fit
        // at degree 8 before its deadline), the cheapest surviving option; the late 2048² gets
        // the smallest degree whose step fits a round (degree 2, 463.8 ms).
        let byID = Dictionary(uniqueKeysWithValues: d.starts.map { ($0.request, $0) })
        #expect(byID[2]?.degree == 1)
        #expect(byID[2]?.steps == 24)
        #expect(byID[1]?.degree == 2)
        #expect(byID[1]?.steps == 1)
    }

    @Test func placementKeepsPreviousGPUs() throws {
        let view = ClusterView(
            now: 0, gpus: 8, free: GPUSet(first: 8),
            requests: [
                RequestView(
                    id: 3, resolution: 2, arrival: 0, deadline: 2_000_000_000, totalSteps: 50, remainingSteps: 40,
                    lastGPUs: GPUSet([5])),
                RequestView(
                    id: 4, resolution: 2, arrival: 0, deadline: 2_000_000_000, totalSteps: 50, remainingSteps: 40,
                    lastGPUs: GPUSet([6])),
            ])
        var kept = try scheduler("tetriserve-placement")
        let d = kept.decide(view)
        #expect(d.starts.map(\.gpus) == [GPUSet([5]), GPUSet([6])])
        var moved = try scheduler("tetriserve-dp")
        #expect(moved.decide(view).starts.map(\.gpus) == [GPUSet([0]), GPUSet([1])])
    }

    @Test func fixedDegreeBaselineUsesLowestIdleGroupFCFS() throws {
        var sp2 = try Policies.make("sp2", model: flux, gpus: 8)
        let view = ClusterView(
            now: 0, gpus: 8, free: GPUSet([0, 1, 4, 5, 6]),
            requests: [
                RequestView(id: 1, resolution: 0, arrival: 0, deadline: 1, totalSteps: 50, isRunning: true),
                RequestView(id: 2, resolution: 1, arrival: 1, deadline: 1, totalSteps: 50),
                RequestView(id: 3, resolution: 2, arrival: 2, deadline: 1, totalSteps: 50),
                RequestView(id: 4, resolution: 3, arrival: 3, deadline: 1, totalSteps: 50),
            ])
        let d = sp2.decide(view)
        #expect(
            d.starts == [
                BlockStart(request: 2, gpus: GPUSet([0, 1]), steps: 50),
                BlockStart(request: 3, gpus: GPUSet([4, 5]), steps: 50),
            ])
        #expect(d.wakeAt == nil)
    }
}
