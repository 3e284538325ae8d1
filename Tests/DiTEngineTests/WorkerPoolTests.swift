import Foundation
import Testing
import TetriCore

@testable import DiTEngine

/// A pool of `tetriserve worker` processes running the tiny model with the weights of
/// ``tinyModel`` (seed 42).
func makeTinyPool(workers: Int) throws -> WorkerPool {
    try WorkerPool(
        options: WorkerPool.Options(workers: workers, model: "tiny", seed: 42, maxImageTokens: 256, heapBytes: 16 << 20)
    )
}

/// The pool and in-process reference of the tiny model (`scenes` false) or of
/// ``tinySceneModel`` loaded by the workers from a weights file (`scenes` true); `cleanup`
/// removes the file.
func makePool(workers: Int, scenes: Bool) throws -> (pool: WorkerPool, reference: LocalEngine, cleanup: () -> Void) {
    guard scenes else { return (try makeTinyPool(workers: workers), LocalEngine(model: tinyModel), {}) }
    let path = try writeTinySceneWeights()
    let pool = try WorkerPool(
        options: WorkerPool.Options(
            workers: workers, model: "tiny", seed: 0, weights: path, maxImageTokens: 256, heapBytes: 16 << 20))
    #expect(pool.config == tinySceneConfig)
    return (pool, LocalEngine(model: tinySceneModel), { try? FileManager.default.removeItem(atPath: path) })
}

final class Box<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: T

    init(_ value: T) { stored = value }

    var value: T {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}

@Suite(.serialized) struct WorkerPoolTests {
    @Test func workersReportTheConfiguredOpenBLASCore() throws {
        let pool = try makeTinyPool(workers: 2)
        defer { pool.shutdown() }
        #expect(pool.workerCount == 2)
        if let want = BLAS.configuredCoreType() {
            #expect(pool.coreNames.allSatisfy { $0.lowercased() == want.lowercased() })
        }
        #expect(Set(pool.pids).count == 2)
    }

    /// Random prompts, sizes and degree plans (degree changing every step, groups on rotating and
    /// scattered workers) give the degree-1 latent.
    /// Also for the scene options (words, x-prediction, canvas RoPE) on weights from a file.
    @Test(arguments: [false, true]) func poolMatchesDegreeOneForRandomPlans(scenes: Bool) throws {
        let (pool, reference, cleanup) = try makePool(workers: 3, scenes: scenes)
        defer {
            pool.shutdown()
            cleanup()
        }
        var rng = SplitMix64(seed: 2024)
        let words = ["fox", "river", "red", "castle", "circle", "a", "quiet", "white", "tower", "on", "background"]
        for trial in 0..<6 {
            let prompt = (0..<(1 + Int(rng.next() % 6))).map { _ in words[Int(rng.next() % UInt64(words.count))] }
                .joined(separator: " ")
            let width = 8 * (1 + Int(rng.next() % 6))
            let height = 8 * (1 + Int(rng.next() % 6))
            let steps = 2 + Int(rng.next() % 4)
            // Trial 0 changes degree every step; the others draw a random degree per step.
            let degrees = (0..<steps).map { i in trial == 0 ? [1, 3, 2, 3, 1][i % 5] : 1 + Int(rng.next() % 3) }
            var blocks: [(degree: Int, steps: Int)] = []
            for k in degrees {
                if let last = blocks.last, last.degree == k {
                    blocks[blocks.count - 1].steps += 1
                } else {
                    blocks.append((k, 1))
                }
            }
            let plan = DegreePlan(blocks: blocks)
            // Each step's group: a random subset of the workers in a random order.
            let groups = degrees.map { k in Array([0, 1, 2].shuffled(using: &rng).prefix(k)) }
            let request = GenerationRequest(
                prompt: prompt, width: width, height: height, steps: steps, seed: rng.next() % 1000)
            let want = try reference.generateLatent(request)
            let got = try pool.generate(request, plan: plan, placement: { step, _ in groups[step] })
            #expect(got.latent.count == want.count)
            #expect(relativeError(got.latent, want) <= 1e-4, "trial \(trial): \(request) plan \(plan) groups \(groups)")
        }
    }

