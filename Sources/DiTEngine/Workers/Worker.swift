import CShm
import Foundation

/// The process side of a worker: maps the pool's arena, builds the model, and answers the pool's
/// commands (one JSON line in, one JSON line out) until stdin closes.
public enum Worker {
    public struct Options: Sendable {
        public var index: Int
        public var arenaDescriptor: Int32
        public var layout: ArenaLayout
        public var model: String
        public var seed: UInt64
        public var weights: String?
        public var cpu: Int?

        public init(
            index: Int, arenaDescriptor: Int32, layout: ArenaLayout, model: String, seed: UInt64, weights: String?,
            cpu: Int?
        ) {
            self.index = index
            self.arenaDescriptor = arenaDescriptor
            self.layout = layout
            self.model = model
            self.seed = seed
            self.weights = weights
            self.cpu = cpu
        }
    }

    /// Runs the worker loop; returns when the pool closes stdin or sends `exit`.
    public static func run(_ options: Options) throws {
        if let cpu = options.cpu {
            let rc = tsv_pin_to_cpu(Int32(cpu))
            if rc != 0 { log(options.index, "cannot pin to CPU \(cpu) (errno \(rc)); running unpinned") }
        }
        BLAS.setThreads(1)
        let parent = getppid()
        let arena = try Arena(fd: options.arenaDescriptor, layout: options.layout)
        let model = try loadModel(name: options.model, seed: options.seed, weights: options.weights)
        log(
            options.index,
            "pid \(getpid()) cpu \(options.cpu.map(String.init) ?? "any") OpenBLAS core \(BLAS.coreName) "
                + "threads \(BLAS.threads) model \(model.config.name)")
        let reader = LineReader(fd: 0)
        while let line = try reader.readLine() {
            let message: WorkerMessage
            do {
                message = try JSONDecoder().decode(WorkerMessage.self, from: Data(line))
            } catch {
                try send(WorkerReply(ok: false, error: "unreadable command: \(error)"))
                continue
            }
            let start = DispatchTime.now().uptimeNanoseconds
            var reply = WorkerReply(ok: true)
            do {
                switch message.op {
                case .hello:
                    reply.core = BLAS.coreName
                    reply.pid = getpid()
                    reply.cpu = options.cpu
                case .exit:
                    try send(reply)
                    return
                case .gemm:
                    reply.flops = measureGEMM(n: message.gemmSize ?? 1024, repetitions: message.repetitions ?? 5)
                case .encode:
                    guard let region = message.region, let prompt = message.prompt else {
                        throw EngineError.pool("encode needs region and prompt")
                    }
                    let (text, pooled) = model.encodeText(prompt)
                    text.withUnsafeBufferPointer { arena.text(region).update(from: $0.baseAddress!, count: $0.count) }
                    pooled.withUnsafeBufferPointer {
                        arena.pooled(region).update(from: $0.baseAddress!, count: $0.count)
                    }
                    reply.textTokens = text.count / model.config.textHidden
                case .step:
                    guard let region = message.region, let geometry = message.geometry, let group = message.group,
                        let rank = message.rank, let t = message.t, let tNext = message.tNext, let step = message.step,
                        group.indices.contains(rank), group[rank] == options.index
                    else {
                        throw EngineError.pool("step needs region, geometry, group, rank (this worker), step, t, tNext")
                    }
                    guard options.layout.fits(tokens: geometry.tokens, hidden: model.config.hidden) else {
                        throw EngineError.pool("\(geometry.tokens) tokens exceed the arena's slots")
                    }
                    let barrier = arena.barrier(region, parent: parent)
                    let context = SPContext(
                        rank: rank, size: group.count, slotA: group.map { arena.slotA($0) },
                        slotB: group.map { arena.slotB($0) }, barrier: { try barrier.wait(parties: group.count) })
                    try model.step(
                        context: context, geometry: geometry, text: arena.text(region), pooled: arena.pooled(region),
                        latent: arena.latent(region, beforeStep: step),
                        output: arena.latent(region, beforeStep: step + 1), t: t, tNext: tNext)
                }
            } catch {
                reply = WorkerReply(ok: false, error: "\(error)")
            }
            reply.seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            try send(reply)
        }
    }

    /// A model by name with seeded weights, or from a safetensors file (configured by its
    /// metadata; the named configuration only for a file without one).
    public static func loadModel(name: String, seed: UInt64, weights: String?) throws -> DiTModel {
        if let weights {
            return try DiTModel(weights: Weights.load(from: weights, fallback: ModelConfig.named[name]))
        }
        guard let config = ModelConfig.named[name] else {
            throw EngineError.invalidModel(
                "unknown model '\(name)'; choose one of \(ModelConfig.named.keys.sorted().joined(separator: ", "))")
        }
        return try DiTModel(config: config, seed: seed)
    }

    /// Median FLOP/s of `repetitions` `n×n×n` sgemm calls on this thread (after one warm-up).
    public static func measureGEMM(n: Int, repetitions: Int) -> Double {
        let a = Buffer(n * n)
        let b = Buffer(n * n)
        let c = Buffer(n * n)
        for i in 0..<(n * n) {
            a.p[i] = Float(i % 7) * 0.1
            b.p[i] = Float(i % 5) * 0.1
        }
        var times: [Double] = []
        for r in 0...Swift.max(1, repetitions) {
            let start = DispatchTime.now().uptimeNanoseconds
            BLAS.sgemm(m: n, n: n, k: n, a: a.p, lda: n, b: b.p, ldb: n, c: c.p, ldc: n)
            let t = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if r > 0 { times.append(t) }
        }
        return 2 * Double(n) * Double(n) * Double(n) / median(times)
    }

    static func send(_ reply: WorkerReply) throws {
        var data = try JSONEncoder().encode(reply)
        data.append(0x0A)
        try writeAll(fd: 1, data)
    }

    static func log(_ index: Int, _ text: String) {
        FileHandle.standardError.write(Data("[worker \(index)] \(text)\n".utf8))
    }
}

/// Writes all of `data` to `fd`, retrying short writes.
func writeAll(fd: Int32, _ data: Data) throws {
    try data.withUnsafeBytes { raw in
        var done = 0
        while done < raw.count {
            let n = write(fd, raw.baseAddress! + done, raw.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw EngineError.io("write failed (errno \(errno))")
            }
            done += n
        }
    }
}

/// Reads newline-terminated lines from a descriptor.
final class LineReader {
    let fd: Int32
    var buffer: [UInt8] = []
    var closed = false

    init(fd: Int32) { self.fd = fd }

    /// A complete line already buffered, if any.
    func bufferedLine() -> [UInt8]? {
        guard let nl = buffer.firstIndex(of: 0x0A) else { return nil }
        let line = Array(buffer[..<nl])
        buffer.removeSubrange(...nl)
        return line
    }

    /// Reads once from the descriptor into the buffer; returns false at end of file.
    func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw EngineError.io("read failed (errno \(errno))") }
            if n == 0 {
                closed = true
                return false
            }
            buffer.append(contentsOf: chunk[..<n])
            return true
        }
    }

    /// The next line, or nil at end of file.
    func readLine() throws -> [UInt8]? {
        while true {
            if let line = bufferedLine() { return line }
            if closed { return nil }
            if try !fill() { return nil }
        }
    }
}
