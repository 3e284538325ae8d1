import Foundation
import Synchronization
import TetriCore

/// One simulation setting of an experiment: a point `x` of series `series` in panel `panel`,
/// run once per seed.
public struct ExperimentRun: Sendable {
    public var panel: String
    public var series: String
    public var x: Double
    public var policy: String
    public var granularity: Int
    public var spec: WorkloadSpec
    public var model: CostModel
    public var gpus: Int
    /// A round-scheduler configuration to run instead of the named policy.
    public var configuration: RoundScheduler.Configuration?

    public init(
        panel: String, series: String, x: Double, policy: String, granularity: Int = RoundScheduler.defaultGranularity,
        spec: WorkloadSpec,
        model: CostModel, gpus: Int, configuration: RoundScheduler.Configuration? = nil
    ) {
        self.panel = panel
        self.series = series
        self.x = x
        self.policy = policy
        self.granularity = granularity
        self.spec = spec
        self.model = model
        self.gpus = gpus
        self.configuration = configuration
    }

    /// Whether round schedulers cap their round length by the workload's tightest SLO.
    public var capRound = true

    /// Replaces `tetriserve`'s slack reserve in ticks (0 turns it off; nil keeps the default),
    /// for the named policy and for configurations that have the reserve on.
    public var slackReserve: Int?

    /// The tightest SLO of the workload: the smallest base SLO times the scale.
    public var sloFloor: Micros { .fromSeconds((spec.baseSLO.min() ?? 1) * spec.sloScale) }

    /// The scheduler this run uses.
    public func makeScheduler() throws(PolicyError) -> any Scheduler {
        if var configuration = configuration?.replacingSlackReserve(slackReserve) {
            if capRound { configuration.sloFloor = sloFloor }
            return try RoundScheduler(configuration: configuration, model: model, gpus: gpus)
        }
        return try Policies.make(
            policy, model: model, gpus: gpus, granularity: granularity, sloFloor: capRound ? sloFloor : nil,
            slackReserve: slackReserve)
    }
}

/// The seed-averaged metrics of one run.
public struct ExperimentPoint: Sendable, Equatable {
    public var panel: String
    public var series: String
    public var x: Double
    public var seeds: Int
    public var sar: Double
    public var sarMin: Double
    public var sarMax: Double
    public var latencyMean: Double
    public var latencyP99: Double
    public var gpuSeconds: Double
    public var averageDegree: Double
    /// Seed mean of the upper bound on any schedule's SLO attainment for this run's traces
    /// (``UpperBound``); nil when not computed.
    public var bound: Double?
    /// Seed mean of the share of requests that no schedule can meet even alone (standalone
    /// infeasible); nil when the bound was not computed.
    public var infeasibleShare: Double?
    /// Seed mean of the SLO attainment of a schedule that exists (``Clairvoyant``), a lower
    /// bound on the optimum; nil when the bound was not computed.
    public var achievable: Double?
}

/// A named grid of runs and how to present it.
public struct ExperimentPlan: Sendable {
    public var name: String
    public var title: String
    public var xName: String
    public var runs: [ExperimentRun]
    /// Series that count as fixed-degree baselines for the relative-gain line.
    public var baselines: [String]
    /// The series whose gain over the best baseline is reported, if any.
    public var subject: String?
    /// The series set against the upper bound (`<series> / bound`); the subject by default.
    public var boundSeries: String?
    public var notes: [String]

    public init(
        name: String, title: String, xName: String, runs: [ExperimentRun], baselines: [String] = [],
        subject: String? = nil, boundSeries: String? = nil, notes: [String] = []
    ) {
        self.name = name
        self.title = title
        self.xName = xName
        self.runs = runs
        self.baselines = baselines
        self.subject = subject
        self.boundSeries = boundSeries ?? subject
        self.notes = notes
    }

    /// The panels in first-appearance order.
    public var panels: [String] { runs.map(\.panel).uniqued() }

