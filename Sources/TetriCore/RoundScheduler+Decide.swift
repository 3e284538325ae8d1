import HeapModule

extension RoundScheduler {
    /// One option of one request in the round problem.
    struct Option {
        /// Index into the class table's degree lists; -1 for "none".
        var choice: Int
        var width: Int
        var steps: Int
        var survives: Bool
        var cost: Int64
    }

    /// A request's assignment for this decision.
    struct Pick {
        var index: Int  // into view.requests
        var choice: Int  // -1 = none
        var onTime: Bool
        /// Scaled up past the packing's choice: the block ends at the next tick.
        var elastic = false
    }

    public mutating func decide(_ view: ClusterView) -> Decision {
        let now = view.now
        guard !view.requests.isEmpty else {
            nextBoundary = nil
            return Decision()
        }
        let allFree = view.free.count == view.gpus
        var atBoundary = false
        if nextBoundary == nil || now >= nextBoundary! || allFree {
            nextBoundary = now + round
            atBoundary = true
        }
        let tNext = nextBoundary!
        guard atBoundary || configuration.midRound else { return Decision(wakeAt: tNext) }
        let free = view.free
        guard !free.isEmpty else { return Decision(wakeAt: tNext) }

        var starts =
            nodes.count > 1
            ? decideAcrossNodes(view, boundary: tNext) : decideNode(view, boundary: tNext, free: free)

        // Never stall: with nothing running and nothing started, run the most urgent request's
        // fastest fitting degree for one step even if it overruns the round.
        if starts.isEmpty && allFree {
            if let i = view.requests.indices.filter({ !view.requests[$0].isRunning }).min(by: {
                (view.requests[$0].deadline, $0) < (view.requests[$1].deadline, $1)
            }) {
                let r = view.requests[i]
                // One node's GPUs (all of them without a topology); all are free.
                let node = free.intersection(nodes[0])
                if let d = fallbackDegree(r.resolution, capacity: node.count) {
                    let set = islandSets.isEmpty ? node.lowest(d) : compactGroup(d, in: node, prefer: GPUSet())
                    if let set { starts.append(BlockStart(request: r.id, gpus: set, steps: 1)) }
                }
            }
        }
        return Decision(starts: starts, wakeAt: tNext)
    }

    /// Stages 1–6 on `free`, the free GPUs of one node (all of them without a topology), for the
    /// requests of `view` (on a cluster of several nodes, those dispatched to this node).
    func decideNode(_ view: ClusterView, boundary tNext: Micros, free: GPUSet) -> [BlockStart] {
        let now = view.now
        let window = tNext - now
        let capacity = free.count

        // 1–2. Options per waiting request.
        let problem = roundProblem(view, boundary: tNext, free: free)
        let options = problem.options
        let items = problem.items
        let optionStart = problem.groupStart
        let packing = problem.packing

        // 3. Group knapsack over the on-time requests.
        var picks: [Pick] = []
        picks.reserveCapacity(items.count + problem.late.count)
        var used = 0
        if !items.isEmpty {
            let chosen = GroupKnapsack.solve(options: packing, groupStart: optionStart, capacity: capacity)
            for k in items.indices {
                let o = chosen[k]
                picks.append(Pick(index: items[k], choice: options[o].choice, onTime: true))
                used += options[o].width
            }
        }

        // 4. Late requests: leftover GPUs, smallest fitting degree, shortest remaining work first.
        var late = problem.late
        if used < capacity && !late.isEmpty {
            let classes = self.classes
            let work = late.map { i in
                let r = view.requests[i]
                let c = classes[r.resolution]
                return c.stepTime.isEmpty ? Int64.max : Int64(r.remainingSteps) * c.stepTime[0]
            }
            late = late.indices.sorted { (work[$0], $0) < (work[$1], $1) }.map { late[$0] }
            for i in late {
                let c = classes[view.requests[i].resolution]
                var pick = Pick(index: i, choice: -1, onTime: false)
                for o in c.widths.indices where c.widths[o] <= capacity - used {
                    guard let t = timeNow(c, o, problem.compact), t <= window else { continue }
                    pick.choice = o
                    used += c.widths[o]
                    break
                }
                picks.append(pick)
                if used == capacity { break }
            }
        }

        // 5. Work-conserving scale-up of the chosen requests into idle GPUs.
        if configuration.scaleUp && used < capacity && configuration.fixedDegrees == nil {
            used = scaleUp(
                &picks, view: view, used: used, capacity: capacity, window: window, compact: problem.compact)
        }

        // 6. Placement and block sizes.
        let tick = tickEnd(now: now, boundary: tNext) - now
        if islandSets.isEmpty { return place(picks, view: view, free: free, window: window, tick: tick) }
        return placeOnIslands(picks, view: view, free: free, window: window, tick: tick)
    }

