import Testing

@testable import TetriCore

@Suite struct GroupKnapsackTests {
    /// Enumerates every choice of one option per group.
    func bruteForce(_ options: [GroupKnapsack.Option], _ start: [Int], capacity: Int) -> GroupKnapsack.Score {
        var best = GroupKnapsack.Score(survivors: -1, cost: 0)
        func go(_ g: Int, _ width: Int, _ score: GroupKnapsack.Score) {
            if g == start.count - 1 {
                if score.isBetter(than: best) { best = score }
                return
            }
            for o in start[g]..<start[g + 1] where width + options[o].width <= capacity {
                go(
                    g + 1, width + options[o].width,
                    .init(
                        survivors: score.survivors + (options[o].survives ? 1 : 0), cost: score.cost + options[o].cost))
            }
        }
        go(0, 0, .init(survivors: 0, cost: 0))
        return best
    }

    @Test func optimalOnRandomSmallInstances() {
        var rng = TestRandom(state: 2024)
        for _ in 0..<3000 {
            let groups = 1 + Int(rng.next() % 6)
            let capacity = Int(rng.next() % 9)
            var options: [GroupKnapsack.Option] = []
            var start: [Int] = []
            for _ in 0..<groups {
                start.append(options.count)
                options.append(.init(width: 0, survives: rng.next() % 3 == 0, cost: Int64(rng.next() % 50)))
                for w in [1, 2, 4, 8] where rng.next() % 3 != 0 {
                    options.append(.init(width: w, survives: rng.next() % 2 == 0, cost: Int64(rng.next() % 50)))
                }
            }
            start.append(options.count)
            let chosen = GroupKnapsack.solve(options: options, groupStart: start, capacity: capacity)
            #expect(chosen.count == groups)
            for (g, o) in chosen.enumerated() { #expect(o >= start[g] && o < start[g + 1]) }
            #expect(chosen.map { options[$0].width }.reduce(0, +) <= capacity)
            let got = GroupKnapsack.score(options: options, chosen: chosen)
            let want = bruteForce(options, start, capacity: capacity)
            #expect(got == want)
        }
    }
}
