import CGLPK
import Synchronization
import TetriCore

/// An upper bound on the SLO attainment of **any** schedule of a trace on `gpus` GPUs:
/// clairvoyant, preemptive at step boundaries, free to change degree at every step.
///
/// Constraints, each argued in `docs/scheduler.md` (the first two below, then those of the types
/// named after them):
///
/// - **Standalone feasibility.** A request whose steps miss its window `[arrival, deadline]`
///   even all at its fastest degree can never be met.
/// - **Interval capacity.** A met request runs all its steps inside its window and uses at least
///   its window's minimal GPU-time `c_i` (``MinimalAllocation/exactCost(steps:budget:time:width:)``,
///   exact over every degree mix). For every interval `[t1, t2]`, what the met requests must spend
///   inside it fits in `gpus × (t2 − t1)` GPU-time: `c_i` for a window inside the interval, and
///   for a window that only overlaps it the GPU-time of the steps that cannot run outside it.
///
/// The bound is the optimum of the integer program *maximise Σ x_i subject to those
/// constraints* (x_i ∈ {0, 1}), solved exactly with GLPK's branch-and-cut on each group of
/// requests that share a constraint (with whole-node exclusion rows, ``Exclusive``, as cutting
/// planes). Then each group of overlapping windows is bounded again by a time-indexed program
/// with whole step counts per degree (``StepCounts``), capped by the first count, and the smaller
/// is kept. Deterministic: the same trace gives the same bound.
public struct UpperBound: Sendable, Equatable {
    public var requests: Int
    /// The most requests any schedule can meet.
    public var met: Int
    /// Requests whose fastest standalone run misses the deadline, per resolution class.
    public var standaloneInfeasible: [Resolution: Int]
    /// Requests per resolution class.
    public var perClass: [Resolution: Int]
    /// Capacity constraints that the standalone-feasible requests could violate.
    public var constraints: Int
    /// Groups of requests linked by those constraints (each solved as one integer program).
    public var components: Int
    /// Capacity constraints the solver was given (all of them for ``Method/fullModel``).
    public var cuts: Int
    /// Groups whose integer program stopped at the solver time limit: their count is the bound
    /// the search proved over the constraints it had, not the optimum (0 without a limit).
    public var unfinishedComponents = 0
    /// Intervals where, with every request met, some whole-node exclusion row of ``Exclusive``
    /// is violated (0 when the bound was computed without them).
    public var exclusiveConstraints = 0
    /// Whole-node exclusion rows the solver was given (always added as cutting planes).
    public var exclusiveCuts = 0
    /// What the step-count programs of ``StepCounts`` did (all zero when not run).
    public var stepCounts = StepCountSummary()
    /// Ids of the requests one optimum meets (ascending): of the integer program, and in each
    /// group of overlapping windows the step-count program solved, of that program (a set whole
    /// step counts allow, which the other constraints may not). `met` of them unless a step-count
    /// search stopped at its node limit. Not a schedule: ``Clairvoyant`` tries to schedule them.
    public var chosen: [Int] = []
    /// The chosen requests per resolution class.
    public var chosenPerClass: [Resolution: Int] = [:]

    /// How the integer program is built; both give the same optimum.
    public enum Method: Sendable {
        /// Interval constraints added lazily, only those an intermediate solution overfills (the
        /// default: the full model has up to one constraint per pair of requests).
        case cuttingPlanes
        /// Every capacity constraint that could bind, stored up front.
        case fullModel
    }

    public var sar: Double { requests == 0 ? 1 : Double(met) / Double(requests) }

    /// The step-count stage: groups of overlapping windows it solved, how many of them stopped at
    /// the node limit with a proved bound instead of the optimum, how many were too large to try,
    /// and how many requests it took off the count the other constraints allow.
    public struct StepCountSummary: Sendable, Equatable {
        public var groups = 0
        /// Groups of more than ``StepCounts/largestGroup`` requests, left to the other constraints.
        public var skipped = 0
        public var unfinished = 0
        public var cut = 0
    }