    /// The round problem at a decision point: each waiting request's options (stages 1–2), the
    /// on-time ones as knapsack groups, and the late ones.
    struct RoundProblem {
        var options: [Option]
        /// Group start per on-time request, plus the end.
        var groupStart: [Int]
        /// On-time request indices (into `view.requests`), one per group.
        var items: [Int]
        /// Late request indices.
        var late: [Int]
        /// With islands: whether the free GPUs hold a compact group of each width (indexed by
        /// width); nil when every group of free GPUs is compact.
        var compact: [Bool]?

        var packing: [GroupKnapsack.Option] {
            options.map { GroupKnapsack.Option(width: $0.width, survives: $0.survives, cost: $0.cost) }
        }
    }

    /// The round problem on the GPUs `free` (nil for the view's free GPUs).
    func roundProblem(_ view: ClusterView, boundary tNext: Micros, free: GPUSet? = nil) -> RoundProblem {
        let now = view.now
        let window = tNext - now
        let free = free ?? view.free
        let capacity = free.count
        var options: [Option] = []
        var optionStart: [Int] = []  // per on-time item, index of its first option (none)
        var items: [Int] = []  // on-time request indices
        var late: [Int] = []
        let compact = islandSets.isEmpty ? nil : compactWidths(free)
        let deferred = configuration.admission ? deferrals(view) : []
        options.reserveCapacity(view.requests.count * 4)
        for (i, r) in view.requests.enumerated() where !r.isRunning && r.remainingSteps > 0 {
            let c = classes[r.resolution]
            let s = r.remainingSteps
            let first = options.count
            let noneSurvives = tNext + minFinish(c, s) <= r.deadline
            options.append(
                Option(
                    choice: -1, width: 0, steps: 0, survives: noneSurvives,
                    cost: noneSurvives && configuration.priceFuture
                        ? planCost(c, s, budget: planBudget(r.deadline - tNext))
                            + slackPrice(r.deadline - tNext - minFinish(c, s), gpus: view.gpus) : 0))
            var onTime = noneSurvives
            for o in c.widths.indices where c.widths[o] <= capacity {
                // The step time on the free GPUs: crossing islands when no compact group is free.
                guard let t = timeNow(c, o, compact) else { continue }
                // The hand-off placement will charge when the request cannot stay on its GPUs, and
                // the block's dispatch.
                let h = handoffCharged(r, width: c.widths[o], free: free) + dispatch
                // A long step runs once, past the boundary; the request's next decision comes
                // when it ends.
                let long = c.long[o]
                let q = long ? 1 : min(s, Int(max(0, window - h) / t))
                guard q >= 1 else { continue }
                let spent = configuration.priceFuture ? Int64(q) * Int64(c.widths[o]) * t : 0
                let survives: Bool
                var cost = spent
                // A long step leaves the request off its fastest degree: going back costs another
                // hand-off, counted against its deadline from the start.
                let resume = long ? now + h + t + handoff : tNext
                if q == s {
                    survives = now + h + Micros(q) * t <= r.deadline
                } else {
                    survives = resume + minFinish(c, s - q) <= r.deadline
                    if survives && configuration.priceFuture {
                        cost +=
                            planCost(c, s - q, budget: planBudget(r.deadline - resume))
                            + slackPrice(r.deadline - resume - minFinish(c, s - q), gpus: view.gpus)
                    }
                }
                onTime = onTime || survives
                options.append(Option(choice: o, width: c.widths[o], steps: q, survives: survives, cost: cost))
            }
            if onTime && !deferred.contains(i) {
                items.append(i)
                optionStart.append(first)
            } else {
                options.removeSubrange(first...)
                late.append(i)
            }
        }
        optionStart.append(options.count)

        return RoundProblem(options: options, groupStart: optionStart, items: items, late: late, compact: compact)
    }

