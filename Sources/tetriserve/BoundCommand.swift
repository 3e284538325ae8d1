import ArgumentParser
import Foundation
import TetriCore
import TetriSim

struct BoundCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bound",
        abstract: "An upper bound on the SLO attainment any schedule can reach on a trace.",
        discussion: """
            Counts the requests that can meet their deadline alone at the fastest degree, then maximises the \
            number met subject to interval capacity: the requests met inside any interval need their minimal \
            GPU-time (exact over every degree mix) within GPUs × interval length, and whole-node exclusion: \
            while a step runs on every GPU nothing else runs. An integer program solved with GLPK. Then each \
            group of overlapping windows is bounded again by a time-indexed program in which every request's \
            steps per degree are whole numbers. See docs/scheduler.md for why each constraint holds. Prints \
            `upper_bound_sar=<x>` last.
            """
    )

    @Option(help: "Trace CSV (id,arrival_s,width,height,steps,slo_s).")
    var trace: String

    @Option(help: "Cost profile: \(Defaults.profileForms).")
    var profile: String = Defaults.profile

    @Option(parsing: .unconditional, help: "GPUs on the node (default: the profile's).")
    var gpus: Int?

    @Option(help: "Write the bound as JSON here.")
    var json: String?

    @Flag(
        help: """
            Give the solver every capacity constraint that could bind up front instead of adding them as \
            cutting planes (same bound; up to one constraint per pair of requests, slow on overloaded traces).
            """)
    var fullModel = false

    @Flag(
        help: """
            Charge each interval only the requests whose whole window lies inside it (the weaker bound \
            without the charge for requests partly inside; for comparison).
            """)
    var wholeWindows = false

    @Flag(
        help: """
            Leave out the whole-node exclusion rows (time a request must run on every GPU excludes every \
            other step; the weaker bound, for comparison).
            """)
    var noWholeNodeExclusion = false

    @Flag(
        help: """
            Leave out the step-count programs (per group of overlapping windows, each request's steps per \
            degree are whole numbers; the weaker bound, for comparison).
            """)
    var noStepCounts = false

    @Option(
        parsing: .unconditional,
        help: """
            Seconds one linked group's integer search may take before it stops with the bound it has proved \
            (still an upper bound, possibly looser; the output says how many groups stopped). 0: no limit, \
            search to the optimum as the experiment tables do.
            """)
    var solverTimeLimit: Double = 120

    @Flag(
        help: """
            Skip the clairvoyant schedule: by default the bound's chosen requests are scheduled alone with \
            tetriserve, and the count met (a schedule that exists, so a lower bound on the optimum) is \
            printed as achievable_sar.
            """)
    var noAchievable = false

    func run() throws {
        let model = try userFacing { try ProfileFile.load(profile) }
        guard let text = try? String(contentsOfFile: trace, encoding: .utf8) else {
            throw UserError("cannot read trace '\(trace)'")
        }
        let trace = try userFacing { try Trace(csv: text) }
        let gpus = self.gpus ?? model.gpus
        guard gpus >= 1 && gpus <= GPUSet.capacity else {
            throw UserError("--gpus must be in 1...\(GPUSet.capacity), got \(gpus)")
        }
        guard solverTimeLimit >= 0, solverTimeLimit.isFinite else {
            throw UserError("--solver-time-limit must be a number of seconds ≥ 0, got \(solverTimeLimit)")
        }
        // Progress on standard error once a run has taken a few seconds, at most one line every
        // two seconds, so a quick bound prints nothing extra.
        let start = ContinuousClock.now
        var lastLine = start
        let progress: (String) -> Void = { line in
            let now = ContinuousClock.now
            guard now - start >= .seconds(3), now - lastLine >= .seconds(2) else { return }
            lastLine = now
            let seconds = Double((now - start).components.seconds)
            log("bound [\(String(format: "%.0f", seconds)) s]: \(line)")
        }
        let bound = try userFacing {
            try UpperBound.compute(
                trace: trace, model: model, gpus: gpus, method: fullModel ? .fullModel : .cuttingPlanes,
                partialWindows: !wholeWindows, exclusiveTime: !noWholeNodeExclusion, stepCounts: !noStepCounts,
                solverTimeLimit: solverTimeLimit > 0 ? .milliseconds(Int64((solverTimeLimit * 1000).rounded())) : nil,
                progress: progress)
        }
        var lines = bound.text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var report = bound.report(profile: model.name, gpus: gpus)
        if !noAchievable {
            let clairvoyant = try userFacing {
                try Clairvoyant.achievable(trace: trace, bound: bound, model: model, gpus: gpus)
            }
            report.achievableMet = clairvoyant.met
            report.achievableSAR = clairvoyant.sar
            // Before the last line, which stays `upper_bound_sar=<x>`.
            lines.insert(
                "a clairvoyant schedule (tetriserve on the bound's \(clairvoyant.offered) chosen requests only) "
                    + "meets \(clairvoyant.met): achievable_sar=\(String(format: "%.4f", clairvoyant.sar))",
                at: lines.count - 1)
        }
        print(lines.joined(separator: "\n"))
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let data = try encoder.encode(report)
            try userFacing { try writeFile(String(decoding: data, as: UTF8.self) + "\n", to: json) }
        }
    }
}
