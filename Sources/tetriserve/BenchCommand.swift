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
            packing, late handling, scale-up and placement). With --gpus-per-node (or a profile topology) the \
            GPUs form nodes: running groups lie inside nodes and the scheduler dispatches requests to nodes. \
            Prints the decision's thread CPU time (`cpu p50_us=… p99_us=…`, which a busy machine inflates \
            less), then the wall time as the last line: `decision p50_us=<x> p99_us=<y>`.
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

    @Option(
        parsing: .unconditional,
        help: """
            GPUs per node: groups never span nodes, and a cluster of several nodes is scheduled node by node \
            (default: the profile's topology, else one node of --gpus).
            """)
    var gpusPerNode: Int?

    @Option(help: "Cost profile: \(Defaults.profileForms).")
    var profile: String = Defaults.profile

    @Option(help: "Policy to time: \(Policies.names.joined(separator: ", ")).")
    var policy: String = "tetriserve"

    func run() throws {
        guard gpus >= 1 && gpus <= GPUSet.capacity else {
            throw UserError("--gpus must be in 1...\(GPUSet.capacity), got \(gpus)")
        }
        guard pending >= 1 else { throw UserError("--pending must be >= 1, got \(pending)") }
        var model = try userFacing { try ProfileFile.load(profile) }
        if let gpusPerNode {
            guard gpusPerNode >= 1 else { throw UserError("--gpus-per-node must be >= 1, got \(gpusPerNode)") }
            if let t = model.topology, t.hasIslands, t.gpusPerNode != gpusPerNode {
                throw UserError(
                    "--gpus-per-node \(gpusPerNode) conflicts with profile '\(profile)', whose islands are for nodes of \(t.gpusPerNode)"
                )
            }
            if model.topology?.hasIslands != true {
                guard model.degrees.allSatisfy({ $0 <= gpusPerNode }) else {
                    throw UserError(
                        "--gpus-per-node \(gpusPerNode) is below the profile's largest degree \(model.degrees.last!)")
                }
                model.topology = try userFacing { try NodeTopology(gpusPerNode: gpusPerNode) }
            }
        }
        let prototype = try userFacing { try Policies.make(policy, model: model, gpus: gpus) }
        let count = states ?? max(20, min(5000, 2_000_000 / max(1, gpus * pending)))
        guard count >= 1 else { throw UserError("--states must be >= 1") }
        let views = (0..<count).map {
            RandomStates.make(model: model, gpus: gpus, pending: pending, seed: UInt64($0 + 1))
        }
        var times: [Double] = []
        times.reserveCapacity(count)
        var cpu: [Double] = []
        cpu.reserveCapacity(count)
        var started = 0
        let clock = ContinuousClock()
        // Warm-up.
        for v in views.prefix(10) {
            var s = prototype
            started += s.decide(v).starts.count
        }
        for v in views {
            var s = prototype
            let c0 = Self.threadCPUMicros()
            let t0 = clock.now
            let d = s.decide(v)
            let dt = t0.duration(to: clock.now)
            cpu.append(Self.threadCPUMicros() - c0)
            started += d.starts.count
            times.append(Double(dt.components.attoseconds) / 1e12 + Double(dt.components.seconds) * 1e6)
        }
        times.sort()
        cpu.sort()
        let p50 = SimulationSummary.percentile(times, 50)
        let p99 = SimulationSummary.percentile(times, 99)
        let nodes = model.topology.map { ", \((gpus + $0.gpusPerNode - 1) / $0.gpusPerNode) nodes" } ?? ""
        print("\(policy): \(count) decisions, \(gpus) GPUs\(nodes), \(pending) pending, \(started) blocks started")
        print(
            String(
                format: "cpu p50_us=%.1f p99_us=%.1f", SimulationSummary.percentile(cpu, 50),
                SimulationSummary.percentile(cpu, 99)))
        print(String(format: "decision p50_us=%.1f p99_us=%.1f", p50, p99))
    }

    /// CPU time of the calling thread in microseconds.
    static func threadCPUMicros() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) * 1e6 + Double(ts.tv_nsec) / 1e3
    }
}
