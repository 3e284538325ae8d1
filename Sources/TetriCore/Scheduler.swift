/// What a scheduler sees of one admitted, unfinished request.
public struct RequestView: Sendable, Equatable {
    public var id: Int
    /// Index of the request's resolution class in the ``CostModel``.
    public var resolution: Int
    public var arrival: Micros
    public var deadline: Micros
    public var totalSteps: Int
    public var remainingSteps: Int
    /// GPUs of the request's most recent block; empty before its first block.
    public var lastGPUs: GPUSet
    /// True while a block of this request is executing.
    public var isRunning: Bool

    public init(
        id: Int, resolution: Int, arrival: Micros, deadline: Micros, totalSteps: Int,
        remainingSteps: Int? = nil, lastGPUs: GPUSet = GPUSet(), isRunning: Bool = false
    ) {
        self.id = id
        self.resolution = resolution
        self.arrival = arrival
        self.deadline = deadline
        self.totalSteps = totalSteps
        self.remainingSteps = remainingSteps ?? totalSteps
        self.lastGPUs = lastGPUs
        self.isRunning = isRunning
    }

    /// A request that has never run.
    public var isFresh: Bool { lastGPUs.isEmpty && !isRunning && remainingSteps == totalSteps }
}

/// The state of the node at a decision point.
public struct ClusterView: Sendable {
    public var now: Micros
    /// GPUs on the node; ids are `0..<gpus`.
    public var gpus: Int
    /// GPUs not running a block.
    public var free: GPUSet
    /// Every admitted, unfinished request in arrival order (running ones included).
    public var requests: [RequestView]

    public init(now: Micros, gpus: Int, free: GPUSet, requests: [RequestView]) {
        self.now = now
        self.gpus = gpus
        self.free = free
        self.requests = requests
    }
}

/// Start `steps` consecutive denoising steps of request `request` on `gpus` (degree = count).
public struct BlockStart: Sendable, Equatable, CustomStringConvertible {
    public var request: Int
    public var gpus: GPUSet
    public var steps: Int

    public init(request: Int, gpus: GPUSet, steps: Int) {
        self.request = request
        self.gpus = gpus
        self.steps = steps
    }

    public var degree: Int { gpus.count }

    public var description: String { "request \(request) x\(steps) on \(gpus)" }
}

/// A scheduler's answer: blocks to start now, and when to be asked again even if nothing
/// happens (a round boundary), if ever.
public struct Decision: Sendable, Equatable {
    public var starts: [BlockStart]
    public var wakeAt: Micros?

    public init(starts: [BlockStart] = [], wakeAt: Micros? = nil) {
        self.starts = starts
        self.wakeAt = wakeAt
    }
}

/// A scheduling policy: pure and deterministic. The caller (simulator or server) asks it at
/// every arrival, block completion, cancellation and requested wake-up, with the current state,
/// and carries out the blocks it returns. The same inputs always give the same decision.
public protocol Scheduler: Sendable {
    /// The policy name used on the command line and in result files.
    var name: String { get }
    /// Decides what to start now. Every start uses free GPUs only, a degree the cost model
    /// profiles, and a request that is not running.
    mutating func decide(_ view: ClusterView) -> Decision
}
