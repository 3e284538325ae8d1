import Testing

@testable import TetriCore

@Suite struct AdmissionTests {
    /// Whether `jobs`, taken by deadline, fit: every prefix's need by its deadline.
    func fits(_ jobs: [(deadline: Micros, need: Int64)], rate: Int64) -> Bool {
        var total: Int64 = 0
        for j in jobs.sorted(by: { $0.deadline < $1.deadline }) {
            total += j.need
            if total > rate * j.deadline { return false }
        }
        return true
    }

    @Test func mooreHodgsonKeepsTheLargestSetThatFits() {
        var rng = TestRandom(state: 77)
        var dropping = 0
        for _ in 0..<2000 {
            let n = 1 + Int(rng.next() % 8)
            let rate = Int64(1 + rng.next() % 8)
            let jobs: [(deadline: Micros, need: Int64)] = (0..<n).map { _ in
                (Micros(1 + rng.next() % 20), Int64(1 + rng.next() % 40))
            }
            let dropped = RoundScheduler.mooreHodgson(jobs, rate: rate)
            let kept = jobs.indices.filter { !dropped.contains($0) }.map { jobs[$0] }
            #expect(fits(kept, rate: rate), "jobs \(jobs) rate \(rate) dropped \(dropped)")
            var best = 0
            for mask in 0..<(1 << n) {
                let subset = jobs.indices.filter { mask & (1 << $0) != 0 }.map { jobs[$0] }
                if subset.count > best && fits(subset, rate: rate) { best = subset.count }
            }
            #expect(kept.count == best, "jobs \(jobs) rate \(rate): kept \(kept.count), best \(best)")
            if !dropped.isEmpty { dropping += 1 }
        }
        #expect(dropping > 300)
    }
}