    @Test func groupsMustNameDistinctExistingWorkers() throws {
        let pool = try makeTinyPool(workers: 2)
        defer { pool.shutdown() }
        let request = GenerationRequest(prompt: "x", width: 16, height: 16, steps: 1, seed: 1)
        #expect(throws: EngineError.self) {
            try pool.generate(request, plan: .uniform(degree: 2, steps: 1), placement: { _, _ in [1, 1] })
        }
        #expect(throws: EngineError.self) { try pool.generate(request, plan: .uniform(degree: 3, steps: 1)) }
        // The pool still works after rejected requests.
        let ok = try pool.generate(request, plan: .uniform(degree: 2, steps: 1))
        #expect(relativeError(ok.latent, try LocalEngine(model: tinyModel).generateLatent(request)) <= 1e-4)
    }

    /// Killing a worker during a request's steps fails that block with an error naming the
    /// worker; a request running at the same time on another worker finishes with the right
    /// latent; the failed request keeps the latent of its last completed step and finishes on
    /// other workers with the right latent; the pool (with a replacement worker) serves the next
    /// request correctly.
    @Test(arguments: [false, true]) func workerDeathIsReportedAndThePoolRecovers(scenes: Bool) throws {
        let (pool, reference, cleanup) = try makePool(workers: 3, scenes: scenes)
        defer {
            pool.shutdown()
            cleanup()
        }
        let pids = pool.pids
        let other = GenerationRequest(prompt: "unrelated request", width: 64, height: 64, steps: 12, seed: 5)
        let victim = GenerationRequest(
            prompt: "request that loses a worker", width: 64, height: 96, steps: 30, seed: 6)

        let otherResult = Box<Result<[Float], any Error>?>(nil)
        let otherDone = DispatchSemaphore(value: 0)
        Thread {
            otherResult.value = Result { try pool.generate(other, placement: { _, _ in [0] }).latent }
            otherDone.signal()
        }.start()

        let stepsStarted = Box(0)
        let killer = DispatchSemaphore(value: 0)
        Thread {
            while stepsStarted.value < 3 { usleep(1000) }
            usleep(3000)
            kill(pids[2], SIGKILL)
            killer.signal()
        }.start()
        let job = try pool.begin(victim)
        defer { pool.release(job) }
        var caught: EngineError?
        do {
            try pool.run(
                job, steps: victim.steps, on: [1, 2],
                shouldStop: {
                    stepsStarted.value += 1
                    return false
                })
        } catch let error as EngineError {
            caught = error
        }
        killer.wait()
        otherDone.wait()

        guard case .workerDied(let worker, let pid, let detail) = caught else {
            Issue.record("expected workerDied, got \(String(describing: caught))")
            return
        }
        #expect(worker == 2)
        #expect(pid == pids[2])
        #expect(detail.contains("signal 9"))
        #expect(caught!.description.contains("worker 2"))
        #expect(job.stepsDone >= 2 && job.stepsDone < victim.steps)

        let otherLatent = try #require(try otherResult.value?.get())
        #expect(otherLatent == (try reference.generateLatent(other)))

        // The failed request continues from its last completed step on other workers.
        try pool.run(job, steps: victim.steps - job.stepsDone, on: [0, 1])
        #expect(job.isFinished)
        #expect(relativeError(try pool.latent(job), try reference.generateLatent(victim)) <= 1e-4)

        // Worker 2 was replaced and the group that lost it works again.
        #expect(pool.pids[2] != pids[2])
        #expect(pool.pids[0] == pids[0] && pool.pids[1] == pids[1])
        let again = GenerationRequest(prompt: "after the failure", width: 24, height: 40, steps: 3, seed: 7)
        let got = try pool.generate(again, plan: .uniform(degree: 2, steps: 3), placement: { _, _ in [2, 1] })
        #expect(relativeError(got.latent, try reference.generateLatent(again)) <= 1e-4)
    }

    /// Steps abandoned by the watchdog (a stopped worker, before the prompt encoding, in a
    /// degree-2 step and in a degree-1 step, killed and replaced) change nothing: retried on the
    /// same groups, the request ends with exactly the latent of an undisturbed run, bit for bit.
    @Test func stepsAbandonedByTheWatchdogLeaveTheLatentUnchanged() throws {
        let pool = try makeTinyPool(workers: 2)
        defer { pool.shutdown() }
        let request = GenerationRequest(prompt: "watchdog", width: 64, height: 96, steps: 8, seed: 4)
        let groups: [[Int]] = (0..<request.steps).map { [[0, 1], [1], [0], [1, 0]][$0 % 4] }
        let calm = try pool.begin(request)
        defer { pool.release(calm) }
        for g in groups { try pool.run(calm, steps: 1, on: g) }
        let want = try pool.latent(calm)

        let job = try pool.begin(request)
        defer { pool.release(job) }
        for (i, g) in groups.enumerated() {
            if [0, 3, 6].contains(i) {
                let pid = pool.pids[g[0]]
                kill(pid, SIGSTOP)
                #expect(throws: EngineError.self) { try pool.run(job, steps: 1, on: g, stepTimeout: 0.2) }
                #expect(job.stepsDone == i)
                #expect(pool.pids[g[0]] != pid)
                #expect(kill(pid, 0) != 0, "the stopped worker was killed and reaped")
            }
            try pool.run(job, steps: 1, on: g)
        }
        #expect(job.isFinished)
        #expect(try pool.latent(job) == want)
    }

    /// A step that takes longer than the step timeout while its workers keep computing (a slow
    /// step on a loaded host) is waited for, not taken for a hang: nobody is killed.
    @Test func aSlowButWorkingStepIsNotTakenForAHang() throws {
        let pool = try makeTinyPool(workers: 2)
        defer { pool.shutdown() }
        let pids = pool.pids
        let request = GenerationRequest(prompt: "slow", width: 128, height: 128, steps: 4, seed: 2)
        let job = try pool.begin(request)
        defer { pool.release(job) }
        // Far shorter than any step of this size (tens of milliseconds).
        try pool.run(job, steps: 2, on: [0], stepTimeout: 0.001)
        try pool.run(job, steps: 2, on: [1, 0], stepTimeout: 0.001)
        #expect(job.isFinished)
        #expect(pool.pids == pids)
        let want = try LocalEngine(model: tinyModel).generateLatent(request)
        #expect(relativeError(try pool.latent(job), want) <= 1e-4)
    }

    /// A worker that dies while idle (between commands) is noticed and replaced without waiting
    /// for a command, and the group it belongs to computes the same latent as before.
    @Test func anIdleWorkerThatDiesIsReplaced() throws {
        let pool = try makeTinyPool(workers: 2)
        defer { pool.shutdown() }
        let request = GenerationRequest(prompt: "idle death", width: 32, height: 32, steps: 3, seed: 8)
        let before = try pool.generate(request, plan: .uniform(degree: 2, steps: 3)).latent
        let pids = pool.pids
        kill(pids[1], SIGKILL)
        var replaced = false
        for _ in 0..<300 {
            if pool.pids[1] != pids[1] && pool.pids[1] > 0 && pool.unavailableWorkers == 0 {
                replaced = true
                break
            }
            usleep(20_000)
        }
        #expect(replaced)
        #expect(kill(pids[1], 0) != 0, "the dead worker was reaped")
        #expect(pool.pids[0] == pids[0])
        #expect(try pool.generate(request, plan: .uniform(degree: 2, steps: 3)).latent == before)
        // A command that races the supervisor ends too: it either finds the replacement or
        // reports the death, and the request then completes.
        kill(pool.pids[0], SIGKILL)
        let job = try pool.begin(request)
        defer { pool.release(job) }
        do { try pool.run(job, steps: 3, on: [0, 1]) } catch EngineError.workerDied {}
        try pool.run(job, steps: 3 - job.stepsDone, on: [0, 1])
        #expect(try pool.latent(job) == before)
    }

    /// A replacement worker that hangs before answering its hello (here: the executable starts the
    /// real worker twice, then only a sleeping process) is killed after the hello timeout and
    /// retried a bounded number of times; then the worker is down, the pool keeps its lock free
    /// (shutdown and commands on it return), and the other worker still computes.
    @Test func aReplacementThatHangsAtStartIsGivenUp() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
            "tsv-hang-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let starts = dir.appendingPathComponent("starts").path
        let script = dir.appendingPathComponent("worker.sh").path
        let real = try WorkerPool.locateExecutable()
        try """
        #!/bin/sh
        echo x >> '\(starts)'
        if [ "$(wc -l < '\(starts)')" -gt 2 ]; then exec sleep 600; fi
        exec '\(real)' "$@"

        """.write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        let pool = try WorkerPool(
            options: WorkerPool.Options(
                workers: 2, model: "tiny", seed: 42, maxImageTokens: 256, heapBytes: 16 << 20, executable: script,
                helloTimeout: 1))
        defer { pool.shutdown() }
        let request = GenerationRequest(prompt: "hang at start", width: 32, height: 32, steps: 2, seed: 3)
        let before = try pool.generate(request, plan: .uniform(degree: 1, steps: 2)).latent
        kill(pool.pids[1], SIGKILL)
        var down = false
        for _ in 0..<1500 {
            if pool.pids[1] == 0 && pool.unavailableWorkers == 1 {
                down = true
                break
            }
            usleep(20_000)
        }
        #expect(down, "the worker is down after the replacements hung")
        let lines = try String(contentsOfFile: starts, encoding: .utf8).split(separator: "\n").count
        #expect(lines == 2 + WorkerPool.replacementAttempts)
        // A command on the down worker tries again and reports it; worker 0 still computes.
        let job = try pool.begin(request)
        defer { pool.release(job) }
        #expect(throws: EngineError.self) { try pool.run(job, steps: 2, on: [1]) }
        try pool.run(job, steps: 2, on: [0])
        #expect(try pool.latent(job) == before)
    }

    /// Blocks of a request run on different groups through the session API give the degree-1
    /// latent, and the PNG of a finished request decodes to its pixels.
    @Test func blocksOnChangingGroupsMatchDegreeOne() throws {
        let pool = try makeTinyPool(workers: 3)
        defer { pool.shutdown() }
        let request = GenerationRequest(prompt: "blocks", width: 48, height: 40, steps: 7, seed: 12)
        let job = try pool.begin(request)
        defer { pool.release(job) }
        try pool.run(job, steps: 2, on: [2])
        try pool.run(job, steps: 3, on: [1, 0, 2])
        #expect(try pool.run(job, steps: 2, on: [0, 2], shouldStop: { job.stepsDone == 6 }).count == 1)
        #expect(job.stepsDone == 6)
        try pool.run(job, steps: 1, on: [1])
        #expect(job.isFinished)
        #expect(throws: EngineError.self) { try pool.run(job, steps: 1, on: [0]) }
        let want = try LocalEngine(model: tinyModel).generateLatent(request)
        #expect(relativeError(try pool.latent(job), want) <= 1e-4)
        let decoded = try PNG.decode([UInt8](try pool.png(job)))
        let pixels = Patches.toBytes(Patches.unpatchify(try pool.latent(job), config: .tiny, width: 48, height: 40))
        #expect(decoded.rgb == pixels)
    }
}

