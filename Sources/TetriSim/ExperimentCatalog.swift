import TetriCore

/// The named experiments of `tetriserve experiment`.
public enum ExperimentCatalog {
    public static let names = [
        "slo-sweep", "rate-sweep", "granularity", "ablation", "mechanisms", "homogeneous", "sd3",
    ]

    /// The ladder of the `mechanisms` experiment: the paper's round loop read literally, then
    /// each change this implementation makes, one at a time, ending at `tetriserve`.
    public static func mechanismLadder(granularity: Int) -> [RoundScheduler.Configuration] {
        var c = RoundScheduler.Configuration(
            name: "literal", granularity: granularity, midRound: false, elasticTicks: false, roundAware: false,
            priceFuture: false)
        var ladder = [c]
        c.roundAware = true
        c.name = "+round-aware"
        ladder.append(c)
        c.priceFuture = true
        c.name = "+priced future"
        ladder.append(c)
        c.midRound = true
        c.name = "+mid-round"
        ladder.append(c)
        c.elasticTicks = true
        c.name = "+elastic ticks"
        ladder.append(c)
        c.admission = true
        c.name = "+admission"
        ladder.append(c)
        c.longSteps = true
        c.name = "+long steps"
        ladder.append(c)
        c.slackReserve = RoundScheduler.defaultSlackReserve
        c.name = "+slack reserve"
        ladder.append(c)
        return ladder
    }

    /// The shared knobs.
    public struct Settings: Sendable {
        public var model: CostModel
        public var gpus: Int
        public var count: Int = 300
        public var rate: Double = 12
        public var steps: Int = 50
        public var sloScales: [Double] = [1.0, 1.1, 1.2, 1.3, 1.4, 1.5]
        public var granularity: Int = RoundScheduler.defaultGranularity

        public init(model: CostModel, gpus: Int) {
            self.model = model
            self.gpus = gpus
        }

        func spec(mix: Mix, scale: Double, rate: Double? = nil) -> WorkloadSpec {
            var s = WorkloadSpec(model: model)
            s.mix = mix
            s.sloScale = scale
            s.count = count
            s.ratePerMinute = rate ?? self.rate
            s.steps = steps
            return s
        }

        /// The compared policies that this profile and node can run.
        var policies: [String] {
            Policies.compared.filter { (try? Policies.make($0, model: model, gpus: gpus)) != nil }
        }

        var fixed: [String] { policies.filter { $0 != "tetriserve" } }

        var skipped: [String] { Policies.compared.filter { !policies.contains($0) } }

        /// One note per class that no schedule can meet at some of the SLO scales: its steps at
        /// the fastest degree that fits the node take longer than its SLO.
        var infeasibleNotes: [String] {
            let base = WorkloadSpec(model: model).baseSLO
            var out: [String] = []
            for r in model.resolutions.indices {
                let fastest = model.degrees.indices.filter { model.degrees[$0] <= gpus }
                    .min { model.stepTime[r][$0] < model.stepTime[r][$1] }!
                let run = Double(steps) * Double(model.stepTime[r][fastest]) / 1e6
                let bad = sloScales.filter { base[r] * $0 < run }
                guard !bad.isEmpty else { continue }
                let list = bad.map { ExperimentReport.number($0) }.joined(separator: ", ")
                out.append(
                    "No schedule can meet any \(model.resolutions[r]) request at SLO scale \(list): \(steps) steps "
                        + String(format: "at degree %d take %.3f s", model.degrees[fastest], run)
                        + " against its \(ExperimentReport.number(base[r])) s × scale SLO (needs scale ≥ "
                        + String(format: "%.3f).", run / base[r]))
            }
            return out
        }
    }

