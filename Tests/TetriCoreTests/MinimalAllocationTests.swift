import Testing

@testable import TetriCore

@Suite struct MinimalAllocationTests {
    /// Every split of `steps` over at most two options: (cost, time) of the cheapest that fits,
    /// ties to the shorter time.
    func bruteForce(steps: Int, budget: Int64, time: [Int64], width: [Int]) -> (cost: Int64, time: Int64)? {
        var best: (cost: Int64, time: Int64)? = nil
        for i in time.indices {
            for j in time.indices where j >= i {
                for x in 0...steps {
                    let t = Int64(x) * time[i] + Int64(steps - x) * time[j]
                    guard t <= budget else { continue }
                    let c = Int64(x) * Int64(width[i]) * time[i] + Int64(steps - x) * Int64(width[j]) * time[j]
                    if best == nil || c < best!.cost || (c == best!.cost && t < best!.time) { best = (c, t) }
                }
            }
        }
        return best
    }

    @Test func equalsBruteForceOverAllTwoDegreeSplits() {
        var rng = TestRandom(state: 42)
        var feasible = 0
        for _ in 0..<3000 {
            let n = 1 + Int(rng.next() % 4)
            let width = (0..<n).map { 1 << $0 }
            // Random, not necessarily monotone, step times.
            let time = (0..<n).map { _ in Int64(10 + rng.next() % 200) }
            let steps = 1 + Int(rng.next() % 30)
            let minT = Int64(steps) * time.min()!
            let maxT = Int64(steps) * time.max()!
            let budget = minT - 20 + Int64(rng.next() % UInt64(maxT - minT + 40))
            let fast = MinimalAllocation.solve(steps: steps, budget: budget, time: time, width: width)
            let slow = bruteForce(steps: steps, budget: budget, time: time, width: width)
            #expect(fast?.cost == slow?.cost, "time \(time) steps \(steps) budget \(budget)")
            #expect(fast?.time == slow?.time, "time \(time) steps \(steps) budget \(budget)")
            #expect(MinimalAllocation.cost(steps: steps, budget: budget, time: time, width: width) == slow?.cost)
            if let fast {
                feasible += 1
                #expect(fast.parts.map(\.steps).reduce(0, +) == steps)
                #expect(fast.parts.count <= 2)
                let t = fast.parts.reduce(Int64(0)) { $0 + Int64($1.steps) * time[$1.option] }
                let c = fast.parts.reduce(Int64(0)) { $0 + Int64($1.steps) * Int64(width[$1.option]) * time[$1.option] }
                #expect(t == fast.time && c == fast.cost && t <= budget)
            }
        }
        #expect(feasible > 1000)
    }

    @Test func mixesTwoDegreesWithTheFewestFastSteps() throws {
        // 10 steps, 100 per step at width 1, 60 at width 2: budget 800 needs x with
        // 1000 − 40x ≤ 800 → x = 5.
        let a = try #require(MinimalAllocation.solve(steps: 10, budget: 800, time: [100, 60], width: [1, 2]))
        #expect(a.parts.map(\.option) == [1, 0])
        #expect(a.parts.map(\.steps) == [5, 5])
        #expect(a.time == 800 && a.cost == 5 * 120 + 5 * 100)
        #expect(MinimalAllocation.solve(steps: 10, budget: 599, time: [100, 60], width: [1, 2]) == nil)
        #expect(MinimalAllocation.solve(steps: 10, budget: 2000, time: [100, 60], width: [1, 2])?.cost == 1000)
    }
}
