import ArgumentParser
import Foundation
import TetriCore
import TetriSim

struct WorkloadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workload",
        abstract: "Generate a synthetic request trace (CSV: id,arrival_s,width,height,steps,slo_s).",
        discussion: """
            Poisson arrivals (or burstier gamma gaps with --burstiness > 1) at --rate requests per minute, \
            resolution classes drawn from --mix, each request's SLO = base SLO of its class × --slo-scale. \
            Classes and base SLOs default to the paper's: 256², 512², 1024², 2048² with 1.5, 2, 3, 5 s.
            """
    )

    @Option(help: "Resolution mix: uniform, skewed (p ∝ exp(L/L_max)), or weights per class such as 1,1,2,4.")
    var mix: String = "uniform"

    @Option(parsing: .unconditional, help: "Mean arrival rate in requests per minute.")
    var rate: Double = 12

    @Option(parsing: .unconditional, help: "Number of requests.")
    var count: Int = 300

    @Option(name: .customLong("slo-scale"), parsing: .unconditional, help: "Multiplier on every base SLO.")
    var sloScale: Double = 1.0

    @Option(parsing: .unconditional, help: "Random seed.")
    var seed: UInt64 = 1

    @Option(parsing: .unconditional, help: "Denoising steps per request.")
    var steps: Int = 50

    @Option(
        parsing: .unconditional,
        help: "Coefficient of variation of inter-arrival gaps (1 = Poisson, larger = burstier).")
    var burstiness: Double = 1

    @Option(
        help:
            "Take resolution classes and token counts from this profile (\(Defaults.profileForms)) instead of the paper's four."
    )
    var profile: String?

    @Option(
        name: .customLong("base-slo"), parsing: .unconditional,
        help: "Base SLO in seconds per class, ascending, comma-separated.")
    var baseSLO: String?

    @Option(help: "Write the trace here instead of standard output.")
    var out: String?

    func run() throws {
        let spec = try makeSpec()
        let trace = try userFacing { try spec.generate() }
        if let out {
            try userFacing { try writeFile(trace.csv, to: out) }
            log("wrote \(trace.requests.count) requests to \(out)")
        } else {
            print(trace.csv, terminator: "")
        }
    }

    func makeSpec() throws -> WorkloadSpec {
        guard let mix = Mix(parsing: mix) else {
            throw UserError(
                "--mix must be uniform, skewed or comma-separated non-negative weights, got '\(self.mix)'")
        }
        var spec = WorkloadSpec()
        if let profile {
            spec = WorkloadSpec(model: try userFacing { try ProfileFile.load(profile) })
        }
        if let baseSLO {
            let values = baseSLO.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard values.allSatisfy({ $0 != nil }) else {
                throw UserError("--base-slo must be comma-separated seconds, got '\(baseSLO)'")
            }
            spec.baseSLO = values.map { $0! }
        }
        spec.mix = mix
        spec.ratePerMinute = rate
        spec.count = count
        spec.sloScale = sloScale
        spec.seed = seed
        spec.steps = steps
        spec.burstiness = burstiness
        try userFacing { try spec.validate() }
        return spec
    }
}
