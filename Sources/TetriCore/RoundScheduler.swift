/// TetriServe's round scheduler: step-level sequence parallelism decided in rounds.
///
/// Time is cut into rounds of `granularity × T_ref`, where `T_ref` is the step time of the
/// slowest resolution class at its fastest degree (so every class can run at least one step in
/// a round). At each round boundary, and — when work-conserving — whenever GPUs free up inside
/// a round, the scheduler:
///
/// 1. gives every waiting request its options for the rest of the round: "none", or degree `k`
///    for `q = min(remaining, ⌊window / T(k)⌋)` steps;
/// 2. marks each option as *surviving* when the request can still meet its deadline from the
///    next boundary on (round-aware: steps only run in whole rounds), and prices it by the
///    GPU-time it spends now plus the minimal GPU-time plan for the steps left
///    (``MinimalAllocation``), so that a request that idles pays for the higher degrees it will
///    need later;
/// 3. packs options with a group-knapsack DP: at most one option per request, total width at
///    most the free GPUs, most survivors first, least GPU-time second;
/// 4. gives leftover GPUs to late requests (those that can no longer meet their deadline), one
///    smallest-fitting degree each, shortest remaining work first;
/// 5. (work-conserving) scales requests up with the GPUs still idle, largest completion-time
///    reduction per extra GPU first;
/// 6. places each block, keeping a request on its previous GPUs where they are free
///    (placement preservation), else on the lowest-numbered free GPUs.
///
/// The variants of the ablation switch mechanisms off: `tetriserve-dp` (packing only: no
/// placement preservation, no scale-up, no decisions inside a round), `tetriserve-placement`
/// (adds placement preservation). `rssp` is the same scheduler with each resolution's degree
/// fixed.
public struct RoundScheduler: Scheduler {
    /// The step granularity every command and experiment uses unless told otherwise: one tick
    /// per round (a round of `T_ref`). On every shipped profile it meets at least as many
    /// requests as longer rounds at nearly every point measured (docs/scheduler.md, "Rounds").
    public static let defaultGranularity = 1

    /// `tetriserve`'s slack reserve in ticks (``Configuration/slackReserve``); docs/scheduler.md
    /// gives the measurements behind it.
    public static let defaultSlackReserve = 1

    /// Which mechanisms run.
    public struct Configuration: Sendable, Equatable {
        public var name: String
        /// Steps per round for the slowest class at its fastest degree.
        public var granularity: Int
        /// Keep requests on their previous GPUs where possible.
        public var placement: Bool
        /// Give GPUs left after packing and late requests to the requests that gain most.
        public var scaleUp: Bool
        /// Decide again whenever GPUs free up inside a round (not only at round boundaries).
        public var midRound: Bool
        /// Scaled-up blocks end at the next tick (`T_ref`) instead of the round boundary, so
        /// that GPUs lent by scale-up return quickly to requests that arrive inside a round.
        public var elasticTicks: Bool
        /// Survival and plans count whole rounds (steps only run inside rounds, with the idle
        /// tail a round leaves); off, they use the bare step times as if steps ran back to back.
        public var roundAware: Bool
        /// Price options by GPU-time now plus the minimal plan for the rest, so that among
        /// equally many survivors the packing prefers progress over idling; off, the packing
        /// counts survivors only.
        public var priceFuture: Bool
        /// Plans aim to finish this fraction of the remaining time before the deadline, leaving
        /// slack for execution-time noise; survival is still judged on the deadline itself.
        public var planMargin: Double = 0
        /// A fixed degree per resolution class (index order of the cost model), or nil for free
        /// choice among the profiled degrees.
        public var fixedDegrees: [Int]?
        /// The tightest SLO the scheduler serves. When set, a round holds at most
        /// `⌊sloFloor / 2 / T_ref⌋` ticks (at least one, at most `granularity`): a request of the
        /// tightest class that arrives just after a boundary can wait out the round and still
        /// have half its SLO left. Nil keeps `granularity` ticks.
        public var sloFloor: Micros?
        /// Admission by look-ahead: of the requests that can each still finish in time, keep the
        /// most (Moore–Hodgson by deadline) whose cheapest plans fit the node's GPU-time up to
        /// their deadlines together; the others wait for GPUs the kept ones leave, like late
        /// requests.
        public var admission: Bool
        /// Long steps: a degree whose step is longer than a round is still an option, for one
        /// step that runs past the boundary (its GPUs stay busy until it ends, and the request's
        /// next decision comes then). Off, such degrees are not offered.
        public var longSteps: Bool
        /// The slack reserve, in ticks: an option that leaves its request less slack than this
        /// (time to the deadline beyond the soonest finish) pays, on top of its GPU-time, the
        /// whole node's GPU-time for every microsecond short, so that among equally many
        /// survivors the packing spends slack last. 0 turns it off.
        public var slackReserve: Int