    /// Computes the bound.
    ///
    /// - Parameters:
    ///   - partialWindows: also charge, in each interval, the least GPU-time that requests only
    ///     partly inside it must spend there (the default; `false` gives the bound with whole
    ///     windows only, never tighter).
    ///   - exclusiveTime: also add the whole-node exclusion constraints of ``Exclusive`` (the
    ///     default; `false` gives the bound without them, never tighter).
    ///   - stepCounts: then bound each group of overlapping windows again with ``StepCounts``
    ///     (the default; `false` gives the bound without it, never tighter).
    ///   - solverTimeLimit: how long one integer solve of the capacity program may search before
    ///     it stops with the bound it has proved (the best bound of its open subproblems, over the
    ///     constraints it has so far: still an upper bound, possibly looser). `nil`, the default,
    ///     searches to the optimum, which keeps the bound deterministic.
    ///   - progress: called with a line at each stage and each solver round, for a caller that
    ///     shows progress on long runs.
    /// - Throws: ``SimulationError/unknownResolution(id:_:profile:known:)`` when the trace has a
    ///   class the profile lacks, ``BoundError`` when the solver fails.
    public static func compute(
        trace: Trace, model: CostModel, gpus: Int, method: Method = .cuttingPlanes, partialWindows: Bool = true,
        exclusiveTime: Bool = true, stepCounts: Bool = true, solverTimeLimit: Duration? = nil,
        progress: ((String) -> Void)? = nil
    ) throws -> UpperBound {
        guard gpus >= 1 else { throw SimulationError.invalidGPUCount(gpus) }
        let reqs = trace.requests
        var perClass: [Resolution: Int] = [:]
        var infeasible: [Resolution: Int] = [:]
        // Per class: allowed degree indices and their step times / widths.
        let allowed = model.degrees.indices.filter { model.degrees[$0] <= gpus }
        guard !allowed.isEmpty else { throw SimulationError.invalidGPUCount(gpus) }
        var costCache: [String: Int64?] = [:]
        var hulls: [Int: StepCostHull] = [:]
        var wholeNodes: [Int: WholeNode] = [:]
        var items: [Item] = []
        var itemIDs: [Int] = []
        for r in reqs {
            guard let c = model.resolutionIndex(r.resolution) else {
                throw SimulationError.unknownResolution(
                    id: r.id, r.resolution, profile: model.name, known: model.resolutionNames)
            }
            perClass[r.resolution, default: 0] += 1
            let times = allowed.map { model.stepTime[c][$0] }
            let widths = allowed.map { model.degrees[$0] }
            let key = "\(c) \(r.steps) \(r.slo)"
            let cost: Int64?
            if let cached = costCache[key] {
                cost = cached
            } else {
                cost = MinimalAllocation.exactCost(steps: r.steps, budget: r.slo, time: times, width: widths)
                costCache[key] = cost
            }
            guard let cost else {
                infeasible[r.resolution, default: 0] += 1
                continue
            }
            if hulls[c] == nil {
                hulls[c] = StepCostHull(time: times, width: widths)
                wholeNodes[c] = WholeNode(time: times, width: widths, gpus: gpus)
            }
            itemIDs.append(r.id)
            items.append(
                Item(
                    arrival: r.arrival, deadline: r.deadline, cost: cost, steps: r.steps, hull: hulls[c]!,
                    wholeNode: wholeNodes[c]!, time: times))
        }
        let energy = Energy(items: items, partialWindows: partialWindows)
        let exclusive = exclusiveTime ? Exclusive(items: items) : nil

        // Capacity constraints: every interval from an arrival t1 to a later deadline t2 whose
        // requests' least GPU-time inside it exceeds its capacity (the others hold for every x).
        // They are counted and their requests linked here without being stored; the
        // cutting-plane solver adds the ones it needs, the full model stores them all.
        let arrivals = items.map(\.arrival).sorted().uniqued()
        let deadlines = items.map(\.deadline).sorted().uniqued()
        var parent = Array(items.indices)
        func find(_ i: Int) -> Int {
            var i = i
            while parent[i] != i {
                parent[i] = parent[parent[i]]
                i = parent[i]
            }
            return i
        }
        var constraints = 0
        var exclusiveConstraints = 0
        var fullIntervals: [(interval: Interval, member: Int)] = []
        var linkedRoots: [Int] = []
        func link(_ group: [Int]) {
            guard let first = group.first else { return }
            for i in group.dropFirst() {
                let a = find(first)
                let b = find(i)
                if a != b { parent[max(a, b)] = min(a, b) }
            }
            linkedRoots.append(first)
        }
        let all = Array(items.indices)
        let ones = [Double](repeating: 1, count: items.count)
        for t1 in arrivals {
            let alive = all.filter { items[$0].deadline > t1 }
            for t2 in deadlines where t2 > t1 {
                let terms = energy.terms(t1, t2, among: alive)
                let capacity = Int64(gpus) * (t2 - t1)
                if terms.reduce(0, { $0 + $1.1 }) > capacity {
                    constraints += 1
                    if method == .fullModel { fullIntervals.append((Interval(t1: t1, t2: t2), terms[0].0)) }
                    link(terms.map(\.0))
                }
                // With every request met, the most any exclusion row of the interval asks; when it
                // fits, every row of the interval holds for every x.
                if let exclusive {
                    let terms = exclusive.terms(t1, t2, among: alive)
                    if terms.reduce(0, { $0 + $1.running }) > t2 - t1
                        && Exclusive.mostDemanding(terms, x: ones).time > Double(t2 - t1)
                    {
                        exclusiveConstraints += 1
                        link(terms.map(\.i))
                    }
                }
            }
        }

        // Requests linked by a constraint form one integer program.
        let roots = Set(linkedRoots.map(find)).sorted()
        progress?(
            "\(items.count) of \(reqs.count) requests can meet their deadline alone; \(constraints) capacity and "
                + "\(exclusiveConstraints) exclusion intervals could bind, in \(roots.count) linked groups")
        var membersOf: [Int: [Int]] = [:]
        for i in items.indices { membersOf[find(i), default: []].append(i) }
        var met = items.count
        var cuts = 0
        var dropped = Set<Int>()
        var exclusiveCuts = 0
        var unfinished = 0
        for (g, root) in roots.enumerated() {
            let members = membersOf[root]!
            let label = "linked group \(g + 1) of \(roots.count) (\(members.count) requests)"
            // The group's own view: its items indexed from 0.
            let own = members.map { items[$0] }
            let groupEnergy = Energy(items: own, partialWindows: partialWindows)
            let groupExclusive = exclusive.map { _ in Exclusive(items: own) }
            // The full model starts from every capacity interval that could bind; interval
            // constraints restricted to this group (the other groups' terms dropped) are implied.
            let initial = fullIntervals.filter { find($0.member) == root }.map(\.interval)
            let solved = try solveByCuts(
                count: members.count, starts: arrivals, ends: deadlines, gpus: gpus, initial: initial,
                deadline: own.map(\.deadline),
                terms: { t1, t2, among in groupEnergy.terms(t1, t2, among: among) },
                exclusive: groupExclusive.map { groupExclusive in
                    { t1, t2, among in groupExclusive.terms(t1, t2, among: among) }
                }, timeLimit: solverTimeLimit, progress: progress.map { report in { report("\(label): \($0)") } })
            if solved.stopped { unfinished += 1 }
            for (k, v) in solved.x.enumerated() where v < 0.5 { dropped.insert(members[k]) }
            met -= members.count - solved.met
            cuts += solved.cuts
            exclusiveCuts += solved.exclusiveCuts
        }
        // Step counts, per group of overlapping windows, capped by what the program above meets
        // there (the groups are independent in both, so its optimum is optimal in each group).
        var refined = StepCountSummary()
        if stepCounts {
            let widths = allowed.map { model.degrees[$0] }
            let groups = overlapGroups(arrival: items.map(\.arrival), deadline: items.map(\.deadline))
                .filter { $0.count > 1 }
            for (g, group) in groups.enumerated() {
                let cap = group.filter { !dropped.contains($0) }.count
                guard cap > 0 else { continue }
                guard group.count <= StepCounts.largestGroup else {
                    refined.skipped += 1
                    continue
                }
                let program = StepCounts(
                    arrival: group.map { items[$0].arrival }, deadline: group.map { items[$0].deadline },
                    steps: group.map { items[$0].steps }, time: group.map { items[$0].time }, degrees: widths,
                    gpus: gpus)
                progress?(
                    "step counts: group \(g + 1) of \(groups.count) (\(group.count) requests, at most \(cap) met)")
                let solved = try program.optimum(cap: cap)
                refined.groups += 1
                if !solved.exact { refined.unfinished += 1 }
                refined.cut += cap - solved.met
                met -= cap - solved.met
                // An exact optimum's requests replace the chosen ones (a set whole step counts
                // allow, which the constraints above may not); an unfinished search keeps the
                // earlier choice (then more may be chosen than counted).
                if let x = solved.x {
                    for (k, i) in group.enumerated() {
                        if x[k] { dropped.remove(i) } else { dropped.insert(i) }
                    }
                }
            }
        }
        let chosen = items.indices.filter { !dropped.contains($0) }.map { itemIDs[$0] }.sorted()
        let chosenSet = Set(chosen)
        var chosenPerClass: [Resolution: Int] = [:]
        for r in reqs where chosenSet.contains(r.id) { chosenPerClass[r.resolution, default: 0] += 1 }
        return UpperBound(
            requests: reqs.count, met: met, standaloneInfeasible: infeasible, perClass: perClass,
            constraints: constraints, components: roots.count, cuts: cuts, unfinishedComponents: unfinished,
            exclusiveConstraints: exclusiveConstraints, exclusiveCuts: exclusiveCuts,
            stepCounts: refined, chosen: chosen, chosenPerClass: chosenPerClass)
    }