@Suite(.serialized) struct CommandLineTests {
    /// `tetriserve generate` with a degree-changing plan writes a PNG whose pixels are the
    /// in-process degree-1 image.
    @Test func generateWritesThePlanIndependentImage() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("gen-\(getpid()).png").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try WorkerPool.locateExecutable())
        process.arguments = [
            "generate", "--prompt", "a small test", "--size", "40x24", "--steps", "4", "--seed", "3", "--model",
            "tiny", "--weights-seed", "42", "--plan", "2x1,1x1,2x2", "--rotate", "--workers", "3", "--out", out,
        ]
        process.standardError = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let decoded = try PNG.decode([UInt8](try Data(contentsOf: URL(fileURLWithPath: out))))
        #expect(decoded.width == 40 && decoded.height == 24)
        let want = try LocalEngine(model: tinyModel).generateImage(
            GenerationRequest(prompt: "a small test", width: 40, height: 24, steps: 4, seed: 3))
        // Latents agree to float rounding, so 8-bit pixels agree to within one level.
        #expect(zip(decoded.rgb, want).allSatisfy { abs(Int($0) - Int($1)) <= 1 })
    }

    /// Workers load weights from a safetensors file when the pool names one.
    @Test func workersLoadSafetensorsWeights() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("pool-\(getpid()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try tinyModel.weights.save(to: path)
        let pool = try WorkerPool(
            options: WorkerPool.Options(
                workers: 2, model: "tiny", seed: 0, weights: path, maxImageTokens: 64, heapBytes: 4 << 20))
        defer { pool.shutdown() }
        let request = GenerationRequest(prompt: "from a file", width: 16, height: 32, steps: 2, seed: 8)
        let got = try pool.generate(request, plan: .uniform(degree: 2, steps: 2))
        #expect(relativeError(got.latent, try LocalEngine(model: tinyModel).generateLatent(request)) <= 1e-4)
    }
}

