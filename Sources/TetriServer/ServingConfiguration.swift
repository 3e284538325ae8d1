import TetriCore

/// How the HTTP layer turns requests into jobs.
public struct ServingConfiguration: Sendable {
    /// Steps when a request gives no `num_inference_steps`.
    public var defaultSteps: Int = 50
    /// Base SLO in seconds per resolution class (ascending) for a 50-step request; a request
    /// without `slo_ms` or `deadline` gets `base × steps / 50 × sloScale`.
    public var baseSLO: [Double]
    public var sloScale: Double = 1
    /// Largest request body in bytes.
    public var maxBodyBytes: Int = 64 * 1024
    /// Largest `n`.
    public var maxImages: Int = 4
    /// API keys; none: no authentication, every caller shares one owner.
    public var apiKeys = APIKeys([])
    /// Longest time a request body may take to arrive in full (408 after it).
    public var bodyTimeout: Duration = .seconds(30)

    public init(baseSLO: [Double], defaultSteps: Int = 50, sloScale: Double = 1) {
        self.baseSLO = baseSLO
        self.defaultSteps = defaultSteps
        self.sloScale = sloScale
    }

    /// The paper's base SLOs by class rank (1.5, 2, 3, 5 s; classes past the fourth repeat 5 s).
    public static func paperSLOs(classes: Int) -> [Double] {
        let base = [1.5, 2.0, 3.0, 5.0]
        return (0..<classes).map { base[min($0, base.count - 1)] }
    }

    /// Base SLOs from a measured profile: twice the fastest 50-step time of each class.
    public static func profileSLOs(_ model: CostModel) -> [Double] {
        model.stepTime.map { row in 2 * 50 * Double(row.min()!) / 1e6 }
    }

    /// The relative SLO of a request of class `r` with `steps` steps, in microseconds.
    public func defaultSLO(resolution r: Int, steps: Int) -> Micros {
        .fromSeconds(baseSLO[min(r, baseSLO.count - 1)] * Double(steps) / 50 * sloScale)
    }

    /// The tightest SLO a request gets when it gives none: the smallest class's default SLO at
    /// ``defaultSteps``. The round schedulers cap their round at half of it, the rule the simulator
    /// applies with the trace's tightest SLO (``RoundScheduler/Configuration/sloFloor``).
    public var sloFloor: Micros {
        baseSLO.indices.map { defaultSLO(resolution: $0, steps: defaultSteps) }.min() ?? 0
    }

    /// The scheduler the server runs: `policy` with its round capped by ``sloFloor`` unless
    /// `capRound` is false (`serve --uncapped-round`).
    public func scheduler(
        policy: String, model: CostModel, gpus: Int, granularity: Int, planMargin: Double = 0, capRound: Bool = true,
        admission: Bool = true, slackReserve: Int? = nil
    ) throws(PolicyError) -> any Scheduler {
        try Policies.make(
            policy, model: model, gpus: gpus, granularity: granularity, planMargin: planMargin,
            sloFloor: capRound && !baseSLO.isEmpty ? sloFloor : nil, admission: admission, slackReserve: slackReserve)
    }
}