    /// An interval `[t1, t2]` of the constraints.
    struct Interval: Hashable {
        var t1: Micros
        var t2: Micros
    }

    /// A standalone-feasible request as the bound sees it.
    struct Item {
        var arrival: Micros
        var deadline: Micros
        /// The least GPU-time of its steps within its whole window.
        var cost: Int64
        var steps: Int
        var hull: StepCostHull
        var wholeNode: WholeNode
        /// Step time at each allowed degree.
        var time: [Int64]
    }

    /// The per-step (time, GPU-time) options of a class, reduced to the lower convex hull:
    /// `cost(steps:within:)` is the least GPU-time of running `steps` steps within a time when
    /// the steps may be split fractionally among degrees (the linear relaxation of
    /// ``MinimalAllocation/exactCost(steps:budget:time:width:)``, so never above it).
    struct StepCostHull {
        /// Hull vertices, fastest first: step time rises, GPU-time per step falls.
        var time: [Int64]
        var gpuTime: [Int64]

        init(time t: [Int64], width: [Int]) {
            let points = t.indices.map { (t[$0], Int64(width[$0]) * t[$0]) }.sorted { ($0.0, $0.1) < ($1.0, $1.1) }
            var hull: [(Int64, Int64)] = []
            for p in points {
                if let last = hull.last, p.1 >= last.1 { continue }  // slower and no cheaper
                while hull.count >= 2 {
                    let a = hull[hull.count - 2]
                    let b = hull[hull.count - 1]
                    // Keep b only when it lies strictly below the segment a–p.
                    let cross = Double(b.0 - a.0) * Double(p.1 - a.1) - Double(b.1 - a.1) * Double(p.0 - a.0)
                    if cross <= 0 { hull.removeLast() } else { break }
                }
                hull.append(p)
            }
            time = hull.map(\.0)
            gpuTime = hull.map(\.1)
        }

        var fastest: Int64 { time[0] }

        /// A lower bound on the GPU-time of `steps` steps run one after another within `span`,
        /// rounded down.
        func cost(steps: Int, within span: Int64) -> Int64 {
            let k = Int64(steps)
            guard k > 0 else { return 0 }
            let last = time.count - 1
            if span >= k * time[last] { return k * gpuTime[last] }
            // Below the fastest pace no schedule exists; the fastest option's cost is then as good
            // a coefficient as any (such a request cannot be met).
            guard span > k * time[0] else { return k * gpuTime[0] }
            var j = 0
            while k * time[j + 1] <= span { j += 1 }
            let slope = Double(gpuTime[j + 1] - gpuTime[j]) / Double(time[j + 1] - time[j])
            let value = Double(k * gpuTime[j]) + slope * Double(span - k * time[j])
            return max(0, Int64(value.rounded(.down)) - 1)
        }
    }

    /// The fewest of a met request's steps that run wholly inside `[t1, t2]` (0 when none need
    /// to): its steps run one after another and each takes at least `fastest`, so at most
    /// `⌈(t1 − arrival)/fastest⌉` of them start before `t1` and at most
    /// `⌈(deadline − t2)/fastest⌉` end after `t2`.
    static func stepsInside(
        steps: Int, arrival: Micros, deadline: Micros, fastest f: Int64, _ t1: Micros, _ t2: Micros
    ) -> Int {
        let before = max(0, t1 - arrival)
        let after = max(0, deadline - t2)
        return max(0, steps - Int((before + f - 1) / f + (after + f - 1) / f))
    }

