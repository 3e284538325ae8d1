import Foundation
import Testing

@testable import TetriCore

@Suite struct StepTimeCalibrationTests {
    /// The profiled seconds per step of class `r` at degree `k` on the FLUX profile.
    func profiled(_ r: Int, _ k: Int) -> Double { Double(flux.stepTime(resolution: r, degree: k)) / 1e6 }

    @Test func oneStepMovesTheFactorByTheRate() {
        var c = StepTimeCalibration(base: flux, rate: 0.25, margin: 0, floor: nil)
        c.observe(resolution: 2, degree: 4, steps: 1, seconds: 2 * profiled(2, 4))
        // 1 + 0.25 × (2 − 1)
        #expect(abs(c.factor(resolution: 2, degreeIndex: 2) - 1.25) < 1e-12)
        // A block of 3 steps weighs 1 − 0.75³ = 0.578125.
        var d = StepTimeCalibration(base: flux, rate: 0.25, margin: 0, floor: nil)
        d.observe(resolution: 2, degree: 4, steps: 3, seconds: 3 * 2 * profiled(2, 4))
        #expect(abs(d.factor(resolution: 2, degreeIndex: 2) - (1 + 0.578125)) < 1e-12)
        #expect(c.samples[2][2] == 1 && c.samples[2][0] == 0)
    }

