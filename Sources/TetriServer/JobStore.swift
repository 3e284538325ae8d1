import TetriCore

/// The request tracker: every job's record, its public id and idempotency key, who owns it, the
/// resources it holds, and how long its result is kept. A plain value with no clock, no tasks and
/// no I/O — every call that depends on time is given `now` — so that admission, scoping,
/// retention and memory accounting are tested on their own. ``RoundLoop`` owns one and drives it
/// from its events.
///
/// Resources a job holds, and when:
/// - a queue slot from admission until its last step has run (``active``);
/// - `latentBytes` of the backend's request memory from admission until it is terminal;
/// - once finished, its result (image and record) counts towards ``Limits/resultMemory`` until it
///   is evicted: oldest first, when older than ``Limits/resultTTL`` or when the results exceed
///   that memory. Unfinished jobs are never evicted. An evicted job leaves a small tombstone so
///   that its id and `request_id` answer "gone" rather than "unknown" (or a silent re-run).
public struct JobStore: Sendable {
    public struct Limits: Sendable {
        /// Jobs with steps left to run, at most.
        public var maxQueue: Int
        /// Bytes of request memory the backend has (nil: not limited).
        public var memoryCapacity: Int?
        /// Finished results are kept this long after they finish (same unit as `now`; nil: no
        /// age limit).
        public var resultTTL: Micros?
        /// Finished results (image bytes plus a per-record overhead) are kept within this many
        /// bytes.
        public var resultMemory: Int
        /// Tombstones of evicted jobs kept, at most (oldest dropped first).
        public var tombstones: Int

        public init(
            maxQueue: Int = 64, memoryCapacity: Int? = nil, resultTTL: Micros? = nil, resultMemory: Int = 512 << 20,
            tombstones: Int = 65_536
        ) {
            self.maxQueue = maxQueue
            self.memoryCapacity = memoryCapacity
            self.resultTTL = resultTTL
            self.resultMemory = resultMemory
            self.tombstones = tombstones
        }
    }

    /// One job.
    public struct Record: Sendable {
        /// The scheduler's id for it (admission order).
        public var index: Int
        /// The public id (unguessable).
        public var id: String
        /// Who may see it: an API key's owner name, or "" without keys.
        public var owner: String
        public var requestID: String?
        public var job: GenerationJob
        /// Cost-model class.
        public var resolution: Int
        public var arrival: Micros
        public var deadline: Micros
        public var remaining: Int
        /// Request memory held until it is terminal.
        public var latentBytes: Int
        public var lastGPUs = GPUSet()
        /// A block of it is running.
        public var running = false
        /// Steps of the running block completed so far.
        public var blockDone = 0
        public var status = JobStatus.queued
        public var history: [DegreeSegment] = []
        /// The backend's handle, once it has begun.
        public var handle: Int?
        public var finish: Micros?
        public var error: String?
        /// A machine-readable reason for a failure (`deadline_exceeded`, `internal_error`).
        public var errorCode: String?
        public var image: [UInt8]?
        /// Why it is stopping, while a running block winds down.
        public var stopping: Stop?

        public enum Stop: Sendable, Equatable {
            case cancel
            case dropLate(String)
        }

        public var stepsDone: Int { job.steps - remaining + (running ? blockDone : 0) }

        /// Bytes its result counts towards ``Limits/resultMemory``.
        var resultBytes: Int { (image?.count ?? 0) + JobStore.recordOverhead + job.prompt.utf8.count }
    }

    /// What is left of an evicted job.
    public struct Tombstone: Sendable, Equatable {
        public var index: Int
        public var id: String
        public var owner: String
        public var requestID: String?
        /// Its terminal status.
        public var status: JobStatus
        public var finish: Micros
        public var evicted: Micros
        /// `expired` (older than the TTL) or `memory` (results over their memory).
        public var reason: Reason

        public enum Reason: String, Sendable { case expired, memory }
    }

    public enum Lookup: Sendable {
        case job(Record)
        case gone(Tombstone)
        case missing
    }

    /// Whether a job of some size may be admitted now.
    public enum Capacity: Sendable, Equatable {
        case fits
        case queueFull
        case memoryFull
        /// Larger than the whole request memory: it can never be admitted.
        case neverFits
    }

