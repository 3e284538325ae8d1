import CGLPK
import TetriCore

extension UpperBound {
    /// Step counts: the fifth family of constraints, a time-indexed program over one group of
    /// requests whose windows overlap, with each met request's number of steps at each degree an
    /// integer.
    ///
    /// The other families see a request through least times and least GPU-times that may mix
    /// degrees fractionally within an interval; where slack is short of one step (a 2048² request
    /// at 1.5× the FLUX SLO has 0.655 s of slack over 50 steps), that fraction is the difference
    /// between a pair that fits and one that does not. Here, with the arrivals and deadlines of
    /// the group cutting time into elementary intervals `e` of length `L_e`:
    ///
    /// - `s_{i,d}` integer: the steps met request `i` runs at degree `d`; `Σ_d s_{i,d} = S_i·x_i`;
    /// - `f_{i,e,d} ≥ 0`: the time `i` runs degree-`d` steps inside `e`, only inside its window;
    ///   `Σ_e f_{i,e,d} = τ_{i,d}·s_{i,d}` (its steps at `d` take that long in all);
    /// - one step at a time: `Σ_d f_{i,e,d} ≤ L_e`;
    /// - capacity: `Σ_{i,d} d·f_{i,e,d} ≤ gpus·L_e`;
    /// - whole-node exclusion, when `gpus` is a degree: for every `j`,
    ///   `Σ_{i≠j} f_{i,e,gpus} + Σ_d f_{j,e,d} ≤ L_e` (a step on every GPU runs beside nothing);
    /// - more than half the node: two steps wider than `gpus/2` never overlap,
    ///   `Σ_i Σ_{d > gpus/2} f_{i,e,d} ≤ L_e`.
    ///
    /// Any schedule gives a solution (count each met request's steps per degree and the time it
    /// spends on them in each elementary interval), so the optimum bounds the count any schedule
    /// meets in the group. What it still relaxes: steps may be split between elementary intervals
    /// and packed fluidly inside one. The argument is in docs/scheduler.md (constraint 5).
    struct StepCounts {
        var arrival: [Micros]
        var deadline: [Micros]
        var steps: [Int]
        /// Per request, its step time at each of `degrees`.
        var time: [[Int64]]
        var degrees: [Int]
        var gpus: Int

        /// Branch-and-bound nodes before the search stops with the best bound it has proved
        /// (deterministic, unlike a time limit).
        static let nodeLimit: Int32 = 2000

        /// Groups of more requests are left to the other constraints: the program grows with the
        /// group and the time its elementary intervals span, and the search with both.
        static let largestGroup = 64