        public init(
            name: String, granularity: Int = RoundScheduler.defaultGranularity, placement: Bool = true,
            scaleUp: Bool = true, midRound: Bool = true,
            elasticTicks: Bool = true, roundAware: Bool = true, priceFuture: Bool = true, admission: Bool = false,
            longSteps: Bool = false, slackReserve: Int = 0, fixedDegrees: [Int]? = nil
        ) {
            self.name = name
            self.granularity = granularity
            self.placement = placement
            self.scaleUp = scaleUp
            self.midRound = midRound
            self.elasticTicks = elasticTicks
            self.roundAware = roundAware
            self.priceFuture = priceFuture
            self.admission = admission
            self.longSteps = longSteps
            self.slackReserve = slackReserve
            self.fixedDegrees = fixedDegrees
        }

        /// This configuration with its slack reserve replaced by `ticks` (at least 0) when the
        /// reserve is on; unchanged when it is off or `ticks` is nil.
        public func replacingSlackReserve(_ ticks: Int?) -> Configuration {
            guard let ticks, slackReserve > 0 else { return self }
            var c = self
            c.slackReserve = max(0, ticks)
            return c
        }
    }

    /// The per-class tables the scheduler needs, computed once.
    struct ClassTable: Sendable {
        /// Allowed degrees (ascending) whose step fits in a full round.
        var widths: [Int]
        var stepTime: [Int64]
        /// Steps per full round at each allowed degree.
        var perRound: [Int]
        /// Round-effective time per step (`round / perRound`), used for planning.
        var planTime: [Int64]
        /// Step time on a group that crosses islands; nil where the profile forbids it.
        var crossTime: [Int64?]
        /// Whether a step at each allowed degree is longer than a round (a long step, offered
        /// for one step past the boundary; see ``Configuration/longSteps``).
        var long: [Bool] = []
        /// `soonest[n]`: ``RoundScheduler/minFinish(_:_:)`` of `n` steps, for `n` below
        /// ``RoundScheduler/finishTableSize`` (computed once; the survival test asks it for every
        /// option of every request).
        var soonest: [Micros] = []
    }

    /// Step counts whose soonest finish each class keeps in a table.
    static let finishTableSize = 257

    public let configuration: Configuration
    public let round: Micros
    /// `T_ref`: a round is `granularity` ticks.
    public let tick: Micros
    let gpus: Int
    let handoff: Micros
    /// Fixed time every block pays on top of its steps (``CostModel/dispatchOverhead``).
    let dispatch: Micros
    /// The slack reserve as a time (``Configuration/slackReserve`` ticks); 0 when off.
    let reserve: Micros
    let classes: [ClassTable]
    /// How the GPUs are linked; nil when the profile does not say.
    let topology: NodeTopology?
    /// The nodes of the cluster (one set of all GPUs without a topology).
    let nodes: [GPUSet]
    /// The islands of the cluster, indexed by ``NodeTopology/islandIndex(of:)``; empty unless
    /// the topology cuts nodes into islands.
    let islandSets: [GPUSet]

    /// The next round boundary; nil while the node is empty.
    public internal(set) var nextBoundary: Micros?

    public var name: String { configuration.name }

