import Foundation
import Testing

@testable import TetriCore
@testable import TetriSim

/// A small profile whose classes scale sub-linearly, like the real ones.
func tinyModel() throws -> CostModel {
    try CostModel(
        profile: Profile(
            name: "tiny", description: "", gpus: 4, degrees: [1, 2, 4],
            resolutions: [
                "256x256": .init(latentTokens: 1, stepMs: ["1": 10, "2": 6, "4": 4]),
                "512x512": .init(latentTokens: 4, stepMs: ["1": 30, "2": 16, "4": 9]),
            ]))
}

/// Random requests for ``tinyModel()``: 256² or 512², 1–6 steps, arriving in the first
/// `arrivalsMs` milliseconds, each with an SLO of its fastest run times 1.0–4.0 (in tenths from
/// `sloTenths`).
func randomTinyRequests(
    count: ClosedRange<Int>, arrivalsMs: Micros, sloTenths: ClosedRange<Micros>, using rng: inout SeededRandom
) -> [TraceRequest] {
    let n = Int.random(in: count, using: &rng)
    return (0..<n).map { id in
        let big = Bool.random(using: &rng)
        let steps = Int.random(in: 1...6, using: &rng)
        let fastest: Micros = big ? 9_000 : 4_000
        return TraceRequest(
            id: id, arrival: Micros.random(in: 0...arrivalsMs, using: &rng) * 1_000,
            resolution: square(big ? 512 : 256), steps: steps,
            slo: Micros(steps) * fastest * Micros.random(in: sloTenths, using: &rng) / 10)
    }
}

/// The true optimum of a tiny trace by exhaustive search over step-level schedules: at every
/// arrival and step completion, each waiting request either waits or starts one step at any
/// degree that fits the free GPUs (degrees may change from step to step).
func bruteForceOptimum(trace: Trace, model: CostModel, gpus: Int) -> Int {
    let reqs = trace.requests
    let cls = reqs.map { model.resolutionIndex($0.resolution)! }
    let degrees = model.degrees.filter { $0 <= gpus }
    let fastest = cls.map { c in degrees.map { model.stepTime(resolution: c, degree: $0) }.min()! }
    struct State {
        var now: Micros
        var remaining: [Int]
        /// End of the running step, or nil.
        var busyUntil: [Micros?]
        var width: [Int]
        var finish: [Micros?]
    }
    var best = 0
    func met(_ s: State) -> Int {
        reqs.indices.filter { i in s.finish[i].map { $0 <= reqs[i].deadline } ?? false }.count
    }
    func explore(_ s: State) {
        // Requests that are waiting and can still be met (running one that cannot only takes
        // GPUs from the others).
        let waiting = reqs.indices.filter { i in
            reqs[i].arrival <= s.now && s.remaining[i] > 0 && s.busyUntil[i] == nil
                && s.now + Micros(s.remaining[i]) * fastest[i] <= reqs[i].deadline
        }
        let free = gpus - reqs.indices.reduce(0) { $0 + (s.busyUntil[$1] != nil ? s.width[$1] : 0) }
        func assign(_ k: Int, _ s: State, _ free: Int) {
            if k == waiting.count {
                advance(s)
                return
            }
            assign(k + 1, s, free)  // wait
            let i = waiting[k]
            for d in degrees where d <= free {
                var t = s
                t.busyUntil[i] = s.now + model.stepTime(resolution: cls[i], degree: d)
                t.width[i] = d
                assign(k + 1, t, free - d)
            }
        }
        assign(0, s, free)
    }
    func advance(_ s: State) {
        var next = Micros.max
        for r in reqs where r.arrival > s.now { next = min(next, r.arrival) }
        for b in s.busyUntil { if let b { next = min(next, b) } }
        guard next != Micros.max else {
            best = max(best, met(s))
            return
        }
        var t = s
        t.now = next
        for i in reqs.indices where s.busyUntil[i] == next {
            t.busyUntil[i] = nil
            t.remaining[i] -= 1
            if t.remaining[i] == 0 { t.finish[i] = next }
        }
        explore(t)
    }
    explore(
        State(
            now: reqs.map(\.arrival).min() ?? 0, remaining: reqs.map(\.steps),
            busyUntil: Array(repeating: nil, count: reqs.count), width: Array(repeating: 0, count: reqs.count),
            finish: Array(repeating: nil, count: reqs.count)))
    return best
}

