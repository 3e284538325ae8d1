import TetriCore

/// Random cluster states for benchmarks and property tests: `pending` unfinished requests of
/// random classes, progress and deadlines (some already late), some of them running on
/// disjoint GPU sets (at most half of the node), the rest waiting with random previous placements.
public enum RandomStates {
    public static func make(model: CostModel, gpus: Int, pending: Int, seed: UInt64) -> ClusterView {
        var rng = SeededRandom(seed: seed)
        let now: Micros = 1_000_000_000
        var free = GPUSet(first: gpus)
        var requests: [RequestView] = []
        requests.reserveCapacity(pending)
        let usable = model.degrees.filter { $0 <= gpus }
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
            if rng.next() % 4 == 0 && free.count - k >= gpus / 2 {
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
