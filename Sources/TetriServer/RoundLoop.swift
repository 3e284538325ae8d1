import Logging
import TetriCore

/// The serving loop: the same `TetriCore` scheduler the simulator runs, driven by the server's
/// clock and an ``ExecutionBackend``. It asks the scheduler at each arrival, block end,
/// cancellation and requested wake-up, runs the blocks it returns, and keeps the tasks, timers
/// and waiters that go with them. What it knows of each job (records, ids, idempotency keys,
/// owners, held memory, retention) lives in its ``JobStore``. Finished images are encoded off the
/// devices' critical path.
public actor RoundLoop {
    /// A running block: its task, and when the cost model says it ends (virtual).
    struct Block {
        var task: Task<Void, Never>
        var plannedEnd: Micros
        /// When it started and what the planned end adds to its steps (dispatch, hand-off).
        var start: Micros
        var overhead: Micros
        var resolution: Int
    }

    /// Builds the scheduler for a cost model: how the loop re-plans with re-estimated step times.
    public typealias SchedulerFactory = @Sendable (CostModel) throws -> any Scheduler

    public struct Configuration: Sendable {
        /// Jobs waiting or running at most; more are rejected with a retry hint.
        public var maxQueue: Int = 64
        /// Refuse jobs that could not meet their deadline even alone on the whole node, instead
        /// of running them best effort.
        public var rejectInfeasible = false
        /// Finished results are kept this many (wall-clock) seconds; nil: no age limit.
        public var resultTTLSeconds: Double? = 600
        /// Finished results are kept within this many bytes, oldest evicted first.
        public var resultMemory: Int = 512 << 20
        /// Fail a job that is still unfinished this many times its SLO after its deadline; nil:
        /// never.
        public var dropLateAfter: Double?

        public init(
            maxQueue: Int = 64, rejectInfeasible: Bool = false, resultTTLSeconds: Double? = 600,
            resultMemory: Int = 512 << 20, dropLateAfter: Double? = nil
        ) {
            self.maxQueue = maxQueue
            self.rejectInfeasible = rejectInfeasible
            self.resultTTLSeconds = resultTTLSeconds
            self.resultMemory = resultMemory
            self.dropLateAfter = dropLateAfter
        }
    }

    public nonisolated let backend: any ExecutionBackend
    public nonisolated let clock: ServingClock
    public nonisolated let configuration: Configuration
    public nonisolated let metrics: ServerMetrics
    let logger: Logger
    var scheduler: any Scheduler
    var store: JobStore
    var blocks: [Int: Block] = [:]
    var waiters: [Int: [CheckedContinuation<(JobSnapshot, [UInt8]?), Never>]] = [:]
    var subscribers: [Int: [Int: AsyncStream<JobEvent>.Continuation]] = [:]
    var nextSubscriber = 0
    var free: GPUSet
    var timer: Task<Void, Never>?
    var dropTimer: (at: Micros, task: Task<Void, Never>)?
    var accepting = true
    var drainWaiters: [CheckedContinuation<Void, Never>] = []
    /// The time of the last decision; decisions never go back in time.
    var lastDecision: Micros = 0
    /// The step times the loop plans with: the backend's cost model, re-estimated from the blocks
    /// run when ``recalibrate`` is set.
    public private(set) var model: CostModel
    /// Step times learnt from completed blocks, and the state of it the scheduler plans with.
    public private(set) var calibration: StepTimeCalibration
    var plannedCalibration: StepTimeCalibration
    let recalibrate: SchedulerFactory?
    /// The scheduler is rebuilt when a step-time factor has moved this much (relative) since the
    /// model it plans with.
    public static let recalibrationThreshold = 0.05

    /// - Parameter recalibrate: when given, every completed block's wall time updates a
    ///   ``StepTimeCalibration`` of the backend's cost model, and once a factor has moved more
    ///   than ``recalibrationThreshold`` the scheduler is rebuilt with this factory on the
    ///   re-estimated model (so is the loop's own planning: block ends, estimates,
    ///   `rejectInfeasible`).
    public init(
        backend: any ExecutionBackend, scheduler: any Scheduler, clock: ServingClock,
        configuration: Configuration = .init(), metrics: ServerMetrics, logger: Logger = Logger(label: "tetriserve"),
        recalibrate: SchedulerFactory? = nil
    ) {
        self.backend = backend
        self.scheduler = scheduler
        self.model = backend.costModel
        self.calibration = StepTimeCalibration(base: backend.costModel)
        self.plannedCalibration = StepTimeCalibration(base: backend.costModel)
        self.recalibrate = recalibrate
        metrics.stepTimes(backend.costModel)
        self.clock = clock
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        self.free = GPUSet(first: backend.devices)
        self.store = JobStore(
            limits: .init(
                maxQueue: configuration.maxQueue, memoryCapacity: backend.memoryCapacity,
                resultTTL: configuration.resultTTLSeconds.map { .fromSeconds($0 * clock.timeScale) },
                resultMemory: configuration.resultMemory))
    }

    public var schedulerName: String { scheduler.name }

    // MARK: Jobs

    /// Admits a job with an absolute deadline (virtual microseconds) for `owner` (an API key's
    /// owner, or "" without keys). A `requestID` the owner used before returns the job it
    /// created (idempotent retry) with `isNew` false.
    public func admit(_ job: GenerationJob, deadline: Micros, requestID: String? = nil, owner: String = "")
        async throws(AdmissionError) -> (snapshot: JobSnapshot, isNew: Bool)
    {
        let now = clock.now()
        store.sweep(now: now)
        if let rid = requestID {
            switch store.lookup(requestID: rid, owner: owner) {
            case .job(let r):
                guard r.job == job else { throw .conflictingRequestID(rid) }
                return (snapshot(r), false)
            case .gone(let t):
                throw .evicted(requestID: rid, id: t.id, status: t.status)
            case .missing: break
            }
        }
        guard accepting else { throw .shuttingDown }
        guard let r = backend.costClass(width: job.width, height: job.height) else {
            preconditionFailure("submit() needs a size the backend validated")
        }
        let bytes = backend.memoryCost(width: job.width, height: job.height)
        switch store.capacity(latentBytes: bytes) {
        case .fits: break
        case .queueFull:
            metrics.rejected()
            throw .queueFull(limit: configuration.maxQueue, retryAfterSeconds: retryAfter())
        case .memoryFull:
            metrics.rejected()
            throw .memoryFull(capacityBytes: store.limits.memoryCapacity ?? 0, retryAfterSeconds: retryAfter())
        case .neverFits:
            metrics.rejected()
            throw .neverFits(bytes: bytes, capacityBytes: store.limits.memoryCapacity ?? 0)
        }
        if configuration.rejectInfeasible {
            let fastest =
                model.degrees.filter { $0 <= backend.devices }
                .map { Micros(job.steps) * model.stepTime(resolution: r, degree: $0) }.min() ?? 0
            if now + fastest > deadline {
                metrics.rejected()
                throw .infeasible(fastestSeconds: fastest.seconds, sloSeconds: (deadline - now).seconds)
            }
        }
        var id = Self.newJobID()
        while store.contains(id: id) { id = Self.newJobID() }
        let index = store.admit(
            id: id, owner: owner, requestID: requestID, job: job, resolution: r, arrival: now, deadline: deadline,
            latentBytes: bytes)
        let handle: Int
        do {
            handle = try await backend.begin(job)
        } catch {
            // Refused, not accepted and then failed: the job is forgotten. (Only a retry of its
            // request_id can have seen it meanwhile; its waiters and streams end here.)
            if var seen = store[index] {
                seen.status = .failed
                seen.error = "the server could not start this request"
                let snap = snapshot(seen)
                for w in waiters.removeValue(forKey: index) ?? [] { w.resume(returning: (snap, nil)) }
                for c in (subscribers.removeValue(forKey: index) ?? [:]).values {
                    c.yield(.finished(snap))
                    c.finish()
                }
            }
            store.withdraw(index)
            metrics.rejected()
            if error is RequestMemoryFull {
                throw .memoryFull(capacityBytes: store.limits.memoryCapacity ?? 0, retryAfterSeconds: retryAfter())
            }
            logger.error("could not begin a \(job.resolution) request: \(error)")
            throw .startFailed
        }
        store[index]?.handle = handle
        guard let rec = store[index] else {
            // Cancelled while it began, and its record already evicted.
            await backend.release(handle: handle)
            throw .startFailed
        }
        if rec.status.isTerminal {
            // Cancelled (through its request_id) while it began.
            await backend.release(handle: handle)
            return (snapshot(rec), true)
        }
        reschedule()
        armDropTimer()
        return (snapshot(rec), true)
    }

    /// ``admit(_:deadline:requestID:owner:)``'s snapshot.
    public func submit(_ job: GenerationJob, deadline: Micros, requestID: String? = nil, owner: String = "")
        async throws(AdmissionError) -> JobSnapshot
    {
        try await admit(job, deadline: deadline, requestID: requestID, owner: owner).snapshot
    }

    /// A job, as `owner` sees it: its snapshot, gone (evicted), or missing.
    public func lookup(_ id: String, owner: String = "") -> JobLookup<JobSnapshot> {
        store.sweep(now: clock.now())
        switch store.lookup(id: id, owner: owner) {
        case .job(let r): return .found(snapshot(r))
        case .gone(let t): return .gone(t)
        case .missing: return .missing
        }
    }

    /// The job's current state, or nil for an unknown (or evicted) id.
    public func status(_ id: String, owner: String = "") -> JobSnapshot? {
        if case .found(let s) = lookup(id, owner: owner) { return s }
        return nil
    }

    /// The PNG of a finished job.
    public func image(_ id: String, owner: String = "") -> [UInt8]? {
        if case .job(let r) = store.lookup(id: id, owner: owner) { return r.image }
        return nil
    }

    /// Waits until the job is finished, failed or cancelled; returns it with its image.
    public func result(_ id: String, owner: String = "") async -> (JobSnapshot, [UInt8]?)? {
        guard case .job(let r) = store.lookup(id: id, owner: owner) else { return nil }
        if r.status.isTerminal { return (snapshot(r), r.image) }
        return await withCheckedContinuation { c in waiters[r.index, default: []].append(c) }
    }

    /// Waits until the job is finished, failed or cancelled.
    public func wait(_ id: String, owner: String = "") async -> JobSnapshot? {
        await result(id, owner: owner)?.0
    }

    /// Cancels a job: at once when queued (`cancelled`), at the next step boundary when running
    /// (`cancelling` until then).
    public func cancel(_ id: String, owner: String = "") async -> JobLookup<JobSnapshot> {
        store.sweep(now: clock.now())
        let rec: JobStore.Record
        switch store.lookup(id: id, owner: owner) {
        case .job(let r): rec = r
        case .gone(let t): return .gone(t)
        case .missing: return .missing
        }
        guard !rec.status.isTerminal, rec.stopping == nil else { return .found(snapshot(rec)) }
        let index = rec.index
        store[index]?.stopping = .cancel
        if rec.running {
            store[index]?.status = .cancelling
            blocks[index]?.task.cancel()
            return .found(snapshot(store[index]!))
        }
        if let h = rec.handle { await backend.release(handle: h) }
        let done = finalize(index, status: .cancelled)
        reschedule()
        return .found(done.map(snapshot) ?? snapshot(rec))
    }

    /// `owner`'s jobs, newest first, at most `limit`, older than the job `after`; nil when
    /// `after` is not a job of `owner`.
    public func list(owner: String = "", limit: Int, after: String? = nil) -> (jobs: [JobSnapshot], hasMore: Bool)? {
        store.sweep(now: clock.now())
        guard let page = store.list(owner: owner, limit: limit, after: after) else { return nil }
        return (page.jobs.map(snapshot), page.hasMore)
    }

    /// The job's progress as it happens: its current state, then its steps and degree changes,
    /// ending with ``JobEvent/finished(_:)``.
    public func events(_ id: String, owner: String = "") -> JobLookup<AsyncStream<JobEvent>> {
        store.sweep(now: clock.now())
        let rec: JobStore.Record
        switch store.lookup(id: id, owner: owner) {
        case .job(let r): rec = r
        case .gone(let t): return .gone(t)
        case .missing: return .missing
        }
        let (stream, continuation) = AsyncStream.makeStream(of: JobEvent.self)
        if rec.status.isTerminal {
            continuation.yield(.finished(snapshot(rec)))
            continuation.finish()
            return .found(stream)
        }
        continuation.yield(.snapshot(snapshot(rec)))
        nextSubscriber += 1
        let token = nextSubscriber
        let index = rec.index
        subscribers[index, default: [:]][token] = continuation
        continuation.onTermination = { _ in Task { await self.unsubscribe(index, token) } }
        return .found(stream)
    }

    func unsubscribe(_ index: Int, _ token: Int) {
        subscribers[index]?[token] = nil
        if subscribers[index]?.isEmpty == true { subscribers[index] = nil }
    }

    func emit(_ index: Int, _ event: JobEvent) {
        guard let subs = subscribers[index] else { return }
        for c in subs.values { c.yield(event) }
    }

    /// Jobs waiting and running.
    public var load: (waiting: Int, running: Int) {
        let running = blocks.count
        return (store.active.count - running, running)
    }

    /// Request memory held by unfinished jobs and bytes of kept results.
    public var memory: (held: Int, results: Int) { (store.heldBytes, store.resultBytes) }

    /// Stops admitting jobs and waits until every admitted job has finished.
    public func drain() async {
        accepting = false
        if store.unfinished == 0 { return }
        await withCheckedContinuation { drainWaiters.append($0) }
    }

    /// A new public job id: `job-` and 128 random bits in hex.
    static func newJobID() -> String {
        var g = SystemRandomNumberGenerator()
        let hex = [g.next(), g.next()].map { (v: UInt64) -> String in
            let s = String(v, radix: 16)
            return String(repeating: "0", count: 16 - s.count) + s
        }
        return "job-" + hex.joined()
    }

    // MARK: The loop

    /// Decides at `at` (the planned end of the blocks just reported, when they reported within
    /// ``reportLag``) or at the clock's time.
    func reschedule(at logical: Micros? = nil) {
        let now = max(lastDecision, logical ?? clock.now())
        lastDecision = now
        let view = ClusterView(
            now: now, gpus: backend.devices, free: free,
            requests: store.activeRecords.compactMap { r in
                guard r.handle != nil, r.stopping == nil || r.running else { return nil }
                return RequestView(
                    id: r.index, resolution: r.resolution, arrival: r.arrival, deadline: r.deadline,
                    totalSteps: r.job.steps, remainingSteps: r.remaining, lastGPUs: r.lastGPUs, isRunning: r.running)
            })
        let started = ContinuousClock.now
        let decision = scheduler.decide(view)
        metrics.decision(started.duration(to: .now))
        for s in decision.starts { start(s, at: now) }
        setTimer(decision.wakeAt)
        let load = self.load
        metrics.load(waiting: load.waiting, running: load.running, busyDevices: backend.devices - free.count)
        metrics.memory(held: store.heldBytes, results: store.resultBytes)
    }

    func start(_ s: BlockStart, at now: Micros) {
        guard var e = store[s.request], let handle = e.handle, !e.running, e.stopping == nil,
            s.gpus.isSubset(of: free)
        else {
            logger.error("scheduler returned an invalid block: \(s)")
            return
        }
        free = free.subtracting(s.gpus)
        let devices = s.gpus.ids
        let from = e.job.steps - e.remaining
        e.status = .running
        var newSegment = false
        if let last = e.history.last, last.devices == devices, e.lastGPUs == s.gpus {
            e.history[e.history.count - 1].steps += s.steps
        } else {
            e.history.append(
                DegreeSegment(
                    degree: devices.count, steps: s.steps, devices: devices, startS: (now - e.arrival).seconds))
            newSegment = true
        }
        metrics.block(degree: devices.count, steps: s.steps)
        let moved = !e.lastGPUs.isEmpty && e.lastGPUs != s.gpus
        let overhead = (moved ? model.handoff : 0) + model.dispatchOverhead
        let end = now + Micros(s.steps) * model.stepTime(resolution: e.resolution, degree: devices.count) + overhead
        let backend = self.backend
        let id = s.request
        let steps = s.steps
        let gpus = s.gpus
        e.running = true
        e.blockDone = 0
        store[id] = e
        let task = Task {
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
        blocks[id] = Block(task: task, plannedEnd: end, start: now, overhead: overhead, resolution: e.resolution)
        logger.debug(
            "block start",
            metadata: [
                "job_id": "\(e.id)", "resolution": "\(e.job.width)x\(e.job.height)", "devices": "\(devices)",
                "steps": "\(steps)", "from_step": "\(from)", "at_s": "\(now.seconds)",
                "planned_s": "\((end - now).seconds)", "slack_s": "\((e.deadline - end).seconds)",
            ])
        if newSegment, let seg = e.history.last { emit(id, .degree(seg, stepsDone: from)) }
    }

    func blockEnded(
        _ id: Int, gpus: GPUSet, planned: Int, completed: Int, error: BlockInterrupted?, plannedEnd: Micros? = nil
    ) async {
        free = free.union(gpus)
        if error == nil, completed == planned, let block = blocks[id] {
            learn(block, degree: gpus.count, steps: completed)
        }
        blocks[id] = nil
        if logger.logLevel <= .debug, let e = store[id] {
            logger.debug(
                "block end",
                metadata: [
                    "job_id": "\(e.id)", "devices": "\(gpus.ids)", "steps": "\(completed)/\(planned)",
                    "at_s": "\(clock.now().seconds)",
                    "late_s": "\(plannedEnd.map { "\((clock.now() - $0).seconds)" } ?? "-")",
                ])
        }
        guard var e = store[id], !e.status.isTerminal else {
            rescheduleUnlessDue(reported: plannedEnd)
            return
        }
        let before = e.stepsDone
        e.running = false
        e.blockDone = 0
        e.remaining -= completed
        e.lastGPUs = gpus
        if completed < planned, !e.history.isEmpty {
            e.history[e.history.count - 1].steps -= planned - completed
            if e.history[e.history.count - 1].steps == 0 { e.history.removeLast() }
        }
        store[id] = e
        if e.stepsDone > before { emit(id, .step(stepsDone: e.stepsDone, total: e.job.steps, degree: gpus.count)) }
        if let stop = e.stopping {
            if let h = e.handle { await backend.release(handle: h) }
            switch stop {
            case .cancel: finalize(id, status: .cancelled)
            case .dropLate(let message):
                finalize(id, status: .failed, error: message, errorCode: "deadline_exceeded")
            }
        } else if let error, let device = error.failedDevice {
            logger.warning(
                "device \(device) failed during \(e.id); it continues from step \(e.job.steps - e.remaining)")
            metrics.deviceFailure()
        } else if let error, completed < planned {
            logger.error("\(e.id) failed: \(error.reason)")
            if let h = e.handle { await backend.release(handle: h) }
            finalize(id, status: .failed, error: "the devices failed to run the request", errorCode: "internal_error")
        }
        if let now = store[id], now.status == .running, now.remaining == 0, now.stopping == nil {
            // Off the critical path: the devices are free again; encode in the background.
            store.stepsDone(id)
            let backend = self.backend
            let handle = now.handle!
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
        guard var e = store[id], e.running, done > e.blockDone else { return }
        e.blockDone = done
        store[id] = e
        emit(id, .step(stepsDone: e.stepsDone, total: e.job.steps, degree: e.history.last?.degree))
    }

    func encoded(_ id: Int, png: [UInt8]) {
        finalize(id, status: .succeeded, image: png)
    }

    func encodeFailed(_ id: Int, error: String) {
        logger.error("image encoding failed: \(error)")
        finalize(id, status: .failed, error: "the image could not be encoded", errorCode: "internal_error")
    }

    /// Moves a job to a terminal state, wakes its waiters and event streams, records metrics.
    @discardableResult
    func finalize(
        _ id: Int, status: JobStatus, error: String? = nil, errorCode: String? = nil, image: [UInt8]? = nil
    ) -> JobStore.Record? {
        guard
            let rec = store.finish(
                id, status: status, error: error, errorCode: errorCode, image: image, now: clock.now())
        else { return nil }
        let snap = snapshot(rec)
        metrics.finished(snap)
        metrics.memory(held: store.heldBytes, results: store.resultBytes)
        for w in waiters.removeValue(forKey: id) ?? [] { w.resume(returning: (snap, rec.image)) }
        for c in (subscribers.removeValue(forKey: id) ?? [:]).values {
            c.yield(.finished(snap))
            c.finish()
        }
        if store.unfinished == 0 {
            let waiters = drainWaiters
            drainWaiters = []
            for w in waiters { w.resume() }
        }
        return rec
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
        let due = blocks.values.compactMap { b -> Micros? in
            b.plannedEnd <= now && now - b.plannedEnd <= reportLag ? b.plannedEnd : nil
        }
        if let oldest = due.min() {
            setTimer(oldest + reportLag + 1)
        } else if let reported, reported <= now, now - reported <= reportLag {
            reschedule(at: reported)
        } else {
            reschedule()
        }
    }

    // MARK: Step times

    /// Feeds a block that completed all its steps to the calibration and rebuilds the scheduler
    /// when the step times it plans with are off by more than ``recalibrationThreshold``.
    func learn(_ block: Block, degree: Int, steps: Int) {
        guard let recalibrate else { return }
        let elapsed = clock.now() - block.start - block.overhead
        calibration.observe(resolution: block.resolution, degree: degree, steps: steps, seconds: Double(elapsed) / 1e6)
        guard calibration.drift(from: plannedCalibration) > Self.recalibrationThreshold else { return }
        let next = calibration.model
        do {
            scheduler = try recalibrate(next)
        } catch {
            logger.error("could not rebuild the scheduler with re-estimated step times: \(error)")
            return
        }
        model = next
        plannedCalibration = calibration
        metrics.stepTimes(model)
        logger.info(
            "step times re-estimated from the blocks run",
            metadata: [
                "ms_per_step": "\(Self.describe(model) { r, d in Double(model.stepTime[r][d] / 10) / 100 })",
                "factor_vs_profile":
                    "\(Self.describe(model) { [factors = calibration.factors] r, d in (factors[r][d] * 100).rounded() / 100 })",
            ])
    }

    /// `value(r, d)` for every class and degree of `model`: "256x256 k1=…,k2=… 512x512 …".
    static func describe(_ model: CostModel, _ value: (_ r: Int, _ d: Int) -> Double) -> String {
        model.resolutionNames.indices.map { r in
            "\(model.resolutionNames[r]) "
                + model.degrees.indices.map { d in "k\(model.degrees[d])=\(value(r, d))" }.joined(separator: ",")
        }.joined(separator: " ")
    }

    // MARK: Dropping late jobs

    /// When a job is dropped: `X × SLO` after its deadline.
    func dropTime(_ r: JobStore.Record, after x: Double) -> Micros {
        r.deadline + Micros(Double(max(0, r.deadline - r.arrival)) * x)
    }

    /// Sets the drop timer for the earliest job to drop (with `--drop-late-after`).
    func armDropTimer() {
        guard let x = configuration.dropLateAfter else { return }
        let next = store.activeRecords.filter { $0.handle != nil && $0.stopping == nil }.map { dropTime($0, after: x) }
            .min()
        guard let next else { return }
        if let current = dropTimer, current.at <= next { return }
        dropTimer?.task.cancel()
        let clock = self.clock
        dropTimer = (
            next,
            Task {
                do {
                    try await clock.sleep(until: next)
                } catch {
                    return
                }
                await self.dropLate()
            }
        )
    }

    /// Fails every job that is `--drop-late-after` × its SLO past its deadline: at once when
    /// queued, at the next step boundary when running.
    func dropLate() async {
        dropTimer = nil
        guard let x = configuration.dropLateAfter else { return }
        let now = clock.now()
        var dropped = false
        for candidate in store.activeRecords {
            // Fresh each time: an earlier iteration may have suspended.
            guard let r = store[candidate.index], let handle = r.handle, r.stopping == nil, !r.status.isTerminal,
                dropTime(r, after: x) <= now
            else { continue }
            let slo = Double(max(0, r.deadline - r.arrival)) / 1e6
            let message =
                "dropped: still unfinished \(x) × its SLO (\((slo * 1000).rounded() / 1000) s) after its deadline "
                + "(--drop-late-after)"
            store[r.index]?.stopping = .dropLate(message)
            if r.running {
                blocks[r.index]?.task.cancel()
            } else {
                await backend.release(handle: handle)
                finalize(r.index, status: .failed, error: message, errorCode: "deadline_exceeded")
                dropped = true
            }
        }
        if dropped { reschedule() }
        armDropTimer()
    }

    // MARK: Estimates

    /// Seconds until a queue slot is likely to free: the soonest estimated finish.
    func retryAfter() -> Int {
        let now = clock.now()
        let soonest = store.activeRecords.map { estimate($0, now: now) }.min() ?? now
        return max(1, Int(((soonest - now).seconds / clock.timeScale).rounded(.up)))
    }

    /// A rough finish estimate: the remaining steps at the job's current (or fastest) degree,
    /// after the work queued ahead of it spread over the node.
    func estimate(_ e: JobStore.Record, now: Micros) -> Micros {
        let degree = e.history.last?.degree ?? model.degrees.filter { $0 <= backend.devices }.max() ?? 1
        return now + Micros(e.remaining) * model.stepTime(resolution: e.resolution, degree: degree)
    }

    func snapshot(_ e: JobStore.Record) -> JobSnapshot {
        JobSnapshot(
            id: e.id, requestID: e.requestID, job: e.job, status: e.status, stepsDone: e.stepsDone,
            currentDegree: e.running ? e.history.last?.degree : nil, arrival: e.arrival, deadline: e.deadline,
            finish: e.finish, history: e.history, error: e.error, errorCode: e.errorCode,
            estimate: e.status.isTerminal ? nil : estimate(e, now: clock.now()),
            resolutionClass: backend.costModel.resolutionNames[e.resolution])
    }
}

/// A job looked up by id, as its owner sees it.
public enum JobLookup<Value: Sendable>: Sendable {
    case found(Value)
    /// Finished and evicted; what is left of it.
    case gone(JobStore.Tombstone)
    /// Never existed, or another owner's.
    case missing
}

/// What `GET /v1/images/jobs/{id}/events` streams.
public enum JobEvent: Sendable {
    /// The job's state when the stream opened.
    case snapshot(JobSnapshot)
    /// Steps done so far (of `total`), at `degree`.
    case step(stepsDone: Int, total: Int, degree: Int?)
    /// A block began on a new set of devices (or degree) at step `stepsDone`.
    case degree(DegreeSegment, stepsDone: Int)
    /// The terminal state; the last event.
    case finished(JobSnapshot)
}