extension Trace {
    /// The requests with these ids.
    func subset(_ ids: [Int]) throws -> Trace {
        try Trace(requests.filter { ids.contains($0.id) })
    }
}

/// Whether the step-count program of every group of overlapping windows of `trace` meets all of
/// the group.
func wholeStepCountsMeetEveryone(_ trace: Trace, model m: CostModel, gpus: Int) throws -> Bool {
    let reqs = trace.requests
    let degrees = m.degrees.filter { $0 <= gpus }
    for group in UpperBound.overlapGroups(arrival: reqs.map(\.arrival), deadline: reqs.map(\.deadline)) {
        let program = UpperBound.StepCounts(
            arrival: group.map { reqs[$0].arrival }, deadline: group.map { reqs[$0].deadline },
            steps: group.map { reqs[$0].steps },
            time: group.map { i in
                degrees.map { m.stepTime(resolution: m.resolutionIndex(reqs[i].resolution)!, degree: $0) }
            }, degrees: degrees, gpus: gpus)
        if try program.optimum(cap: group.count).met < group.count { return false }
    }
    return true
}

@Suite struct UpperBoundTests {
    @Test func exactMinimalGPUTimeMatchesBruteForceOverEveryMix() {
        var rng = SeededRandom(seed: 11)
        let options: [(time: [Int64], width: [Int])] = [
            ([10, 6, 4], [1, 2, 4]), ([28_000, 26_600, 21_100, 18_100], [1, 2, 4, 8]),
            ([823_800, 463_800, 250_800, 136_900], [1, 2, 4, 8]), ([9, 5, 5, 3], [1, 2, 3, 4]),
        ]
        for (time, width) in options {
            for _ in 0..<60 {
                let steps = Int.random(in: 1...7, using: &rng)
                let budget = Int64.random(
                    in: time.min()! * Int64(steps) - 2...time.max()! * Int64(steps) + 2, using: &rng)
                // Every count vector (n_0, …) summing to steps.
                var best: Int64? = nil
                func walk(_ k: Int, _ left: Int, _ t: Int64, _ c: Int64) {
                    if k == time.count - 1 {
                        let tt = t + Int64(left) * time[k]
                        let cc = c + Int64(left) * time[k] * Int64(width[k])
                        if tt <= budget { best = min(best ?? .max, cc) }
                        return
                    }
                    for n in 0...left {
                        walk(k + 1, left - n, t + Int64(n) * time[k], c + Int64(n) * time[k] * Int64(width[k]))
                    }
                }
                walk(0, steps, 0, 0)
                #expect(
                    MinimalAllocation.exactCost(steps: steps, budget: budget, time: time, width: width) == best,
                    "steps \(steps) budget \(budget) times \(time)")
                // The two-degree plan of the scheduler is never cheaper than the exact one.
                if let two = MinimalAllocation.cost(steps: steps, budget: budget, time: time, width: width) {
                    #expect(two >= best!)
                }
            }
        }
    }

    @Test func twoRequestsThatEachNeedTheWholeNodeAtOnce() throws {
        let m = try tinyModel()
        // 512² at 4 GPUs: 2 steps take 18 ms; with a 20 ms window the cheapest plan is 2 × 9 ms at
        // degree 4 (72 GPU-ms; degree 2 would take 32 ms). Two such windows at once need 144 GPU-ms
        // in 20 ms × 4 GPUs = 80: only one fits.
        let r = square(512)
        let t = try Trace([
            TraceRequest(id: 0, arrival: 0, resolution: r, steps: 2, slo: 20_000),
            TraceRequest(id: 1, arrival: 0, resolution: r, steps: 2, slo: 20_000),
            TraceRequest(id: 2, arrival: 0, resolution: r, steps: 2, slo: 17_000),
        ])
        let b = try UpperBound.compute(trace: t, model: m, gpus: 4)
        #expect(b.standaloneInfeasible == [r: 1])  // 18 ms > 17 ms
        #expect(b.met == 1)
        #expect(bruteForceOptimum(trace: t, model: m, gpus: 4) == 1)
        #expect(b.text.hasSuffix("upper_bound_sar=0.3333"))
    }

    @Test func bruteForceOptimumNeverExceedsTheBoundOnTinyTraces() throws {
        let m = try tinyModel()
        var rng = SeededRandom(seed: 5)
        var tight = 0
        var cases = 0
        var bindingCapacity = 0
        var clairvoyantExact = 0
        var exclusionTightens = 0
        var stepCountsTighten = 0
        for _ in 0..<40 {
            let gpus = Int.random(in: 2...4, using: &rng)
            let n = Int.random(in: 2...4, using: &rng)
            let reqs = (0..<n).map { id in
                let big = Bool.random(using: &rng)
                let steps = Int.random(in: 1...(big ? 2 : 3), using: &rng)
                let fastest: Micros = big ? 9_000 : 4_000
                return TraceRequest(
                    id: id, arrival: Micros.random(in: 0...20, using: &rng) * 1_000,
                    resolution: square(big ? 512 : 256), steps: steps,
                    slo: Micros(steps) * fastest * Micros.random(in: 9...30, using: &rng) / 10)
            }
            let t = try Trace(reqs)
            let b = try UpperBound.compute(trace: t, model: m, gpus: gpus)
            let whole = try UpperBound.compute(trace: t, model: m, gpus: gpus, partialWindows: false)
            let fractional = try UpperBound.compute(trace: t, model: m, gpus: gpus, stepCounts: false)
            let shared = try UpperBound.compute(
                trace: t, model: m, gpus: gpus, exclusiveTime: false, stepCounts: false)
            let opt = bruteForceOptimum(trace: t, model: m, gpus: gpus)
            #expect(opt <= b.met, "trace \(reqs) on \(gpus) GPUs")
            #expect(fractional.met <= shared.met)
            if fractional.met < shared.met { exclusionTightens += 1 }
            #expect(b.met <= fractional.met)
            if b.met < fractional.met { stepCountsTighten += 1 }
            // The chosen set has `met` requests and passes the step-count programs.
            #expect(b.stepCounts.unfinished == 0 && b.chosen.count == b.met)
            #expect(try wholeStepCountsMeetEveryone(t.subset(b.chosen), model: m, gpus: gpus))
            // The clairvoyant schedule exists, so it meets no more than the optimum.
            let c = try Clairvoyant.achievable(trace: t, bound: b, model: m, gpus: gpus)
            #expect(c.met <= opt && c.offered == b.met, "trace \(reqs) on \(gpus) GPUs")
            if c.met == opt { clairvoyantExact += 1 }
            #expect(b.met <= whole.met)
            cases += 1
            if opt == b.met { tight += 1 }
            if b.constraints > 0 { bindingCapacity += 1 }
        }
        // The bound is not vacuous: capacity binds on some traces and it is often exact.
        #expect(bindingCapacity >= 5)
        #expect(tight * 2 >= cases)
        // And the clairvoyant schedule is not vacuous either: it often reaches the optimum.
        #expect(clairvoyantExact * 2 >= cases)
        // Whole-node exclusion cuts the bound where capacity alone does not.
        #expect(exclusionTightens >= 1)
        // And whole step counts where both do not (3 of the 40 traces).
        #expect(stepCountsTighten >= 1)
    }

    @Test func aStepOnEveryGPUExcludesEveryOtherStep() throws {
        let m = try tinyModel()
        // A: 3 steps of 512² in [0, 30] ms on 4 GPUs; 9 ms at degree 4, 16 ms at degree 2, so all
        // three must run at degree 4 (27 ms on every GPU). B: one 256² step in [5, 15] ms takes at
        // least 4 ms, and A leaves only 3 ms of its window off the whole node. GPU-time fits
        // (108 + 10 of 120 GPU-ms), so capacity alone allows both; exclusion does not.
        let t = try Trace([
            TraceRequest(id: 0, arrival: 0, resolution: square(512), steps: 3, slo: 30_000),
            TraceRequest(id: 1, arrival: 5_000, resolution: square(256), steps: 1, slo: 10_000),
        ])
        #expect(bruteForceOptimum(trace: t, model: m, gpus: 4) == 1)
        #expect(
            try UpperBound.compute(trace: t, model: m, gpus: 4, exclusiveTime: false, stepCounts: false).met == 2)
        let b = try UpperBound.compute(trace: t, model: m, gpus: 4)
        #expect(b.met == 1)
        #expect(b.exclusiveConstraints >= 1 && b.exclusiveCuts >= 1)
        #expect(try UpperBound.compute(trace: t, model: m, gpus: 4, method: .fullModel).met == 1)
        #expect(b.text.contains("whole-node exclusion: "))
        // On 8 GPUs nothing runs on every GPU: both fit.
        #expect(try UpperBound.compute(trace: t, model: m, gpus: 8).met == 2)
        // With A's window 3 ms longer, one of its steps may run at degree 2 (9 + 9 + 16 = 34 ms),
        // leaving 4 ms beside it, when B runs at degree 2 beside A's degree-2 step: both fit, and
        // the bound says so.
        let looser = try Trace([
            TraceRequest(id: 0, arrival: 0, resolution: square(512), steps: 3, slo: 34_000),
            TraceRequest(id: 1, arrival: 5_000, resolution: square(256), steps: 1, slo: 10_000),
        ])
        #expect(bruteForceOptimum(trace: looser, model: m, gpus: 4) == 2)
        #expect(try UpperBound.compute(trace: looser, model: m, gpus: 4).met == 2)
    }

    @Test func theMostDemandingExclusionRowMatchesBruteForce() {
        var rng = SeededRandom(seed: 41)
        for _ in 0..<300 {
            let n = Int.random(in: 1...8, using: &rng)
            let terms = (0..<n).map { i -> UpperBound.Exclusive.Term in
                let lo = Micros.random(in: 0...20, using: &rng)
                let hi = lo + Micros.random(in: 1...10, using: &rng)
                let whole = Int64.random(in: 0...5, using: &rng)
                return .init(
                    i: i, lo: lo, hi: hi, wholeNode: whole, running: whole + Int64.random(in: 0...6, using: &rng))
            }
            let x = (0..<n).map { _ in [0, 0.5, 1][Int.random(in: 0...2, using: &rng)] }
            // Every set of terms with pairwise disjoint windows.
            var best = -Double.infinity
            for mask in 0..<(1 << n) {
                let set = (0..<n).filter { mask & (1 << $0) != 0 }
                let disjoint = set.allSatisfy { a in
                    set.allSatisfy { b in a == b || terms[a].hi <= terms[b].lo || terms[b].hi <= terms[a].lo }
                }
                guard disjoint else { continue }
                let time = terms.indices.reduce(0.0) {
                    $0 + x[$1] * Double(set.contains($1) ? terms[$1].running : terms[$1].wholeNode)
                }
                best = max(best, time)
            }
            let found = UpperBound.Exclusive.mostDemanding(terms, x: x)
            #expect(abs(found.time - best) < 1e-9, "terms \(terms) x \(x)")
            // The set it names is disjoint and gives that time.
            let set = found.set
            #expect(
                set.allSatisfy { a in
                    set.allSatisfy { b in a == b || terms[a].hi <= terms[b].lo || terms[b].hi <= terms[a].lo }
                })
            let time = terms.indices.reduce(0.0) {
                $0 + x[$1] * Double(set.contains($1) ? terms[$1].running : terms[$1].wholeNode)
            }
            #expect(abs(time - found.time) < 1e-9)
        }
    }

    @Test func theLeastWholeNodeTimeMatchesBruteForce() {
        // Degrees 1, 2, 4 on 4 GPUs and on 2 GPUs (degree 2 is the whole node), and one degree only.
        let cases: [(time: [Int64], width: [Int], gpus: Int)] = [
            ([30, 16, 9], [1, 2, 4], 4), ([30, 16], [1, 2], 2), ([10, 6, 4], [1, 2, 4], 4), ([7], [1], 1),
            ([823_800, 463_800, 250_800, 136_900], [1, 2, 4, 8], 8),
        ]
        var rng = SeededRandom(seed: 43)
        for (time, width, gpus) in cases {
            let node = UpperBound.WholeNode(time: time, width: width, gpus: gpus)
            for _ in 0..<80 {
                let steps = Int.random(in: 0...6, using: &rng)
                let span = Int64.random(in: 0...(time.max()! * Int64(max(steps, 1)) + 5), using: &rng)
                // The least time at degree `gpus` over every degree of every step whose total fits.
                var best: Int64? = nil
                func walk(_ k: Int, _ t: Int64, _ whole: Int64) {
                    if k == steps {
                        if t <= span { best = min(best ?? .max, whole) }
                        return
                    }
                    for d in time.indices {
                        walk(k + 1, t + time[d], whole + (width[d] == gpus ? time[d] : 0))
                    }
                }
                walk(0, 0, 0)
                // No mix fits: every step at the fastest degree is the least it can be charged.
                guard let best else { continue }
                #expect(node.least(steps: steps, within: span) == best, "steps \(steps) span \(span) times \(time)")
            }
        }
    }

    @Test func aRequestPartlyInsideAFullWindowIsCharged() throws {
        let m = try tinyModel()
        // A: 3 steps of 512² in [8, 35] ms need all 4 GPUs at degree 4 (9 ms a step) for the
        // whole window. B: 3 steps of 256² in [0, 30] ms; at most 2 of them (4 ms each at the
        // fastest) start before A's window, so one runs inside it and costs at least 10 GPU-ms
        // there: the two cannot both be met. Whole windows alone miss it: [0, 35] holds
        // 108 + 30 GPU-ms of 140.
        let b = TraceRequest(id: 1, arrival: 0, resolution: square(256), steps: 3, slo: 30_000)
        let t = try Trace([TraceRequest(id: 0, arrival: 8_000, resolution: square(512), steps: 3, slo: 27_000), b])
        #expect(bruteForceOptimum(trace: t, model: m, gpus: 4) == 1)
        // Capacity alone (whole-node exclusion and step counts off, as below until the last lines).
        func capacity(_ t: Trace, partial: Bool = true, method: UpperBound.Method = .cuttingPlanes) throws -> Int {
            try UpperBound.compute(
                trace: t, model: m, gpus: 4, method: method, partialWindows: partial, exclusiveTime: false,
                stepCounts: false
            ).met
        }
        #expect(try capacity(t, partial: false) == 2)
        #expect(try capacity(t) == 1)
        #expect(try capacity(t, method: .fullModel) == 1)
        // With A one millisecond later, three of B's steps may start before it (the third ending
        // inside): B is charged nothing there and the capacity bound is 2 again, though the
        // optimum is still 1. The share of a step that straddles an interval's edge is what the
        // charge leaves out.
        let later = try Trace([
            TraceRequest(id: 0, arrival: 9_000, resolution: square(512), steps: 3, slo: 27_000), b,
        ])
        #expect(bruteForceOptimum(trace: later, model: m, gpus: 4) == 1)
        #expect(try capacity(later) == 2)
        // Whole-node exclusion sees both: A runs on every GPU for its whole window, and B must
        // run for at least 4 ms of it in each case (its three 4 ms steps cannot all end by 8 or
        // 9 ms), so they exclude each other, with or without the partial charge.
        for trace in [t, later] {
            #expect(try UpperBound.compute(trace: trace, model: m, gpus: 4).met == 1)
            #expect(try UpperBound.compute(trace: trace, model: m, gpus: 4, partialWindows: false).met == 1)
        }
    }

    @Test func theRelaxedStepCostNeverExceedsTheExactOne() {
        var rng = SeededRandom(seed: 31)
        var equal = 0
        for _ in 0..<300 {
            let widths = [1, 2, 4, 8].filter { _ in Bool.random(using: &rng) }
            guard !widths.isEmpty else { continue }
            var time: [Int64] = []
            var base = Int64.random(in: 50...200, using: &rng)
            for _ in widths {
                time.append(base)
                base = base * Int64.random(in: 52...95, using: &rng) / 100
            }
            let hull = UpperBound.StepCostHull(time: time, width: widths)
            let steps = Int.random(in: 1...8, using: &rng)
            let fastest = time.min()!
            let span = Int64(steps) * fastest + Int64.random(in: 0...(Int64(steps) * 250), using: &rng)
            let exact = MinimalAllocation.exactCost(steps: steps, budget: span, time: time, width: widths)!
            let relaxed = hull.cost(steps: steps, within: span)
            #expect(relaxed <= exact, "times \(time) widths \(widths) steps \(steps) span \(span)")
            #expect(relaxed >= 0)
            if relaxed == exact { equal += 1 }
        }
        // Where the cheapest option fits, both are steps × its GPU-time.
        #expect(equal >= 50)
    }

    @Test func everyPolicyStaysAtOrBelowTheBoundOnRandomTraces() throws {
        let m = try model()
        for (seed, scale, mix) in [(1, 1.0, Mix.uniform), (2, 1.5, .skewed), (3, 1.2, .uniform), (4, 2.0, .skewed)] {
            var spec = WorkloadSpec(model: m)
            spec.count = 40
            spec.seed = UInt64(seed)
            spec.sloScale = scale
            spec.mix = mix
            spec.ratePerMinute = 20
            let t = try spec.generate()
            for gpus in [4, 8] {
                let b = try UpperBound.compute(trace: t, model: m, gpus: gpus)
                for p in Policies.names {
                    guard var s = try? Policies.make(p, model: m, gpus: gpus) else { continue }
                    let out = SimulationSummary(try Simulator.run(trace: t, model: m, gpus: gpus, scheduler: &s))
                    #expect(out.met <= b.met, "\(p) on seed \(seed), scale \(scale), \(gpus) GPUs")
                }
            }
        }
    }

    /// With a time limit of zero, an integer search stops at its first node selection and reports
    /// the bound it proved over the constraints it had: never below the optimum, never above the
    /// requests that can be met alone, the optimum itself when no group stopped; progress lines
    /// name the rounds.
    @Test func aSolverTimeLimitStopsWithABoundNotBelowTheOptimum() throws {
        let m = try tinyModel()
        var rng = SeededRandom(seed: 29)
        var stopped = 0
        for _ in 0..<30 {
            let gpus = Int.random(in: 2...4, using: &rng)
            let reqs = randomTinyRequests(count: 12...30, arrivalsMs: 40, sloTenths: 10...30, using: &rng)
            let n = reqs.count
            let t = try Trace(reqs)
            let exact = try UpperBound.compute(trace: t, model: m, gpus: gpus, stepCounts: false)
            var lines: [String] = []
            let limited = try UpperBound.compute(
                trace: t, model: m, gpus: gpus, stepCounts: false, solverTimeLimit: .zero,
                progress: { lines.append($0) })
            let alone = n - limited.standaloneInfeasible.values.reduce(0, +)
            #expect(limited.met >= exact.met && limited.met <= alone, "trace \(reqs) on \(gpus) GPUs")
            #expect(exact.unfinishedComponents == 0)
            if limited.unfinishedComponents == 0 { #expect(limited.met == exact.met) }
            stopped += limited.unfinishedComponents
            if limited.components > 0 {
                #expect(lines.contains { $0.contains("relaxation round 1") })
                #expect(lines.first?.contains("can meet their deadline alone") == true)
            }
            if limited.unfinishedComponents > 0 {
                #expect(
                    limited.text.contains("solver time limit: \(limited.unfinishedComponents) linked groups stopped"))
                #expect(
                    limited.report(profile: "tiny", gpus: gpus).componentsUnfinished == limited.unfinishedComponents)
            }
        }
        // Overloaded traces need branching, so some searches stop.
        #expect(stopped > 0)
    }

    @Test func cuttingPlanesGiveTheFullModelsOptimum() throws {
        let m = try tinyModel()
        var rng = SeededRandom(seed: 23)
        var linked = 0
        var lazier = 0
        for _ in 0..<60 {
            let gpus = Int.random(in: 2...4, using: &rng)
            let reqs = randomTinyRequests(count: 6...24, arrivalsMs: 60, sloTenths: 10...40, using: &rng)
            let t = try Trace(reqs)
            // The methods differ before the step-count stage, which is left out here.
            let full = try UpperBound.compute(trace: t, model: m, gpus: gpus, method: .fullModel, stepCounts: false)
            let cuts = try UpperBound.compute(trace: t, model: m, gpus: gpus, stepCounts: false)
            #expect(cuts.met == full.met, "trace \(reqs) on \(gpus) GPUs")
            // Each method's chosen set has `met` requests and passes the bound's own constraints.
            for bound in [full, cuts] {
                #expect(bound.chosen.count == bound.met && Set(bound.chosen).count == bound.met)
                let only = try Trace(t.requests.filter { bound.chosen.contains($0.id) })
                #expect(try UpperBound.compute(trace: only, model: m, gpus: gpus, stepCounts: false).met == bound.met)
            }
            #expect(cuts.constraints == full.constraints && cuts.components == full.components)
            #expect(full.cuts == full.constraints)
            if full.components > 0 { linked += 1 }
            if cuts.cuts < full.cuts { lazier += 1 }
        }
        #expect(linked >= 20)
        #expect(lazier >= 10)
    }

    @Test func cuttingPlanesOnAnOverloadedSingleClassTrace() throws {
        // Only 2048² at 12 req/min on 8 GPUs: almost every interval is overfilled, so the full model
        // has a constraint per pair of requests; both solvers agree.
        let m = try model()
        var spec = WorkloadSpec(model: m)
        spec.count = 50
        spec.sloScale = 1.5
        spec.mix = .weights([0, 0, 0, 1])
        let t = try spec.generate()
        let full = try UpperBound.compute(trace: t, model: m, gpus: 8, method: .fullModel)
        let cuts = try UpperBound.compute(trace: t, model: m, gpus: 8)
        #expect(full.constraints > 900)
        #expect(cuts.met == full.met)
        #expect(cuts.met < 50)
        #expect(cuts.cuts * 3 < full.cuts)
    }

    @Test func wholeStepsRuleOutAPairThatFractionalMixesAllow() throws {
        let m = try tinyModel()
        // A: 4 steps of 512² in [0, 43] ms on 4 GPUs (9 ms at degree 4, 16 at degree 2): all at
        // degree 4 take 36 ms, one step at degree 2 takes 43, two take 50, so A runs on every GPU
        // except during at most one 16 ms step that leaves 2 GPUs free. B: 3 steps of 256² in
        // [10, 40] ms need 18 ms on 2 GPUs (6 ms a step) or longer on fewer; on every GPU
        // (4 ms a step) they would need A off the node. The least whole-node time of A (27 ms)
        // plus B's least running time (12 ms) fits 43 ms, and so does the GPU-time (140 + 30 of
        // 172 GPU-ms): only whole step counts see that B's steps do not fit beside A's.
        let t = try Trace([
            TraceRequest(id: 0, arrival: 0, resolution: square(512), steps: 4, slo: 43_000),
            TraceRequest(id: 1, arrival: 10_000, resolution: square(256), steps: 3, slo: 30_000),
        ])
        #expect(bruteForceOptimum(trace: t, model: m, gpus: 4) == 1)
        #expect(try UpperBound.compute(trace: t, model: m, gpus: 4, stepCounts: false).met == 2)
        let b = try UpperBound.compute(trace: t, model: m, gpus: 4)
        #expect(b.met == 1)
        #expect(b.stepCounts == .init(groups: 1, skipped: 0, unfinished: 0, cut: 1))
        #expect(b.chosen.count == 1)
        #expect(b.text.contains("step counts: 1 groups of overlapping windows (all solved exactly), 1 fewer requests"))
        // With B one step shorter, two steps at degree 2 (12 ms) fit beside A's degree-2 step:
        // both are met, and the bound says so.
        let fits = try Trace([
            TraceRequest(id: 0, arrival: 0, resolution: square(512), steps: 4, slo: 43_000),
            TraceRequest(id: 1, arrival: 10_000, resolution: square(256), steps: 2, slo: 30_000),
        ])
        #expect(bruteForceOptimum(trace: fits, model: m, gpus: 4) == 2)
        #expect(try UpperBound.compute(trace: fits, model: m, gpus: 4).met == 2)
    }

    @Test func aFluxPairAtOnePointFiveTimesTheSLOCannotBothBeMet() throws {
        // From the skewed 1.5× trace of seed 1: a 2048² request in [173.80, 181.30] s has 0.655 s of
        // slack over 50 steps at degree 8 (136.9 ms), so at most 5 steps at degree 4 (250.8 ms),
        // beside which 4 GPUs are free for 1.254 s; a 512² request in [178.20, 181.20] s needs 50
        // steps, 28.0 ms each at degree 4: 44 fit beside them, and the 0.086 s the 2048² request
        // leaves idle holds 3 more at degree 8 (21.7 ms); fewer degree-4 steps leave more idle
        // time but fewer beside them (4: 35 + 9).
        // Fractional mixes let the pair through; whole steps do not.
        let m = try model()
        let t = try Trace([
            TraceRequest(id: 0, arrival: 173_800_000, resolution: square(2048), steps: 50, slo: 7_500_000),
            TraceRequest(id: 1, arrival: 178_200_000, resolution: square(512), steps: 50, slo: 3_000_000),
        ])
        #expect(try UpperBound.compute(trace: t, model: m, gpus: 8, stepCounts: false).met == 2)
        #expect(try UpperBound.compute(trace: t, model: m, gpus: 8).met == 1)
    }

    @Test func groupsOfOverlappingWindowsSplitWhereNoWindowIsOpen() {
        // Windows [10,12], [3,8], [0,5], [8,9] (touching [3,8] at 8: no instant shared), [11,12].
        let arrival: [Micros] = [10, 3, 0, 8, 11]
        let deadline: [Micros] = [12, 8, 5, 9, 12]
        let groups = UpperBound.overlapGroups(arrival: arrival, deadline: deadline)
        #expect(groups == [[2, 1], [3], [0, 4]])
    }

    @Test func theLargestFluxClassCannotMeetItsBaseSLO() throws {
        // 50 steps × 136.9 ms = 6.845 s at degree 8 against 5 s: no schedule meets a 2048² request
        // below SLO scale 1.369.
        let m = try model()
        let t = try Trace([
            TraceRequest(id: 0, arrival: 0, resolution: square(2048), steps: 50, slo: 6_844_999),
            TraceRequest(id: 1, arrival: 0, resolution: square(2048), steps: 50, slo: 6_845_000),
        ])
        let b = try UpperBound.compute(trace: t, model: m, gpus: 8)
        #expect(b.standaloneInfeasible == [square(2048): 1])
        #expect(b.met == 1)
    }
}