    /// The least GPU-time a met request spends inside an interval `[t1, t2]`.
    ///
    /// A window inside the interval: its whole cost. A window that only overlaps it, when
    /// `partialWindows`: the ``stepsInside(steps:arrival:deadline:fastest:_:_:)`` steps that run
    /// wholly inside `[max(a, t1), min(d, t2)]` cost at least ``StepCostHull/cost(steps:within:)``
    /// there.
    struct Energy {
        var items: [Item]
        var partialWindows: Bool

        func of(_ i: Int, _ t1: Micros, _ t2: Micros) -> Int64 {
            let it = items[i]
            if it.arrival >= t1 && it.deadline <= t2 { return it.cost }
            let lo = max(it.arrival, t1)
            let hi = min(it.deadline, t2)
            guard partialWindows, hi > lo else { return 0 }
            let k = UpperBound.stepsInside(
                steps: it.steps, arrival: it.arrival, deadline: it.deadline, fastest: it.hull.fastest, t1, t2)
            return k > 0 ? it.hull.cost(steps: k, within: hi - lo) : 0
        }

        /// The requests among `candidates` with a positive charge in `[t1, t2]`, with it.
        func terms(_ t1: Micros, _ t2: Micros, among candidates: [Int]) -> [(Int, Int64)] {
            var out: [(Int, Int64)] = []
            for i in candidates where items[i].arrival < t2 && items[i].deadline > t1 {
                let e = of(i, t1, t2)
                if e > 0 { out.append((i, e)) }
            }
            return out
        }
    }

    /// How a class uses the whole node: a step at degree `gpus` occupies every GPU, so no other
    /// step of any request runs beside it.
    struct WholeNode {
        /// Step time at degree `gpus`; nil when the class has no step at that degree.
        var time: Int64?
        /// The fastest step time at any other degree; nil when there is none.
        var other: Int64?

        init(time t: [Int64], width: [Int], gpus: Int) {
            time = t.indices.first { width[$0] == gpus }.map { t[$0] }
            other = t.indices.filter { width[$0] != gpus }.map { t[$0] }.min()
        }

        /// The least time at degree `gpus` among `steps` steps run one after another within
        /// `span`: every other step takes at least `other`, so with `n` whole-node steps the run
        /// takes at least `n·time + (steps − n)·other`, which must fit `span`.
        func least(steps k: Int, within span: Int64) -> Int64 {
            guard let time, k > 0 else { return 0 }
            guard let other else { return Int64(k) * time }
            guard other > time else { return 0 }
            let excess = Int64(k) * other - span
            guard excess > 0 else { return 0 }
            return min(Int64(k), (excess + other - time - 1) / (other - time)) * time
        }
    }

    /// Whole-node exclusion: the time a met request must spend at degree `gpus` (every GPU) inside
    /// an interval `[t1, t2]`, and the time it must spend running at all there.
    ///
    /// While a step runs at degree `gpus`, no other step runs anywhere; a request's own steps run
    /// one after another; and two requests whose windows (clipped to the interval) are disjoint
    /// never run at the same instant. So for any set `J` of requests with pairwise disjoint
    /// clipped windows, the whole-node time of the met requests outside `J` and the running time
    /// of the met requests in `J` are disjoint sets of instants of `[t1, t2]`:
    /// `Σ_{i ∉ J} w_i·x_i + Σ_{j ∈ J} p_j·x_j ≤ t2 − t1`. The argument is in docs/scheduler.md.
    struct Exclusive {
        // The items' fields this needs, flat (no reference-counted storage in the inner loops).
        var arrival: [Micros]
        var deadline: [Micros]
        var steps: [Int]
        var fastest: [Int64]
        var node: [WholeNode]
        /// Each item's least time at degree `gpus` over its whole window.
        var total: [Int64]

        init(items: [Item]) {
            arrival = items.map(\.arrival)
            deadline = items.map(\.deadline)
            steps = items.map(\.steps)
            fastest = items.map(\.hull.fastest)
            node = items.map(\.wholeNode)
            total = items.map { $0.wholeNode.least(steps: $0.steps, within: $0.deadline - $0.arrival) }
        }

        /// One request's coefficients in an interval.
        struct Term {
            /// The request (its index among the items, or among a group's members).
            var i: Int
            /// Its window clipped to the interval.
            var lo: Micros
            var hi: Micros
            /// The least time it runs at degree `gpus` inside the interval.
            var wholeNode: Int64
            /// The least time it runs at all inside the interval (at least `wholeNode`).
            var running: Int64
        }

        /// The terms of the requests among `candidates` that overlap `[t1, t2]`; empty when none
        /// must run at degree `gpus` there (then every row of the interval holds: the running
        /// times of requests with disjoint clipped windows each fit their own window).
        ///
        /// Each lower bound is the larger of two: by steps (the `k` steps of
        /// ``UpperBound/stepsInside(steps:arrival:deadline:fastest:_:_:)`` run wholly inside) and
        /// by time (of its total over the whole window, at most the window's length outside the
        /// interval falls outside it).
        func terms(_ t1: Micros, _ t2: Micros, among candidates: [Int]) -> [Term] {
            var out: [Term] = []
            var anyWholeNode = false
            for i in candidates where arrival[i] < t2 && deadline[i] > t1 {
                let lo = max(arrival[i], t1)
                let hi = min(deadline[i], t2)
                let outside = deadline[i] - arrival[i] - (hi - lo)
                let f = fastest[i]
                let k = UpperBound.stepsInside(
                    steps: steps[i], arrival: arrival[i], deadline: deadline[i], fastest: f, t1, t2)
                let wholeNode = max(0, node[i].least(steps: k, within: hi - lo), total[i] - outside)
                let running = max(wholeNode, Int64(k) * f, Int64(steps[i]) * f - outside)
                guard running > 0 else { continue }
                if wholeNode > 0 { anyWholeNode = true }
                out.append(Term(i: i, lo: lo, hi: hi, wholeNode: wholeNode, running: running))
            }
            return anyWholeNode ? out : []
        }

