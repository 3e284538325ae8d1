/// Minimal GPU-time allocation of a request's remaining steps (the first stage of the round
/// scheduler): split `steps` over at most two degrees, `n_hi` steps on a faster degree and
/// `n_lo` on a slower one, so that the total time fits `budget` and the total GPU-time
/// (Σ steps × width × step time) is least.
///
/// Two degrees, as in the scheduler's design; the search over every pair is exact for that
/// problem (tests compare it with brute force over all two-degree splits). An unrestricted split
/// over three or more degrees can occasionally be cheaper by a fraction of one step's cost; see
/// `docs/scheduler.md`.
public struct Allocation: Sendable, Equatable, CustomStringConvertible {
    /// `(option index, steps)` pairs with positive steps, faster option first.
    public var parts: [(option: Int, steps: Int)]
    /// Σ steps × time.
    public var time: Int64
    /// Σ steps × width × time.
    public var cost: Int64

    public static func == (lhs: Allocation, rhs: Allocation) -> Bool {
        lhs.time == rhs.time && lhs.cost == rhs.cost && lhs.parts.map(\.option) == rhs.parts.map(\.option)
            && lhs.parts.map(\.steps) == rhs.parts.map(\.steps)
    }

    public var description: String {
        parts.map { "\($0.option)x\($0.steps)" }.joined(separator: ",") + " time=\(time) cost=\(cost)"
    }
}

public enum MinimalAllocation {
    /// The cheapest split of `steps` over at most two of the options (`time[i]` per step on
    /// `width[i]` GPUs) whose total time is at most `budget`; nil when even the fastest option
    /// misses it. Ties on cost go to the shorter total time, then to the lower option indices.
    public static func solve(steps: Int, budget: Int64, time: [Int64], width: [Int]) -> Allocation? {
        guard steps > 0 else { return Allocation(parts: [], time: 0, cost: 0) }
        guard let b = search(steps: steps, budget: budget, time: time, width: width) else { return nil }
        var parts: [(option: Int, steps: Int)] = []
        if b.fastSteps > 0 { parts.append((b.fast, b.fastSteps)) }
        if b.slowSteps > 0 { parts.append((b.slow, b.slowSteps)) }
        return Allocation(parts: parts, time: b.time, cost: b.cost)
    }

    private struct Best {
        var cost: Int64
        var time: Int64
        var fast: Int
        var fastSteps: Int
        var slow: Int
        var slowSteps: Int

        func isWorse(than cost: Int64, _ time: Int64) -> Bool {
            cost < self.cost || (cost == self.cost && time < self.time)
        }
    }

    private static func search(steps: Int, budget: Int64, time: [Int64], width: [Int]) -> Best? {
        precondition(time.count == width.count)
        let n = time.count
        var best: Best? = nil
        let s = Int64(steps)
        for i in 0..<n {
            let ci = Int64(width[i]) * time[i]
            // All steps on option i.
            let ti = s * time[i]
            if ti <= budget, best?.isWorse(than: s * ci, ti) ?? true {
                best = Best(cost: s * ci, time: ti, fast: i, fastSteps: steps, slow: i, slowSteps: 0)
            }
            let excess = ti - budget
            guard excess > 0 else { continue }
            // x steps on a faster, costlier option j and the rest on i: the least x that fits.
            for j in 0..<n where time[j] < time[i] {
                let cj = Int64(width[j]) * time[j]
                guard cj > ci else { continue }  // j dominates i: the single-option case covers it
                let saving = time[i] - time[j]
                let x = (excess + saving - 1) / saving
                guard x < s else { continue }  // x == s is the single-option case for j
                let t = ti - x * saving
                let c = (s - x) * ci + x * cj
                if best?.isWorse(than: c, t) ?? true {
                    best = Best(cost: c, time: t, fast: j, fastSteps: Int(x), slow: i, slowSteps: steps - Int(x))
                }
            }
        }
        return best
    }

    /// The cost of ``solve(steps:budget:time:width:)``, without building the parts.
    public static func cost(steps: Int, budget: Int64, time: [Int64], width: [Int]) -> Int64? {
        guard steps > 0 else { return 0 }
        return search(steps: steps, budget: budget, time: time, width: width)?.cost
    }
}

extension MinimalAllocation {
    /// The least GPU-time (Σ steps × width × time) of running `steps` steps within `budget` over
    /// **any** mix of the options, nil when even the fastest option misses the budget.
    ///
    /// Exact: options that another option beats on both time and GPU-time per step are dropped
    /// (swapping such steps to the better option keeps every plan feasible and no costlier); the
    /// step counts of all but the two fastest remaining options are enumerated, and the two
    /// fastest take the rest in closed form (the fewest steps on the faster one that fit). Tests
    /// compare it with brute force over every mix.
    public static func exactCost(steps: Int, budget: Int64, time: [Int64], width: [Int]) -> Int64? {
        precondition(time.count == width.count)
        guard steps > 0 else { return 0 }
        // Non-dominated options, fastest first; GPU-time per step strictly falls as time rises.
        let order = time.indices.sorted {
            (time[$0], Int64(width[$0]) * time[$0]) < (time[$1], Int64(width[$1]) * time[$1])
        }
        var t: [Int64] = []
        var c: [Int64] = []
        for i in order {
            let ci = Int64(width[i]) * time[i]
            if let last = c.last, ci >= last { continue }
            t.append(time[i])
            c.append(ci)
        }
        guard Int64(steps) * t[0] <= budget else { return nil }
        var best = Int64.max
        // Two options left: `m` steps in `b` time over options 0 (faster) and 1 (cheaper).
        func pair(_ m: Int64, _ b: Int64, _ acc: Int64) {
            if t.count == 1 {
                if m * t[0] <= b { best = min(best, acc + m * c[0]) }
                return
            }
            let excess = m * t[1] - b
            let x = excess <= 0 ? 0 : (excess + t[1] - t[0] - 1) / (t[1] - t[0])
            guard x <= m else { return }
            best = min(best, acc + x * c[0] + (m - x) * c[1])
        }
        // Enumerate options 2... (slower and cheaper per step than 0 and 1).
        func enumerate(_ k: Int, _ m: Int64, _ b: Int64, _ acc: Int64) {
            if k < 2 || k >= t.count {
                pair(m, b, acc)
                return
            }
            var n: Int64 = 0
            while n <= m && n * t[k] <= b {
                // The rest must still fit at the fastest option.
                if (m - n) * t[0] <= b - n * t[k] { enumerate(k + 1, m - n, b - n * t[k], acc + n * c[k]) }
                n += 1
            }
        }
        enumerate(2, Int64(steps), budget, 0)
        return best == Int64.max ? nil : best
    }
}
