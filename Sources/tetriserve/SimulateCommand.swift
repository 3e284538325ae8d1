import ArgumentParser
import Foundation
import TetriCore
import TetriSim

struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Run one scheduling policy on a trace in virtual time and report SLO attainment and latency.",
        discussion: "Policies: \(Policies.names.joined(separator: ", "))."
    )

    @Option(help: "Cost profile: \(Defaults.profileForms).")
    var profile: String = Defaults.profile

    @Option(help: "Trace CSV (id,arrival_s,width,height,steps,slo_s).")
    var trace: String

    @Option(help: "Scheduling policy: \(Policies.names.joined(separator: ", ")).")
    var policy: String = "tetriserve"

    @Option(parsing: .unconditional, help: "GPUs on the node (default: the profile's).")
    var gpus: Int?

    @Option(
        parsing: .unconditional,
        help: """
            Step granularity of the round schedulers: ticks (steps of the slowest class at its fastest degree) per \
            round, capped at half the trace's tightest SLO.
            """)
    var granularity: Int = RoundScheduler.defaultGranularity

    @Flag(
        name: .customLong("uncapped-round"),
        help: "Keep granularity ticks per round even when a round exceeds half the trace's tightest SLO.")
    var uncappedRound = false

    @Flag(
        name: .customLong("no-admission"),
        help: "Turn off tetriserve's admission by look-ahead (requests that cannot all be met are no longer deferred).")
    var noAdmission = false

    @OptionGroup var reserve: SlackReserveOption

    @Option(
        name: .customLong("handoff-ms"), parsing: .unconditional,
        help: "Modelled cost of moving a request to other GPUs, in ms.")
    var handoffMs: Double = 0

    @Option(
        name: .customLong("dispatch-overhead-ms"), parsing: .unconditional,
        help: """
            Fixed cost of every execution block on top of its steps (dispatch to the devices and back), in ms \
            (default: the profile's dispatch_overhead_ms, 0 when it gives none).
            """)
    var dispatchOverheadMs: Double?

    @Option(help: "Write the result JSON here.")
    var json: String?

    @Option(help: "Write the block log (JSON lines) here.")
    var log: String?

    func run() throws {
        guard handoffMs >= 0 && handoffMs.isFinite else { throw UserError("--handoff-ms must be >= 0") }
        if let d = dispatchOverheadMs, !(d >= 0 && d.isFinite) {
            throw UserError("--dispatch-overhead-ms must be a number >= 0, got \(d)")
        }
        let model = try userFacing {
            try ProfileFile.load(
                profile,
                handoff: .fromMilliseconds(handoffMs),
                dispatchOverhead: dispatchOverheadMs.map { .fromMilliseconds($0) })
        }
        guard let text = try? String(contentsOfFile: trace, encoding: .utf8) else {
            throw UserError("cannot read trace '\(trace)'")
        }
        let trace = try userFacing { try Trace(csv: text) }
        let gpus = self.gpus ?? model.gpus
        guard gpus >= 1 && gpus <= GPUSet.capacity else {
            throw UserError("--gpus must be in 1...\(GPUSet.capacity), got \(gpus)")
        }
        let floor = uncappedRound ? nil : trace.requests.map(\.slo).min()
        var scheduler = try userFacing {
            try Policies.make(
                policy, model: model, gpus: gpus, granularity: granularity, sloFloor: floor, admission: !noAdmission,
                slackReserve: reserve.slackReserve)
        }
        let outcome = try userFacing {
            try Simulator.run(trace: trace, model: model, gpus: gpus, scheduler: &scheduler, recordBlocks: log != nil)
        }
        let summary = SimulationSummary(outcome)
        print(summary.text)
        if let json {
            let data = try summary.json()
            try userFacing { try writeFile(String(decoding: data, as: UTF8.self) + "\n", to: json) }
        }
        if let log {
            try userFacing { try writeFile(outcome.blocks.map(\.jsonLine).joined(separator: "\n") + "\n", to: log) }
        }
    }
}