        /// The interval's row that `x` fills most: the time it asks for and the set `J` (indices
        /// into `terms`), by weighted interval scheduling over the clipped windows with weights
        /// `(running − wholeNode)·x`.
        static func mostDemanding(_ terms: [Term], x: [Double]) -> (time: Double, set: [Int]) {
            var base = 0.0
            var candidates: [(lo: Micros, hi: Micros, weight: Double, term: Int)] = []
            for (k, t) in terms.enumerated() {
                let v = x[t.i]
                base += Double(t.wholeNode) * v
                let weight = Double(t.running - t.wholeNode) * v
                if weight > 0 { candidates.append((t.lo, t.hi, weight, k)) }
            }
            candidates.sort { ($0.hi, $0.lo, $0.term) < ($1.hi, $1.lo, $1.term) }
            // best[m]: the heaviest disjoint set among the first m candidates.
            var best = [0.0]
            var takes: [Bool] = []
            var before: [Int] = []
            for (m, c) in candidates.enumerated() {
                // Candidates ending by c's start form a prefix (sorted by end).
                var lo = 0
                var hi = m
                while lo < hi {
                    let mid = (lo + hi) / 2
                    if candidates[mid].hi <= c.lo { lo = mid + 1 } else { hi = mid }
                }
                before.append(lo)
                let with = c.weight + best[lo]
                takes.append(with > best[m])
                best.append(max(with, best[m]))
            }
            var set: [Int] = []
            var m = candidates.count
            while m > 0 {
                if takes[m - 1] {
                    set.append(candidates[m - 1].term)
                    m = before[m - 1]
                } else {
                    m -= 1
                }
            }
            return (base + best[candidates.count], set.sorted())
        }
    }

    /// GLPK keeps per-thread state and the bound may run on many threads: one solve at a time.
    private static let solverLock = Mutex(())

    /// Runs `body` on a fresh GLPK maximisation problem, one at a time, quiet; the problem is
    /// deleted afterwards.
    static func withMaximisation<T>(_ body: (OpaquePointer) throws -> T) throws -> T {
        try solverLock.withLock { _ throws -> T in
            glp_term_out(GLP_OFF)
            guard let lp = glp_create_prob() else { throw BoundError.solver("cannot create a problem") }
            defer { glp_delete_prob(lp) }
            glp_set_obj_dir(lp, GLP_MAX)
            return try body(lp)
        }
    }

    /// Appends `Σ cost·x ≤ capacity` over `columns` (1-based GLPK columns). GPU-seconds keep the
    /// coefficients well scaled. Half a GPU-microsecond of slack keeps rounding from cutting off a
    /// set that fits exactly (costs are whole microseconds), so the bound stays valid.
    private static func addCapacityRow(
        _ lp: OpaquePointer, columns: [Int32], costs: [Int64], capacity: Int64
    ) {
        let r = glp_add_rows(lp, 1)
        glp_set_row_bnds(lp, r, GLP_UP, 0, (Double(capacity) + 0.5) / 1e6)
        // GLPK arrays are 1-based: index 0 is unused.
        let ind: [Int32] = [0] + columns
        let val: [Double] = [0] + costs.map { Double($0) / 1e6 }
        glp_set_mat_row(lp, r, Int32(columns.count), ind, val)
    }

    /// Branch-and-cut settings of the capacity program: cover, MIR and clique cuts, no presolve
    /// (the LP relaxation has just been solved to optimality in the problem, whose basis the
    /// search starts from).
    static func capacityParameters() -> glp_iocp {
        var parm = glp_iocp()
        glp_init_iocp(&parm)
        parm.presolve = GLP_OFF
        parm.msg_lev = GLP_MSG_OFF
        parm.cov_cuts = GLP_ON
        parm.mir_cuts = GLP_ON
        parm.clq_cuts = GLP_ON
        return parm
    }

    /// How an integer search ended: at the optimum, or at a limit with the best bound it proved
    /// and whether it had found an integer solution (then in `lp`'s MIP values).
    enum IntegerOutcome: Equatable {
        case optimum(Int)
        case stopped(bound: Int, incumbent: Bool)
    }

    /// The branch-and-bound callback's state.
    struct IntegerSearch {
        var nodes: Int32?
        var deadline: ContinuousClock.Instant?
        var bound = -Double.infinity
        var stopped = false
    }

