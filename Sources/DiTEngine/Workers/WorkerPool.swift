import CShm
import Foundation
import Synchronization

/// Starts and supervises `tetriserve worker` processes, one per device, and runs commands on
/// groups of them. A worker that dies is reported (naming it) to the caller whose command it was
/// running, and replaced; the other workers and requests carry on.
///
/// Thread-safe: commands on disjoint groups may run concurrently from different threads.
public final class WorkerPool: @unchecked Sendable {
    public struct Options: Sendable {
        public var workers: Int
        public var model: String
        public var seed: UInt64
        /// Safetensors weights to load instead of the seeded initialisation.
        public var weights: String?
        /// The largest image token count a request may have.
        public var maxImageTokens: Int
        /// Bytes of shared memory for request regions.
        public var heapBytes: Int
        /// The `tetriserve` executable that runs `worker`.
        public var executable: String
        /// `OPENBLAS_CORETYPE` for the workers (nil: OpenBLAS detects the CPU itself). Defaults to
        /// this process's `OPENBLAS_CORETYPE`, else the family its CPU flags show.
        public var coreType: String?
        /// Pin worker i to the i-th CPU this process may use.
        public var pin: Bool
        /// Seconds a starting worker (at start-up or as a replacement) may take to answer its
        /// hello before it is looked at: one that is not working then (blocked, stopped) is
        /// killed; one still using CPU gets up to ten times as long.
        public var helloTimeout: Double

        public init(
            workers: Int, model: String = "small", seed: UInt64 = 0, weights: String? = nil, maxImageTokens: Int? = nil,
            heapBytes: Int = 256 << 20, executable: String? = nil, coreType: String? = BLAS.configuredCoreType(),
            pin: Bool = true, helloTimeout: Double = 30
        ) throws {
            guard workers > 0 else { throw EngineError.pool("--workers must be at least 1, got \(workers)") }
            guard helloTimeout > 0 else {
                throw EngineError.pool("the hello timeout must be positive, got \(helloTimeout)")
            }
            self.workers = workers
            self.model = model
            self.seed = seed
            self.weights = weights
            let config =
                try weights.flatMap { try ModelConfig.stored(inWeightsFile: $0) } ?? ModelConfig.named[model] ?? .small
            self.maxImageTokens = maxImageTokens ?? (config.patchSize >= 16 ? 4096 : 1024)
            self.heapBytes = heapBytes
            self.executable = try executable ?? WorkerPool.locateExecutable()
            self.coreType = coreType
            self.pin = pin
            self.helloTimeout = helloTimeout
        }
    }

    final class Handle {
        let index: Int
        let lock = NSLock()
        var pid: pid_t = 0
        var toWorker: Int32 = -1
        var fromWorker: Int32 = -1
        var reader = LineReader(fd: -1)
        var core = ""

        init(index: Int) { self.index = index }
    }

    public let options: Options
    public let config: ModelConfig
    let arena: Arena
    let handles: [Handle]
    let heapLock = NSLock()
    var regions: [Int: Int] = [:]  // offset → bytes
    /// Workers being replaced now, and workers whose replacement failed (index → reason).
    let outage = Mutex<(replacing: Int, down: Set<Int>)>((0, []))

    public var workerCount: Int { handles.count }
    /// Set by ``shutdown()``: the supervisor stops and no worker is replaced any more.
    let stopped = Atomic<Bool>(false)
    /// How often the supervisor looks at idle workers.
    static let supervisionInterval = 0.1

    /// Starts the workers and waits until each has answered with its OpenBLAS core.
    public init(options: Options) throws {
        tsv_ignore_sigpipe()
        guard
            let config = try options.weights.flatMap({ try ModelConfig.stored(inWeightsFile: $0) })
                ?? ModelConfig.named[options.model]
        else {
            throw EngineError.invalidModel(
                "unknown model '\(options.model)'; choose one of \(ModelConfig.named.keys.sorted().joined(separator: ", "))"
            )
        }
        self.options = options
        self.config = config
        arena = try Arena(
            layout: ArenaLayout(
                workers: options.workers, config: config, maxImageTokens: options.maxImageTokens,
                heapBytes: options.heapBytes))
        handles = (0..<options.workers).map { Handle(index: $0) }
        do {
            for h in handles { try spawn(h) }
            for h in handles { try hello(h) }
        } catch {
            shutdown()
            throw error
        }
        startSupervisor()
    }

