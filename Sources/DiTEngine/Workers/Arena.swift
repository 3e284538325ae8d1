import CShm
import Foundation

/// Where things live in the shared-memory arena that the pool and its workers map: a header,
/// one exchange slot pair (A, B) per worker, then a heap of request regions.
public struct ArenaLayout: Codable, Sendable, Equatable {
    public var workers: Int
    public var slotAFloats: Int
    public var slotBFloats: Int
    public var heapOffset: Int
    public var size: Int

    static let page = 4096

    static func roundUp(_ n: Int, _ to: Int = page) -> Int { (n + to - 1) / to * to }

    /// A layout for `workers` workers of `config` serving at most `maxImageTokens` image tokens,
    /// with a `heapBytes` request heap.
    public init(workers: Int, config: ModelConfig, maxImageTokens: Int, heapBytes: Int) {
        let tokens = maxImageTokens + config.maxTextTokens
        self.workers = workers
        slotAFloats = SPContext.slotAFloats(tokens: tokens, hidden: config.hidden)
        slotBFloats = SPContext.slotBFloats(tokens: tokens, hidden: config.hidden)
        let slotBytes = Self.roundUp((slotAFloats + slotBFloats) * 4)
        heapOffset = Self.page + workers * slotBytes
        size = heapOffset + Self.roundUp(heapBytes)
    }

    var slotBytes: Int { Self.roundUp((slotAFloats + slotBFloats) * 4) }

    /// Whether a sequence of `tokens` joint tokens fits the slots.
    public func fits(tokens: Int, hidden: Int) -> Bool { tokens * hidden <= slotBFloats }

    func slotAOffset(_ worker: Int) -> Int { Self.page + worker * slotBytes }
    func slotBOffset(_ worker: Int) -> Int { slotAOffset(worker) + slotAFloats * 4 }
}

/// One request's region in the arena: its group barrier, two latent buffers (step `i` reads
/// buffer `i % 2` and writes buffer `(i + 1) % 2`, so a failed step leaves its input intact),
/// the text encoding and the pooled vector.
public struct RegionLayout: Sendable, Equatable, Codable {
    public var offset: Int
    public var imageTokens: Int
    public var patchDim: Int
    public var maxTextTokens: Int
    public var textHidden: Int

    public init(offset: Int, imageTokens: Int, config: ModelConfig) {
        self.offset = offset
        self.imageTokens = imageTokens
        patchDim = config.patchDim
        maxTextTokens = config.maxTextTokens
        textHidden = config.textHidden
    }

    static let headerBytes = 256
    var latentOffset: Int { offset + Self.headerBytes }
    var latentFloats: Int { imageTokens * patchDim }
    var textOffset: Int { latentOffset + 2 * latentFloats * 4 }
    var pooledOffset: Int { textOffset + maxTextTokens * textHidden * 4 }
    public var byteCount: Int { ArenaLayout.roundUp(pooledOffset + textHidden * 4 - offset, 256) }
}

/// A mapping of the arena (in the pool or a worker).
final class Arena: @unchecked Sendable {
    let layout: ArenaLayout
    let fd: Int32
    let base: UnsafeMutableRawPointer
    let ownsDescriptor: Bool

    /// Creates a new anonymous arena (the pool).
    init(layout: ArenaLayout) throws {
        let fd = tsv_memfd_create("tetriserve-arena", layout.size)
        guard fd >= 0 else {
            throw EngineError.pool("cannot create shared memory of \(layout.size) bytes (errno \(errno))")
        }
        guard let base = tsv_map_shared(fd, layout.size) else {
            close(fd)
            throw EngineError.pool("cannot map shared memory (errno \(errno))")
        }
        self.layout = layout
        self.fd = fd
        self.base = base
        ownsDescriptor = true
    }

    /// Maps an inherited arena descriptor (a worker).
    init(fd: Int32, layout: ArenaLayout) throws {
        guard let base = tsv_map_shared(fd, layout.size) else {
            throw EngineError.pool("cannot map the inherited shared memory descriptor \(fd) (errno \(errno))")
        }
        self.layout = layout
        self.fd = fd
        self.base = base
        ownsDescriptor = false
    }

    deinit {
        _ = tsv_unmap(base, layout.size)
        if ownsDescriptor { close(fd) }
    }

    func floats(at offset: Int) -> UnsafeMutablePointer<Float> {
        (base + offset).assumingMemoryBound(to: Float.self)
    }

    func slotA(_ worker: Int) -> UnsafeMutablePointer<Float> { floats(at: layout.slotAOffset(worker)) }
    func slotB(_ worker: Int) -> UnsafeMutablePointer<Float> { floats(at: layout.slotBOffset(worker)) }
    func barrier(_ region: RegionLayout, parent: pid_t = 0) -> SharedBarrier {
        SharedBarrier(base + region.offset, parent: parent)
    }
    /// The latent before step `step` (buffer `step % 2`).
    func latent(_ region: RegionLayout, beforeStep step: Int) -> UnsafeMutablePointer<Float> {
        floats(at: region.latentOffset + (step % 2) * region.latentFloats * 4)
    }
    func text(_ region: RegionLayout) -> UnsafeMutablePointer<Float> { floats(at: region.textOffset) }
    func pooled(_ region: RegionLayout) -> UnsafeMutablePointer<Float> { floats(at: region.pooledOffset) }
}