    /// Runs every (run, seed) pair on all cores and averages over seeds; with `bounds`, also the
    /// upper bound of each distinct trace. `progress` is called after each simulation with
    /// (done, total).
    ///
    /// - Throws: ``SimulationError``, or ``BoundError`` when the bound's solver fails.
    public func execute(
        seeds: [UInt64], bounds: Bool = true, progress: @Sendable (Int, Int) -> Void = { _, _ in }
    ) throws -> [ExperimentPoint] {
        let jobs = runs.indices.flatMap { r in seeds.map { (run: r, seed: $0) } }
        let results = Mutex([SimulationSummary?](repeating: nil, count: jobs.count))
        typealias Bounds = (sar: Double, infeasible: Double, achievable: Double)
        let boundOf = Mutex([Bounds?](repeating: nil, count: jobs.count))
        let boundCache = Mutex([String: Bounds]())
        let failure = Mutex<(any Error)?>(nil)
        let done = Atomic<Int>(0)
        let runs = self.runs
        DispatchQueue.concurrentPerform(iterations: jobs.count) { j in
            if failure.withLock({ $0 != nil }) { return }
            let job = jobs[j]
            let run = runs[job.run]
            do {
                var spec = run.spec
                spec.seed = job.seed
                let trace = try spec.generate()
                var scheduler = try run.makeScheduler()
                let outcome = try Simulator.run(trace: trace, model: run.model, gpus: run.gpus, scheduler: &scheduler)
                let summary = SimulationSummary(outcome)
                results.withLock { $0[j] = summary }
                if bounds {
                    let key = "\(spec) \(run.gpus) \(run.model.name) \(run.model.stepTime)"
                    let value: Bounds
                    if let cached = boundCache.withLock({ $0[key] }) {
                        value = cached
                    } else {
                        let b = try UpperBound.compute(trace: trace, model: run.model, gpus: run.gpus)
                        let c = try Clairvoyant.achievable(trace: trace, bound: b, model: run.model, gpus: run.gpus)
                        value = (
                            b.sar, Double(b.standaloneInfeasible.values.reduce(0, +)) / Double(max(1, b.requests)),
                            c.sar
                        )
                        boundCache.withLock { $0[key] = value }
                    }
                    boundOf.withLock { $0[j] = value }
                }
            } catch let e as PolicyError {
                failure.withLock { $0 = SimulationError.invalidDecision(policy: run.policy, at: 0, "\(e)") }
            } catch {
                failure.withLock { $0 = error }
            }
            let n = done.add(1, ordering: .relaxed).newValue
            progress(n, jobs.count)
        }
        if let e = failure.withLock({ $0 }) { throw e }
        let all = results.withLock { $0 }
        let allBounds = boundOf.withLock { $0 }
        return runs.indices.map { r in
            let range = (r * seeds.count)..<((r + 1) * seeds.count)
            let s = all[range].map { $0! }
            let n = Double(s.count)
            let b = allBounds[range].compactMap { $0 }
            return ExperimentPoint(
                panel: runs[r].panel, series: runs[r].series, x: runs[r].x, seeds: s.count,
                sar: s.map(\.sloAttainment).reduce(0, +) / n, sarMin: s.map(\.sloAttainment).min()!,
                sarMax: s.map(\.sloAttainment).max()!, latencyMean: s.map(\.latencyS.mean).reduce(0, +) / n,
                latencyP99: s.map(\.latencyS.p99).reduce(0, +) / n, gpuSeconds: s.map(\.gpuSeconds).reduce(0, +) / n,
                averageDegree: s.map(\.averageDegree).reduce(0, +) / n,
                bound: b.count == s.count ? b.map(\.sar).reduce(0, +) / n : nil,
                infeasibleShare: b.count == s.count ? b.map(\.infeasible).reduce(0, +) / n : nil,
                achievable: b.count == s.count ? b.map(\.achievable).reduce(0, +) / n : nil)
        }
    }
}

extension Array where Element: Hashable {
    func uniqued() -> [Element] {
        var seen = Set<Element>()
        return filter { seen.insert($0).inserted }
    }
}