    /// Branch-and-cut on `lp` with `parameters` (their callback is replaced). With a node limit
    /// (a count, so the result is the same on every machine) or a time limit, the search stops
    /// at the first node selection past either and reports the best of the open subproblems'
    /// bounds and the incumbent, which bounds every integer solution, and no more than `ceiling`
    /// (a bound known before, such as the LP relaxation's optimum: a subproblem not yet solved,
    /// the root among them, has an infinite bound).
    static func integerSearch(
        _ lp: OpaquePointer, parameters: glp_iocp, nodeLimit: Int32? = nil, timeLimit: Duration? = nil,
        ceiling: Double
    ) throws -> IntegerOutcome {
        var parm = parameters
        var search = IntegerSearch(nodes: nodeLimit, deadline: timeLimit.map { ContinuousClock.now + $0 })
        parm.cb_func = nil
        if nodeLimit != nil || timeLimit != nil {
            parm.cb_func = { tree, info in
                guard let tree, let info, glp_ios_reason(tree) == GLP_ISELECT else { return }
                let search = info.assumingMemoryBound(to: IntegerSearch.self)
                var activeNodes: Int32 = 0
                var nodes: Int32 = 0
                var total: Int32 = 0
                glp_ios_tree_size(tree, &activeNodes, &nodes, &total)
                let pastNodes = search.pointee.nodes.map { total > $0 } ?? false
                let pastTime = search.pointee.deadline.map { ContinuousClock.now > $0 } ?? false
                guard pastNodes || pastTime else { return }
                // At selection no subproblem is current: the active ones hold every solution not
                // yet found, so the best of their bounds and the incumbent bounds the optimum.
                let best = glp_ios_best_node(tree)
                search.pointee.bound = best == 0 ? -.infinity : glp_ios_node_bound(tree, best)
                search.pointee.stopped = true
                glp_ios_terminate(tree)
            }
        }
        let rc = withUnsafeMutablePointer(to: &search) { pointer in
            parm.cb_info = UnsafeMutableRawPointer(pointer)
            return glp_intopt(lp, &parm)
        }
        if search.stopped {
            let status = glp_mip_status(lp)
            let found = status == GLP_FEAS || status == GLP_OPT
            let proved = min(max(found ? glp_mip_obj_val(lp) : 0, search.bound), ceiling)
            guard proved.isFinite, proved < 1e15 else {
                throw BoundError.solver("the search stopped at its limit without a finite bound")
            }
            return .stopped(bound: max(0, Int((proved + 1e-6).rounded(.down))), incumbent: found)
        }
        if rc == GLP_ENOPFS || glp_mip_status(lp) == GLP_NOFEAS {
            // x = 0 is always feasible; a presolver verdict otherwise is a solver fault.
            throw BoundError.solver("GLPK found the integer program infeasible")
        }
        guard rc == 0, glp_mip_status(lp) == GLP_OPT else {
            throw BoundError.solver("GLPK glp_intopt returned \(rc), status \(glp_mip_status(lp))")
        }
        return .optimum(Int(glp_mip_obj_val(lp).rounded()))
    }

