import TetriCore

/// One executed block, as written to the block log.
public struct BlockRecord: Sendable, Equatable, Codable {
    public var request: Int
    public var gpus: [Int]
    public var degree: Int
    public var steps: Int
    public var start: Micros
    public var end: Micros

    public init(request: Int, gpus: [Int], degree: Int, steps: Int, start: Micros, end: Micros) {
        self.request = request
        self.gpus = gpus
        self.degree = degree
        self.steps = steps
        self.start = start
        self.end = end
    }
}

/// The outcome of one request.
public struct CompletionRecord: Sendable, Equatable {
    public var id: Int
    public var resolution: Resolution
    public var arrival: Micros
    public var finish: Micros
    public var deadline: Micros
    /// Σ degree × steps over the request's blocks divided by its steps.
    public var meanDegree: Double

    /// Finished by the deadline; a request that never finished (`finish` < arrival) is not met.
    public var met: Bool { finish >= arrival && finish <= deadline }
    public var latency: Micros { finish - arrival }
}

/// A simulation's raw outcome; ``SimulationSummary`` derives the metrics.
public struct SimulationOutcome: Sendable {
    public var policy: String
    public var profile: String
    public var gpus: Int
    public var completions: [CompletionRecord]
    /// Empty unless blocks were recorded.
    public var blocks: [BlockRecord]
    /// Σ degree × block duration, in GPU-microseconds.
    public var gpuTime: Int64
    /// Σ block duration (the denominator of the time-weighted mean degree).
    public var blockTime: Int64
    public var decisions: Int
    /// Per window of ``Simulator/timelineWindow``: Σ degree × overlap and Σ overlap of the
    /// blocks running in it.
    public var windowGPUTime: [Int64]
    public var windowBlockTime: [Int64]
}

/// A discrete-event simulation in virtual time (integer microseconds): arrivals from a trace,
/// blocks that take `steps × T(resolution, degree)` (the profile's crossing time instead of `T`
/// for a group that crosses islands; plus the cost model's hand-off when a request changes GPUs), and a scheduler asked at every arrival, completion and requested
/// wake-up. The simulator checks every decision: free GPUs only, one block per request at a
/// time, profiled degrees, steps within what remains.
public enum Simulator {
    /// The width of the degree timeline's windows.
    public static let timelineWindow: Micros = 10_000_000

    static func addToTimeline(
        start: Micros, end: Micros, degree: Int, gpuTime: inout [Int64], blockTime: inout [Int64]
    ) {
        var t = start
        while t < end {
            let w = Int(t / timelineWindow)
            let stop = min(end, Micros(w + 1) * timelineWindow)
            while gpuTime.count <= w {
                gpuTime.append(0)
                blockTime.append(0)
            }
            gpuTime[w] += Int64(degree) * (stop - t)
            blockTime[w] += stop - t
            t = stop
        }
    }

