import Foundation
import Synchronization
import TetriCore

/// Measures the per-step time of resolution classes at sequence-parallel degrees on a worker
/// pool, and the engine benchmarks (FLOP rate against sgemm, hand-off cost).
public struct Profiler: Sendable {
    /// The prompt every measurement uses (its byte count sets the text token count).
    public static let prompt = "a lighthouse on a cliff at dusk, oil painting"

    public var warmup: Int
    public var repetitions: Int
    /// What else runs while a degree is measured.
    public var load: Load

    /// What else runs on the pool while one class and degree is measured.
    public enum Load: String, Sendable, CaseIterable {
        /// One request on workers `0..<degree`; the other workers idle.
        case alone
        /// Every group of the pool busy at once: `workers / degree` requests of the same class on
        /// disjoint groups, as on a server at full load. On devices that share nothing this equals
        /// `alone`; on CPU cores that share execution units, caches or memory bandwidth (SMT
        /// siblings, a VM's vCPUs) each step is slower, and the profile says so.
        case full
    }

    public init(warmup: Int = 2, repetitions: Int = 5, load: Load = .alone) {
        self.warmup = warmup
        self.repetitions = repetitions
        self.load = load
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
    /// (or `placement`) and takes the median of the measured steps. Under ``Load/full`` (and no
    /// `placement`), every group `g·degree..<(g+1)·degree` of the pool runs such a request at
    /// the same time, and the median is over all their measured steps.
    public func measure(
        pool: WorkerPool, resolution: Resolution, degree: Int,
        placement: ((_ step: Int, _ degree: Int) -> [Int])? = nil
    ) throws -> Measurement {
        let steps = warmup + repetitions
        let request = GenerationRequest(
            prompt: Self.prompt, width: resolution.width, height: resolution.height, steps: steps, seed: 1)
        let groups = load == .full && placement == nil ? max(1, pool.workerCount / degree) : 1
        let samples: [Double]
        if groups == 1 {
            let result = try pool.generate(request, plan: .uniform(degree: degree, steps: steps), placement: placement)
            samples = result.stepSeconds.dropFirst(warmup).map { $0 * 1000 }
        } else {
            samples = try Self.concurrently(groups) { g in
                let result = try pool.generate(
                    request, plan: .uniform(degree: degree, steps: steps),
                    placement: { _, k in Array(g * k..<(g + 1) * k) })
                return result.stepSeconds.dropFirst(warmup).map { $0 * 1000 }
            }.flatMap { $0 }
        }
        let grid = try pool.config.grid(width: resolution.width, height: resolution.height)
        return Measurement(
            resolution: resolution, degree: degree, imageTokens: grid.columns * grid.rows,
            textTokens: DiTModelTokens.count(Self.prompt, config: pool.config), stepMs: median(Array(samples)),
            samplesMs: Array(samples))
    }

    /// Runs `body(0..<count)` on `count` threads at once (each blocks on its workers, so they must
    /// not wait for a free thread) and returns the results in order; rethrows the first error.
    static func concurrently<T: Sendable>(
        _ count: Int, _ body: @escaping @Sendable (Int) throws -> T
    ) throws -> [T] {
        let results = Mutex([Result<T, any Error>?](repeating: nil, count: count))
        let done = DispatchGroup()
        for g in 0..<count {
            done.enter()
            let thread = Thread {
                let result = Result { try body(g) }
                results.withLock { $0[g] = result }
                done.leave()
            }
            thread.stackSize = 8 << 20
            thread.start()
        }
        done.wait()
        return try results.withLock { $0 }.map { try $0!.get() }
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