    /// What an option pays for leaving its request `slack` (time to the deadline beyond the
    /// soonest finish) below the slack reserve: the GPU-time of the whole node (`gpus`) for each
    /// microsecond short. Zero when the reserve is off.
    @inline(__always)
    func slackPrice(_ slack: Micros, gpus: Int) -> Int64 {
        guard reserve > 0 else { return 0 }
        return Int64(gpus) * max(0, reserve - slack)
    }

    /// The requests (indices into `view.requests`) that admission defers: Moore–Hodgson on
    /// GPU-time, the rule that keeps the most jobs on one machine. Each request that can still
    /// finish in time (running or waiting) needs at least the GPU-time of its cheapest plan for
    /// its remaining steps before its deadline; taken by deadline, whenever the kept requests
    /// need more than the node's GPUs offer from now to the current deadline, the kept request
    /// needing most is deferred. A deferred request is not in the packing this decision; it
    /// still gets GPUs left over, and is judged again at the next decision.
    func deferrals(_ view: ClusterView) -> Set<Int> {
        let now = view.now
        var jobs: [(deadline: Micros, need: Int64)] = []
        var index: [Int] = []
        for (i, r) in view.requests.enumerated() where r.remainingSteps > 0 {
            let c = classes[r.resolution]
            guard now + minFinish(c, r.remainingSteps) <= r.deadline else { continue }
            jobs.append((r.deadline - now, planCost(c, r.remainingSteps, budget: planBudget(r.deadline - now))))
            index.append(i)
        }
        // The view is one node's: the whole node, or a node's share of a cluster.
        return Set(Self.mooreHodgson(jobs, rate: Int64(view.gpus)).map { index[$0] })
    }

    /// Moore–Hodgson with GPU-time: `jobs` (time to deadline, GPU-time needed) on a machine
    /// that offers `rate` GPU-time per unit of time. Returns the positions of the jobs to drop
    /// so that, taken by deadline, every prefix of the kept jobs fits by its deadline; no larger
    /// set of jobs fits so (the exchange argument of Moore–Hodgson for one machine: dropping the
    /// largest job of an overfull prefix frees the most room at no cost in count).
    static func mooreHodgson(_ jobs: [(deadline: Micros, need: Int64)], rate: Int64) -> [Int] {
        /// A kept job; the heap's maximum is the largest need, among equals the later job in
        /// deadline order.
        struct Kept: Comparable {
            var need: Int64
            var rank: Int
            var job: Int
            static func < (a: Kept, b: Kept) -> Bool { (a.need, a.rank) < (b.need, b.rank) }
        }
        let order = jobs.indices.sorted { (jobs[$0].deadline, $0) < (jobs[$1].deadline, $1) }
        var kept = Heap<Kept>()
        var total: Int64 = 0
        var dropped: [Int] = []
        for (rank, j) in order.enumerated() {
            kept.insert(Kept(need: jobs[j].need, rank: rank, job: j))
            total += jobs[j].need
            guard total > rate * jobs[j].deadline, let largest = kept.popMax() else { continue }
            total -= largest.need
            dropped.append(largest.job)
        }
        return dropped.sorted()
    }

    /// The hand-off a block of `width` GPUs will pay: none for a request's first block, or when
    /// placement preservation can keep it on its previous GPUs (all free, same count).
    func handoffCharged(_ r: RequestView, width: Int, free: GPUSet) -> Micros {
        if handoff == 0 || r.lastGPUs.isEmpty { return 0 }
        if configuration.placement && r.lastGPUs.count == width && r.lastGPUs.isSubset(of: free) { return 0 }
        return handoff
    }

    /// The largest allowed degree that fits `capacity`, ignoring the round length.
    private func fallbackDegree(_ resolution: Int, capacity: Int) -> Int? {
        let c = classes[resolution]
        return c.widths.filter { $0 <= capacity }.max()
    }

