import ArgumentParser
import DiTEngine
import Foundation
import TetriCore
import TetriServer
import TetriSim

/// `tetriserve bench dispatch`: what one block boundary costs the served CPU engine.
struct DispatchBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dispatch",
        abstract: "Measure the per-block dispatch overhead and hand-off of the CPU engine as served.",
        discussion: """
            Runs one request's --steps steps through the server's CPU backend three ways: as one block, as \
            one-step blocks on the same workers, and as one-step blocks alternating between two groups of \
            workers. Per repetition, the dispatch overhead is (one-step blocks − one block) / (steps − 1): \
            what each extra block boundary costs (the hand of a block to the workers, their start and the \
            answer back). The hand-off is the further cost per block of moving to other workers. Prints \
            the medians per degree, then `dispatch_overhead_ms=<x> handoff_ms=<y>` last (the largest over \
            the degrees), the figures a profile's `dispatch_overhead_ms` holds.
            """
    )

    @Option(parsing: .unconditional, help: "Worker processes (one per core); degrees 1 and up to half of them.")
    var workers: Int = 2

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "Resolution class to run, WIDTHxHEIGHT (the smallest class makes the overhead easiest to see).")
    var size: String = "64x64"

    @Option(parsing: .unconditional, help: "Steps per request (the one-step variants run as many blocks).")
    var steps: Int = 12

    @Option(parsing: .unconditional, help: "Repetitions of the three runs (the figures are their medians).")
    var repetitions: Int = 7

    @Option(help: "Cost profile for the backend's step timeouts: \(Defaults.profileForms).")
    var profile: String = "cpu-local"

    func validate() throws {
        guard workers >= 2 && workers <= GPUSet.capacity else {
            throw ValidationError("--workers must be in 2...\(GPUSet.capacity), got \(workers)")
        }
        guard Resolution(parsing: size) != nil else {
            throw ValidationError("--size must be WIDTHxHEIGHT, got '\(size)'")
        }
        guard steps >= 2 else { throw ValidationError("--steps must be >= 2, got \(steps)") }
        guard repetitions >= 1 else { throw ValidationError("--repetitions must be >= 1, got \(repetitions)") }
    }

    func run() async throws {
        let resolution = Resolution(parsing: size)!
        let costModel = try userFacing { try ProfileFile.load(profile) }
        let choice = try modelOptions.choose()
        let options = try userFacing {
            try WorkerPool.Options(
                workers: workers, model: choice.model, seed: modelOptions.weightsSeed, weights: choice.weights)
        }
        let pool = try userFacing { try WorkerPool(options: options) }
        let backend = CPUBackend(pool: pool, costModel: costModel)
        defer { pool.shutdown() }
        try userFacing { try pool.validate(width: resolution.width, height: resolution.height) }
        let job = GenerationJob(
            prompt: Profiler.prompt, width: resolution.width, height: resolution.height, steps: steps, seed: 1)

        /// Seconds to run the request's steps as `blocks` (start step, steps, devices) in order.
        func timed(_ blocks: [(Int, Int, [Int])]) async throws -> Double {
            let handle = try await backend.begin(job)
            let t0 = ContinuousClock.now
            for (from, count, devices) in blocks {
                try await backend.run(
                    handle: handle, from: from, steps: count, devices: devices, start: 0, progress: { _ in })
            }
            let dt = ContinuousClock.now - t0
            await backend.release(handle: handle)
            return Double(dt.components.seconds) + Double(dt.components.attoseconds) / 1e18
        }

        var worst = (dispatch: 0.0, handoff: 0.0)
        var degree = 1
        while degree * 2 <= workers {
            let here = Array(0..<degree)
            let there = Array(degree..<(2 * degree))
            // One warm-up run brings the weights and the request's memory in.
            _ = try await timed([(0, steps, here)])
            var dispatch: [Double] = []
            var handoff: [Double] = []
            for _ in 0..<repetitions {
                let one = try await timed([(0, steps, here)])
                let split = try await timed((0..<steps).map { ($0, 1, here) })
                let moving = try await timed((0..<steps).map { ($0, 1, $0 % 2 == 0 ? here : there) })
                dispatch.append((split - one) / Double(steps - 1) * 1000)
                handoff.append((moving - split) / Double(steps - 1) * 1000)
            }
            let d = median(dispatch)
            let h = median(handoff)
            print(
                String(
                    format: "degree %d, %@, %d steps: dispatch %.3f ms per block (min %.3f, max %.3f), "
                        + "hand-off %.3f ms per move (min %.3f, max %.3f)",
                    degree, size, steps, d, dispatch.min()!, dispatch.max()!, h, handoff.min()!, handoff.max()!))
            worst = (max(worst.dispatch, d), max(worst.handoff, h))
            degree *= 2
        }
        print(String(format: "dispatch_overhead_ms=%.3f handoff_ms=%.3f", worst.dispatch, worst.handoff))
    }
}