    /// Watches the idle workers: one that dies between commands (killed from outside, crashed)
    /// is replaced at once, so that `unavailableWorkers` and health reflect it and the next command
    /// finds a live worker. (A worker that dies during a command is handled by that command.)
    func startSupervisor() {
        let thread = Thread { [weak self] in
            // Holds the pool only while looking, so that it can be deinitialised in between.
            func look() -> Bool {
                guard let pool = self, !pool.stopped.load(ordering: .relaxed) else { return false }
                pool.replaceDeadIdleWorkers()
                return true
            }
            while look() { usleep(UInt32(Self.supervisionInterval * 1e6)) }
        }
        thread.name = "tetriserve.pool-supervisor"
        thread.start()
    }

    /// Replaces every idle worker (not running a command) whose process has ended: its stdout pipe
    /// reports a hang-up. A worker busy with a command is skipped.
    func replaceDeadIdleWorkers() {
        for h in handles {
            guard h.lock.try() else { continue }
            defer { h.lock.unlock() }
            guard !stopped.load(ordering: .relaxed), h.pid > 0, h.fromWorker >= 0 else { continue }
            var pfd = pollfd(fd: h.fromWorker, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 0) > 0, pfd.revents & Int16(POLLHUP | POLLERR) != 0 else { continue }
            let detail = replace(h)
            let outcome = h.pid > 0 ? "replaced" : "down until a command tries again"
            FileHandle.standardError.write(Data("[pool] idle worker \(h.index) ended (\(detail)); \(outcome)\n".utf8))
        }
    }

    deinit { shutdown() }

    /// The OpenBLAS core each worker reported at start.
    public var coreNames: [String] { handles.map { h in h.lock.withLock { h.core } } }

    /// Workers that cannot take work now: being replaced after a failure, or down because their
    /// replacement failed (the next command on them tries again).
    public var unavailableWorkers: Int { outage.withLock { $0.replacing + $0.down.count } }

    /// Process ids of the workers (for supervision and tests).
    public var pids: [Int32] { handles.map { h in h.lock.withLock { h.pid } } }

    /// Stops every worker.
    public func shutdown() {
        stopped.store(true, ordering: .relaxed)
        for h in handles {
            h.lock.withLock {
                // Closing stdin ends the worker loop; give it a moment, then make sure.
                guard h.pid > 0 else { return }
                _ = reap(h, graceSeconds: 1)
            }
        }
    }

    /// The running executable's path when the `tetriserve` program has declared itself the
    /// worker executable (``adoptRunningExecutable()``).
    private static let adopted = Mutex<String?>(nil)

    /// The path of this process's executable (`/proc/self/exe`, else `argv[0]`).
    static var runningExecutable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    /// Declares this process's executable the one to start workers from, whatever its file is
    /// called (an installed or renamed copy of `tetriserve`). Called by the `tetriserve` program
    /// at start-up.
    public static func adoptRunningExecutable() {
        let me = runningExecutable
        adopted.withLock { $0 = me }
    }

    /// The `tetriserve` executable: `$TETRISERVE_EXECUTABLE`, this process when it is the
    /// `tetriserve` program (under any name, see ``adoptRunningExecutable()``, or named
    /// `tetriserve`), or a `tetriserve` next to this process's executable (a test bundle in the
    /// build products folder).
    public static func locateExecutable() throws -> String {
        if let path = ProcessInfo.processInfo.environment["TETRISERVE_EXECUTABLE"] { return path }
        if let path = adopted.withLock({ $0 }) { return path }
        let url = URL(fileURLWithPath: runningExecutable)
        if url.lastPathComponent == "tetriserve" { return url.path }
        let sibling = url.deletingLastPathComponent().appendingPathComponent("tetriserve").path
        if FileManager.default.isExecutableFile(atPath: sibling) { return sibling }
        throw EngineError.pool(
            "cannot find the tetriserve executable (looked at \(sibling)); build it or set TETRISERVE_EXECUTABLE")
    }

    // MARK: Processes