    @Test func repeatedSamplesConverge() {
        var c = StepTimeCalibration(base: flux, margin: 0, floor: nil)
        for _ in 0..<40 { c.observe(resolution: 3, degree: 8, steps: 5, seconds: 5 * 1.3 * profiled(3, 8)) }
        #expect(abs(c.factor(resolution: 3, degreeIndex: 3) - 1.3) < 1e-6)
        let model = c.model
        #expect(
            model.stepTime(resolution: 3, degree: 8)
                == Micros(
                    (Double(flux.stepTime(resolution: 3, degree: 8)) * c.factor(resolution: 3, degreeIndex: 3))
                        .rounded()))
    }

    /// An unobserved degree takes its class's mean factor; a class never observed, the mean of
    /// every observed factor; nothing observed, 1.
    @Test func unobservedCellsFollowWhatWasObserved() {
        var c = StepTimeCalibration(base: flux, rate: 1, margin: 0, floor: nil)
        #expect(c.factors.joined().allSatisfy { $0 == 1 })
        #expect(c.model == flux)
        c.observe(resolution: 1, degree: 1, steps: 2, seconds: 2 * 1.5 * profiled(1, 1))
        c.observe(resolution: 1, degree: 2, steps: 2, seconds: 2 * 2.5 * profiled(1, 2))
        #expect(abs(c.factor(resolution: 1, degreeIndex: 0) - 1.5) < 1e-12)
        #expect(abs(c.factor(resolution: 1, degreeIndex: 2) - 2) < 1e-12)
        #expect(abs(c.factor(resolution: 0, degreeIndex: 3) - 2) < 1e-12)
        c.observe(resolution: 3, degree: 8, steps: 1, seconds: 0.5 * profiled(3, 8))
        #expect(abs(c.factor(resolution: 0, degreeIndex: 0) - 1.5) < 1e-12)
        #expect(abs(c.factor(resolution: 3, degreeIndex: 0) - 0.5) < 1e-12)
    }

    /// The default plans with mean + 1 standard deviation and never below the profile.
    @Test func theDefaultLeansToTheSlowSideAndKeepsTheProfileAsFloor() {
        var c = StepTimeCalibration(base: flux, rate: 0.5)
        // Mean 1 + 0.5 × 0.4 = 1.2; variance 0.5 × (0 + 0.5 × 0.16) = 0.04; planned 1.2 + 0.2.
        c.observe(resolution: 1, degree: 2, steps: 1, seconds: 1.4 * profiled(1, 2))
        #expect(abs(c.meanFactor(resolution: 1, degreeIndex: 1)! - 1.2) < 1e-12)
        #expect(abs(c.factor(resolution: 1, degreeIndex: 1) - 1.4) < 1e-12)
        // Alternating samples keep a spread: the planned factor stays above the mean.
        for i in 0..<20 {
            c.observe(resolution: 1, degree: 2, steps: 1, seconds: (i % 2 == 0 ? 1.2 : 1.6) * profiled(1, 2))
        }
        let mean = c.meanFactor(resolution: 1, degreeIndex: 1)!
        #expect(mean > 1.3 && mean < 1.5)
        #expect(c.factor(resolution: 1, degreeIndex: 1) > mean + 0.1)
        // Steps faster than the profile: the mean follows, the plan stays at the profile.
        var fast = StepTimeCalibration(base: flux, rate: 1)
        fast.observe(resolution: 0, degree: 1, steps: 3, seconds: 3 * 0.6 * profiled(0, 1))
        #expect(abs(fast.meanFactor(resolution: 0, degreeIndex: 0)! - 0.6) < 1e-12)
        #expect(fast.factor(resolution: 0, degreeIndex: 0) == 1)
        #expect(fast.model == flux)
    }

    @Test func outliersAreClampedAndNonsenseIgnored() {
        var c = StepTimeCalibration(base: flux, rate: 1, margin: 0, floor: nil)
        c.observe(resolution: 0, degree: 1, steps: 1, seconds: 100 * profiled(0, 1))
        #expect(c.factor(resolution: 0, degreeIndex: 0) == 4)
        c.observe(resolution: 0, degree: 1, steps: 1, seconds: 1e-9)
        #expect(c.factor(resolution: 0, degreeIndex: 0) == 0.25)
        let before = c
        c.observe(resolution: 0, degree: 1, steps: 0, seconds: 1)
        c.observe(resolution: 0, degree: 3, steps: 1, seconds: 1)
        c.observe(resolution: 9, degree: 1, steps: 1, seconds: 1)
        c.observe(resolution: 0, degree: 1, steps: 1, seconds: .nan)
        c.observe(resolution: 0, degree: 1, steps: 1, seconds: -1)
        #expect(c == before)
    }

    @Test func driftIsTheLargestRelativeChange() {
        let start = StepTimeCalibration(base: flux, rate: 1, margin: 0, floor: nil)
        var c = start
        c.observe(resolution: 2, degree: 2, steps: 1, seconds: 1.1 * profiled(2, 2))
        // That class's other degrees follow at 1.1 too; every other class at the mean 1.1.
        #expect(abs(c.drift(from: start) - 0.1) < 1e-9)
        #expect(c.drift(from: c) == 0)
    }

    /// Scaling multiplies each step time and the topology's crossing time of the same cell.
    @Test func scalingCoversCrossingTimes() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let data = try Data(contentsOf: root.appendingPathComponent("profiles/sd3-medium-a40x4.json"))
        let sd3 = try CostModel(profile: try JSONDecoder().decode(Profile.self, from: data))
        let cross = try #require(sd3.topology?.crossStepTime)
        #expect(!cross.isEmpty)
        var rng = TestRandom(state: 11)
        let factors = sd3.stepTime.map { $0.map { _ in Double.random(in: 0.5...2, using: &rng) } }
        let scaled = sd3.scaled(by: factors)
        for r in sd3.stepTime.indices {
            for d in sd3.stepTime[r].indices {
                #expect(scaled.stepTime[r][d] == max(1, Micros((Double(sd3.stepTime[r][d]) * factors[r][d]).rounded())))
                #expect(
                    scaled.topology?.crossStepTime[r][d]
                        == cross[r][d].map { max(1, Micros((Double($0) * factors[r][d]).rounded())) })
            }
        }
        #expect(scaled.degrees == sd3.degrees && scaled.resolutions == sd3.resolutions)
        #expect(scaled.topology?.island == sd3.topology?.island)
    }
}
