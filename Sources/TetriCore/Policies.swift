/// The policy names of the command line and result files, and how to build each.
public enum Policies {
    /// Every policy name, in the order reports list them.
    public static let names = [
        "tetriserve", "tetriserve-dp", "tetriserve-placement", "tetriserve-literal", "sp1", "sp2", "sp4", "sp8",
        "rssp",
    ]

    /// The policies an SLO or rate sweep compares.
    public static let compared = ["tetriserve", "sp1", "sp2", "sp4", "sp8", "rssp"]

    /// RSSP's degree per resolution class, by the class's rank in the profile as in the paper's
    /// mapping (256²→1, 512²→1, 1024²→2, 2048²→8): the two smallest classes 1, the third 2, larger
    /// ones 8 — each the largest profiled degree not above that and the node's GPUs.
    public static func rsspDegrees(model: CostModel, gpus: Int) -> [Int] {
        model.resolutions.indices.map { rank in
            let want = rank < 2 ? 1 : rank == 2 ? 2 : 8
            return model.degrees.filter { $0 <= min(want, gpus) }.max() ?? model.degrees[0]
        }
    }

    /// The round scheduler's configuration for a policy name, or nil when `name` is not a
    /// round-scheduler policy.
    public static func roundConfiguration(
        _ name: String, model: CostModel, gpus: Int, granularity: Int = 5
    ) -> RoundScheduler.Configuration? {
        switch name {
        case "tetriserve":
            return .init(name: name, granularity: granularity)
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
        default:
            return nil
        }
    }

    /// Builds the scheduler for `name`.
    ///
    /// - Throws: ``PolicyError`` naming the policy for unknown names, unprofiled degrees or
    ///   too few GPUs.
    public static func make(
        _ name: String, model: CostModel, gpus: Int, granularity: Int = 5, planMargin: Double = 0
    ) throws(PolicyError) -> any Scheduler {
        guard gpus >= 1 && gpus <= GPUSet.capacity else { throw .invalidGPUCount(gpus) }
        if var configuration = roundConfiguration(name, model: model, gpus: gpus, granularity: granularity) {
            configuration.planMargin = planMargin
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
