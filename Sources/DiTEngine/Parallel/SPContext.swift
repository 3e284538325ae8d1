import CShm

/// How one rank of a sequence-parallel group reaches its peers during a step: each rank has two
/// exchange slots in memory every rank can read (A for its tokens' q/k/v, B for its heads'
/// attention output), and a barrier across the group.
public struct SPContext {
    public let rank: Int
    public let size: Int
    /// Slot A of each rank: at least `tokens × 3 · hidden` floats.
    let slotA: [UnsafeMutablePointer<Float>]
    /// Slot B of each rank: at least `tokens × hidden` floats.
    let slotB: [UnsafeMutablePointer<Float>]
    let barrier: () throws -> Void

    public init(
        rank: Int, size: Int, slotA: [UnsafeMutablePointer<Float>], slotB: [UnsafeMutablePointer<Float>],
        barrier: @escaping () throws -> Void
    ) {
        precondition(slotA.count == size && slotB.count == size && rank >= 0 && rank < size)
        self.rank = rank
        self.size = size
        self.slotA = slotA
        self.slotB = slotB
        self.barrier = barrier
    }

    /// Floats slot A needs for `tokens` joint tokens of a model of width `hidden`.
    public static func slotAFloats(tokens: Int, hidden: Int) -> Int { tokens * 3 * hidden }

    /// Floats slot B needs.
    public static func slotBFloats(tokens: Int, hidden: Int) -> Int { tokens * hidden }
}

/// Thrown when a group's barrier was aborted because a peer died.
public struct GroupAborted: Error, CustomStringConvertible {
    public var description: String { "the group was aborted (a peer worker died)" }
}

/// A barrier in memory shared by the ranks (threads or processes) of one group.
public struct SharedBarrier: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<tsv_barrier>
    let parent: pid_t

    public init(_ raw: UnsafeMutableRawPointer, parent: pid_t = 0) {
        pointer = raw.assumingMemoryBound(to: tsv_barrier.self)
        self.parent = parent
    }

    public static var byteCount: Int { MemoryLayout<tsv_barrier>.stride }

    public func reset() { tsv_barrier_reset(pointer) }
    public func abort() { tsv_barrier_abort(pointer) }
    public var isAborted: Bool { tsv_barrier_is_aborted(pointer) != 0 }

    /// Waits for `parties` ranks; throws ``GroupAborted`` when aborted.
    public func wait(parties: Int) throws {
        if parties <= 1 {
            if isAborted { throw GroupAborted() }
            return
        }
        if tsv_barrier_wait(pointer, UInt32(parties), parent) != 0 { throw GroupAborted() }
    }
}
