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

    public var sar: Double { requests == 0 ? 1 : Double(met) / Double(requests) }

    /// Computes the bound.
    ///
    /// - Throws: ``SimulationError/unknownResolution(id:_:profile:known:)`` when the trace has a
    ///   class the profile lacks, ``BoundError`` when the solver fails.
    public static func compute(trace: Trace, model: CostModel, gpus: Int) throws -> UpperBound {
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
        // total exceeds the interval's capacity are kept: the others are implied.
        let byArrival = items.indices.sorted { (items[$0].arrival, $0) < (items[$1].arrival, $1) }
        let arrivals = byArrival.map { items[$0].arrival }.uniqued()
        var rows: [[Int]] = []
        var capacities: [Int64] = []
        var start = 0
        for t1 in arrivals {
            while items[byArrival[start]].arrival < t1 { start += 1 }
            let later = byArrival[start...].sorted { (items[$0].deadline, $0) < (items[$1].deadline, $1) }
            var sum: Int64 = 0
            var reaches = false
            var k = 0
            while k < later.count {
                let t2 = items[later[k]].deadline
                while k < later.count && items[later[k]].deadline == t2 {
                    sum += items[later[k]].cost
                    reaches = reaches || items[later[k]].arrival == t1
                    k += 1
                }
                let capacity = Int64(gpus) * (t2 - t1)
                if reaches && sum > capacity {
                    rows.append(Array(later[..<k]))
                    capacities.append(capacity)
                }
            }
        }

        // Requests linked by a constraint form one integer program.
        var parent = Array(items.indices)
        func find(_ i: Int) -> Int {
            var i = i
            while parent[i] != i {
                parent[i] = parent[parent[i]]
                i = parent[i]
            }
            return i
        }
        for row in rows {
            for i in row.dropFirst() {
                let a = find(row[0])
                let b = find(i)
                if a != b { parent[max(a, b)] = min(a, b) }
            }
        }
        var rowsOf: [Int: [Int]] = [:]
        for (k, row) in rows.enumerated() { rowsOf[find(row[0]), default: []].append(k) }
        var met = items.count
        for root in rowsOf.keys.sorted() {
            let members = items.indices.filter { find($0) == root }
            let best = try solve(
                members: members, rows: rowsOf[root]!.map { (rows[$0], capacities[$0]) },
                cost: items.map(\.cost))
            met -= members.count - best
        }
        return UpperBound(
            requests: reqs.count, met: met, standaloneInfeasible: infeasible, perClass: perClass,
            constraints: rows.count, components: rowsOf.count)
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
            glp_add_rows(lp, Int32(rows.count))
            // GLPK arrays are 1-based: index 0 is unused.
            var ia: [Int32] = [0]
            var ja: [Int32] = [0]
            var ar: [Double] = [0]
            for (r, (row, capacity)) in rows.enumerated() {
                // GPU-seconds keep the coefficients well scaled. Half a GPU-microsecond of slack keeps
                // rounding from cutting off a set that fits exactly (costs are whole microseconds), so
                // the bound stays valid.
                glp_set_row_bnds(lp, Int32(r + 1), GLP_UP, 0, (Double(capacity) + 0.5) / 1e6)
                for i in row {
                    ia.append(Int32(r + 1))
                    ja.append(column[i]!)
                    ar.append(Double(cost[i]) / 1e6)
                }
            }
            glp_load_matrix(lp, Int32(ia.count - 1), ia, ja, ar)
            var parm = glp_iocp()
            glp_init_iocp(&parm)
            parm.presolve = GLP_ON
            parm.msg_lev = GLP_MSG_OFF
            let rc = glp_intopt(lp, &parm)
            guard rc == 0, glp_mip_status(lp) == GLP_OPT else {
                throw BoundError.solver("GLPK glp_intopt returned \(rc), status \(glp_mip_status(lp))")
            }
            return Int(glp_mip_obj_val(lp).rounded())
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
        public var components: Int
        public var perResolution: [String: ClassBound]

        enum CodingKeys: String, CodingKey {
            case profile, gpus, requests, components
            case upperBoundMet = "upper_bound_met"
            case upperBoundSAR = "upper_bound_sar"
            case capacityConstraints = "capacity_constraints"
            case perResolution = "per_resolution"
        }
    }

    public func report(profile: String, gpus: Int) -> Report {
        Report(
            profile: profile, gpus: gpus, requests: requests, upperBoundMet: met, upperBoundSAR: sar,
            capacityConstraints: constraints, components: components,
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
        lines.append("capacity constraints: \(constraints) in \(components) linked groups")
        lines.append("upper bound on met requests: \(met)")
        lines.append(String(format: "upper_bound_sar=%.4f", sar))
        return lines.joined(separator: "\n")
    }
}