    /// The ablation's ladder: packing only, then placement preservation, then each of scale-up and
    /// mid-round decisions alone on top, then all of them with elastic ticks, then admission, then
    /// long steps with the slack reserve (the full policy).
    public static func ablationLadder(granularity: Int) -> [RoundScheduler.Configuration] {
        var c = RoundScheduler.Configuration(
            name: "packing (tetriserve-dp)", granularity: granularity, placement: false, scaleUp: false,
            midRound: false)
        var ladder = [c]
        c.placement = true
        c.name = "+placement (tetriserve-placement)"
        ladder.append(c)
        var up = c
        up.scaleUp = true
        up.elasticTicks = false
        up.name = "+placement +scale-up"
        ladder.append(up)
        var mid = c
        mid.midRound = true
        mid.name = "+placement +mid-round"
        ladder.append(mid)
        c.scaleUp = true
        c.midRound = true
        c.elasticTicks = true
        c.name = "+scale-up +mid-round +elastic ticks"
        ladder.append(c)
        c.admission = true
        c.name = "+admission"
        ladder.append(c)
        c.longSteps = true
        c.slackReserve = RoundScheduler.defaultSlackReserve
        c.name = "+long steps +slack reserve (tetriserve)"
        ladder.append(c)
        return ladder
    }

    /// The paper's ablation figures where the settings match (FLUX, 8 GPUs): SAR of packing
    /// only, +placement, full, by mix and SLO scale.
    public static let paperAblation: [String: [Double: [Double]]] = [
        "uniform": [1.0: [0.54, 0.56, 0.63], 1.5: [0.74, 0.69, 0.78]],
        "skewed": [1.0: [0.27, 0.31, 0.36], 1.5: [0.38, 0.45, 0.55]],
    ]