        /// The group's optimum, at most `cap`: the count, one solution's met requests, and
        /// whether the search finished (when it did not, `met` is the best bound it proved and
        /// `x` is nil).
        func optimum(cap: Int) throws -> (met: Int, x: [Bool]?, exact: Bool) {
            let n = arrival.count
            guard n > 0, cap > 0 else { return (0, [Bool](repeating: false, count: n), true) }
            let cuts = (arrival + deadline).sorted().uniqued()
            let lengths = zip(cuts.dropFirst(), cuts).map { Double($0 - $1) / 1e6 }
            // Half a microsecond of slack on every time limit keeps rounding from cutting off a
            // schedule that fits exactly.
            let slack = 0.5e-6
            // Columns (1-based): x_i, then s_{i,d}, then f_{i,e,d} for e inside i's window.
            let nd = degrees.count
            func xColumn(_ i: Int) -> Int32 { Int32(1 + i) }
            func sColumn(_ i: Int, _ d: Int) -> Int32 { Int32(1 + n + i * nd + d) }
            let index = Dictionary(uniqueKeysWithValues: cuts.enumerated().map { ($1, $0) })
            let window = (0..<n).map { index[arrival[$0]]!..<index[deadline[$0]]! }
            var fStart: [Int32] = []
            var next = Int32(1 + n + n * nd)
            for i in 0..<n {
                fStart.append(next)
                next += Int32(window[i].count * nd)
            }
            func fColumn(_ i: Int, _ e: Int, _ d: Int) -> Int32 {
                fStart[i] + Int32((e - window[i].lowerBound) * nd + d)
            }
            let columns = next - 1
            let active = (0..<lengths.count).map { e in (0..<n).filter { window[$0].contains(e) } }
            let whole = degrees.firstIndex(of: gpus)
            let wide = degrees.indices.filter { 2 * degrees[$0] > gpus && degrees[$0] < gpus }

            var ia: [Int32] = [0]
            var ja: [Int32] = [0]
            var ar: [Double] = [0]
            var bounds: [(lo: Double, hi: Double)] = []
            func row(_ entries: [(Int32, Double)], lo: Double, hi: Double) {
                let r = Int32(bounds.count + 1)
                for (c, v) in entries {
                    ia.append(r)
                    ja.append(c)
                    ar.append(v)
                }
                bounds.append((lo, hi))
            }
            for i in 0..<n {
                row(
                    degrees.indices.map { (sColumn(i, $0), 1) } + [(xColumn(i), -Double(steps[i]))], lo: 0, hi: 0)
                for d in degrees.indices {
                    row(
                        window[i].map { (fColumn(i, $0, d), 1) } + [(sColumn(i, d), -Double(time[i][d]) / 1e6)],
                        lo: 0, hi: 0)
                }
                for e in window[i] {
                    row(degrees.indices.map { (fColumn(i, e, $0), 1) }, lo: -.infinity, hi: lengths[e] + slack)
                }
            }
            for (e, on) in active.enumerated() where !on.isEmpty {
                let length = lengths[e] + slack
                row(
                    on.flatMap { i in degrees.indices.map { (fColumn(i, e, $0), Double(degrees[$0])) } },
                    lo: -.infinity, hi: Double(gpus) * length)
                if let whole, on.count > 1 {
                    for j in on {
                        let others = on.filter { $0 != j }.map { (fColumn($0, e, whole), 1.0) }
                        row(others + degrees.indices.map { (fColumn(j, e, $0), 1) }, lo: -.infinity, hi: length)
                    }
                }
                if !wide.isEmpty && on.count > 1 {
                    row(on.flatMap { i in wide.map { (fColumn(i, e, $0), 1.0) } }, lo: -.infinity, hi: length)
                }
            }
            row((0..<n).map { (xColumn($0), 1) }, lo: -.infinity, hi: Double(cap))

            return try UpperBound.withMaximisation { lp throws -> (met: Int, x: [Bool]?, exact: Bool) in
                glp_add_cols(lp, columns)
                for i in 0..<n {
                    glp_set_col_kind(lp, xColumn(i), GLP_BV)
                    glp_set_obj_coef(lp, xColumn(i), 1)
                    for d in degrees.indices {
                        glp_set_col_kind(lp, sColumn(i, d), GLP_IV)
                        glp_set_col_bnds(lp, sColumn(i, d), GLP_DB, 0, Double(steps[i]))
                    }
                    for e in window[i] {
                        for d in degrees.indices {
                            glp_set_col_bnds(lp, fColumn(i, e, d), GLP_DB, 0, lengths[e] + slack)
                        }
                    }
                }
                glp_add_rows(lp, Int32(bounds.count))
                for (k, b) in bounds.enumerated() {
                    let r = Int32(k + 1)
                    if b.lo == b.hi {
                        glp_set_row_bnds(lp, r, GLP_FX, b.lo, b.hi)
                    } else {
                        glp_set_row_bnds(lp, r, GLP_UP, 0, b.hi)
                    }
                }
                glp_load_matrix(lp, Int32(ia.count - 1), ia, ja, ar)

                var parm = glp_iocp()
                glp_init_iocp(&parm)
                parm.presolve = GLP_ON
                parm.msg_lev = GLP_MSG_OFF
                parm.mir_cuts = GLP_ON
                switch try UpperBound.integerSearch(
                    lp, parameters: parm, nodeLimit: Self.nodeLimit, ceiling: Double(cap))
                {
                case .stopped(let bound, _):
                    // At most `cap`: the search's ceiling.
                    return (bound, nil, false)
                case .optimum:
                    let x = (0..<n).map { glp_mip_col_val(lp, xColumn($0)) > 0.5 }
                    return (x.filter { $0 }.count, x, true)
                }
            }
        }
    }

    /// The requests (indices into `arrival`) in groups whose windows overlap: sorted by arrival, a
    /// request starts a new group when it arrives at or after every earlier deadline. Requests in
    /// different groups never run at the same instant, so each group's count is bounded alone.
    static func overlapGroups(arrival: [Micros], deadline: [Micros]) -> [[Int]] {
        let order = arrival.indices.sorted { (arrival[$0], deadline[$0], $0) < (arrival[$1], deadline[$1], $1) }
        var groups: [[Int]] = []
        var end = Micros.min
        for i in order {
            if groups.isEmpty || arrival[i] >= end {
                groups.append([i])
                end = deadline[i]
            } else {
                groups[groups.count - 1].append(i)
                end = max(end, deadline[i])
            }
        }
        return groups
    }
}
