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
            format that simulate reads. With --load full (the default) every degree is measured with \
            all the workers busy: workers/degree requests run at once on disjoint groups, as on a server \
            at full load, so cores that slow each other down (SMT siblings, a VM's vCPUs) show it in the \
            profile; --load alone measures one request with the other workers idle. Also reports the engine benchmarks: the largest class's \
            step FLOP rate as a fraction of single-thread sgemm on the same worker, the speed-up of \
            each degree over degree 1, and the hand-off cost of moving a request between workers.
            The profile goes to \(ProfileCommand.userFolder)/NAME.json unless --out names a file; the \
            path is printed. A measurement whose samples spread more than --max-spread around their \
            median (another process took the core for part of it) is measured again up to --retries \
            times; one still noisy after that, or a machine already loaded before the start (from \
            /proc/loadavg), gets a warning.
            """
    )

    @Option(parsing: .unconditional, help: "Worker processes (one per core).")
    var workers: Int = 2

    @OptionGroup var modelOptions: ModelOptions

    @Option(parsing: .unconditional, help: "Warm-up steps before measuring each class and degree.")
    var warmup: Int = 2

    @Option(parsing: .unconditional, help: "Measured steps per class and degree (the profile holds their median).")
    var repetitions: Int = 5

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp(
            "What runs beside each measurement: full (every group of the workers busy at once, as on a loaded "
                + "server) or alone (one request, the other workers idle).",
            valueName: "full|alone"))
    var load: String = "full"

    /// `--load` as parsed; `validate()` has refused any other value.
    var loadKind: Profiler.Load { Profiler.Load(rawValue: load) ?? .full }

    @Option(help: "Output profile JSON (default: \(ProfileCommand.userFolder)/NAME.json).")
    var out: String?

    @Option(help: "Profile name written into the JSON.")
    var name: String = "cpu-local"

    @Option(
        name: .customLong("max-spread"), parsing: .unconditional,
        help: "Largest accepted (max − min) / median of one measurement's samples, as a fraction.")
    var maxSpread: Double = 0.15

    @Option(parsing: .unconditional, help: "Re-measurements of a class and degree whose samples spread too much.")
    var retries: Int = 2

    @Flag(inversion: .prefixedNo, help: "Also measure sgemm and the hand-off cost.")
    var bench = true

    /// Where measured profiles go by default: `$XDG_DATA_HOME/tetriserve/profiles`, else
    /// `~/.local/share/tetriserve/profiles` (never the repository's tracked `profiles/`).
    static var userFolder: String {
        let env = ProcessInfo.processInfo.environment
        let data =
            env["XDG_DATA_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (NSHomeDirectory() as NSString).appendingPathComponent(".local/share")
        return (data as NSString).appendingPathComponent("tetriserve/profiles")
    }

    var outputPath: String { out ?? (Self.userFolder as NSString).appendingPathComponent("\(name).json") }

    func validate() throws {
        guard workers >= 1 && workers <= GPUSet.capacity else {
            throw ValidationError("--workers must be in 1...\(GPUSet.capacity), got \(workers)")
        }
        guard warmup >= 0 else { throw ValidationError("--warmup must be >= 0, got \(warmup)") }
        guard repetitions >= 1 else { throw ValidationError("--repetitions must be >= 1, got \(repetitions)") }
        guard maxSpread > 0 && maxSpread.isFinite else { throw ValidationError("--max-spread must be > 0") }
        guard Profiler.Load(rawValue: load) != nil else {
            throw ValidationError("--load must be full or alone, got '\(load)'")
        }
        guard retries >= 0 else { throw ValidationError("--retries must be >= 0, got \(retries)") }
        guard !name.isEmpty, !name.contains("/") else {
            throw ValidationError("--name must be a non-empty name without '/', got '\(name)'")
        }
        if out != nil { try checkWritableFile(outputPath, option: "--out") }
    }

    /// (max − min) / median of a measurement's samples: 0 for one sample; about 1 when some
    /// steps took twice as long as others.
    static func spread(_ m: Profiler.Measurement) -> Double {
        guard let lo = m.samplesMs.min(), let hi = m.samplesMs.max(), m.stepMs > 0 else { return 0 }
        return (hi - lo) / m.stepMs
    }

    /// The 1-minute load average and the core count, when /proc/loadavg can be read.
    static func load() -> (average: Double, cores: Int)? {
        guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8),
            let first = text.split(separator: " ").first, let average = Double(first)
        else { return nil }
        return (average, ProcessInfo.processInfo.activeProcessorCount)
    }

    static func percent(_ fraction: Double) -> String { String(format: "%.1f%%", 100 * fraction) }

    /// Measures every class at every degree; measures again, up to --retries times, one whose
    /// samples spread more than --max-spread, keeping the least spread; returns the measurements
    /// and those still too noisy.
    func measureAll(pool: WorkerPool, profiler: Profiler, degrees: [Int]) throws -> (
        all: [Profiler.Measurement], noisy: [Profiler.Measurement]
    ) {
        var all: [Profiler.Measurement] = []
        var noisy: [Profiler.Measurement] = []
        for resolution in pool.config.resolutionClasses {
            for k in degrees {
                var best = try userFacing { try profiler.measure(pool: pool, resolution: resolution, degree: k) }
                var tries = 0
                while Self.spread(best) > maxSpread && tries < retries {
                    tries += 1
                    log(
                        "\(resolution) degree \(k): samples \(Self.samples(best)) spread \(Self.percent(Self.spread(best))) "
                            + "> --max-spread \(Self.percent(maxSpread)); measuring again (\(tries)/\(retries))")
                    let again = try userFacing { try profiler.measure(pool: pool, resolution: resolution, degree: k) }
                    if Self.spread(again) < Self.spread(best) { best = again }
                }
                log(
                    "\(resolution) degree \(k): \(String(format: "%.2f", best.stepMs)) ms/step "
                        + "(samples \(Self.samples(best)), spread \(Self.percent(Self.spread(best))))")
                if Self.spread(best) > maxSpread { noisy.append(best) }
                all.append(best)
            }
        }
        return (all, noisy)
    }

    static func samples(_ m: Profiler.Measurement) -> String {
        m.samplesMs.map { String(format: "%.1f", $0) }.joined(separator: " ")
    }

    func run() throws {
        let out = outputPath
        if self.out == nil {
            do {
                try FileManager.default.createDirectory(
                    atPath: Self.userFolder, withIntermediateDirectories: true)
            } catch {
                throw UserError("cannot create '\(Self.userFolder)' for the profile; give --out")
            }
            do {
                try checkWritableFile(out, option: "--out")
            } catch let error as ValidationError {
                throw UserError("cannot write the profile to '\(out)' (\(error.message)); give --out")
            }
        }
        if case (let average, let cores)? = Self.load(), average > Double(max(0, cores - workers)) + 0.5 {
            log(
                "warning: load average \(String(format: "%.2f", average)) on \(cores) cores before profiling: other "
                    + "processes compete with the \(workers) workers, so steps may run slow or unevenly")
        }
        let choice = try modelOptions.choose()
        let options = try userFacing {
            try WorkerPool.Options(
                workers: workers, model: choice.model, seed: modelOptions.weightsSeed, weights: choice.weights)
        }
        let pool = try userFacing { try WorkerPool(options: options) }
        defer { pool.shutdown() }
        let config = pool.config
        let cores = Set(pool.coreNames).sorted().joined(separator: ",")
        log("workers: \(pool.workerCount), OpenBLAS core: \(cores), model: \(config.name)")
        let profiler = Profiler(warmup: warmup, repetitions: repetitions, load: loadKind)
        let degrees = [1, 2, 4, 8].filter { $0 <= workers }
        let (measurements, noisy) = try measureAll(pool: pool, profiler: profiler, degrees: degrees)
        let widest = measurements.map(Self.spread).max() ?? 0
        let cpu = cpuModel()
        let profile = Profiler.profile(
            measurements, name: name,
            description:
                "Measured by tetriserve profile: model \(config.name), \(workers) CPU workers (one core, one "
                + "OpenBLAS thread each, core \(cores)) on \(cpu); median of \(repetitions) steps after \(warmup) "
                + "warm-up, \(loadKind == .full ? "every group of the workers busy at once" : "one request alone"); prompt of \(Profiler.prompt.utf8.count + 1) text tokens; largest sample spread "
                + "\(Self.percent(widest)).",
            workers: workers)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(profile)
        do {
            try (data + Data("\n".utf8)).write(to: URL(fileURLWithPath: out))
        } catch {
            throw UserError("cannot write --out '\(out)': \(error.localizedDescription)")
        }
        print("wrote \(out) (use it with --profile \(out))")
        printTable(measurements, degrees: degrees)
        print("largest sample spread (max − min) / median: \(Self.percent(widest))")
        if !noisy.isEmpty {
            let list = noisy.map { "\($0.resolution) degree \($0.degree) (\(Self.percent(Self.spread($0))))" }
            let now = Self.load().map { String(format: "; load average now %.2f", $0.average) } ?? ""
            log(
                "warning: \(noisy.count) measurement(s) spread more than --max-spread \(Self.percent(maxSpread)) "
                    + "after \(retries) re-measurement(s): \(list.joined(separator: ", "))\(now). Their medians may "
                    + "be off; profile again on an idle machine or with more --repetitions.")
        }
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