    func spawn(_ h: Handle) throws {
        var env = ProcessInfo.processInfo.environment
        env["OPENBLAS_NUM_THREADS"] = "1"
        env["OMP_NUM_THREADS"] = "1"
        if let core = options.coreType { env["OPENBLAS_CORETYPE"] = core }
        let layoutJSON = String(decoding: try JSONEncoder().encode(arena.layout), as: UTF8.self)
        var args = [
            options.executable, "worker", "--index", String(h.index), "--arena-fd", String(arena.fd), "--layout",
            layoutJSON, "--model", options.model, "--seed", String(options.seed),
        ]
        if let w = options.weights { args += ["--weights", w] }
        if options.pin { args += ["--cpu", String(tsv_nth_allowed_cpu(Int32(h.index)))] }
        let envStrings = env.map { "\($0.key)=\($0.value)" }
        var pid: pid_t = 0
        var toWorker: Int32 = -1
        var fromWorker: Int32 = -1
        let rc = withCStrings(args) { argv in
            withCStrings(envStrings) { envp in
                tsv_spawn(options.executable, argv, envp, -1, &pid, &toWorker, &fromWorker)
            }
        }
        guard rc == 0 else {
            throw EngineError.pool("cannot start worker \(h.index) (\(options.executable)): errno \(rc)")
        }
        h.pid = pid
        h.toWorker = toWorker
        h.fromWorker = fromWorker
        h.reader = LineReader(fd: fromWorker)
    }

    func hello(_ h: Handle) throws {
        try h.lock.withLock { try helloLocked(h) }
    }

    /// ``hello(_:)`` with the worker's lock held. A worker that dies or hangs before answering is
    /// reaped, not replaced, and the error is thrown.
    func helloLocked(_ h: Handle) throws {
        let replies = try exchange(
            [h], messages: [WorkerMessage(op: .hello)], abortOnDeath: nil, timeout: options.helloTimeout,
            replaceDead: false)
        let core = replies[0].core ?? "unknown"
        h.core = core
        if let want = options.coreType, core.lowercased() != want.lowercased() {
            throw EngineError.pool("worker \(h.index) reports OpenBLAS core \(core), expected \(want)")
        }
    }

    /// Closes a worker's pipes and reaps its process (killing it when it does not exit within
    /// `graceSeconds`); returns how it ended.
    func reap(_ h: Handle, graceSeconds: Double = 2) -> String {
        var status: Int32 = 0
        if h.toWorker >= 0 { close(h.toWorker) }
        if h.fromWorker >= 0 { close(h.fromWorker) }
        h.toWorker = -1
        h.fromWorker = -1
        var detail = "its pipe closed"
        if h.pid > 0 {
            var reaped = false
            for _ in 0..<Int(graceSeconds / 0.005) {
                if waitpid(h.pid, &status, WNOHANG) == h.pid {
                    reaped = true
                    break
                }
                usleep(5000)
            }
            if !reaped {
                kill(h.pid, SIGKILL)
                waitpid(h.pid, &status, 0)
            }
            let signal = status & 0x7F
            detail = signal != 0 ? "killed by signal \(signal)" : "exited with status \((status >> 8) & 0xFF)"
        }
        h.pid = 0
        return detail
    }

    /// How many times a replacement is started before the worker is declared down.
    static let replacementAttempts = 3

    /// Reaps a dead worker and starts a replacement (up to ``replacementAttempts`` times, each
    /// bounded by the hello timeout, so that a replacement that hangs at start cannot hold the
    /// worker's lock); returns how the worker ended. When every attempt fails the worker is down
    /// until a later command tries again.
    func replace(_ h: Handle) -> String {
        outage.withLock { $0.replacing += 1 }
        defer { outage.withLock { $0.replacing -= 1 } }
        var detail = reap(h)
        var failures: [String] = []
        for _ in 0..<Self.replacementAttempts where !stopped.load(ordering: .relaxed) {
            do {
                try spawn(h)
                try helloLocked(h)
                outage.withLock { _ = $0.down.remove(h.index) }
                return detail
            } catch {
                failures.append("\(error)")
                _ = reap(h)
            }
        }
        if !failures.isEmpty {
            detail += "; restarting it failed \(failures.count) times (last: \(failures.last!))"
        }
        outage.withLock { _ = $0.down.insert(h.index) }
        return detail
    }

    // MARK: Commands

