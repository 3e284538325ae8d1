import Testing

@testable import TetriCore
@testable import TetriServer

/// The job store on its own: no clock, no tasks; time is whatever `now` the test passes.
@Suite struct JobStoreTests {
    func job(_ prompt: String = "p", steps: Int = 10) -> GenerationJob {
        GenerationJob(prompt: prompt, width: 256, height: 256, steps: steps, seed: 1)
    }

    @discardableResult
    func admit(
        _ store: inout JobStore, _ id: String, owner: String = "", requestID: String? = nil, bytes: Int = 0,
        at now: Micros = 0
    ) -> Int {
        store.admit(
            id: id, owner: owner, requestID: requestID, job: job(id), resolution: 0, arrival: now,
            deadline: now + 1_000_000, latentBytes: bytes)
    }

    @Test func admissionCountsQueueSlotsAndRequestMemory() {
        var store = JobStore(limits: .init(maxQueue: 3, memoryCapacity: 100))
        #expect(store.capacity(latentBytes: 101) == .neverFits)
        #expect(store.capacity(latentBytes: 100) == .fits)
        let a = admit(&store, "a", bytes: 60)
        #expect(store.capacity(latentBytes: 41) == .memoryFull)
        #expect(store.capacity(latentBytes: 40) == .fits)
        admit(&store, "b", bytes: 40)
        #expect(store.heldBytes == 100)
        #expect(store.capacity(latentBytes: 1) == .memoryFull)
        #expect(store.capacity(latentBytes: 0) == .fits)
        admit(&store, "c", bytes: 0)
        #expect(store.capacity(latentBytes: 0) == .queueFull)
        // A job whose steps are done leaves the queue but holds its memory until it is terminal.
        store.stepsDone(a)
        #expect(store.capacity(latentBytes: 0) == .fits)
        #expect(store.capacity(latentBytes: 1) == .memoryFull)
        store.finish(a, status: .succeeded, image: [1, 2, 3], now: 5)
        #expect(store.heldBytes == 40)
        #expect(store.capacity(latentBytes: 60) == .fits)
        // Withdrawing an admitted job that could not begin gives everything back.
        let d = admit(&store, "d", bytes: 60)
        #expect(store.heldBytes == 100 && store.unfinished == 3)
        store.withdraw(d)
        #expect(store.heldBytes == 40 && store.unfinished == 2)
        #expect(store.lookup(id: "d", owner: "").isMissing)
    }

    @Test func idsAndRequestIDsAreScopedToTheirOwner() {
        var store = JobStore()
        admit(&store, "job-a", owner: "key-0", requestID: "r1")
        #expect(store.lookup(id: "job-a", owner: "key-0").record?.id == "job-a")
        #expect(store.lookup(id: "job-a", owner: "key-1").isMissing)
        #expect(store.lookup(id: "job-a", owner: "").isMissing)
        #expect(store.lookup(requestID: "r1", owner: "key-0").record?.id == "job-a")
        #expect(store.lookup(requestID: "r1", owner: "key-1").isMissing)
        // The same request_id under another owner is another job.
        admit(&store, "job-b", owner: "key-1", requestID: "r1")
        #expect(store.lookup(requestID: "r1", owner: "key-1").record?.id == "job-b")
        #expect(store.lookup(requestID: "r1", owner: "key-0").record?.id == "job-a")
        #expect(store.list(owner: "key-0", limit: 10)?.jobs.map(\.id) == ["job-a"])
        #expect(store.list(owner: "key-1", limit: 10)?.jobs.map(\.id) == ["job-b"])
        #expect(store.list(owner: "key-1", limit: 10, after: "job-a") == nil)
    }