    /// The same integer program as the full model over one linked group, with the interval
    /// capacity constraints added lazily: solve, find the intervals the solution overfills, add
    /// them, solve again. First on the LP relaxation (cheap, and it brings in most of the
    /// constraints that matter), then on the integer program until its optimum overfills no
    /// interval: that optimum satisfies every constraint of the full model and is optimal for a
    /// subset of them, so it is the full model's optimum. `initial` intervals are in the program
    /// from the start (the full model gives every one that could bind).
    ///
    /// Each added interval also brings its cardinality cut `Σ x_i ≤ m`, `m` the most requests of
    /// the interval whose smallest costs fit its capacity: any met set of the interval of more than
    /// `m` requests costs more than the capacity, so the cut removes no integer solution (it only
    /// tightens the relaxation).
    ///
    /// With `exclusive`, the whole-node exclusion rows of ``Exclusive`` are separated the same
    /// way (per interval, the row the solution fills most, found exactly by weighted interval
    /// scheduling), so the last integer optimum violates none of them either.
    static func solveByCuts(
        count n: Int, starts: [Micros], ends: [Micros], gpus: Int, initial: [Interval] = [],
        deadline: [Micros], terms: (Micros, Micros, [Int]) -> [(Int, Int64)],
        exclusive: ((Micros, Micros, [Int]) -> [Exclusive.Term])? = nil, timeLimit: Duration? = nil,
        progress: ((String) -> Void)? = nil
    ) throws -> (met: Int, cuts: Int, exclusiveCuts: Int, x: [Double], stopped: Bool) {
        struct ExclusionRow: Hashable {
            var interval: Interval
            /// The requests charged their running time (the set `J`), ascending.
            var set: [Int]
        }
        /// Per t1, the row over `[t1, t2]` (any later t2) that `x` overfills most, when its excess
        /// passes `slack` of the row's capacity. `row` gives an interval's most overfilled row under
        /// `x` (among the requests still alive at t1), with its excess and capacity, or nil.
        func mostOverfilled<Row>(
            _ x: [Double], slack: (Int64) -> Double,
            row: (Micros, Micros, [Int]) -> (excess: Double, capacity: Int64, row: Row)?
        ) -> [Row] {
            let support = (0..<n).filter { x[$0] > 1e-9 }
            var out: [Row] = []
            for t1 in starts {
                var best: (excess: Double, row: Row)? = nil
                let alive = support.filter { deadline[$0] > t1 }
                for t2 in ends where t2 > t1 {
                    guard let r = row(t1, t2, alive), r.excess > slack(r.capacity),
                        r.excess > (best?.excess ?? -.infinity)
                    else { continue }
                    best = (r.excess, r.row)
                }
                if let best { out.append(best.row) }
            }
            return out
        }
        /// The capacity intervals `x` overfills most.
        func separate(_ x: [Double], slack: (Int64) -> Double) -> [Interval] {
            mostOverfilled(x, slack: slack) { t1, t2, alive in
                let capacity = Int64(gpus) * (t2 - t1)
                let sum = terms(t1, t2, alive).reduce(0.0) { $0 + x[$1.0] * Double($1.1) }
                return (sum - Double(capacity), capacity, Interval(t1: t1, t2: t2))
            }
        }
        /// The exclusion rows `x` overfills most.
        func separateExclusive(_ x: [Double], slack: (Int64) -> Double) -> [ExclusionRow] {
            guard let exclusive else { return [] }
            return mostOverfilled(x, slack: slack) { t1, t2, alive in
                let inside = exclusive(t1, t2, alive)
                // Every term charged its running time bounds every row of the interval.
                guard inside.reduce(0.0, { $0 + Double($1.running) * x[$1.i] }) - Double(t2 - t1) > slack(t2 - t1)
                else { return nil }
                let demand = Exclusive.mostDemanding(inside, x: x)
                let set = demand.set.map { inside[$0].i }.sorted()
                return (
                    demand.time - Double(t2 - t1), t2 - t1, ExclusionRow(interval: Interval(t1: t1, t2: t2), set: set)
                )
            }
        }
        let everyone = Array(0..<n)
        let start = ContinuousClock.now
        return try withMaximisation {
            lp throws -> (met: Int, cuts: Int, exclusiveCuts: Int, x: [Double], stopped: Bool) in
            glp_add_cols(lp, Int32(n))
            for k in 1...Int32(n) {
                glp_set_col_kind(lp, k, GLP_BV)
                glp_set_obj_coef(lp, k, 1)
            }
            var added: Set<Interval> = []
            /// Adds the intervals not yet in the program; false when there was none.
            func add(_ intervals: [Interval]) -> Bool {
                var any = false
                for iv in intervals where added.insert(iv).inserted {
                    any = true
                    let inside = terms(iv.t1, iv.t2, everyone)
                    let capacity = Int64(gpus) * (iv.t2 - iv.t1)
                    let columns = inside.map { Int32($0.0 + 1) }
                    addCapacityRow(lp, columns: columns, costs: inside.map(\.1), capacity: capacity)
                    var fit = 0
                    var used: Int64 = 0
                    for c in inside.map(\.1).sorted() {
                        used += c
                        if used > capacity { break }
                        fit += 1
                    }
                    if fit < inside.count {
                        let r = glp_add_rows(lp, 1)
                        glp_set_row_bnds(lp, r, GLP_UP, 0, Double(fit))
                        glp_set_mat_row(lp, r, Int32(columns.count), [0] + columns, [0] + columns.map { _ in 1.0 })
                    }
                }
                return any
            }
            var addedRows: Set<ExclusionRow> = []
            /// Adds the exclusion rows not yet in the program; false when there was none.
            func addExclusive(_ rows: [ExclusionRow]) -> Bool {
                guard let exclusive else { return false }
                var any = false
                for row in rows where addedRows.insert(row).inserted {
                    any = true
                    let inJ = Set(row.set)
                    let inside = exclusive(row.interval.t1, row.interval.t2, everyone).compactMap { t in
                        let c = inJ.contains(t.i) ? t.running : t.wholeNode
                        return c > 0 ? (Int32(t.i + 1), c) : nil
                    }
                    // Time, not GPU-time: the same scaling and half-microsecond slack.
                    addCapacityRow(
                        lp, columns: inside.map(\.0), costs: inside.map(\.1),
                        capacity: row.interval.t2 - row.interval.t1)
                }
                return any
            }
            _ = add(initial)
            // The LP relaxation with cuts, while its solution overfills an interval by more than
            // rounding.
            var smcp = glp_smcp()
            glp_init_smcp(&smcp)
            smcp.msg_lev = GLP_MSG_OFF
            func relaxation() throws {
                var rc = glp_simplex(lp, &smcp)
                if rc != 0 {
                    glp_std_basis(lp)
                    rc = glp_simplex(lp, &smcp)
                }
                guard rc == 0, glp_get_status(lp) == GLP_OPT else {
                    throw BoundError.solver("GLPK glp_simplex returned \(rc), status \(glp_get_status(lp))")
                }
            }
            let loose: (Int64) -> Double = { 1 + 1e-6 * Double($0) }
            var round = 0
            while true {
                try relaxation()
                round += 1
                progress?(
                    "relaxation round \(round): \(added.count) intervals and \(addedRows.count) exclusion rows, "
                        + "at most \(String(format: "%.2f", glp_get_obj_val(lp))) met")
                let x = (0..<n).map { glp_get_col_prim(lp, Int32($0 + 1)) }
                let capacity = add(separate(x, slack: loose))
                let exclusion = addExclusive(separateExclusive(x, slack: loose))
                if !capacity && !exclusion { break }
            }
            // The integer program, until its optimum overfills no interval and violates no
            // exclusion row (exact arithmetic on whole microseconds; a row already in the program
            // that the solver's tolerance let through ends the loop, as it would in the full model).
            round = 0
            while true {
                try relaxation()
                round += 1
                let left = timeLimit.map { max(.zero, $0 - (ContinuousClock.now - start)) }
                // The relaxation just solved bounds every integer solution of this program.
                let ceiling = glp_get_obj_val(lp)
                switch try integerSearch(
                    lp, parameters: capacityParameters(), timeLimit: left, ceiling: ceiling)
                {
                case .optimum(let met):
                    progress?("integer round \(round): \(met) met over \(added.count) intervals")
                    let x = (0..<n).map { glp_mip_col_val(lp, Int32($0 + 1)).rounded() }
                    let capacity = add(separate(x, slack: { _ in 0.5 }))
                    let exclusion = addExclusive(separateExclusive(x, slack: { _ in 0.5 }))
                    if !capacity && !exclusion { return (met, added.count, addedRows.count, x, false) }
                case .stopped(let bound, let incumbent):
                    // The constraints so far are a subset of the model's, so what the search proved
                    // over them bounds the model too. The incumbent (or the relaxation rounded)
                    // stands for the chosen requests.
                    progress?("integer round \(round): time limit reached, at most \(bound) met")
                    let x = (0..<n).map {
                        incumbent
                            ? glp_mip_col_val(lp, Int32($0 + 1)).rounded()
                            : (glp_get_col_prim(lp, Int32($0 + 1)) > 0.5 ? 1 : 0)
                    }
                    return (bound, added.count, addedRows.count, x, true)
                }
            }
        }
    }
}

