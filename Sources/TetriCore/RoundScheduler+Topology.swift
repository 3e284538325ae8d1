extension RoundScheduler {
    // MARK: Islands

    /// The step time of option `o` of class `c` on the free GPUs of this decision: the profiled
    /// time when a compact group of its width is free (always, without islands), the crossing
    /// time otherwise, nil when the profile forbids crossing at that degree.
    @inline(__always)
    func timeNow(_ c: ClassTable, _ o: Int, _ compact: [Bool]?) -> Micros? {
        guard let compact, !compact[c.widths[o]] else { return c.stepTime[o] }
        return c.crossTime[o]
    }

    /// The free GPUs of each island of the node that holds `free` (all of `free` lies on one
    /// node), in island order, empty islands left out.
    func freeByIsland(_ free: GPUSet) -> [GPUSet] {
        guard let topology, let first = free.lowestID else { return [] }
        let base = topology.node(of: first) * topology.islandCount
        var parts: [GPUSet] = []
        for i in 0..<topology.islandCount {
            let f = free.intersection(islandSets[base + i])
            if !f.isEmpty { parts.append(f) }
        }
        return parts
    }

    /// Whether the free GPUs (on one node) hold a compact group of each width `0...free.count`.
    func compactWidths(_ free: GPUSet) -> [Bool] {
        let topology = topology!
        let counts = freeByIsland(free).map(\.count).sorted(by: >)
        var compact = [Bool](repeating: false, count: free.count + 1)
        compact[0] = true
        // The fewest islands that hold `w` free GPUs, largest islands first.
        var islands = 0
        var held = 0
        for w in 1..<compact.count {
            while held < w {
                held += counts[islands]
                islands += 1
            }
            compact[w] = islands <= topology.minIslands[min(w, topology.gpusPerNode)]
        }
        return compact
    }

    /// `n` GPUs of `set`, those in `prefer` first, then the lowest-numbered.
    func take(_ n: Int, from set: GPUSet, prefer: GPUSet) -> GPUSet {
        let keep = set.intersection(prefer).lowest(n)
        return keep.union(set.subtracting(keep).lowest(n - keep.count))
    }

    /// A compact group of `width` free GPUs (on one node), or nil when none is free. Best fit: a
    /// group that fits one island goes to the island with the fewest free GPUs that holds it (so
    /// whole islands stay free for wider groups); a wider group takes the islands with the most
    /// free GPUs and tops up from the fullest island that completes it. Ties go to the island
    /// holding most of `prefer` (the request's previous GPUs), then to the lower island.
    func compactGroup(_ width: Int, in free: GPUSet, prefer: GPUSet) -> GPUSet? {
        guard let topology, width >= 1, width <= free.count else { return nil }
        let parts = freeByIsland(free)
        let need = topology.minIslands[min(width, topology.gpusPerNode)]
        let kept = parts.map { $0.intersection(prefer).count }
        // Largest first for the whole islands a wide group takes.
        let byFree = parts.indices.sorted { (-parts[$0].count, -kept[$0], $0) < (-parts[$1].count, -kept[$1], $1) }
        guard byFree.count >= need else { return nil }
        var set = GPUSet()
        var held = 0
        for i in byFree.prefix(need - 1) {
            set = set.union(parts[i])
            held += parts[i].count
        }
        let rest = width - held
        guard rest >= 1 else { return nil }  // cannot happen: `need` is the fewest islands
        let last = byFree.dropFirst(need - 1).filter { parts[$0].count >= rest }.min {
            (parts[$0].count, -kept[$0], $0) < (parts[$1].count, -kept[$1], $1)
        }
        guard let last else { return nil }
        return set.union(take(rest, from: parts[last], prefer: prefer))
    }

    /// Any group of `width` free GPUs (on one node) over as few islands as the free GPUs allow.
    func anyGroup(_ width: Int, in free: GPUSet, prefer: GPUSet) -> GPUSet? {
        guard width >= 1, width <= free.count else { return nil }
        let parts = freeByIsland(free)
        let byFree = parts.indices.sorted { (-parts[$0].count, $0) < (-parts[$1].count, $1) }
        var set = GPUSet()
        for i in byFree where set.count < width {
            set = set.union(take(min(width - set.count, parts[i].count), from: parts[i], prefer: prefer))
        }
        return set
    }

    /// Placement with islands: widest groups first (they need whole islands), each on its
    /// previous GPUs when they are free and compact, else on a compact group (best fit). When no
    /// compact group of its width is left, a pick crosses islands at the profile's crossing
    /// time, or, where the profile forbids that, takes the widest smaller compact group whose
    /// step fits the window (or waits). Block sizes use the step time of the chosen GPUs.
    func placeOnIslands(
        _ picks: [Pick], view: ClusterView, free: GPUSet, window: Micros, tick: Micros
    ) -> [BlockStart] {
        let topology = topology!
        var avail = free
        func width(_ p: Int) -> Int { classes[view.requests[picks[p].index].resolution].widths[picks[p].choice] }
        let order = picks.indices.filter { picks[$0].choice >= 0 }.sorted { (-width($0), $0) < (-width($1), $1) }
        var placed: [(pick: Int, start: BlockStart)] = []
        placed.reserveCapacity(order.count)
        for p in order {
            let r = view.requests[picks[p].index]
            let c = classes[r.resolution]
            var o = picks[p].choice
            let prefer = configuration.placement ? r.lastGPUs : GPUSet()
            var set: GPUSet? = nil
            if configuration.placement && prefer.count == c.widths[o] && prefer.isSubset(of: avail)
                && !topology.crossesIslands(prefer)
            {
                set = prefer
            }
            if set == nil { set = compactGroup(c.widths[o], in: avail, prefer: prefer) }
            if set == nil && c.crossTime[o] != nil { set = anyGroup(c.widths[o], in: avail, prefer: prefer) }
            if set == nil {
                for smaller in c.widths.indices.reversed() where c.widths[smaller] < c.widths[o] {
                    guard c.stepTime[smaller] <= window,
                        let s = compactGroup(c.widths[smaller], in: avail, prefer: prefer)
                    else { continue }
                    set = s
                    o = smaller
                    break
                }
            }
            guard let set else { continue }
            avail = avail.subtracting(set)
            let time = topology.crossesIslands(set) ? c.crossTime[o]! : c.stepTime[o]
            let moved = !r.lastGPUs.isEmpty && set != r.lastGPUs
            var usable = window - (moved ? handoff : 0)
            // Elastic blocks give their GPUs back at the next tick when a step fits before it.
            if picks[p].elastic && configuration.elasticTicks {
                let tickUsable = tick - (moved ? handoff : 0)
                if tickUsable >= time { usable = tickUsable }
            }
            let steps = min(r.remainingSteps, max(1, Int(usable / time)))
            placed.append((p, BlockStart(request: r.id, gpus: set, steps: steps)))
        }
        return placed.sorted { $0.pick < $1.pick }.map(\.start)
    }

    // MARK: Nodes

    /// A decision on a cluster of several nodes: the waiting requests are dispatched to the
    /// nodes with free GPUs, each node taking a share in proportion to its free GPUs (a request
    /// whose previous GPUs lie on a node with free GPUs goes there while that node's share
    /// lasts; the rest go round the nodes' free GPUs in arrival order), and each node then runs
    /// the one-node decision (packing, late requests, scale-up, placement) on its own share.
    /// The packing per node is O(share × GPUs per node × degrees), so a decision grows with the
    /// requests, not with requests × GPUs.
    func decideAcrossNodes(_ view: ClusterView, boundary tNext: Micros) -> [BlockStart] {
        let topology = topology!
        let nodeFree = nodes.map { view.free.intersection($0) }
        let counts = nodeFree.map(\.count)
        let total = counts.reduce(0, +)
        var waiting = 0
        for r in view.requests where !r.isRunning && r.remainingSteps > 0 { waiting += 1 }
        guard total > 0, waiting > 0 else { return [] }
        let quota = counts.map { ($0 * waiting + total - 1) / total }
        var taken = [Int](repeating: 0, count: nodes.count)
        // The node of each waiting request (-1: not waiting, or not yet placed).
        var target = [Int32](repeating: -1, count: view.requests.count)
        var rest: [Int] = []
        rest.reserveCapacity(waiting)
        for (i, r) in view.requests.enumerated() where !r.isRunning && r.remainingSteps > 0 {
            if let id = r.lastGPUs.lowestID {
                let n = topology.node(of: id)
                if n < nodes.count && counts[n] > 0 && taken[n] < quota[n] {
                    target[i] = Int32(n)
                    taken[n] += 1
                    continue
                }
            }
            rest.append(i)
        }
        // One slot per free GPU, interleaved across nodes.
        var slots: [Int] = []
        slots.reserveCapacity(total)
        for j in 0..<(counts.max() ?? 0) {
            for n in nodes.indices where counts[n] > j { slots.append(n) }
        }
        var s = 0
        for i in rest {
            while taken[slots[s]] >= quota[slots[s]] { s = (s + 1) % slots.count }
            target[i] = Int32(slots[s])
            taken[slots[s]] += 1
            s = (s + 1) % slots.count
        }
        // Each node's requests in arrival order, gathered in one pass over the requests (a node's
        // share is spread over the whole list, so reading it per node would miss the cache).
        var shares = [[RequestView]](repeating: [], count: nodes.count)
        for n in nodes.indices { shares[n].reserveCapacity(taken[n]) }
        for i in view.requests.indices where target[i] >= 0 { shares[Int(target[i])].append(view.requests[i]) }
        var starts: [BlockStart] = []
        for n in nodes.indices where !shares[n].isEmpty {
            let share = ClusterView(now: view.now, gpus: nodes[n].count, free: nodeFree[n], requests: shares[n])
            starts += decideNode(share, boundary: tNext, free: nodeFree[n])
        }
        return starts
    }
}