    /// Sends one message to each worker and waits for every reply. Locks the workers (in index
    /// order) for the duration. When a worker dies, `abortOnDeath` is aborted so that its peers
    /// stop waiting, the worker is replaced, and ``EngineError/workerDied(worker:pid:detail:)``
    /// is thrown for the first dead worker.
    ///
    /// With a `timeout` (seconds), a worker that has not replied by then is looked at: while every
    /// silent worker is still working (runnable, or it used CPU since the last look), the wait is
    /// extended by another `timeout` — a slow step on a loaded host is not a hang — up to
    /// ``stretchLimit(timeout:)``. A silent worker that is not working (stopped, blocked) is
    /// treated as hung: the group's barrier is aborted so that its peers reply, and after a short
    /// grace the workers still silent are killed and replaced like dead ones.
    func run(
        _ group: [Handle], messages: [WorkerMessage], abortOnDeath: SharedBarrier?, timeout: Double? = nil,
        replaceDead: Bool = true
    ) throws -> [WorkerReply] {
        let ordered = group.sorted { $0.index < $1.index }
        for h in ordered { h.lock.lock() }
        defer { for h in ordered.reversed() { h.lock.unlock() } }
        return try exchange(
            group, messages: messages, abortOnDeath: abortOnDeath, timeout: timeout, replaceDead: replaceDead)
    }

    /// How long the peers of a hung worker get to answer the aborted barrier before the workers
    /// still silent are killed.
    static let hungGraceSeconds = 0.5

    /// The longest a command may run while its workers keep working: ten times the timeout, and
    /// at least 30 s more than it (a worker spinning without end is caught by this bound).
    static func stretchLimit(timeout: Double) -> Double { Swift.max(10 * timeout, timeout + 30) }

    /// The shortest time over which a worker's CPU use is judged (its CPU time counts in 10 ms
    /// ticks).
    static let minimumLook = 0.5

    /// A process's scheduler state (`R`, `S`, `D`, `T`, …; of its main thread) and its CPU time
    /// in clock ticks (all threads), from `/proc/PID/stat`; nil when the process is gone.
    static func processActivity(_ pid: pid_t) -> (state: Character, ticks: UInt64)? {
        guard pid > 0 else { return nil }
        let fd = open("/proc/\(pid)/stat", O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 1024)
        let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
        guard n > 0 else { return nil }
        let text = String(decoding: bytes[..<n], as: UTF8.self)
        guard let close = text.lastIndex(of: ")") else { return nil }
        // After the command name: state (field 3), …, utime (14), stime (15).
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let state = fields[0].first, let user = UInt64(fields[11]),
            let system = UInt64(fields[12])
        else { return nil }
        return (state, user + system)
    }