/// The bound's solver failed.
public enum BoundError: Error, Equatable, CustomStringConvertible {
    case solver(String)

    public var description: String {
        switch self {
        case .solver(let why): "upper bound: the integer program could not be solved: \(why)"
        }
    }
}

extension UpperBound {
    /// The bound as written by `tetriserve bound --json`.
    public struct Report: Sendable, Codable, Equatable {
        public struct ClassBound: Sendable, Codable, Equatable {
            public var requests: Int
            /// Requests of the class whose fastest standalone run misses the deadline.
            public var standaloneInfeasible: Int
            /// Requests of the class in the integer optimum's chosen set.
            public var chosen: Int = 0

            enum CodingKeys: String, CodingKey {
                case requests, chosen
                case standaloneInfeasible = "standalone_infeasible"
            }
        }

        public var profile: String
        public var gpus: Int
        public var requests: Int
        public var upperBoundMet: Int
        public var upperBoundSAR: Double
        public var capacityConstraints: Int
        /// The capacity constraints the solver was given (the cutting planes it needed).
        public var solverConstraints: Int
        /// Intervals with a whole-node exclusion row that could bind, and the rows the solver was
        /// given.
        public var exclusionConstraints: Int = 0
        public var exclusionSolverRows: Int = 0
        /// Groups of overlapping windows given a step-count program, those whose search stopped at
        /// the node limit (their count is the bound it proved), and the requests the programs took
        /// off the count of the constraints before them.
        public var stepCountGroups: Int = 0
        public var stepCountUnfinished: Int = 0
        public var stepCountCut: Int = 0
        public var stepCountSkipped: Int = 0
        public var components: Int
        /// Linked groups whose integer program stopped at the solver time limit.
        public var componentsUnfinished: Int = 0
        public var perResolution: [String: ClassBound]
        /// Ids of the requests the optimum meets (ascending), as ``UpperBound/chosen``: not a
        /// schedule.
        public var chosenIDs: [Int] = []
        /// Requests met by the clairvoyant schedule of ``Clairvoyant`` (a lower bound on the
        /// optimum); nil when it was not run.
        public var achievableMet: Int? = nil
        public var achievableSAR: Double? = nil

        enum CodingKeys: String, CodingKey {
            case profile, gpus, requests, components
            case componentsUnfinished = "components_unfinished"
            case achievableMet = "achievable_met"
            case achievableSAR = "achievable_sar"
            case upperBoundMet = "upper_bound_met"
            case upperBoundSAR = "upper_bound_sar"
            case capacityConstraints = "capacity_constraints"
            case solverConstraints = "solver_constraints"
            case exclusionConstraints = "exclusion_constraints"
            case exclusionSolverRows = "exclusion_solver_rows"
            case stepCountGroups = "step_count_groups"
            case stepCountUnfinished = "step_count_unfinished"
            case stepCountCut = "step_count_cut"
            case stepCountSkipped = "step_count_skipped"
            case perResolution = "per_resolution"
            case chosenIDs = "chosen_ids"
        }
    }

    public func report(profile: String, gpus: Int) -> Report {
        Report(
            profile: profile, gpus: gpus, requests: requests, upperBoundMet: met, upperBoundSAR: sar,
            capacityConstraints: constraints, solverConstraints: cuts, exclusionConstraints: exclusiveConstraints,
            exclusionSolverRows: exclusiveCuts, stepCountGroups: stepCounts.groups,
            stepCountUnfinished: stepCounts.unfinished, stepCountCut: stepCounts.cut,
            stepCountSkipped: stepCounts.skipped, components: components, componentsUnfinished: unfinishedComponents,
            perResolution: Dictionary(
                uniqueKeysWithValues: perClass.map {
                    (
                        $0.key.description,
                        Report.ClassBound(
                            requests: $0.value, standaloneInfeasible: standaloneInfeasible[$0.key] ?? 0,
                            chosen: chosenPerClass[$0.key] ?? 0)
                    )
                }), chosenIDs: chosen)
    }

    /// Human-readable lines; the last is `upper_bound_sar=<x>`.
    public var text: String {
        var lines = ["requests: \(requests)"]
        for res in perClass.keys.sorted() {
            let bad = standaloneInfeasible[res] ?? 0
            lines.append(
                "  \(res): \(perClass[res]!) requests, \(bad) cannot meet the deadline even alone at the fastest degree"
            )
        }
        lines.append(
            "capacity constraints: \(constraints) in \(components) linked groups (\(cuts) given to the solver)")
        if unfinishedComponents > 0 {
            lines.append(
                "solver time limit: \(unfinishedComponents) linked groups stopped with a proved bound, not the optimum "
                    + "(the bound holds but may be looser)")
        }
        lines.append(
            "whole-node exclusion: \(exclusiveConstraints) intervals could bind (\(exclusiveCuts) rows given to the solver)"
        )
        if stepCounts.groups + stepCounts.skipped > 0 {
            var how =
                stepCounts.unfinished == 0
                ? "all solved exactly"
                : "\(stepCounts.unfinished) stopped at the node limit with a proved bound"
            if stepCounts.skipped > 0 {
                how += "; \(stepCounts.skipped) of more than \(StepCounts.largestGroup) requests not tried"
            }
            lines.append(
                "step counts: \(stepCounts.groups) groups of overlapping windows (\(how)), "
                    + "\(stepCounts.cut) fewer requests")
        }
        lines.append("upper bound on met requests: \(met)")
        lines.append(String(format: "upper_bound_sar=%.4f", sar))
        return lines.joined(separator: "\n")
    }
}