    public static func run(
        trace: Trace, model: CostModel, gpus: Int, scheduler: inout some Scheduler, recordBlocks: Bool = false
    ) throws(SimulationError) -> SimulationOutcome {
        guard gpus >= 1 && gpus <= GPUSet.capacity else { throw .invalidGPUCount(gpus) }
        let reqs = trace.requests
        var resolution = [Int](repeating: 0, count: reqs.count)
        for (i, r) in reqs.enumerated() {
            guard let idx = model.resolutionIndex(r.resolution) else {
                throw .unknownResolution(id: r.id, r.resolution, profile: model.name, known: model.resolutionNames)
            }
            resolution[i] = idx
        }
        var indexOfID: [Int: Int] = [:]
        for (i, r) in reqs.enumerated() { indexOfID[r.id] = i }

        var remaining = reqs.map(\.steps)
        var lastGPUs = [GPUSet](repeating: GPUSet(), count: reqs.count)
        var running = [Bool](repeating: false, count: reqs.count)
        var degreeSteps = [Int](repeating: 0, count: reqs.count)
        var finish = [Micros](repeating: -1, count: reqs.count)
        var active: [Int] = []  // arrived, unfinished, arrival order
        var blocks: [(end: Micros, request: Int, gpus: GPUSet, steps: Int)] = []
        var log: [BlockRecord] = []
        var free = GPUSet(first: gpus)
        var nextArrival = 0
        var wake: Micros? = nil
        var done = 0
        var gpuTime: Int64 = 0
        var blockTime: Int64 = 0
        var decisions = 0
        var idleDecisions = 0
        var windowGPUTime: [Int64] = []
        var windowBlockTime: [Int64] = []
        let policy = scheduler.name

        while done < reqs.count {
            var now = Micros.max
            if nextArrival < reqs.count { now = reqs[nextArrival].arrival }
            for b in blocks { now = min(now, b.end) }
            if let w = wake { now = min(now, w) }
            guard now != Micros.max else { throw .stalled(policy: policy, unfinished: reqs.count - done) }

            // Completions, then arrivals, at `now`.
            var k = 0
            while k < blocks.count {
                let b = blocks[k]
                guard b.end == now else {
                    k += 1
                    continue
                }
                blocks.swapAt(k, blocks.count - 1)
                blocks.removeLast()
                free = free.union(b.gpus)
                running[b.request] = false
                remaining[b.request] -= b.steps
                lastGPUs[b.request] = b.gpus
                if remaining[b.request] == 0 {
                    finish[b.request] = now
                    done += 1
                    active.removeAll { $0 == b.request }
                }
            }
            while nextArrival < reqs.count && reqs[nextArrival].arrival == now {
                active.append(nextArrival)
                nextArrival += 1
            }
            if wake == now { wake = nil }

            let view = ClusterView(
                now: now, gpus: gpus, free: free,
                requests: active.map { i in
                    RequestView(
                        id: reqs[i].id, resolution: resolution[i], arrival: reqs[i].arrival,
                        deadline: reqs[i].deadline, totalSteps: reqs[i].steps, remainingSteps: remaining[i],
                        lastGPUs: lastGPUs[i], isRunning: running[i])
                })
            let decision = scheduler.decide(view)
            decisions += 1
            for s in decision.starts {
                guard let i = indexOfID[s.request], active.contains(i) else {
                    throw .invalidDecision(policy: policy, at: now, "request \(s.request) is not waiting")
                }
                guard !running[i] else {
                    throw .invalidDecision(policy: policy, at: now, "request \(s.request) is already running")
                }
                guard s.steps >= 1 && s.steps <= remaining[i] else {
                    throw .invalidDecision(
                        policy: policy, at: now, "request \(s.request): \(s.steps) steps, \(remaining[i]) remain")
                }
                guard !s.gpus.isEmpty, s.gpus.isSubset(of: free) else {
                    throw .invalidDecision(policy: policy, at: now, "request \(s.request): GPUs \(s.gpus) not all free")
                }
                // The step time on these GPUs: the profiled degree, or the crossing time of a group
                // that crosses islands; a group that spans nodes or crosses where the profile
                // forbids it is refused.
                guard let step = model.stepTime(resolution: resolution[i], on: s.gpus) else {
                    let why = model.placementProblem(resolution: resolution[i], on: s.gpus) ?? "not placeable"
                    throw .invalidDecision(policy: policy, at: now, "request \(s.request): \(why)")
                }
                let moved = !lastGPUs[i].isEmpty && lastGPUs[i] != s.gpus
                let duration = Micros(s.steps) * step + (moved ? model.handoff : 0) + model.dispatchOverhead
                free = free.subtracting(s.gpus)
                running[i] = true
                degreeSteps[i] += s.degree * s.steps
                blocks.append((now + duration, i, s.gpus, s.steps))
                gpuTime += Int64(s.degree) * duration
                blockTime += duration
                addToTimeline(
                    start: now, end: now + duration, degree: s.degree, gpuTime: &windowGPUTime,
                    blockTime: &windowBlockTime)
                if recordBlocks {
                    log.append(
                        BlockRecord(
                            request: reqs[i].id, gpus: s.gpus.ids, degree: s.degree, steps: s.steps, start: now,
                            end: now + duration))
                }
            }
            if let w = decision.wakeAt {
                guard w > now else {
                    throw .invalidDecision(policy: policy, at: now, "wake-up time \(w) is not in the future")
                }
                wake = w
            }
            // A policy that starts nothing while nothing runs and nothing more arrives is stuck.
            if blocks.isEmpty && nextArrival == reqs.count && !active.isEmpty {
                idleDecisions += 1
                if idleDecisions > 1000 || wake == nil {
                    throw .stalled(policy: policy, unfinished: reqs.count - done)
                }
            } else {
                idleDecisions = 0
            }
        }
        let completions = reqs.indices.map { i in
            CompletionRecord(
                id: reqs[i].id, resolution: reqs[i].resolution, arrival: reqs[i].arrival, finish: finish[i],
                deadline: reqs[i].deadline, meanDegree: Double(degreeSteps[i]) / Double(reqs[i].steps))
        }
        return SimulationOutcome(
            policy: policy, profile: model.name, gpus: gpus, completions: completions, blocks: log, gpuTime: gpuTime,
            blockTime: blockTime, decisions: decisions, windowGPUTime: windowGPUTime, windowBlockTime: windowBlockTime)
    }
}

/// Why a simulation could not run, naming the cause.
public enum SimulationError: Error, Equatable, CustomStringConvertible {
    case invalidGPUCount(Int)
    case unknownResolution(id: Int, Resolution, profile: String, known: [String])
    case invalidDecision(policy: String, at: Micros, String)
    case stalled(policy: String, unfinished: Int)

    public var description: String {
        switch self {
        case .invalidGPUCount(let n): "GPU count must be in 1...\(GPUSet.capacity), got \(n)"
        case .unknownResolution(let id, let res, let profile, let known):
            "trace request \(id): resolution \(res) is not in profile \(profile) (it has \(known.joined(separator: ", ")))"
        case .invalidDecision(let policy, let at, let why):
            "policy \(policy) made an invalid decision at t=\(Trace.format(at)) s: \(why)"
        case .stalled(let policy, let n): "policy \(policy) stalled with \(n) requests unfinished"
        }
    }
}