    /// ``run(_:messages:abortOnDeath:timeout:replaceDead:)`` with the locks held. With
    /// `replaceDead` false, a dead or hung worker is reaped but not replaced (used for the hello
    /// of a starting worker, whose caller decides whether to try again).
    func exchange(
        _ group: [Handle], messages: [WorkerMessage], abortOnDeath: SharedBarrier?, timeout: Double? = nil,
        replaceDead: Bool = true
    ) throws -> [WorkerReply] {
        var replies = [WorkerReply?](repeating: nil, count: group.count)
        var dead: [(Int, pid_t)] = []
        var hung: [Int: String] = [:]
        // Workers still silent when the timeout passed (the hung one, and peers waiting for it).
        var suspects: [Int] = []
        let started = DispatchTime.now().uptimeNanoseconds
        func elapsed() -> Double { Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9 }
        // When the silent workers are looked at next, when they were last judged, and their CPU
        // time then.
        var deadline = timeout ?? 0
        var lastLook = 0.0
        var ticks: [Int: UInt64] = [:]
        if timeout != nil {
            for (i, h) in group.enumerated() { ticks[i] = Self.processActivity(h.pid)?.ticks }
        }
        enum Look { case hung, working, tooEarly }
        /// Hung when a silent worker is stopped or gone, or none of them used CPU since the last
        /// look (its peers may be waiting for the one at work in the barrier); too early to tell
        /// less than ``minimumLook`` after the last look.
        func look(_ silent: Set<Int>) -> Look {
            var now: [Int: UInt64] = [:]
            for i in silent {
                guard let a = Self.processActivity(group[i].pid), !"TtZX".contains(a.state) else { return .hung }
                now[i] = a.ticks
            }
            guard elapsed() - lastLook >= Self.minimumLook else { return .tooEarly }
            let working = silent.contains { now[$0]! > (ticks[$0] ?? .max) }
            lastLook = elapsed()
            ticks.merge(now) { $1 }
            return working ? .working : .hung
        }
        func died(_ i: Int) {
            if !dead.contains(where: { $0.0 == i }) { dead.append((i, group[i].pid)) }
            abortOnDeath?.abort()
        }
        for (i, h) in group.enumerated() {
            guard h.pid > 0, h.toWorker >= 0 else {
                died(i)
                continue
            }
            do {
                var data = try JSONEncoder().encode(messages[i])
                data.append(0x0A)
                try writeAll(fd: h.toWorker, data)
            } catch {
                died(i)
            }
        }
        var pending = Set(group.indices).subtracting(dead.map(\.0))
        while !pending.isEmpty {
            for i in pending {
                if let line = group[i].reader.bufferedLine() {
                    replies[i] = try? JSONDecoder().decode(WorkerReply.self, from: Data(line))
                    if replies[i] == nil { replies[i] = WorkerReply(ok: false, error: "unreadable reply") }
                    pending.remove(i)
                }
            }
            if pending.isEmpty { break }
            var wait: Int32 = 1000
            if let timeout {
                var late = elapsed() - deadline
                let limit = Self.stretchLimit(timeout: timeout)
                if late >= 0 && suspects.isEmpty && elapsed() < limit {
                    switch look(pending) {
                    case .hung: break
                    case .tooEarly: deadline = Swift.min(lastLook + Self.minimumLook, limit)
                    case .working:
                        // Slow, not hung: look again after another timeout.
                        deadline = Swift.min(elapsed() + Swift.max(timeout, Self.minimumLook), limit)
                    }
                    late = elapsed() - deadline
                }
                if late >= 0 && suspects.isEmpty {
                    suspects = pending.sorted()
                    // Let the peers of the silent worker leave the barrier and answer.
                    abortOnDeath?.abort()
                }
                if late >= (abortOnDeath == nil ? 0 : Self.hungGraceSeconds) {
                    for i in pending.sorted() {
                        let h = group[i]
                        hung[i] =
                            "it did not answer within \(String(format: "%.1f", elapsed())) s "
                            + "(step timeout \(String(format: "%.1f", timeout)) s) and was killed"
                        if h.pid > 0 { kill(h.pid, SIGKILL) }
                        died(i)
                        pending.remove(i)
                    }
                    break
                }
                let until = late < 0 ? -late : Self.hungGraceSeconds - late
                wait = Int32(max(1, min(1000, (until * 1000).rounded(.up))))
            }
            let order = Array(pending)
            var fds = order.map { pollfd(fd: group[$0].fromWorker, events: Int16(POLLIN), revents: 0) }
            let n = poll(&fds, nfds_t(fds.count), wait)
            if n < 0 && errno != EINTR { throw EngineError.io("poll failed (errno \(errno))") }
            for (j, i) in order.enumerated() where fds[j].revents != 0 {
                let open = (try? group[i].reader.fill()) ?? false
                if !open {
                    died(i)
                    pending.remove(i)
                }
            }
        }
        if dead.isEmpty, let timeout, let first = suspects.first {
            // Every worker answered once the barrier was aborted: the step overran the timeout
            // but nobody hung. The step was abandoned; report it like a failed device so that
            // the request continues from its last completed step.
            throw EngineError.workerDied(
                worker: group[first].index, pid: group[first].pid,
                detail: "the step took longer than \(String(format: "%.1f", timeout)) s and was abandoned")
        }
        if let (first, pid) = dead.first {
            var details: [Int: String] = [:]
            for (i, _) in dead {
                let ended = replaceDead ? replace(group[i]) : reap(group[i])
                details[i] = hung[i].map { "\($0) (\(ended))" } ?? ended
            }
            throw EngineError.workerDied(worker: group[first].index, pid: pid, detail: details[first] ?? "")
        }
        for (i, reply) in replies.enumerated() where reply?.ok != true {
            throw EngineError.workerFailed(worker: group[i].index, message: reply?.error ?? "no reply")
        }
        return replies.map { $0! }
    }

    // MARK: Request regions