    @Test func resultsExpireOldestFirstAndUnfinishedJobsStay() {
        var store = JobStore(limits: .init(resultTTL: 100))
        let a = admit(&store, "a", requestID: "ra", at: 0)
        let b = admit(&store, "b", at: 0)
        admit(&store, "c", at: 0)  // never finishes
        store.finish(a, status: .succeeded, image: [0], now: 10)
        store.finish(b, status: .cancelled, now: 50)
        store.sweep(now: 109)
        #expect(store.count == 3)
        store.sweep(now: 110)
        #expect(store.count == 2)
        guard case .gone(let t) = store.lookup(id: "a", owner: "") else {
            Issue.record("a should be gone")
            return
        }
        #expect(t.status == .succeeded && t.reason == .expired && t.finish == 10 && t.evicted == 110)
        // Its request_id answers "gone", not "unknown" (so a retry does not run it again).
        #expect(store.lookup(requestID: "ra", owner: "").isGone)
        #expect(store.lookup(id: "a", owner: "other").isMissing)
        store.sweep(now: 1_000_000)
        #expect(store.lookup(id: "b", owner: "").isGone)
        #expect(store.lookup(id: "c", owner: "").record?.status == .queued)
        #expect(store.resultBytes == 0)
    }

    @Test func resultsStayWithinTheirMemoryOldestFirst() {
        let overhead = JobStore.recordOverhead + 1  // a one-character prompt
        var store = JobStore(limits: .init(resultMemory: 3 * (overhead + 100)))
        var ids: [Int] = []
        for i in 0..<5 { ids.append(admit(&store, "\(i)")) }
        for (n, i) in ids.enumerated() {
            store.finish(i, status: .succeeded, image: [UInt8](repeating: 0, count: 100), now: Micros(n))
            #expect(store.resultBytes <= 3 * (overhead + 100))
        }
        #expect((0..<5).map { store.lookup(id: "\($0)", owner: "").isGone } == [true, true, false, false, false])
        if case .gone(let t) = store.lookup(id: "0", owner: "") { #expect(t.reason == .memory) }
        #expect(store.resultBytes == 3 * (overhead + 100))
    }

    @Test func tombstonesAreBounded() {
        var store = JobStore(limits: .init(resultTTL: 1, tombstones: 2))
        for i in 0..<4 {
            let x = admit(&store, "\(i)", requestID: "r\(i)")
            store.finish(x, status: .succeeded, now: Micros(i * 10))
        }
        store.sweep(now: 100)
        #expect(store.tombstoneCount == 2)
        #expect(store.lookup(id: "0", owner: "").isMissing && store.lookup(requestID: "r1", owner: "").isMissing)
        #expect(store.lookup(id: "3", owner: "").isGone && store.lookup(requestID: "r2", owner: "").isGone)
    }

    @Test func listsNewestFirstInPages() throws {
        var store = JobStore(limits: .init(resultTTL: 5))
        var indexes: [Int] = []
        for i in 0..<7 { indexes.append(admit(&store, "j\(i)")) }
        admit(&store, "other", owner: "key-9")
        let first = try #require(store.list(owner: "", limit: 3))
        #expect(first.jobs.map(\.id) == ["j6", "j5", "j4"] && first.hasMore)
        let second = try #require(store.list(owner: "", limit: 3, after: "j4"))
        #expect(second.jobs.map(\.id) == ["j3", "j2", "j1"] && second.hasMore)
        let third = try #require(store.list(owner: "", limit: 3, after: "j1"))
        #expect(third.jobs.map(\.id) == ["j0"] && !third.hasMore)
        // A cursor whose job has been evicted still pages on.
        store.finish(indexes[4], status: .succeeded, now: 0)
        store.sweep(now: 10)
        #expect(store.list(owner: "", limit: 3, after: "j4")?.jobs.map(\.id) == ["j3", "j2", "j1"])
        #expect(store.list(owner: "", limit: 3, after: "nope") == nil)
    }
}

extension JobStore.Lookup {
    var record: JobStore.Record? {
        if case .job(let r) = self { return r }
        return nil
    }
    var isMissing: Bool {
        if case .missing = self { return true }
        return false
    }
    var isGone: Bool {
        if case .gone = self { return true }
        return false
    }
}