    /// Bytes a finished record counts besides its image and prompt.
    static let recordOverhead = 512

    public let limits: Limits
    private(set) var records: [Int: Record] = [:]
    /// Jobs with steps left, in admission order (what the scheduler sees).
    private(set) var active: [Int] = []
    /// Terminal jobs in the order they finished (oldest first); `finishedHead` is the first live
    /// one.
    private var finished: [Int] = []
    private var finishedHead = 0
    private var byID: [String: Int] = [:]
    private var byRequestID: [RequestKey: Int] = [:]
    private var tombstones: [String: Tombstone] = [:]
    private var tombstoneOrder: [String] = []
    private var tombstoneHead = 0
    private var tombstoneByRequestID: [RequestKey: String] = [:]
    private var nextIndex = 0
    /// Request memory held by unfinished jobs.
    public private(set) var heldBytes = 0
    /// Bytes of kept results.
    public private(set) var resultBytes = 0
    /// Jobs not yet terminal.
    public private(set) var unfinished = 0

    struct RequestKey: Hashable, Sendable {
        var owner: String
        var requestID: String
    }

    public init(limits: Limits = .init()) {
        self.limits = limits
    }

    // MARK: Admission

    /// Whether a job holding `latentBytes` of request memory fits now.
    public func capacity(latentBytes: Int) -> Capacity {
        if let cap = limits.memoryCapacity, latentBytes > cap { return .neverFits }
        guard active.count < limits.maxQueue else { return .queueFull }
        if let cap = limits.memoryCapacity, heldBytes + latentBytes > cap { return .memoryFull }
        return .fits
    }

    /// What a `request_id` of `owner` refers to.
    public func lookup(requestID: String, owner: String) -> Lookup {
        let key = RequestKey(owner: owner, requestID: requestID)
        if let i = byRequestID[key], let r = records[i] { return .job(r) }
        if let id = tombstoneByRequestID[key], let t = tombstones[id] { return .gone(t) }
        return .missing
    }

    /// Records an admitted job (the caller checked ``capacity(latentBytes:)``) and returns its
    /// scheduler index. `id` must be new.
    public mutating func admit(
        id: String, owner: String, requestID: String?, job: GenerationJob, resolution: Int, arrival: Micros,
        deadline: Micros, latentBytes: Int
    ) -> Int {
        precondition(byID[id] == nil && tombstones[id] == nil, "job id \(id) is not new")
        nextIndex += 1
        let r = Record(
            index: nextIndex, id: id, owner: owner, requestID: requestID, job: job, resolution: resolution,
            arrival: arrival, deadline: deadline, remaining: job.steps, latentBytes: latentBytes)
        records[r.index] = r
        active.append(r.index)
        byID[id] = r.index
        if let rid = requestID { byRequestID[RequestKey(owner: owner, requestID: rid)] = r.index }
        heldBytes += latentBytes
        unfinished += 1
        return r.index
    }

    /// Forgets a job that was admitted but could not begin, as if it had never been admitted.
    public mutating func withdraw(_ index: Int) {
        guard let r = records.removeValue(forKey: index) else { return }
        active.removeAll { $0 == index }
        byID[r.id] = nil
        if let rid = r.requestID { byRequestID[RequestKey(owner: r.owner, requestID: rid)] = nil }
        if !r.status.isTerminal {
            heldBytes -= r.latentBytes
            unfinished -= 1
        }
    }

    // MARK: Records

    public subscript(index: Int) -> Record? {
        get { records[index] }
        set {
            // Only the loop's bookkeeping fields change through here; terminal moves go through
            // finish(_:…).
            guard let newValue, let old = records[index] else { return }
            precondition(old.status.isTerminal == newValue.status.isTerminal, "use finish() for terminal states")
            records[index] = newValue
        }
    }

    /// The job `id` as `owner` sees it: another owner's job is missing.
    public func lookup(id: String, owner: String) -> Lookup {
        if let i = byID[id], let r = records[i] { return r.owner == owner ? .job(r) : .missing }
        if let t = tombstones[id] { return t.owner == owner ? .gone(t) : .missing }
        return .missing
    }