    /// Reserves shared memory for a request of `imageTokens` tokens and fills its latent.
    func allocate(imageTokens: Int, latent: [Float]) throws -> RegionLayout {
        let probe = RegionLayout(offset: 0, imageTokens: imageTokens, config: config)
        let bytes = probe.byteCount
        let offset: Int = try heapLock.withLock {
            var candidate = arena.layout.heapOffset
            for (o, size) in regions.sorted(by: { $0.key < $1.key }) {
                if candidate + bytes <= o { break }
                candidate = Swift.max(candidate, o + size)
            }
            guard candidate + bytes <= arena.layout.size else {
                throw EngineError.pool("shared memory for requests is full (\(options.heapBytes) bytes)")
            }
            regions[candidate] = bytes
            return candidate
        }
        let region = RegionLayout(offset: offset, imageTokens: imageTokens, config: config)
        arena.barrier(region).reset()
        latent.withUnsafeBufferPointer {
            arena.latent(region, beforeStep: 0).update(from: $0.baseAddress!, count: $0.count)
        }
        return region
    }

    /// Single-thread sgemm rate of a worker on `n×n×n` products (median of `repetitions`), in
    /// FLOP/s.
    public func gemmRate(worker: Int, n: Int, repetitions: Int) throws -> Double {
        let h = try handles([worker])
        let reply = try run(
            h, messages: [WorkerMessage(op: .gemm, gemmSize: n, repetitions: repetitions)], abortOnDeath: nil)
        return reply[0].flops ?? 0
    }

    func free(_ region: RegionLayout) {
        heapLock.withLock { _ = regions.removeValue(forKey: region.offset) }
    }

    func handles(_ workers: [Int]) throws -> [Handle] {
        guard !workers.isEmpty, Set(workers).count == workers.count, workers.allSatisfy(handles.indices.contains)
        else {
            throw EngineError.invalidPlan(
                "group \(workers) must name distinct workers in 0..<\(handles.count)")
        }
        return workers.map { handles[$0] }
    }

    /// Runs a whole request on the pool: each step on the group `placement(stepIndex, degree)`
    /// chooses (by default workers `0..<degree`). Returns the final latent and the wall-clock
    /// seconds of each step as seen by the caller (dispatch to the group, the step, and every
    /// rank's reply).
    public func generate(
        _ request: GenerationRequest, plan: DegreePlan? = nil,
        placement: ((_ step: Int, _ degree: Int) -> [Int])? = nil,
        progress: ((_ stepsDone: Int) -> Void)? = nil
    ) throws -> (latent: [Float], stepSeconds: [Double]) {
        let plan = plan ?? .uniform(degree: 1, steps: request.steps)
        guard plan.totalSteps == request.steps else {
            throw EngineError.invalidPlan(
                "the plan covers \(plan.totalSteps) steps but the request has \(request.steps)")
        }
        guard plan.maxDegree <= handles.count else {
            throw EngineError.invalidPlan(
                "degree \(plan.maxDegree) needs more workers than the \(handles.count) started")
        }
        let job = try begin(request)
        defer { release(job) }
        let choose = placement ?? { _, k in Array(0..<k) }
        var seconds: [Double] = []
        for (i, k) in plan.perStep.enumerated() {
            seconds += try run(job, steps: 1, on: choose(i, k))
            progress?(i + 1)
        }
        return (try latent(job), seconds)
    }
}

/// A request in progress on a ``WorkerPool``: its latent (double-buffered), text encoding and
/// group barrier live in the pool's shared memory, so consecutive blocks of its steps may run on
/// any groups. Use from one thread at a time.
public final class PoolRequest: @unchecked Sendable {
    public let request: GenerationRequest
    public let columns: Int
    public let rows: Int
    let region: RegionLayout
    let times: [Float]
    /// Text tokens, known once the prompt is encoded (before the first step).
    var textTokens: Int?
    /// Steps completed; the latent before step `stepsDone` is intact even after a failed step.
    public internal(set) var stepsDone = 0
    var released = false

    init(request: GenerationRequest, columns: Int, rows: Int, region: RegionLayout, times: [Float]) {
        self.request = request
        self.columns = columns
        self.rows = rows
        self.region = region
        self.times = times
    }

    public var imageTokens: Int { columns * rows }
    public var isFinished: Bool { stepsDone == request.steps }
}

extension WorkerPool {
    /// Checks a request's size against the model's patch grid and the pool's token limit.
    public func validate(width: Int, height: Int) throws {
        let grid = try config.grid(width: width, height: height)
        guard grid.columns * grid.rows <= options.maxImageTokens else {
            throw EngineError.invalidSize(
                "size \(width)x\(height) has \(grid.columns * grid.rows) image tokens; "
                    + "this pool serves at most \(options.maxImageTokens)")
        }
    }

