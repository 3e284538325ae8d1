import ArgumentParser
import DiTEngine
import Foundation
import TetriCore

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate one image on the worker pool following a degree plan and write it as PNG.",
        discussion: """
            Resolution classes of the small model: \(ModelConfig.small.resolutionClassSummary). \
            Of the tiny model: \(ModelConfig.tiny.resolutionClassSummary). Any other size whose \
            width and height are multiples of the model's patch size (small: 16, tiny: 8) works too.
            The image depends only on prompt, size, steps, seed and model, not on the plan.
            """
    )

    @Option(help: "The text prompt.")
    var prompt: String

    @Option(help: "Image size WIDTHxHEIGHT, for example 256x256.")
    var size: String = "256x256"

    @Option(parsing: .unconditional, help: "Denoising steps.")
    var steps: Int = 20

    @Option(parsing: .unconditional, help: "Seed of the initial noise.")
    var seed: UInt64 = 0

    @OptionGroup var modelOptions: ModelOptions

    @Option(
        help:
            "Degree plan KxN,... (N steps at degree K, in order), e.g. 1x10,2x15,1x25. Default: all steps at degree 1."
    )
    var plan: String?

    @Option(parsing: .unconditional, help: "Worker processes to start (default: the plan's largest degree).")
    var workers: Int?

    @Flag(help: "Rotate each step's group through the workers instead of always starting at worker 0.")
    var rotate = false

    @Option(help: "Output PNG file.")
    var out: String

    /// Checks every option, the output path included, before any worker starts.
    func validate() throws {
        guard let resolution = Resolution(parsing: size) else {
            throw ValidationError("--size must be WIDTHxHEIGHT with positive integers, got '\(size)'")
        }
        guard steps > 0 else { throw ValidationError("--steps must be positive, got \(steps)") }
        let plan = try degreePlan()
        guard plan.totalSteps == steps else {
            throw ValidationError("--plan covers \(plan.totalSteps) steps but --steps is \(steps)")
        }
        if let workers, workers < plan.maxDegree {
            throw ValidationError("--workers is \(workers) but --plan needs \(plan.maxDegree)")
        }
        let choice = try modelOptions.choose()
        let config = try userFacing {
            try choice.weights.flatMap { try ModelConfig.stored(inWeightsFile: $0) } ?? ModelConfig.named[choice.model]!
        }
        do {
            _ = try config.grid(width: resolution.width, height: resolution.height)
        } catch {
            throw ValidationError("--size: \(error.description)")
        }
        try checkWritableFile(out, option: "--out")
    }

    func degreePlan() throws -> DegreePlan {
        guard let text = plan else { return .uniform(degree: 1, steps: steps) }
        do {
            return try DegreePlan(parsing: text)
        } catch {
            throw ValidationError("--plan: \(error.description)")
        }
    }

    func run() throws {
        let resolution = Resolution(parsing: size)!
        let plan = try degreePlan()
        let choice = try modelOptions.choose()
        let options = try userFacing {
            try WorkerPool.Options(
                workers: workers ?? plan.maxDegree, model: choice.model, seed: modelOptions.weightsSeed,
                weights: choice.weights,
                maxImageTokens: nil)
        }
        let pool = try userFacing { try WorkerPool(options: options) }
        defer { pool.shutdown() }
        log("workers: \(pool.workerCount), OpenBLAS cores: \(pool.coreNames.joined(separator: ", "))")
        let request = GenerationRequest(
            prompt: prompt, width: resolution.width, height: resolution.height, steps: steps, seed: seed)
        let count = pool.workerCount
        let rotate = self.rotate
        let start = Date()
        let result = try userFacing {
            try pool.generate(
                request, plan: plan,
                placement: { step, k in (0..<k).map { rotate ? ($0 + step) % count : $0 } })
        }
        let elapsed = Date().timeIntervalSince(start)
        let pixels = Patches.toBytes(
            Patches.unpatchify(result.latent, config: pool.config, width: resolution.width, height: resolution.height))
        let png = try userFacing {
            try PNG.encode(rgb: pixels, width: resolution.width, height: resolution.height)
        }
        do {
            try png.write(to: URL(fileURLWithPath: out))
        } catch {
            throw UserError("cannot write --out '\(out)': \(error.localizedDescription)")
        }
        let meanMs = result.stepSeconds.reduce(0, +) / Double(result.stepSeconds.count) * 1000
        print(
            "wrote \(out): \(resolution) \(steps) steps plan \(plan) in \(String(format: "%.2f", elapsed)) s "
                + "(mean step \(String(format: "%.1f", meanMs)) ms)")
    }
}