    public init(configuration: Configuration, model: CostModel, gpus: Int) throws(PolicyError) {
        guard gpus >= 1 && gpus <= GPUSet.capacity else { throw .invalidGPUCount(gpus) }
        guard configuration.granularity >= 1 else { throw .invalidGranularity(configuration.granularity) }
        // A group never spans nodes, so no degree exceeds a node.
        let perNode = model.topology.map { min(gpus, $0.gpusPerNode) } ?? gpus
        var allowed: [[Int]] = []
        for r in model.resolutions.indices {
            if let fixed = configuration.fixedDegrees {
                let d = fixed[r]
                guard model.degreeIndex(d) != nil else {
                    throw .degreeNotProfiled(policy: configuration.name, degree: d, profile: model.name)
                }
                guard d <= perNode else { throw .tooFewGPUs(policy: configuration.name, needs: d, gpus: perNode) }
                allowed.append([model.degreeIndex(d)!])
            } else {
                allowed.append(model.degrees.indices.filter { model.degrees[$0] <= perNode })
            }
        }
        // T_ref: the slowest class at its fastest allowed degree.
        var tRef: Micros = 1
        for r in model.resolutions.indices {
            let fastest = allowed[r].map { model.stepTime[r][$0] }.min()!
            tRef = max(tRef, fastest)
        }
        // A tick holds one reference step and one block dispatch (zero unless the profile or the
        // options give one), so a block that ends at a tick still fits its step.
        let tick = tRef + model.dispatchOverhead
        let round = tick * Micros(Self.ticksPerRound(configuration, tick: tick))
        var classes: [ClassTable] = []
        for r in model.resolutions.indices {
            let setsTick = allowed[r].map { model.stepTime[r][$0] }.min()! == tRef
            var t = ClassTable(widths: [], stepTime: [], perRound: [], planTime: [], crossTime: [])
            for d in allowed[r] {
                let time = model.stepTime[r][d]
                let q = Int((round - model.dispatchOverhead) / time)
                // Long steps only for the classes that set the tick (their fastest step fills a
                // round, so without long steps they can only run on their fastest degree), and no
                // longer than half the tightest SLO, the bound a round keeps to.
                let short = configuration.sloFloor.map { time + model.dispatchOverhead <= $0 / 2 } ?? true
                guard q >= 1 || (configuration.longSteps && setsTick && short) else { continue }
                t.widths.append(model.degrees[d])
                t.stepTime.append(time)
                t.perRound.append(max(1, q))
                t.long.append(q < 1)
                // A long step is followed by the next decision as soon as it ends: its bare time.
                t.planTime.append(configuration.roundAware && q >= 1 ? (round + Micros(q) - 1) / Micros(q) : time)
                let cross = model.topology?.crossStepTime
                t.crossTime.append(cross.map { $0.isEmpty ? nil : $0[r][d] } ?? nil)
            }
            classes.append(t)
        }
        for r in classes.indices where !classes[r].widths.isEmpty {
            let c = classes[r]
            classes[r].soonest = (0..<Self.finishTableSize).map { n in
                Self.soonestFinish(
                    c, n, round: round, roundAware: configuration.roundAware, dispatch: model.dispatchOverhead)
            }
        }
        self.configuration = configuration
        self.round = round
        self.tick = tick
        self.gpus = gpus
        self.handoff = model.handoff
        self.dispatch = model.dispatchOverhead
        self.reserve = Micros(max(0, configuration.slackReserve)) * tick
        self.classes = classes
        self.topology = model.topology
        self.nodes = model.topology?.nodes(gpus: gpus) ?? [GPUSet(first: gpus)]
        self.islandSets = model.topology.map { $0.hasIslands ? $0.islands(gpus: gpus) : [] } ?? []
    }

    /// Ticks per round: `granularity`, capped by half the SLO floor when one is set.
    public static func ticksPerRound(_ configuration: Configuration, tick: Micros) -> Int {
        guard let floor = configuration.sloFloor else { return configuration.granularity }
        return max(1, min(configuration.granularity, Int(floor / 2 / max(1, tick))))
    }

    // MARK: Estimates

    /// Time to run `steps` steps at option `o` of class `c` from a round boundary, running in
    /// every round: whole rounds, then the last partial round.
    @inline(__always)
    static func roundFinish(_ c: ClassTable, _ o: Int, _ steps: Int, round: Micros, dispatch: Micros = 0) -> Micros {
        guard steps > 0 else { return 0 }
        if c.long[o] { return Micros(steps) * c.stepTime[o] + dispatch }
        let q = c.perRound[o]
        let full = (steps - 1) / q
        return Micros(full) * round + Micros(steps - full * q) * c.stepTime[o] + dispatch
    }

    /// The soonest `steps` steps of class `c` can finish from a round boundary.
    @inline(__always)
    func minFinish(_ c: ClassTable, _ steps: Int) -> Micros {
        if steps < c.soonest.count { return c.soonest[steps] }
        return Self.soonestFinish(c, steps, round: round, roundAware: configuration.roundAware, dispatch: dispatch)
    }

    static func soonestFinish(_ c: ClassTable, _ steps: Int, round: Micros, roundAware: Bool, dispatch: Micros)
        -> Micros
    {
        if !roundAware { return Micros(steps) * c.stepTime.min()! + dispatch }
        var best = Micros.max
        // A long step is never the soonest: the class's fastest degree fits a round.
        for o in c.widths.indices where !c.long[o] {
            best = min(best, roundFinish(c, o, steps, round: round, dispatch: dispatch))
        }
        return best
    }

    /// The time a plan may use of `budget` (the time to the deadline).
    @inline(__always)
    func planBudget(_ budget: Micros) -> Micros {
        configuration.planMargin == 0 ? budget : Micros(Double(budget) * (1 - configuration.planMargin))
    }

    /// GPU-time of the cheapest plan for `steps` steps within `budget`.
    @inline(__always)
    func planCost(_ c: ClassTable, _ steps: Int, budget: Micros) -> Int64 {
        if steps == 0 { return 0 }
        if let cost = MinimalAllocation.cost(steps: steps, budget: budget, time: c.planTime, width: c.widths) {
            return cost
        }
        // Feasible by whole rounds but not by the per-step average: price it at the fastest degree.
        var best = Int64.max
        for o in c.widths.indices { best = min(best, Int64(steps) * Int64(c.widths[o]) * c.planTime[o]) }
        return best
    }
}