    /// Reserves a request's shared memory and writes its initial noise. No worker is used until
    /// the first ``run(_:steps:on:shouldStop:)``, which also encodes the prompt.
    public func begin(_ request: GenerationRequest) throws -> PoolRequest {
        guard request.steps > 0 else { throw EngineError.invalidPlan("a request needs at least one step") }
        try validate(width: request.width, height: request.height)
        let grid = try config.grid(width: request.width, height: request.height)
        let imageTokens = grid.columns * grid.rows
        let noise = Sampler.noise(seed: request.seed, count: imageTokens * config.patchDim)
        let region = try allocate(imageTokens: imageTokens, latent: noise)
        return PoolRequest(
            request: request, columns: grid.columns, rows: grid.rows, region: region,
            times: Sampler.schedule(steps: request.steps, imageTokens: imageTokens))
    }

    /// Runs the next `steps` steps of a request on the group `workers` (rank order as given;
    /// degree = `workers.count`). Checks `shouldStop` before each step and returns early when it
    /// says so. Returns each step's wall-clock seconds.
    ///
    /// When a worker dies, throws ``EngineError/workerDied(worker:pid:detail:)`` naming it; the
    /// request keeps the latent of its last completed step (``PoolRequest/stepsDone``) and may
    /// continue on other workers (or the same ones: the dead worker has been replaced).
    ///
    /// With a `stepTimeout` (seconds), a worker that has not finished its part of a step (or the
    /// prompt encoding) within it is treated as hung: it is killed and replaced, and the call
    /// throws ``EngineError/workerDied(worker:pid:detail:)`` as for a worker that died.
    @discardableResult
    public func run(
        _ job: PoolRequest, steps: Int, on workers: [Int], stepTimeout: Double? = nil,
        shouldStop: () -> Bool = { false }
    ) throws -> [Double] {
        guard !job.released else { throw EngineError.pool("the request was released") }
        guard steps >= 0, job.stepsDone + steps <= job.request.steps else {
            throw EngineError.invalidPlan(
                "cannot run \(steps) steps from step \(job.stepsDone) of a \(job.request.steps)-step request")
        }
        let group = try handles(workers)
        let barrier = arena.barrier(job.region)
        // A barrier aborted by an earlier failure is idle now (every member replied): reuse it.
        if barrier.isAborted { barrier.reset() }
        if job.textTokens == nil {
            let encoded = try run(
                [group[0]], messages: [WorkerMessage(op: .encode, region: job.region, prompt: job.request.prompt)],
                abortOnDeath: barrier, timeout: stepTimeout)
            job.textTokens = encoded[0].textTokens ?? 0
        }
        let geometry = SequenceGeometry(textTokens: job.textTokens ?? 0, columns: job.columns, rows: job.rows)
        var seconds: [Double] = []
        for _ in 0..<steps {
            if shouldStop() { break }
            let i = job.stepsDone
            let messages = group.indices.map { rank in
                WorkerMessage(
                    op: .step, region: job.region, geometry: geometry, group: workers, step: i, rank: rank,
                    t: job.times[i], tNext: job.times[i + 1])
            }
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try run(group, messages: messages, abortOnDeath: barrier, timeout: stepTimeout)
            seconds.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            job.stepsDone = i + 1
        }
        return seconds
    }

    /// The request's current latent (`imageTokens × patchDim`, after ``PoolRequest/stepsDone``
    /// steps).
    public func latent(_ job: PoolRequest) throws -> [Float] {
        guard !job.released else { throw EngineError.pool("the request was released") }
        return Array(
            UnsafeBufferPointer(
                start: arena.latent(job.region, beforeStep: job.stepsDone), count: job.region.latentFloats))
    }

    /// The request's current image as PNG bytes.
    public func png(_ job: PoolRequest) throws -> Data {
        let pixels = Patches.unpatchify(
            try latent(job), config: config, width: job.request.width, height: job.request.height)
        return try PNG.encode(rgb: Patches.toBytes(pixels), width: job.request.width, height: job.request.height)
    }

    /// Frees the request's shared memory (idempotent).
    public func release(_ job: PoolRequest) {
        guard !job.released else { return }
        job.released = true
        free(job.region)
    }
}

/// Calls `body` with a NULL-terminated C array of the strings.
func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for p in pointers { free(p) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}
