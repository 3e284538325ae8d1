import DiTEngine
import Foundation
import Logging
import Testing

@testable import TetriCore
@testable import TetriServer

@Suite(.serialized) struct WatchdogTests {
    /// A worker stopped with SIGSTOP mid-block (alive, silent) is treated as a failed device once
    /// its step overruns the step timeout: it is killed and replaced, and the request continues
    /// from its last completed step to the same image as an undisturbed run.
    @Test func aHungWorkerIsReplacedAndTheRequestFinishesWithTheSameImage() async throws {
        let pool = try WorkerPool(options: try WorkerPool.Options(workers: 2, model: "tiny", seed: 0))
        let profile = Profile(
            name: "tiny-test", description: "", gpus: 2, degrees: [1, 2],
            resolutions: [
                "32x32": .init(latentTokens: 16, stepMs: ["1": 2, "2": 2]),
                "64x64": .init(latentTokens: 64, stepMs: ["1": 6, "2": 4]),
                "128x128": .init(latentTokens: 256, stepMs: ["1": 60, "2": 32]),
                "256x256": .init(latentTokens: 1024, stepMs: ["1": 800, "2": 400]),
            ])
        let backend = CPUBackend(pool: pool, costModel: try CostModel(profile: profile), stepTimeout: 10)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let loop = RoundLoop(
            backend: backend, scheduler: try Policies.make("tetriserve", model: backend.costModel, gpus: 2),
            clock: ServingClock(), metrics: ServerMetrics(), logger: logger)
        let reference = try generateReference(prompt: "a storm", size: "128x128", steps: 24, seed: 9)
        let s = try await loop.submit(
            GenerationJob(prompt: "a storm", width: 128, height: 128, steps: 24, seed: 9), deadline: 3_600_000_000)
        var victim = -1
        for _ in 0..<2000 {
            if let st = await loop.status(s.id), st.status == .running, st.stepsDone >= 2,
                let devices = st.history.last?.devices
            {
                victim = devices[0]
                break
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        let seen = await loop.status(s.id)
        try #require(victim >= 0, "\(String(describing: seen))")
        let before = pool.pids
        kill(before[victim], SIGSTOP)
        let final = await loop.wait(s.id)
        #expect(final?.status == .succeeded)
        #expect(final?.stepsDone == 24)
        expectSameImage(Data(await loop.image(s.id) ?? []), as: reference)
        #expect(pool.pids[victim] != before[victim])
        #expect(pool.unavailableWorkers == 0)
        // At least the stopped worker (a step that overran on a loaded machine counts too).
        let failures = loop.metrics.render().split(separator: "\n").first {
            $0.hasPrefix("tetriserve_device_failures_total ")
        }
        #expect((failures?.split(separator: " ").last.flatMap { Double($0) } ?? 0) >= 1)
        // The stopped process was killed, not left behind.
        #expect(kill(before[victim], 0) != 0)
        await backend.shutdown()
    }

    @Test func theStepTimeoutFollowsTheCostModel() throws {
        let pool = try WorkerPool(options: try WorkerPool.Options(workers: 1, model: "tiny", seed: 0))
        defer { pool.shutdown() }
        let profile = Profile(
            name: "t", description: "", gpus: 1, degrees: [1],
            resolutions: ["64x64": .init(latentTokens: 64, stepMs: ["1": 200])])
        let derived = CPUBackend(pool: pool, costModel: try CostModel(profile: profile))
        #expect(abs(derived.stepTimeout(resolution: 0, degree: 1) - (5 * 0.2 + 30)) < 1e-9)
        let fixed = CPUBackend(pool: pool, costModel: try CostModel(profile: profile), stepTimeout: 7)
        #expect(fixed.stepTimeout(resolution: 0, degree: 1) == 7)
    }
}
