/// The policy names of the command line and result files, and how to build each.
public enum Policies {
    /// Every policy name, in the order reports list them.
    public static let names = [
        "tetriserve", "tetriserve-dp", "tetriserve-placement", "tetriserve-literal", "sp1", "sp2", "sp4", "sp8",
        "rssp", "rssp-best",
    ]

    /// The policies an SLO or rate sweep compares.
    public static let compared = ["tetriserve", "sp1", "sp2", "sp4", "sp8", "rssp", "rssp-best"]

    /// The paper's base SLO of each class by rank (256² … 2048²: 1.5, 2, 3, 5 s); classes past the
    /// fourth repeat the last.
    public static let baseSLO: [Micros] = [1_500_000, 2_000_000, 3_000_000, 5_000_000]

    /// Denoising steps per request in the paper's workloads.
    public static let baseSteps = 50

    /// RSSP's degree per resolution class, by the class's rank in the profile as in the paper's
    /// mapping (256²→1, 512²→1, 1024²→2, 2048²→8): the two smallest classes 1, the third 2, larger
    /// ones 8 — each the largest profiled degree not above that and the node's GPUs.
    public static func rsspDegrees(model: CostModel, gpus: Int) -> [Int] {
        let node = min(gpus, model.topology?.gpusPerNode ?? gpus)
        return model.resolutions.indices.map { rank in
            let want = rank < 2 ? 1 : rank == 2 ? 2 : 8
            return model.degrees.filter { $0 <= min(want, node) }.max() ?? model.degrees[0]
        }
    }

    /// `rssp-best`'s degree per resolution class: the degree with the least GPU-time
    /// (`steps × degree × T`) among those that run the class's `steps` within its base SLO alone
    /// (ties to the smaller degree); the largest degree that fits the node when none does.
    public static func rsspBestDegrees(
        model: CostModel, gpus: Int, baseSLO: [Micros] = Policies.baseSLO, steps: Int = Policies.baseSteps
    ) -> [Int] {
        let node = min(gpus, model.topology?.gpusPerNode ?? gpus)
        let usable = model.degrees.indices.filter { model.degrees[$0] <= node }
        return model.resolutions.indices.map { r in
            let slo = baseSLO[min(r, baseSLO.count - 1)]
            let meets = usable.filter { Micros(steps) * model.stepTime[r][$0] <= slo }
            guard
                let best = meets.min(by: {
                    (Int64(model.degrees[$0]) * model.stepTime[r][$0], $0)
                        < (Int64(model.degrees[$1]) * model.stepTime[r][$1], $1)
                })
            else { return usable.map { model.degrees[$0] }.max() ?? model.degrees[0] }
            return model.degrees[best]
        }
    }

    /// The round scheduler's configuration for a policy name, or nil when `name` is not a
    /// round-scheduler policy.
    public static func roundConfiguration(
        _ name: String, model: CostModel, gpus: Int, granularity: Int = RoundScheduler.defaultGranularity
    ) -> RoundScheduler.Configuration? {
        switch name {
        case "tetriserve":
            return .init(
                name: name, granularity: granularity, admission: true, longSteps: true,
                slackReserve: RoundScheduler.defaultSlackReserve)
        case "tetriserve-dp":
            return .init(name: name, granularity: granularity, placement: false, scaleUp: false, midRound: false)
        case "tetriserve-placement":
            return .init(name: name, granularity: granularity, scaleUp: false, midRound: false)
        case "tetriserve-literal":
            // The paper's round loop read literally: survival from the bare fastest step time,
            // survivors as the only objective, decisions at round boundaries only, scale-up
            // blocks that hold their GPUs to the round end.
            return .init(
                name: name, granularity: granularity, midRound: false, elasticTicks: false, roundAware: false,
                priceFuture: false)
        case "rssp":
            return .init(name: name, granularity: granularity, fixedDegrees: rsspDegrees(model: model, gpus: gpus))
        case "rssp-best":
            return .init(
                name: name, granularity: granularity, fixedDegrees: rsspBestDegrees(model: model, gpus: gpus))
        default:
            return nil
        }
    }

    /// Builds the scheduler for `name`.
    ///
    /// - Throws: ``PolicyError`` naming the policy for unknown names, unprofiled degrees or
    ///   too few GPUs.
    /// `sloFloor`, the tightest SLO to serve, caps the round length of the round schedulers
    /// (``RoundScheduler/Configuration/sloFloor``).
    /// `admission: false` turns the round schedulers' admission off (``RoundScheduler/Configuration/admission``;
    /// only `tetriserve` has it on). `slackReserve` replaces `tetriserve`'s slack reserve in ticks
    /// (``RoundScheduler/Configuration/slackReserve``; 0 turns it off, nil keeps the default).
    public static func make(
        _ name: String, model: CostModel, gpus: Int, granularity: Int = RoundScheduler.defaultGranularity,
        planMargin: Double = 0,
        sloFloor: Micros? = nil, admission: Bool = true, slackReserve: Int? = nil
    ) throws(PolicyError) -> any Scheduler {
        guard gpus >= 1 && gpus <= GPUSet.capacity else { throw .invalidGPUCount(gpus) }
        if var configuration = roundConfiguration(name, model: model, gpus: gpus, granularity: granularity)?
            .replacingSlackReserve(slackReserve)
        {
            configuration.planMargin = planMargin
            configuration.sloFloor = sloFloor
            configuration.admission = configuration.admission && admission
            return try RoundScheduler(configuration: configuration, model: model, gpus: gpus)
        }
        switch name {
        case "sp1", "sp2", "sp4", "sp8":
            return try FixedDegreeScheduler(degree: Int(name.dropFirst(2))!, gpus: gpus, model: model)
        default:
            throw .unknownPolicy(name)
        }
    }
}
