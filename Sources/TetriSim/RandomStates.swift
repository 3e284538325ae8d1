import TetriCore

/// Random cluster states for benchmarks and property tests: `pending` unfinished requests of
/// random classes, progress and deadlines (some already late), some of them running on
/// disjoint GPU sets (at most half of the node), the rest waiting with random previous placements.
/// With a topology, running and previous groups lie inside one node (and compact on islands).
public enum RandomStates {
    public static func make(model: CostModel, gpus: Int, pending: Int, seed: UInt64) -> ClusterView {
        var rng = SeededRandom(seed: seed)
        let now: Micros = 1_000_000_000
        var free = GPUSet(first: gpus)
        var requests: [RequestView] = []
        requests.reserveCapacity(pending)
        let usable = model.degrees.filter { $0 <= gpus }
        let orders = model.topology?.staticOrder(gpus: gpus) ?? []
        for id in 0..<pending {
            let r = Int(rng.next() % UInt64(model.resolutions.count))
            let total = 50
            let remaining = 1 + Int(rng.next() % UInt64(total))
            // Deadline: between "already late" and generous, relative to the fastest finish.
            let fastest = model.stepTime[r].min()!
            let slack = Double(rng.next() % 1000) / 1000 * 3 - 0.5
            let deadline = now + Micros(Double(remaining) * Double(fastest) * (1 + slack))
            var last = GPUSet()
            var running = false
            let k = usable[Int(rng.next() % UInt64(usable.count))]
            if let topology = model.topology {
                // Groups inside one node: the first node whose free GPUs hold a group of k.
                let perNode = min(gpus, topology.gpusPerNode)
                let node = Int(rng.next() % UInt64((gpus + perNode - 1) / perNode))
                if k <= perNode && rng.next() % 4 == 0 && free.count - k >= gpus / 2 {
                    for n in orders.indices.map({ (node + $0) % orders.count }) {
                        let group = orders[n].filter { free.contains($0) }.prefix(k)
                        if group.count == k {
                            last = GPUSet(group)
                            free = free.subtracting(last)
                            running = true
                            break
                        }
                    }
                } else if remaining < total && k <= perNode {
                    let order = orders[node]
                    let start = Int(rng.next() % UInt64(max(1, order.count / k))) * k
                    if start + k <= order.count { last = GPUSet(order[start..<(start + k)]) }
                }
            } else if rng.next() % 4 == 0 && free.count - k >= gpus / 2 {
                // Running on k free GPUs.
                last = free.lowest(k)
                free = free.subtracting(last)
                running = true
            } else if remaining < total {
                let start = Int(rng.next() % UInt64(max(1, gpus - k + 1)))
                last = GPUSet(range: start..<(start + k))
            }
            requests.append(
                RequestView(
                    id: id, resolution: r, arrival: now - Micros(rng.next() % 10_000_000), deadline: deadline,
                    totalSteps: total, remainingSteps: remaining, lastGPUs: last, isRunning: running))
        }
        return ClusterView(now: now, gpus: gpus, free: free, requests: requests)
    }
}