@Suite struct SimulatorDefectTests {
    @Test func aRequestThatNeverFinishedIsNotMet() {
        let r = CompletionRecord(
            id: 0, resolution: square(256), arrival: 1_000, finish: -1, deadline: 5_000, meanDegree: 0)
        #expect(!r.met)
        var done = r
        done.finish = 5_000
        #expect(done.met)
    }

    @Test func rsspRunsWholeRoundsInsteadOfOneStepFallbacks() throws {
        // Alone with a loose SLO, a 2048² request at RSSP's degree 8 has equal-cost "wait" and
        // "run" options (5 steps fill a 684.5 ms round of the paper's 5 ticks exactly). Running wins
        // the tie: 10 blocks of 5 steps, not 50 one-step fallback blocks.
        let m = try model()
        let t = try Trace([TraceRequest(id: 0, arrival: 0, resolution: square(2048), steps: 50, slo: 100_000_000)])
        var s = try Policies.make("rssp", model: m, gpus: 8, granularity: 5)
        let out = try Simulator.run(trace: t, model: m, gpus: 8, scheduler: &s, recordBlocks: true)
        #expect(out.blocks.map(\.steps) == Array(repeating: 5, count: 10))
        #expect(out.completions[0].finish == 50 * 136_900)
    }
}

@Suite struct AdmissionSimulationTests {
    /// Two 1024² requests and, 0.3 s later, a 2048² request that needs all eight GPUs for
    /// 6.845 s of its 7.5 s (SLO scale 1.5). Without admission the round scheduler keeps all three
    /// alive by sharing the node and meets one; admission sees that the three cannot all fit by
    /// their deadlines, defers the largest (the 2048² request) and meets both 1024² requests.
    @Test func admissionDefersTheRequestThatWouldSinkTheOthers() throws {
        let m = try model()
        let t = try Trace([
            TraceRequest(id: 0, arrival: 1_600_000, resolution: square(1024), steps: 50, slo: 4_500_000),
            TraceRequest(id: 1, arrival: 1_700_000, resolution: square(1024), steps: 50, slo: 4_500_000),
            TraceRequest(id: 2, arrival: 2_000_000, resolution: square(2048), steps: 50, slo: 7_500_000),
        ])
        var withAdmission = try Policies.make("tetriserve", model: m, gpus: 8)
        let admitted = try Simulator.run(trace: t, model: m, gpus: 8, scheduler: &withAdmission)
        #expect(admitted.completions.filter(\.met).map(\.id).sorted() == [0, 1])
        var configuration = try #require(Policies.roundConfiguration("tetriserve", model: m, gpus: 8))
        configuration.admission = false
        var without: any Scheduler = try RoundScheduler(configuration: configuration, model: m, gpus: 8)
        let shared = try Simulator.run(trace: t, model: m, gpus: 8, scheduler: &without)
        #expect(shared.completions.filter(\.met).map(\.id).sorted() == [0])
    }
}