    /// Its steps are all done: it leaves the queue (it still holds its memory until terminal).
    public mutating func stepsDone(_ index: Int) {
        active.removeAll { $0 == index }
    }

    /// Moves a job to a terminal state, releases what it held and evicts old results. Returns
    /// the record, or nil when it was terminal already.
    @discardableResult
    public mutating func finish(
        _ index: Int, status: JobStatus, error: String? = nil, errorCode: String? = nil, image: [UInt8]? = nil,
        now: Micros
    ) -> Record? {
        precondition(status.isTerminal)
        guard var r = records[index], !r.status.isTerminal else { return nil }
        r.status = status
        r.error = error
        r.errorCode = errorCode
        r.image = image
        r.finish = now
        r.running = false
        r.stopping = nil
        records[index] = r
        active.removeAll { $0 == index }
        heldBytes -= r.latentBytes
        unfinished -= 1
        finished.append(index)
        resultBytes += r.resultBytes
        sweep(now: now)
        return r
    }

    /// Evicts results older than the TTL, then the oldest while results exceed their memory.
    public mutating func sweep(now: Micros) {
        while finishedHead < finished.count {
            let i = finished[finishedHead]
            guard let r = records[i] else {
                finishedHead += 1
                continue
            }
            let expired = limits.resultTTL.map { now - (r.finish ?? now) >= $0 } ?? false
            guard expired || resultBytes > limits.resultMemory else { break }
            evict(r, now: now, reason: expired ? .expired : .memory)
            finishedHead += 1
        }
        if finishedHead > 1024 && finishedHead * 2 > finished.count {
            finished.removeFirst(finishedHead)
            finishedHead = 0
        }
    }

    private mutating func evict(_ r: Record, now: Micros, reason: Tombstone.Reason) {
        records[r.index] = nil
        byID[r.id] = nil
        resultBytes -= r.resultBytes
        let t = Tombstone(
            index: r.index, id: r.id, owner: r.owner, requestID: r.requestID, status: r.status, finish: r.finish ?? now,
            evicted: now, reason: reason)
        tombstones[r.id] = t
        tombstoneOrder.append(r.id)
        if let rid = r.requestID {
            let key = RequestKey(owner: r.owner, requestID: rid)
            byRequestID[key] = nil
            tombstoneByRequestID[key] = r.id
        }
        while tombstoneOrder.count - tombstoneHead > limits.tombstones {
            let old = tombstoneOrder[tombstoneHead]
            tombstoneHead += 1
            if let t = tombstones.removeValue(forKey: old), let rid = t.requestID {
                let key = RequestKey(owner: t.owner, requestID: rid)
                if tombstoneByRequestID[key] == old { tombstoneByRequestID[key] = nil }
            }
        }
        if tombstoneHead > 1024 && tombstoneHead * 2 > tombstoneOrder.count {
            tombstoneOrder.removeFirst(tombstoneHead)
            tombstoneHead = 0
        }
    }

    // MARK: Queries

    /// Unfinished jobs with steps left, in admission order.
    public var activeRecords: [Record] { active.compactMap { records[$0] } }

    /// `owner`'s live jobs, newest first: at most `limit`, after (older than) the job `after`.
    /// Returns nil when `after` names no job of `owner`, live or evicted.
    public func list(owner: String, limit: Int, after: String? = nil) -> (jobs: [Record], hasMore: Bool)? {
        var bound = Int.max
        if let after {
            switch lookup(id: after, owner: owner) {
            case .job(let r): bound = r.index
            case .gone(let t): bound = t.index
            case .missing: return nil
            }
        }
        let mine = records.values.filter { $0.owner == owner && $0.index < bound }.sorted { $0.index > $1.index }
        return (Array(mine.prefix(limit)), mine.count > limit)
    }

    /// Whether `id` names a job, live or evicted, of any owner.
    public func contains(id: String) -> Bool { byID[id] != nil || tombstones[id] != nil }

    /// Live records (finished ones included).
    public var count: Int { records.count }
    /// Tombstones kept.
    public var tombstoneCount: Int { tombstones.count }
}
