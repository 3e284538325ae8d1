import CGLPK
import Synchronization
import TetriCore

/// An upper bound on the SLO attainment of **any** schedule of a trace on `gpus` GPUs:
/// clairvoyant, preemptive at step boundaries, free to change degree at every step.
///
/// Two families of constraints, each argued in `docs/scheduler.md`:
///
/// - **Standalone feasibility.** A request whose steps miss its window `[arrival, deadline]`
///   even all at its fastest degree can never be met.
/// - **Interval capacity.** A met request runs all its steps inside its window and uses at least
///   its window's minimal GPU-time `c_i` (``MinimalAllocation/exactCost(steps:budget:time:width:)``,
///   exact over every degree mix). For every interval `[t1, t2]`, the met requests whose windows
///   lie inside it fit in `gpus × (t2 − t1)` GPU-time.
///
/// The bound is the optimum of the integer program *maximise Σ x_i subject to those
/// constraints* (x_i ∈ {0, 1}), solved exactly with GLPK's branch-and-cut on each group of
/// requests that share a constraint. Deterministic: the same trace gives the same bound.
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

    /// How the integer program is built; both give the same optimum.
    public enum Method: Sendable {
        /// Interval constraints added lazily, only those an intermediate solution overfills (the
        /// default: the full model has up to one constraint per pair of requests).
        case cuttingPlanes
        /// Every capacity constraint that could bind, stored up front.
        case fullModel
    }

    public var sar: Double { requests == 0 ? 1 : Double(met) / Double(requests) }

    /// Computes the bound.
    ///
    /// - Throws: ``SimulationError/unknownResolution(id:_:profile:known:)`` when the trace has a
    ///   class the profile lacks, ``BoundError`` when the solver fails.
    public static func compute(
        trace: Trace, model: CostModel, gpus: Int, method: Method = .cuttingPlanes
    ) throws -> UpperBound {
        guard gpus >= 1 else { throw SimulationError.invalidGPUCount(gpus) }
        let reqs = trace.requests
        var perClass: [Resolution: Int] = [:]
        var infeasible: [Resolution: Int] = [:]
        // Per class: allowed degree indices and their step times / widths.
        let allowed = model.degrees.indices.filter { model.degrees[$0] <= gpus }
        guard !allowed.isEmpty else { throw SimulationError.invalidGPUCount(gpus) }
        var costCache: [String: Int64?] = [:]
        struct Item {
            var arrival: Micros
            var deadline: Micros
            var cost: Int64
        }
        var items: [Item] = []
        for r in reqs {
            guard let c = model.resolutionIndex(r.resolution) else {
                throw SimulationError.unknownResolution(
                    id: r.id, r.resolution, profile: model.name, known: model.resolutionNames)
            }
            perClass[r.resolution, default: 0] += 1
            let key = "\(c) \(r.steps) \(r.slo)"
            let cost: Int64?
            if let cached = costCache[key] {
                cost = cached
            } else {
                cost = MinimalAllocation.exactCost(
                    steps: r.steps, budget: r.slo, time: allowed.map { model.stepTime[c][$0] },
                    width: allowed.map { model.degrees[$0] })
                costCache[key] = cost
            }
            guard let cost else {
                infeasible[r.resolution, default: 0] += 1
                continue
            }
            items.append(Item(arrival: r.arrival, deadline: r.deadline, cost: cost))
        }

        // Capacity constraints: for each distinct t1 (an arrival) the requests arriving at or
        // after it, by deadline; each prefix ending at a distinct deadline t2 is the set of
        // windows inside [t1, t2]. Only sets that reach t1 (one of them arrives at t1) and whose
        // total exceeds the interval's capacity can bind: the others are implied. They are counted
        // and their requests linked here without being stored; the cutting-plane solver adds the
        // ones it needs, the full model stores them all.
        let byDeadline = items.indices.sorted { (items[$0].deadline, $0) < (items[$1].deadline, $1) }
        let arrivals = items.map(\.arrival).sorted().uniqued()
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
        var rows: [([Int], Int64)] = []
        var linkedRoots: [Int] = []
        for t1 in arrivals {
            let inside = byDeadline.filter { items[$0].arrival >= t1 }
            var sum: Int64 = 0
            var reaches = false
            var linked = 1
            var k = 0
            while k < inside.count {
                let t2 = items[inside[k]].deadline
                while k < inside.count && items[inside[k]].deadline == t2 {
                    sum += items[inside[k]].cost
                    reaches = reaches || items[inside[k]].arrival == t1
                    k += 1
                }
                let capacity = Int64(gpus) * (t2 - t1)
                guard reaches && sum > capacity else { continue }
                constraints += 1
                if method == .fullModel { rows.append((Array(inside[..<k]), capacity)) }
                while linked < k {
                    let a = find(inside[0])
                    let b = find(inside[linked])
                    if a != b { parent[max(a, b)] = min(a, b) }
                    linked += 1
                }
                linkedRoots.append(inside[0])
            }
        }

        // Requests linked by a constraint form one integer program.
        let roots = Set(linkedRoots.map(find)).sorted()
        var membersOf: [Int: [Int]] = [:]
        for i in items.indices { membersOf[find(i), default: []].append(i) }
        var met = items.count
        var cuts = 0
        for root in roots {
            let members = membersOf[root]!
            let best: Int
            switch method {
            case .fullModel:
                let own = rows.filter { find($0.0[0]) == root }
                best = try solve(members: members, rows: own, cost: items.map(\.cost))
                cuts += own.count
            case .cuttingPlanes:
                let sub = members.map { items[$0] }
                let solved = try solveByCuts(
                    arrival: sub.map(\.arrival), deadline: sub.map(\.deadline), cost: sub.map(\.cost), gpus: gpus)
                best = solved.met
                cuts += solved.cuts
            }
            met -= members.count - best
        }
        return UpperBound(
            requests: reqs.count, met: met, standaloneInfeasible: infeasible, perClass: perClass,
            constraints: constraints, components: roots.count, cuts: cuts)
    }

    /// GLPK keeps per-thread state and the bound may run on many threads: one solve at a time.
    private static let solverLock = Mutex(())

    /// Maximise the number of `members` met subject to `rows` (member indices, capacity).
    private static func solve(members: [Int], rows: [([Int], Int64)], cost: [Int64]) throws -> Int {
        var column: [Int: Int32] = [:]
        for (k, i) in members.enumerated() { column[i] = Int32(k + 1) }
        return try solverLock.withLock { _ throws -> Int in
            glp_term_out(GLP_OFF)
            guard let lp = glp_create_prob() else { throw BoundError.solver("cannot create a problem") }
            defer { glp_delete_prob(lp) }
            glp_set_obj_dir(lp, GLP_MAX)
            glp_add_cols(lp, Int32(members.count))
            for k in 1...Int32(members.count) {
                glp_set_col_kind(lp, k, GLP_BV)
                glp_set_obj_coef(lp, k, 1)
            }
            for (row, capacity) in rows {
                addCapacityRow(lp, columns: row.map { column[$0]! }, costs: row.map { cost[$0] }, capacity: capacity)
            }
            return try integerOptimum(lp)
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

    /// Solves the integer program in `lp` exactly (branch-and-cut, with presolve unless the LP
    /// relaxation has just been solved to optimality in `lp`, whose basis it then starts from).
    private static func integerOptimum(_ lp: OpaquePointer, presolve: Bool = true) throws -> Int {
        var parm = glp_iocp()
        glp_init_iocp(&parm)
        parm.presolve = presolve ? GLP_ON : GLP_OFF
        parm.msg_lev = GLP_MSG_OFF
        parm.cov_cuts = GLP_ON
        parm.mir_cuts = GLP_ON
        parm.clq_cuts = GLP_ON
        let rc = glp_intopt(lp, &parm)
        guard rc == 0, glp_mip_status(lp) == GLP_OPT else {
            throw BoundError.solver("GLPK glp_intopt returned \(rc), status \(glp_mip_status(lp))")
        }
        return Int(glp_mip_obj_val(lp).rounded())
    }

    /// The same integer program as the full model over one linked group, with the interval
    /// capacity constraints added lazily: solve, find the intervals the solution overfills, add
    /// them, solve again. First on the LP relaxation (cheap, and it brings in most of the
    /// constraints that matter), then on the integer program until its optimum overfills no
    /// interval: that optimum satisfies every constraint of the full model and is optimal for a
    /// subset of them, so it is the full model's optimum.
    ///
    /// Each added interval also brings its cardinality cut `Σ x_i ≤ m`, `m` the most requests of
    /// the interval whose smallest costs fit its capacity: any met set of the interval of more than
    /// `m` requests costs more than the capacity, so the cut removes no integer solution (it only
    /// tightens the relaxation; with a single class the rows then become interval matrices and the
    /// relaxation is integral).
    static func solveByCuts(
        arrival: [Micros], deadline: [Micros], cost: [Int64], gpus: Int
    ) throws -> (met: Int, cuts: Int) {
        let n = arrival.count
        let byDeadline = (0..<n).sorted { (deadline[$0], $0) < (deadline[$1], $1) }
        let starts = arrival.sorted().uniqued()
        struct Interval: Hashable {
            var t1: Micros
            var t2: Micros
        }
        /// Per t1, the most overfilled interval `[t1, t2]` under `x`, when its excess passes `slack`.
        func separate(_ x: [Double], slack: (Int64) -> Double) -> [Interval] {
            var out: [Interval] = []
            for t1 in starts {
                var sum = 0.0
                var best: (excess: Double, t2: Micros)? = nil
                var k = 0
                while k < n {
                    let t2 = deadline[byDeadline[k]]
                    while k < n && deadline[byDeadline[k]] == t2 {
                        let i = byDeadline[k]
                        if arrival[i] >= t1 { sum += x[i] * Double(cost[i]) }
                        k += 1
                    }
                    guard t2 > t1 else { continue }
                    let capacity = Int64(gpus) * (t2 - t1)
                    let excess = sum - Double(capacity)
                    if excess > slack(capacity) && excess > (best?.excess ?? -.infinity) { best = (excess, t2) }
                }
                if let best { out.append(Interval(t1: t1, t2: best.t2)) }
            }
            return out
        }
        return try solverLock.withLock { _ throws -> (met: Int, cuts: Int) in
            glp_term_out(GLP_OFF)
            guard let lp = glp_create_prob() else { throw BoundError.solver("cannot create a problem") }
            defer { glp_delete_prob(lp) }
            glp_set_obj_dir(lp, GLP_MAX)
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
                    let inside = (0..<n).filter { arrival[$0] >= iv.t1 && deadline[$0] <= iv.t2 }
                    let capacity = Int64(gpus) * (iv.t2 - iv.t1)
                    let columns = inside.map { Int32($0 + 1) }
                    addCapacityRow(lp, columns: columns, costs: inside.map { cost[$0] }, capacity: capacity)
                    var fit = 0
                    var used: Int64 = 0
                    for c in inside.map({ cost[$0] }).sorted() {
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
            while true {
                try relaxation()
                let x = (0..<n).map { glp_get_col_prim(lp, Int32($0 + 1)) }
                if !add(separate(x, slack: { 1 + 1e-6 * Double($0) })) { break }
            }
            // The integer program, until its optimum overfills no interval (exact arithmetic on
            // whole GPU-microseconds; an interval already in the program that the solver's tolerance
            // let through ends the loop, as it would in the full model).
            while true {
                try relaxation()
                let met = try integerOptimum(lp, presolve: false)
                let x = (0..<n).map { glp_mip_col_val(lp, Int32($0 + 1)).rounded() }
                if !add(separate(x, slack: { _ in 0.5 })) { return (met, added.count) }
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

            enum CodingKeys: String, CodingKey {
                case requests
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
        public var components: Int
        public var perResolution: [String: ClassBound]

        enum CodingKeys: String, CodingKey {
            case profile, gpus, requests, components
            case upperBoundMet = "upper_bound_met"
            case upperBoundSAR = "upper_bound_sar"
            case capacityConstraints = "capacity_constraints"
            case solverConstraints = "solver_constraints"
            case perResolution = "per_resolution"
        }
    }

    public func report(profile: String, gpus: Int) -> Report {
        Report(
            profile: profile, gpus: gpus, requests: requests, upperBoundMet: met, upperBoundSAR: sar,
            capacityConstraints: constraints, solverConstraints: cuts, components: components,
            perResolution: Dictionary(
                uniqueKeysWithValues: perClass.map {
                    (
                        $0.key.description,
                        Report.ClassBound(requests: $0.value, standaloneInfeasible: standaloneInfeasible[$0.key] ?? 0)
                    )
                }))
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
        lines.append("upper bound on met requests: \(met)")
        lines.append(String(format: "upper_bound_sar=%.4f", sar))
        return lines.joined(separator: "\n")
    }
}
