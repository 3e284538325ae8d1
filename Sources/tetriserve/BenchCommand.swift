import ArgumentParser
import Foundation
import TetriCore
import TetriSim

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks.",
        subcommands: [SchedulerBench.self, DispatchBench.self]
    )
}

struct SchedulerBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scheduler",
        abstract: "Time one TetriServe scheduling decision over many random cluster states.",
        discussion: """
            Each state has --pending unfinished requests of random classes, progress and deadlines (some late), \
            about a quarter of them running. Each decision is a round boundary of a fresh scheduler (the full \
            packing, late handling, scale-up and placement). Prints `decision p50_us=<x> p99_us=<y>` last.
            """
    )

    @Option(parsing: .unconditional, help: "GPUs on the node (up to \(GPUSet.capacity)).")
    var gpus: Int = 8

    @Option(parsing: .unconditional, help: "Unfinished requests per state.")
    var pending: Int = 64

    @Option(
        parsing: .unconditional,
        help: "Random states to time (default: enough for about a second of decisions, at least 20).")
    var states: Int?

    @Option(help: "Cost profile: \(Defaults.profileForms).")
    var profile: String = Defaults.profile

    @Option(help: "Policy to time: \(Policies.names.joined(separator: ", ")).")
    var policy: String = "tetriserve"

    func run() throws {
        guard gpus >= 1 && gpus <= GPUSet.capacity else {
            throw UserError("--gpus must be in 1...\(GPUSet.capacity), got \(gpus)")
        }
        guard pending >= 1 else { throw UserError("--pending must be >= 1, got \(pending)") }
        let model = try userFacing { try ProfileFile.load(profile) }
        let prototype = try userFacing { try Policies.make(policy, model: model, gpus: gpus) }
        let count = states ?? max(20, min(5000, 2_000_000 / max(1, gpus * pending)))
        guard count >= 1 else { throw UserError("--states must be >= 1") }
        let views = (0..<count).map {
            RandomStates.make(model: model, gpus: gpus, pending: pending, seed: UInt64($0 + 1))
        }
        var times: [Double] = []
        times.reserveCapacity(count)
        var started = 0
        let clock = ContinuousClock()
        // Warm-up.
        for v in views.prefix(10) {
            var s = prototype
            started += s.decide(v).starts.count
        }
        for v in views {
            var s = prototype
            let t0 = clock.now
            let d = s.decide(v)
            let dt = t0.duration(to: clock.now)
            started += d.starts.count
            times.append(Double(dt.components.attoseconds) / 1e12 + Double(dt.components.seconds) * 1e6)
        }
        times.sort()
        let p50 = SimulationSummary.percentile(times, 50)
        let p99 = SimulationSummary.percentile(times, 99)
        print("\(policy): \(count) decisions, \(gpus) GPUs, \(pending) pending, \(started) blocks started")
        print(String(format: "decision p50_us=%.1f p99_us=%.1f", p50, p99))
    }
}