    /// The plan for `name`, or nil for an unknown name.
    public static func plan(_ name: String, settings s: Settings) -> ExperimentPlan? {
        let mixes: [(String, Mix)] = [("uniform", .uniform), ("skewed", .skewed)]
        var notes: [String] = s.infeasibleNotes
        if !s.skipped.isEmpty {
            notes.append("Not run (the profile or node lacks the degree): \(s.skipped.joined(separator: ", ")).")
        }
        func sweep(title: String) -> ExperimentPlan {
            var runs: [ExperimentRun] = []
            for (panel, mix) in mixes {
                for scale in s.sloScales {
                    for p in s.policies {
                        runs.append(
                            ExperimentRun(
                                panel: panel, series: p, x: scale, policy: p, granularity: s.granularity,
                                spec: s.spec(mix: mix, scale: scale), model: s.model, gpus: s.gpus))
                    }
                }
            }
            return ExperimentPlan(
                name: name, title: title, xName: "SLO scale", runs: runs, baselines: s.fixed, subject: "tetriserve",
                notes: notes)
        }
        switch name {
        case "slo-sweep", "sd3":
            return sweep(
                title: "SLO attainment vs SLO scale (\(s.model.name), \(s.gpus) GPUs, \(s.count) requests, "
                    + "\(ExperimentReport.number(s.rate)) req/min)")
        case "rate-sweep":
            var runs: [ExperimentRun] = []
            let scale = s.sloScales.first ?? 1
            for (panel, mix) in mixes {
                for rate in [6.0, 9, 12, 15, 18] {
                    for p in s.policies {
                        runs.append(
                            ExperimentRun(
                                panel: panel, series: p, x: rate, policy: p, granularity: s.granularity,
                                spec: s.spec(mix: mix, scale: scale, rate: rate), model: s.model, gpus: s.gpus))
                    }
                }
            }
            return ExperimentPlan(
                name: name,
                title: "SLO attainment vs arrival rate (\(s.model.name), SLO scale \(ExperimentReport.number(scale)))",
                xName: "req/min", runs: runs, baselines: s.fixed, subject: "tetriserve", notes: notes)
        case "granularity":
            var runs: [ExperimentRun] = []
            for (panel, mix) in mixes {
                for scale in [s.sloScales.first ?? 1, s.sloScales.last ?? 1.5].uniqued() {
                    for g in [1, 2, 5, 10, 15] {
                        var run = ExperimentRun(
                            panel: "\(panel) SLO \(ExperimentReport.number(scale))x", series: "tetriserve",
                            x: Double(g), policy: "tetriserve", granularity: g, spec: s.spec(mix: mix, scale: scale),
                            model: s.model, gpus: s.gpus)
                        run.capRound = false
                        runs.append(run)
                    }
                }
            }
            return ExperimentPlan(
                name: name, title: "TetriServe SLO attainment vs step granularity (\(s.model.name))",
                xName: "granularity", runs: runs, boundSeries: "tetriserve",
                notes: notes + [
                    "Round length = granularity × the slowest class's fastest step time, without the cap by the "
                        + "tightest SLO that the other experiments apply."
                ])
        case "ablation":
            var runs: [ExperimentRun] = []
            let ladder = ablationLadder(granularity: s.granularity)
            for (panel, mix) in mixes {
                for scale in s.sloScales {
                    for c in ladder {
                        runs.append(
                            ExperimentRun(
                                panel: panel, series: c.name, x: scale, policy: "tetriserve",
                                granularity: s.granularity, spec: s.spec(mix: mix, scale: scale), model: s.model,
                                gpus: s.gpus, configuration: c))
                    }
                }
            }
            var paper: [String] = []
            for (panel, _) in mixes {
                for (scale, v) in (paperAblation[panel] ?? [:]).sorted(by: { $0.key < $1.key })
                where s.sloScales.contains(scale) {
                    paper.append(
                        "\(panel) \(ExperimentReport.number(scale))×: "
                            + v.map { String(format: "%.2f", $0) }.joined(separator: " / "))
                }
            }
            if !paper.isEmpty && s.model.name.hasPrefix("flux1-dev") && s.gpus == 8 {
                notes.append(
                    "The paper's own figures at these settings (packing / +placement / full): "
                        + paper.joined(separator: "; ") + ".")
            }
            return ExperimentPlan(
                name: name,
                title:
                    "Ablation (\(s.model.name), hand-off \(ExperimentReport.number(Double(s.model.handoff) / 1000)) ms)",
                xName: "SLO scale", runs: runs, boundSeries: ladder.last!.name, notes: notes)
        case "mechanisms":
            var runs: [ExperimentRun] = []
            for (panel, mix) in mixes {
                for scale in s.sloScales {
                    for c in mechanismLadder(granularity: s.granularity) {
                        runs.append(
                            ExperimentRun(
                                panel: panel, series: c.name, x: scale, policy: "tetriserve",
                                granularity: s.granularity, spec: s.spec(mix: mix, scale: scale), model: s.model,
                                gpus: s.gpus, configuration: c))
                    }
                }
            }
            return ExperimentPlan(
                name: name, title: "From the literal round loop to TetriServe, one change at a time (\(s.model.name))",
                xName: "SLO scale", runs: runs, boundSeries: "+slack reserve",
                notes: notes + ["'+slack reserve' is the full `tetriserve` policy."])
        case "homogeneous":
            var runs: [ExperimentRun] = []
            for (k, res) in s.model.resolutions.enumerated() {
                var w = [Double](repeating: 0, count: s.model.resolutions.count)
                w[k] = 1
                for scale in s.sloScales {
                    for p in s.policies {
                        runs.append(
                            ExperimentRun(
                                panel: "only \(res)", series: p, x: scale, policy: p, granularity: s.granularity,
                                spec: s.spec(mix: .weights(w), scale: scale), model: s.model, gpus: s.gpus))
                    }
                }
            }
            return ExperimentPlan(
                name: name, title: "Single-resolution workloads (\(s.model.name))", xName: "SLO scale", runs: runs,
                baselines: s.fixed, subject: "tetriserve", notes: notes)
        default:
            return nil
        }
    }
}
