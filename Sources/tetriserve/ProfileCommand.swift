import ArgumentParser
import DiTEngine
import Foundation
import TetriCore

struct ProfileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile",
        abstract: "Measure the per-step time of each resolution class at each degree on real workers; write a profile.",
        discussion: """
            Each class runs warm-up steps and then several measured steps at degree 1, 2, 4 and 8 \
            (those up to --workers); the profile holds the median. The written JSON is the profile \
            format that simulate reads. Also reports the engine benchmarks: the largest class's \
            step FLOP rate as a fraction of single-thread sgemm on the same worker, the speed-up of \
            each degree over degree 1, and the hand-off cost of moving a request between workers.
            """
    )

    @Option(help: "Worker processes (one per core).")
    var workers: Int = 2

    @Option(
        help: """
            Model configuration with seeded weights: \(ModelConfig.named.keys.sorted().joined(separator: ", ")) \
            (default: the shipped weights in models/ when found, else small).
            """)
    var model: String?

    @Option(help: "Safetensors weights file to load (its metadata gives the model configuration).")
    var weights: String?

    @Option(name: .customLong("weights-seed"), help: "Seed of the model's deterministic weights.")
    var weightsSeed: UInt64 = 0

    @Option(help: "Warm-up steps before measuring each class and degree.")
    var warmup: Int = 2

    @Option(help: "Measured steps per class and degree (the profile holds their median).")
    var repetitions: Int = 5

    @Option(help: "Output profile JSON.")
    var out: String = "profiles/cpu-local.json"

    @Option(help: "Profile name written into the JSON.")
    var name: String = "cpu-local"

    @Flag(inversion: .prefixedNo, help: "Also measure sgemm and the hand-off cost.")
    var bench = true

    func run() throws {
        guard warmup >= 0, repetitions >= 1 else {
            throw ValidationError("--warmup must be >= 0 and --repetitions >= 1")
        }
        let choice = try chooseModel(model: model, weights: weights)
        let options = try userFacing {
            try WorkerPool.Options(workers: workers, model: choice.model, seed: weightsSeed, weights: choice.weights)
        }
        let pool = try userFacing { try WorkerPool(options: options) }
        defer { pool.shutdown() }
        let config = pool.config
        let cores = Set(pool.coreNames).sorted().joined(separator: ",")
        log("workers: \(pool.workerCount), OpenBLAS core: \(cores), model: \(config.name)")
        let profiler = Profiler(warmup: warmup, repetitions: repetitions)
        let degrees = [1, 2, 4, 8].filter { $0 <= workers }
        let measurements = try userFacing {
            try profiler.measureAll(pool: pool, classes: config.resolutionClasses, degrees: degrees) { m in
                log(
                    "\(m.resolution) degree \(m.degree): \(String(format: "%.2f", m.stepMs)) ms/step "
                        + "(samples \(m.samplesMs.map { String(format: "%.1f", $0) }.joined(separator: " ")))")
            }
        }
        let cpu = cpuModel()
        let profile = Profiler.profile(
            measurements, name: name,
            description:
                "Measured by tetriserve profile: model \(config.name), \(workers) CPU workers (one core, one "
                + "OpenBLAS thread each, core \(cores)) on \(cpu); median of \(repetitions) steps after \(warmup) "
                + "warm-up; prompt of \(Profiler.prompt.utf8.count + 1) text tokens.",
            workers: workers)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(profile)
        do {
            try (data + Data("\n".utf8)).write(to: URL(fileURLWithPath: out))
        } catch {
            throw ValidationError("cannot write --out '\(out)': \(error.localizedDescription)")
        }
        print("wrote \(out)")
        printTable(measurements, degrees: degrees)
        if bench { try benchmarks(pool: pool, profiler: profiler, measurements: measurements) }
    }

    func printTable(_ measurements: [Profiler.Measurement], degrees: [Int]) {
        let header =
            ["class", "tokens"] + degrees.map { "k=\($0) ms" } + degrees.dropFirst().map { "k=\($0) speed-up" }
        print(header.joined(separator: "\t"))
        for resolution in Set(measurements.map(\.resolution)).sorted() {
            let row = measurements.filter { $0.resolution == resolution }
            guard let base = row.first(where: { $0.degree == 1 }) else { continue }
            var cells = [resolution.description, String(base.imageTokens + base.textTokens)]
            cells += degrees.map { k in row.first { $0.degree == k }.map { String(format: "%.2f", $0.stepMs) } ?? "-" }
            cells += degrees.dropFirst().map { k in
                row.first { $0.degree == k }.map { String(format: "%.2fx", base.stepMs / $0.stepMs) } ?? "-"
            }
            print(cells.joined(separator: "\t"))
        }
    }

    func benchmarks(pool: WorkerPool, profiler: Profiler, measurements: [Profiler.Measurement]) throws {
        guard let largest = measurements.filter({ $0.degree == 1 }).max(by: { $0.imageTokens < $1.imageTokens })
        else { return }
        let gemm = try userFacing { try pool.gemmRate(worker: 0, n: 1024, repetitions: 5) }
        let flops = pool.config.stepFLOPs(textTokens: largest.textTokens, imageTokens: largest.imageTokens)
        let rate = flops / (largest.stepMs / 1000)
        print(
            "sgemm 1024^3 on worker 0: \(String(format: "%.2f", gemm / 1e9)) GFLOP/s; "
                + "\(largest.resolution) step: \(String(format: "%.2f", flops / 1e9)) GFLOP in "
                + "\(String(format: "%.1f", largest.stepMs)) ms = \(String(format: "%.2f", rate / 1e9)) GFLOP/s "
                + "= \(String(format: "%.0f", 100 * rate / gemm))% of sgemm")
        if pool.workerCount >= 2 {
            for resolution in [pool.config.resolutionClasses.first!, largest.resolution] {
                let (stay, move) = try userFacing { try profiler.handoff(pool: pool, resolution: resolution) }
                print(
                    "hand-off \(resolution): \(String(format: "%.2f", stay)) ms/step on one worker, "
                        + "\(String(format: "%.2f", move)) ms/step alternating workers: cost "
                        + "\(String(format: "%.2f", move - stay)) ms = \(String(format: "%.1f", 100 * (move - stay) / stay))% "
                        + "of a step")
            }
        }
    }

    func cpuModel() -> String {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown CPU" }
        for line in text.split(separator: "\n") where line.hasPrefix("model name") {
            return line.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) }
                ?? "unknown CPU"
        }
        return "unknown CPU"
    }
}