    /// Gives idle GPUs to the picks that gain most: first on-time requests left without GPUs,
    /// then upgrades by largest reduction of their remaining completion time per extra GPU,
    /// on-time requests before late ones.
    private func scaleUp(
        _ picks: inout [Pick], view: ClusterView, used: Int, capacity: Int, window: Micros, compact: [Bool]?
    ) -> Int {
        var used = used
        for late in [false, true] {
            // Requests the packing left waiting get their cheapest fitting degree.
            for p in picks.indices where picks[p].choice < 0 && picks[p].onTime != late {
                let c = classes[view.requests[picks[p].index].resolution]
                for o in c.widths.indices where c.widths[o] <= capacity - used {
                    guard let t = timeNow(c, o, compact), t <= window else { continue }
                    picks[p].choice = o
                    used += c.widths[o]
                    break
                }
            }
            while used < capacity {
                var bestGain = 0.0
                var bestPick = -1
                var bestOption = -1
                for p in picks.indices where picks[p].choice >= 0 && picks[p].onTime != late {
                    let r = view.requests[picks[p].index]
                    let c = classes[r.resolution]
                    let cur = picks[p].choice
                    let curFinish = Self.roundFinish(c, cur, r.remainingSteps, round: round)
                    for o in c.widths.indices where c.widths[o] > c.widths[cur] {
                        let extra = c.widths[o] - c.widths[cur]
                        guard extra <= capacity - used, let t = timeNow(c, o, compact), t <= window else { continue }
                        let finish = Self.roundFinish(c, o, r.remainingSteps, round: round)
                        let gain = Double(curFinish - finish) / Double(extra)
                        if gain > bestGain {
                            bestGain = gain
                            bestPick = p
                            bestOption = o
                        }
                    }
                }
                guard bestPick >= 0 else { break }
                let c = classes[view.requests[picks[bestPick].index].resolution]
                used += c.widths[bestOption] - c.widths[picks[bestPick].choice]
                picks[bestPick].choice = bestOption
                picks[bestPick].elastic = true
            }
        }
        return used
    }

    /// Turns picks into blocks on concrete GPUs.
    /// The end of the current tick: rounds are cut into `granularity` ticks of `T_ref`.
    func tickEnd(now: Micros, boundary: Micros) -> Micros {
        let start = boundary - round
        return min(boundary, start + ((now - start) / tick + 1) * tick)
    }

    private func place(
        _ picks: [Pick], view: ClusterView, free: GPUSet, window: Micros, tick: Micros
    ) -> [BlockStart] {
        var avail = free
        var sets = [GPUSet?](repeating: nil, count: picks.count)
        let running = picks.indices.filter { picks[$0].choice >= 0 }
        func width(_ p: Int) -> Int { classes[view.requests[picks[p].index].resolution].widths[picks[p].choice] }
        if configuration.placement {
            // Same GPUs as last time.
            for p in running {
                let last = view.requests[picks[p].index].lastGPUs
                if last.count == width(p) && last.isSubset(of: avail) {
                    sets[p] = last
                    avail = avail.subtracting(last)
                }
            }
            // Overlapping the previous GPUs as much as possible.
            for p in running where sets[p] == nil {
                let keep = view.requests[picks[p].index].lastGPUs.intersection(avail).lowest(width(p))
                guard !keep.isEmpty else { continue }
                let set = keep.union(avail.subtracting(keep).lowest(width(p) - keep.count))
                sets[p] = set
                avail = avail.subtracting(set)
            }
        }
        for p in running where sets[p] == nil {
            let set = avail.lowest(width(p))
            sets[p] = set
            avail = avail.subtracting(set)
        }
        var starts: [BlockStart] = []
        starts.reserveCapacity(running.count)
        for p in running {
            let r = view.requests[picks[p].index]
            let c = classes[r.resolution]
            let o = picks[p].choice
            let set = sets[p]!
            let moved = !r.lastGPUs.isEmpty && set != r.lastGPUs
            var usable = window - (moved ? handoff : 0) - dispatch
            // Elastic blocks give their GPUs back at the next tick when a step fits before it.
            if picks[p].elastic && configuration.elasticTicks {
                let tickUsable = tick - (moved ? handoff : 0) - dispatch
                if tickUsable >= c.stepTime[o] { usable = tickUsable }
            }
            let steps = min(r.remainingSteps, max(1, Int(usable / c.stepTime[o])))
            starts.append(BlockStart(request: r.id, gpus: set, steps: steps))
        }
        return starts
    }
}