@Suite(.serialized) struct ProfilerTests {
    /// The profiler's output is a profile the scheduler's cost model accepts, with the classes'
    /// token counts and a positive median for every degree.
    @Test func profileFeedsTheCostModel() throws {
        let pool = try makeTinyPool(workers: 2)
        defer { pool.shutdown() }
        let profiler = Profiler(warmup: 1, repetitions: 2)
        let classes = Array(ModelConfig.tiny.resolutionClasses.prefix(2))
        let measurements = try profiler.measureAll(pool: pool, classes: classes, degrees: [1, 2, 4])
        #expect(measurements.count == 4)
        #expect(measurements.allSatisfy { $0.samplesMs.count == 2 && $0.stepMs > 0 })
        let profile = Profiler.profile(measurements, name: "test", description: "tiny", workers: 2)
        let data = try JSONEncoder().encode(profile)
        let decoded = try JSONDecoder().decode(Profile.self, from: data)
        let model = try CostModel(profile: decoded)
        #expect(model.degrees == [1, 2])
        #expect(model.resolutionNames == ["32x32", "64x64"])
        #expect(model.latentTokens == [16, 64])
    }

    /// Under full load every group of the pool runs the class at once: two degree-1 requests on a
    /// 2-worker pool give twice the samples, one degree-2 request the same as alone.
    @Test func fullLoadMeasuresEveryGroupAtOnce() throws {
        let pool = try makeTinyPool(workers: 2)
        defer { pool.shutdown() }
        let resolution = ModelConfig.tiny.resolutionClasses[0]
        let loaded = Profiler(warmup: 1, repetitions: 3, load: .full)
        #expect(try loaded.measure(pool: pool, resolution: resolution, degree: 1).samplesMs.count == 6)
        #expect(try loaded.measure(pool: pool, resolution: resolution, degree: 2).samplesMs.count == 3)
        let alone = Profiler(warmup: 1, repetitions: 3, load: .alone)
        #expect(try alone.measure(pool: pool, resolution: resolution, degree: 1).samplesMs.count == 3)
        // Both groups' requests ran to the end and released their memory.
        let request = GenerationRequest(
            prompt: "after", width: resolution.width, height: resolution.height, steps: 1, seed: 1)
        #expect(try pool.generate(request).stepSeconds.count == 1)
    }

    @Test func coreTypeFollowsCPUFlags() {
        #expect(BLAS.recommendedCoreType(cpuFlags: ["avx512f", "avx512bw", "avx512_bf16"]) == "Cooperlake")
        #expect(BLAS.recommendedCoreType(cpuFlags: ["avx512f", "avx512bw", "avx2", "fma"]) == "SkylakeX")
        #expect(BLAS.recommendedCoreType(cpuFlags: ["avx2", "fma", "avx"]) == "Haswell")
        #expect(BLAS.recommendedCoreType(cpuFlags: ["sse2"]) == nil)
    }
}
