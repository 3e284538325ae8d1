/// The packing stage of the round scheduler: a group (multiple-choice) knapsack. Each group
/// (request) offers options of some width (GPUs); pick exactly one option per group (width-0
/// "none" included by the caller) with total width at most the capacity, maximising the number
/// of surviving options and, among those, minimising the summed cost; on equal scores a group
/// runs rather than waits (the GPUs would otherwise idle).
///
/// `dp[c]` is the best (survivors, −cost) with at most `c` GPUs over the groups seen so far;
/// each group takes the best option per `c`, with back-pointers to recover the choice.
/// O(groups × capacity × options).
public enum GroupKnapsack {
    public struct Option: Sendable, Equatable {
        public var width: Int
        public var survives: Bool
        public var cost: Int64

        public init(width: Int, survives: Bool, cost: Int64) {
            self.width = width
            self.survives = survives
            self.cost = cost
        }
    }

    /// A knapsack value: survivors first, then least cost.
    public struct Score: Sendable, Equatable {
        public var survivors: Int32
        public var cost: Int64

        @inline(__always)
        public func isBetter(than other: Score) -> Bool {
            survivors > other.survivors || (survivors == other.survivors && cost < other.cost)
        }
    }

    /// Solves the packing. Group `g` owns `options[groupStart[g]..<groupStart[g + 1]]`
    /// (`groupStart` has one more entry than there are groups). Every group must offer an
    /// option of width 0. Returns the chosen option index (into `options`) per group.
    public static func solve(options: [Option], groupStart: [Int], capacity: Int) -> [Int] {
        let groups = groupStart.count - 1
        guard groups > 0 else { return [] }
        let width = capacity + 1
        var dp = [Score](repeating: Score(survivors: 0, cost: 0), count: width)
        var next = dp
        var back = [UInt8](repeating: 0, count: groups * width)
        options.withUnsafeBufferPointer { opts in
            for g in 0..<groups {
                let lo = groupStart[g]
                let hi = groupStart[g + 1]
                precondition(hi - lo <= 256, "a group offers at most 256 options")
                for cap in 0..<width {
                    var best = Score(survivors: -1, cost: 0)
                    var bestOption = 0
                    for o in lo..<hi where opts[o].width <= cap {
                        let prev = dp[cap - opts[o].width]
                        let value = Score(
                            survivors: prev.survivors + (opts[o].survives ? 1 : 0), cost: prev.cost + opts[o].cost)
                        // On a tie, running beats waiting: equal survivors at equal cost, and
                        // the GPUs would otherwise idle.
                        if value.isBetter(than: best)
                            || (value == best && opts[lo + bestOption].width == 0 && opts[o].width > 0)
                        {
                            best = value
                            bestOption = o - lo
                        }
                    }
                    next[cap] = best
                    back[g * width + cap] = UInt8(bestOption)
                }
                swap(&dp, &next)
            }
        }
        var cap = capacity
        var chosen = [Int](repeating: 0, count: groups)
        for g in (0..<groups).reversed() {
            let o = groupStart[g] + Int(back[g * width + cap])
            chosen[g] = o
            cap -= options[o].width
        }
        return chosen
    }

    /// The score of a choice.
    public static func score(options: [Option], chosen: [Int]) -> Score {
        var s = Score(survivors: 0, cost: 0)
        for o in chosen {
            s.survivors += options[o].survives ? 1 : 0
            s.cost += options[o].cost
        }
        return s
    }
}
