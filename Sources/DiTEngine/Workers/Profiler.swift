import Foundation
import TetriCore

/// Measures the per-step time of resolution classes at sequence-parallel degrees on a worker
/// pool, and the engine benchmarks (FLOP rate against sgemm, hand-off cost).
public struct Profiler: Sendable {
    /// The prompt every measurement uses (its byte count sets the text token count).
    public static let prompt = "a lighthouse on a cliff at dusk, oil painting"

    public var warmup: Int
    public var repetitions: Int

    public init(warmup: Int = 2, repetitions: Int = 5) {
        self.warmup = warmup
        self.repetitions = repetitions
    }

    /// One class at one degree.
    public struct Measurement: Sendable {
        public var resolution: Resolution
        public var degree: Int
        public var imageTokens: Int
        public var textTokens: Int
        /// Median step time in milliseconds over the repetitions (warm-up steps dropped).
        public var stepMs: Double
        public var samplesMs: [Double]
    }

    /// Runs `warmup + repetitions` steps of one request at `degree` on workers `0..<degree`
    /// (or `placement`) and takes the median of the measured steps.
    public func measure(
        pool: WorkerPool, resolution: Resolution, degree: Int,
        placement: ((_ step: Int, _ degree: Int) -> [Int])? = nil
    ) throws -> Measurement {
        let steps = warmup + repetitions
        let request = GenerationRequest(
            prompt: Self.prompt, width: resolution.width, height: resolution.height, steps: steps, seed: 1)
        let result = try pool.generate(request, plan: .uniform(degree: degree, steps: steps), placement: placement)
        let samples = result.stepSeconds.dropFirst(warmup).map { $0 * 1000 }
        let grid = try pool.config.grid(width: resolution.width, height: resolution.height)
        return Measurement(
            resolution: resolution, degree: degree, imageTokens: grid.columns * grid.rows,
            textTokens: DiTModelTokens.count(Self.prompt, config: pool.config), stepMs: median(Array(samples)),
            samplesMs: Array(samples))
    }

    /// Every class at every degree in `degrees` (those up to the pool's size).
    public func measureAll(
        pool: WorkerPool, classes: [Resolution], degrees: [Int], report: ((Measurement) -> Void)? = nil
    ) throws -> [Measurement] {
        var out: [Measurement] = []
        for resolution in classes {
            for k in degrees where k <= pool.workerCount {
                let m = try measure(pool: pool, resolution: resolution, degree: k)
                report?(m)
                out.append(m)
            }
        }
        return out
    }

    /// The profile JSON the simulator reads.
    public static func profile(
        _ measurements: [Measurement], name: String, description: String, workers: Int
    ) -> Profile {
        var resolutions: [String: Profile.Entry] = [:]
        for m in measurements {
            var entry = resolutions[m.resolution.description] ?? Profile.Entry(latentTokens: m.imageTokens, stepMs: [:])
            entry.stepMs[String(m.degree)] = (m.stepMs * 1000).rounded() / 1000
            resolutions[m.resolution.description] = entry
        }
        let degrees = Set(measurements.map(\.degree)).sorted()
        return Profile(name: name, description: description, gpus: workers, degrees: degrees, resolutions: resolutions)
    }

    /// Hand-off cost for one class at degree 1: the median step time when every step runs on
    /// worker 0, and when consecutive steps alternate between workers 0 and 1 (so each step starts
    /// on a worker that did not run the previous one and reads the latent another worker wrote).
    public func handoff(pool: WorkerPool, resolution: Resolution) throws -> (stayMs: Double, moveMs: Double) {
        guard pool.workerCount >= 2 else { throw EngineError.pool("the hand-off measurement needs 2 workers") }
        let stay = try measure(pool: pool, resolution: resolution, degree: 1)
        let move = try measure(pool: pool, resolution: resolution, degree: 1, placement: { step, _ in [step % 2] })
        return (stay.stepMs, move.stepMs)
    }
}

/// Text token counts without building a model.
enum DiTModelTokens {
    static func count(_ prompt: String, config: ModelConfig) -> Int {
        Swift.min(prompt.utf8.count + 1, config.maxTextTokens)
    }
}
