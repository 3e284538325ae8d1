import ArgumentParser
import Foundation
import TetriCore
import TetriSim

struct ExperimentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "experiment",
        abstract: "Run a named evaluation: a Markdown table on stdout, CSV and SVG plots in --out.",
        discussion: "Experiments: "
            + ExperimentCatalog.names.map { "\($0) (\(ExperimentCommand.summaries[$0] ?? "see docs/results.md"))" }
            .joined(separator: "; ")
            + ". Tables carry the upper bound of the traces (see `tetriserve bound`). Each point averages --seeds seeds."
    )

    /// One line per experiment for `--help`.
    static let summaries: [String: String] = [
        "slo-sweep": "both mixes, SLO scales 1.0–1.5, every compared policy",
        "rate-sweep": "arrival rates 6–18 req/min at the first --slo-scales value",
        "granularity": "round granularity 1, 2, 5, 10, 15, one panel per mix and SLO scale",
        "ablation": "packing, +placement, +scale-up or +mid-round alone, all with elastic ticks",
        "mechanisms":
            "the paper's round loop read literally (tetriserve-literal), then each change of this implementation "
            + "one at a time, ending at tetriserve",
        "homogeneous": "one resolution class at a time",
        "sd3": "the slo-sweep on the SD3-Medium / 4×A40 profile",
    ]

    @Argument(help: "Experiment: \(ExperimentCatalog.names.joined(separator: ", ")).")
    var name: String

    @Option(
        help: "Cost profile: \(Defaults.profileForms) (default: \(Defaults.profile); \(Defaults.sd3Profile) for 'sd3')."
    )
    var profile: String?

    @Option(parsing: .unconditional, help: "Number of seeds per point (seeds 1...N).")
    var seeds: Int = 5

    @Option(parsing: .unconditional, help: "GPUs on the node (default: the profile's).")
    var gpus: Int?

    @Option(parsing: .unconditional, help: "Requests per trace.")
    var count: Int = 300

    @Option(parsing: .unconditional, help: "Arrival rate in requests per minute (not used by rate-sweep).")
    var rate: Double = 12

    @Option(parsing: .unconditional, help: "Step granularity of the round schedulers (not used by granularity).")
    var granularity: Int = RoundScheduler.defaultGranularity

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

    @Option(
        name: .customLong("slo-scales"), parsing: .unconditional,
        help: "Comma-separated SLO scales (the first is used by rate-sweep).")
    var sloScales: String = "1.0,1.1,1.2,1.3,1.4,1.5"

    @Option(help: "Folder for the CSV and SVG files.")
    var out: String = "results"

    func run() throws {
        guard ExperimentCatalog.names.contains(name) else {
            throw UserError(
                "unknown experiment '\(name)'; expected one of: \(ExperimentCatalog.names.joined(separator: ", "))")
        }
        guard seeds >= 1 else { throw UserError("--seeds must be >= 1, got \(seeds)") }
        guard count >= 1 else { throw UserError("--count must be >= 1, got \(count)") }
        guard handoffMs >= 0 && handoffMs.isFinite else { throw UserError("--handoff-ms must be >= 0") }
        if let d = dispatchOverheadMs, !(d >= 0 && d.isFinite) {
            throw UserError("--dispatch-overhead-ms must be a number >= 0, got \(d)")
        }
        let scales = sloScales.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard !scales.isEmpty, scales.allSatisfy({ ($0 ?? 0) > 0 }) else {
            throw UserError("--slo-scales must be comma-separated positive numbers, got '\(sloScales)'")
        }
        let path = profile ?? (name == "sd3" ? Defaults.sd3Profile : Defaults.profile)
        let model = try userFacing {
            try ProfileFile.load(
                path,
                handoff: .fromMilliseconds(handoffMs),
                dispatchOverhead: dispatchOverheadMs.map { .fromMilliseconds($0) })
        }
        let gpus = self.gpus ?? model.gpus
        guard gpus >= 1 && gpus <= GPUSet.capacity else {
            throw UserError("--gpus must be in 1...\(GPUSet.capacity), got \(gpus)")
        }
        guard granularity >= 1 else { throw UserError("--granularity must be >= 1, got \(granularity)") }
        var settings = ExperimentCatalog.Settings(model: model, gpus: gpus)
        settings.count = count
        settings.rate = rate
        settings.granularity = granularity
        settings.sloScales = scales.map { $0! }
        guard var plan = ExperimentCatalog.plan(name, settings: settings) else {
            throw UserError("unknown experiment '\(name)'")
        }
        if reserve.slackReserve != RoundScheduler.defaultSlackReserve {
            for i in plan.runs.indices { plan.runs[i].slackReserve = reserve.slackReserve }
        }
        let started = ContinuousClock.now
        let seedList = (1...seeds).map { UInt64($0) }
        let progress = ProgressReporter(label: name, unit: "simulations")
        let points = try userFacing {
            try plan.execute(seeds: seedList) { done, total in progress.update(done, of: total) }
        }
        let report = ExperimentReport(plan: plan, points: points, seeds: seeds)
        print(report.markdown, terminator: "")
        let base = (out as NSString).appendingPathComponent(name)
        try userFacing { try writeFile(report.csv, to: base + ".csv") }
        for (k, panel) in plan.panels.enumerated() {
            let slug = panel.lowercased().replacingOccurrences(of: " ", with: "-")
            try userFacing { try writeFile(report.svg(panel: panel), to: base + "-\(k + 1)-\(slug).svg") }
        }
        let secs = started.duration(to: .now)
        log(
            "\(name): \(plan.runs.count * seeds) simulations in \(secs.formatted(.units(allowed: [.seconds], fractionalPart: .show(length: 1)))); files in \(out)/"
        )
    }
}
