import Foundation
import Logging
import Testing

@testable import TetriCore
@testable import TetriServer

/// Simulated devices that run every step `factor` times slower than the profile they advertise
/// (a profile measured on a quieter day).
struct SlowBackend: ForwardingBackend {
    let inner: SimulatedBackend
    let advertised: CostModel
    var costModel: CostModel { advertised }

    init(model: CostModel, factor: Double, devices: Int, clock: ServingClock) {
        inner = SimulatedBackend(
            model: model.scaled(by: model.stepTime.map { $0.map { _ in factor } }), devices: devices, clock: clock)
        advertised = model
    }
}

@Suite struct CalibrationTests {
    func makeSlowLoop(calibrate: Bool) throws -> RoundLoop {
        let model = try CostModel(profile: fluxProfile)
        let clock = ServingClock(timeScale: 10)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        var factory: RoundLoop.SchedulerFactory? = nil
        if calibrate {
            factory = { model in try Policies.make("tetriserve", model: model, gpus: 8) }
        }
        return RoundLoop(
            backend: SlowBackend(model: model, factor: 1.5, devices: 8, clock: clock),
            scheduler: try Policies.make("tetriserve", model: model, gpus: 8), clock: clock, metrics: ServerMetrics(),
            logger: logger, recalibrate: factory)
    }

    /// Runs requests one after another; returns the degrees their blocks ran at.
    func serve(_ loop: RoundLoop, count: Int) async throws -> Set<Int> {
        var degrees = Set<Int>()
        for i in 0..<count {
            let job = GenerationJob(prompt: "p\(i)", width: 1024, height: 1024, steps: 12, seed: UInt64(i))
            let s = try await loop.submit(job, deadline: loop.clock.now() + 600_000_000)
            let done = try #require(await loop.wait(s.id))
            #expect(done.status == .succeeded)
            degrees.formUnion(done.history.map(\.degree))
        }
        return degrees
    }

    /// Devices 1.5× slower than their profile: the loop learns the factor for the degrees it ran,
    /// plans with it, and exports it; without calibration it keeps the profile.
    @Test func theLoopLearnsStepTimesFromTheBlocksItRuns() async throws {
        let loop = try makeSlowLoop(calibrate: true)
        let degrees = try await serve(loop, count: 4)
        let model = await loop.model
        #expect(!degrees.isEmpty)
        for k in degrees {
            let ratio = Double(model.stepTime(resolution: 2, degree: k)) / Double(flux1024(k))
            #expect(ratio > 1.35 && ratio < 1.7, "degree \(k): \(ratio)")
        }
        #expect(await loop.calibration.samples[2].reduce(0, +) >= 4)
        let text = loop.metrics.render()
        let line = try #require(
            text.split(separator: "\n").first {
                $0.hasPrefix("tetriserve_step_time_seconds{") && $0.contains("resolution=\"1024x1024\"")
                    && $0.contains("degree=\"\(degrees.min()!)\"")
            })
        let exported = try #require(Double(line.split(separator: " ").last!))
        #expect(abs(exported - Double(model.stepTime(resolution: 2, degree: degrees.min()!)) / 1e6) < 1e-6)

        let fixed = try makeSlowLoop(calibrate: false)
        _ = try await serve(fixed, count: 2)
        #expect(await fixed.model == loop.calibration.base)
        #expect(await fixed.calibration.samples.joined().allSatisfy { $0 == 0 })
    }

    func flux1024(_ k: Int) -> Micros {
        (try? CostModel(profile: fluxProfile))!.stepTime(resolution: 2, degree: k)
    }
}
