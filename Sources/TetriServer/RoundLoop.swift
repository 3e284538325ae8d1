import Logging
import TetriCore

/// The serving loop: the same `TetriCore` scheduler the simulator runs, driven by the server's
/// clock and an ``ExecutionBackend``. It keeps every job's state (the request tracker), asks the
/// scheduler at each arrival, block end, cancellation and requested wake-up, and runs the blocks
/// it returns. Finished images are encoded off the devices' critical path.
public actor RoundLoop {
    struct Entry {
        var id: Int
        var key: String
        var requestID: String?
        var job: GenerationJob
        var resolution: Int
        var arrival: Micros
        var deadline: Micros
        var remaining: Int
        var lastGPUs = GPUSet()
        var block: Task<Void, Never>?
        /// When the running block should end by the cost model (virtual).
        var plannedEnd: Micros?
        /// Steps of the running block completed so far.
        var blockDone = 0
        var status = JobStatus.queued
        var history: [DegreeSegment] = []
        var handle: Int?
        var finish: Micros?
        var error: String?
        var cancelRequested = false
        var waiters: [CheckedContinuation<JobSnapshot, Never>] = []
        var image: [UInt8]?
    }

    public struct Configuration: Sendable {
        /// Jobs waiting or running at most; more are rejected with a retry hint.
        public var maxQueue: Int = 64
        /// Finished jobs (and their images) kept for status and content requests.
        public var retainFinished: Int = 256
        /// Refuse jobs that could not meet their deadline even alone on the whole node, instead
        /// of running them best effort.
        public var rejectInfeasible = false

        public init(maxQueue: Int = 64, retainFinished: Int = 256, rejectInfeasible: Bool = false) {
            self.maxQueue = maxQueue
            self.retainFinished = retainFinished
            self.rejectInfeasible = rejectInfeasible
        }
    }

    public nonisolated let backend: any ExecutionBackend
    public nonisolated let clock: ServingClock
    public nonisolated let configuration: Configuration
    public nonisolated let metrics: ServerMetrics
    let logger: Logger
    var scheduler: any Scheduler
    var entries: [Int: Entry] = [:]
    var active: [Int] = []  // unfinished, in arrival order
    var finished: [Int] = []  // terminal, oldest first
    var byKey: [String: Int] = [:]
    var byRequestID: [String: Int] = [:]
    var free: GPUSet
    var nextID = 0
    var timer: Task<Void, Never>?
    var accepting = true
    var drainWaiters: [CheckedContinuation<Void, Never>] = []
    /// The time of the last decision; decisions never go back in time.
    var lastDecision: Micros = 0

    public init(
        backend: any ExecutionBackend, scheduler: any Scheduler, clock: ServingClock,
        configuration: Configuration = .init(), metrics: ServerMetrics, logger: Logger = Logger(label: "tetriserve")
    ) {
        self.backend = backend
        self.scheduler = scheduler
        self.clock = clock
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        self.free = GPUSet(first: backend.devices)
    }

    public var schedulerName: String { scheduler.name }

    // MARK: Jobs

    /// Admits a job with an absolute deadline (virtual microseconds). A `requestID` seen before
    /// returns the job it created (idempotent retry).
    public func submit(_ job: GenerationJob, deadline: Micros, requestID: String? = nil) async throws(AdmissionError)
        -> JobSnapshot
    {
        if let rid = requestID, let existing = byRequestID[rid], let e = entries[existing] {
            guard e.job == job else { throw .conflictingRequestID(rid) }
            return snapshot(e)
        }
        guard accepting else { throw .shuttingDown }
        guard active.count < configuration.maxQueue else {
            metrics.rejected()
            throw .queueFull(limit: configuration.maxQueue, retryAfterSeconds: retryAfter())
        }
        guard let r = backend.costClass(width: job.width, height: job.height) else {
            preconditionFailure("submit() needs a size the backend validated")
        }
        let now = clock.now()
        if configuration.rejectInfeasible {
            let model = backend.costModel
            let fastest =
                model.degrees.filter { $0 <= backend.devices }
                .map { Micros(job.steps) * model.stepTime(resolution: r, degree: $0) }.min() ?? 0
            if now + fastest > deadline {
                metrics.rejected()
                throw .infeasible(fastestSeconds: fastest.seconds, sloSeconds: (deadline - now).seconds)
            }
        }
        nextID += 1
        let id = nextID
        let key = "job-\(id)"
        var e = Entry(
            id: id, key: key, requestID: requestID, job: job, resolution: r, arrival: now, deadline: deadline,
            remaining: job.steps)
        entries[id] = e
        active.append(id)
        byKey[key] = id
        if let rid = requestID { byRequestID[rid] = id }
        do {
            let handle = try await backend.begin(job)
            e = entries[id] ?? e
            e.handle = handle
            entries[id] = e
        } catch {
            fail(id, "could not start: \(error)")
            return snapshot(entries[id]!)
        }
        if entries[id]?.status == .cancelled, let h = entries[id]?.handle {
            await backend.release(handle: h)
        }
        reschedule()
        return snapshot(entries[id]!)
    }

    /// The job's current state, or nil for an unknown id.
    public func status(_ key: String) -> JobSnapshot? {
        byKey[key].flatMap { entries[$0] }.map(snapshot)
    }

    /// The job a client `request_id` created, if any.
    public func statusForRequestID(_ rid: String) -> JobSnapshot? {
        byRequestID[rid].flatMap { entries[$0] }.map(snapshot)
    }

    /// The PNG of a finished job.
    public func image(_ key: String) -> [UInt8]? {
        byKey[key].flatMap { entries[$0]?.image }
    }

    /// Waits until the job is finished, failed or cancelled.
    public func wait(_ key: String) async -> JobSnapshot? {
        guard let id = byKey[key], let e = entries[id] else { return nil }
        if e.status.isTerminal { return snapshot(e) }
        return await withCheckedContinuation { c in entries[id]!.waiters.append(c) }
    }

    /// Cancels a job: at once when queued, at the next step boundary when running. Returns nil
    /// for an unknown id.
    public func cancel(_ key: String) async -> JobSnapshot? {
        guard let id = byKey[key], var e = entries[id] else { return nil }
        guard !e.status.isTerminal else { return snapshot(e) }
        if let block = e.block {
            e.cancelRequested = true
            entries[id] = e
            block.cancel()
        } else {
            finalize(id, status: .cancelled, error: nil)
            if let h = e.handle { await backend.release(handle: h) }
            reschedule()
        }
        return snapshot(entries[id]!)
    }

    /// Jobs waiting and running.
    public var load: (waiting: Int, running: Int) {
        let running = active.count { entries[$0]?.block != nil }
        return (active.count - running, running)
    }

    /// Stops admitting jobs and waits until every admitted job has finished.
    public func drain() async {
        accepting = false
        if active.isEmpty { return }
        await withCheckedContinuation { drainWaiters.append($0) }
    }

    // MARK: The loop

    /// Decides at `at` (the planned end of the blocks just reported, when they reported within
    /// ``reportLag``) or at the clock's time.
    func reschedule(at logical: Micros? = nil) {
        let now = max(lastDecision, logical ?? clock.now())
        lastDecision = now
        let view = ClusterView(
            now: now, gpus: backend.devices, free: free,
            requests: active.compactMap { id in
                guard let e = entries[id], e.handle != nil else { return nil }
                return RequestView(
                    id: id, resolution: e.resolution, arrival: e.arrival, deadline: e.deadline,
                    totalSteps: e.job.steps, remainingSteps: e.remaining, lastGPUs: e.lastGPUs,
                    isRunning: e.block != nil)
            })
        let started = ContinuousClock.now
        let decision = scheduler.decide(view)
        metrics.decision(started.duration(to: .now))
        for s in decision.starts { start(s, at: now) }
        setTimer(decision.wakeAt)
        let load = self.load
        metrics.load(waiting: load.waiting, running: load.running, busyDevices: backend.devices - free.count)
    }

    func start(_ s: BlockStart, at now: Micros) {
        guard var e = entries[s.request], let handle = e.handle, e.block == nil, s.gpus.isSubset(of: free) else {
            logger.error("scheduler returned an invalid block: \(s)")
            return
        }
        free = free.subtracting(s.gpus)
        let devices = s.gpus.ids
        let from = e.job.steps - e.remaining
        e.status = .running
        if let last = e.history.last, last.devices == devices,
            e.lastGPUs == s.gpus
        {
            e.history[e.history.count - 1].steps += s.steps
        } else {
            e.history.append(
                DegreeSegment(degree: devices.count, steps: s.steps, devices: devices, startS: now.seconds))
        }
        metrics.block(degree: devices.count, steps: s.steps)
        let moved = !e.lastGPUs.isEmpty && e.lastGPUs != s.gpus
        e.plannedEnd =
            now + Micros(s.steps) * backend.costModel.stepTime(resolution: e.resolution, degree: devices.count)
            + (moved ? backend.costModel.handoff : 0)
        let backend = self.backend
        let id = s.request
        let steps = s.steps
        let gpus = s.gpus
        let end = e.plannedEnd!
        e.block = Task {
            do {
                try await backend.run(handle: handle, from: from, steps: steps, devices: devices, start: now) { done in
                    Task { await self.progress(id, done) }
                }
                await self.blockEnded(id, gpus: gpus, planned: steps, completed: steps, error: nil, plannedEnd: end)
            } catch let stop as BlockInterrupted {
                await self.blockEnded(id, gpus: gpus, planned: steps, completed: stop.completed, error: stop)
            } catch {
                await self.blockEnded(
                    id, gpus: gpus, planned: steps, completed: 0,
                    error: BlockInterrupted(completed: 0, reason: "\(error)"))
            }
        }
        entries[id] = e
    }

    func blockEnded(
        _ id: Int, gpus: GPUSet, planned: Int, completed: Int, error: BlockInterrupted?, plannedEnd: Micros? = nil
    ) async {
        free = free.union(gpus)
        guard var e = entries[id] else {
            rescheduleUnlessDue(reported: plannedEnd)
            return
        }
        e.block = nil
        e.plannedEnd = nil
        e.blockDone = 0
        e.remaining -= completed
        e.lastGPUs = gpus
        if completed < planned, !e.history.isEmpty {
            e.history[e.history.count - 1].steps -= planned - completed
            if e.history[e.history.count - 1].steps == 0 { e.history.removeLast() }
        }
        entries[id] = e
        if e.cancelRequested {
            finalize(id, status: .cancelled, error: nil)
            if let h = e.handle { await backend.release(handle: h) }
        } else if let error, let device = error.failedDevice {
            logger.warning(
                "device \(device) failed during \(e.key); it continues from step \(e.job.steps - e.remaining)")
            metrics.deviceFailure()
        } else if let error, completed < planned {
            finalize(id, status: .failed, error: error.reason)
            if let h = e.handle { await backend.release(handle: h) }
        }
        if entries[id]?.status == .running && e.remaining == 0 {
            // Off the critical path: the devices are free again; encode in the background.
            active.removeAll { $0 == id }
            let backend = self.backend
            let handle = e.handle!
            Task {
                do {
                    let png = try await backend.finish(handle: handle)
                    self.encoded(id, png: png)
                } catch {
                    self.encodeFailed(id, error: "\(error)")
                }
            }
        }
        rescheduleUnlessDue(reported: plannedEnd)
    }

    func progress(_ id: Int, _ done: Int) {
        guard var e = entries[id], e.block != nil, done > e.blockDone else { return }
        e.blockDone = done
        entries[id] = e
    }

    func encoded(_ id: Int, png: [UInt8]) {
        guard var e = entries[id] else { return }
        e.image = png
        entries[id] = e
        finalize(id, status: .succeeded, error: nil)
    }

    func encodeFailed(_ id: Int, error: String) {
        finalize(id, status: .failed, error: "image encoding failed: \(error)")
    }

    func fail(_ id: Int, _ message: String) {
        finalize(id, status: .failed, error: message)
    }

    /// Moves a job to a terminal state, wakes its waiters, records metrics.
    func finalize(_ id: Int, status: JobStatus, error: String?) {
        guard var e = entries[id], !e.status.isTerminal else { return }
        let now = clock.now()
        e.status = status
        e.error = error
        e.finish = now
        let waiters = e.waiters
        e.waiters = []
        entries[id] = e
        active.removeAll { $0 == id }
        finished.append(id)
        let snap = snapshot(e)
        metrics.finished(snap, resolution: e.job.resolution.description)
        for w in waiters { w.resume(returning: snap) }
        while finished.count > configuration.retainFinished {
            let old = finished.removeFirst()
            if let o = entries.removeValue(forKey: old) {
                byKey[o.key] = nil
                if let rid = o.requestID { byRequestID[rid] = nil }
            }
        }
        if active.isEmpty {
            let waiters = drainWaiters
            drainWaiters = []
            for w in waiters { w.resume() }
        }
    }

    func setTimer(_ t: Micros?) {
        timer?.cancel()
        guard let t else {
            timer = nil
            return
        }
        let clock = self.clock
        timer = Task {
            do {
                try await clock.sleep(until: t)
            } catch {
                return
            }
            self.timerFired()
        }
    }

    /// A wake-up the scheduler asked for. Blocks due to end by now are about to report; their
    /// completions decide instead, so that a round boundary sees the devices those blocks free
    /// (as in the simulator, where completions at a time come before the decision at it).
    func timerFired() {
        timer = nil
        rescheduleUnlessDue()
    }

    /// How late a block may report before decisions stop waiting for it: 20 ms of real time.
    var reportLag: Micros { Micros(20_000 * clock.timeScale) }

    /// Decides now, unless running blocks are due to end (by the cost model) and have not
    /// reported yet: then the last of them decides, so that one decision sees every device freed
    /// at that time — as in the simulator, where all completions at a time come before the
    /// decision at it. A block later than ``reportLag`` is not waited for.
    func rescheduleUnlessDue(reported: Micros? = nil) {
        let now = clock.now()
        let due = active.compactMap { id -> Micros? in
            guard let e = entries[id], e.block != nil, let end = e.plannedEnd, end <= now, now - end <= reportLag
            else { return nil }
            return end
        }
        if let oldest = due.min() {
            setTimer(oldest + reportLag + 1)
        } else if let reported, reported <= now, now - reported <= reportLag {
            reschedule(at: reported)
        } else {
            reschedule()
        }
    }

    /// Seconds until a queue slot is likely to free: the soonest estimated finish.
    func retryAfter() -> Int {
        let now = clock.now()
        let soonest = active.compactMap { entries[$0].map { estimate($0, now: now) } }.min() ?? now
        return max(1, Int(((soonest - now).seconds / clock.timeScale).rounded(.up)))
    }

    /// A rough finish estimate: the remaining steps at the job's current (or fastest) degree,
    /// after the work queued ahead of it spread over the node.
    func estimate(_ e: Entry, now: Micros) -> Micros {
        let model = backend.costModel
        let degree = e.history.last?.degree ?? model.degrees.filter { $0 <= backend.devices }.max() ?? 1
        return now + Micros(e.remaining) * model.stepTime(resolution: e.resolution, degree: degree)
    }

    func snapshot(_ e: Entry) -> JobSnapshot {
        JobSnapshot(
            id: e.key, requestID: e.requestID, job: e.job, status: e.status,
            stepsDone: e.job.steps - e.remaining + (e.block != nil ? e.blockDone : 0),
            currentDegree: e.block != nil ? e.history.last?.degree : nil, arrival: e.arrival, deadline: e.deadline,
            finish: e.finish, history: e.history, error: e.error,
            estimate: e.status.isTerminal ? nil : estimate(e, now: clock.now()))
    }
}
