import TetriCore

/// What a backend needs to know of a request.
public struct GenerationJob: Sendable, Equatable {
    public var prompt: String
    public var width: Int
    public var height: Int
    public var steps: Int
    public var seed: UInt64
    public var guidanceScale: Double?

    public init(prompt: String, width: Int, height: Int, steps: Int, seed: UInt64, guidanceScale: Double? = nil) {
        self.prompt = prompt
        self.width = width
        self.height = height
        self.steps = steps
        self.seed = seed
        self.guidanceScale = guidanceScale
    }

    public var resolution: Resolution { Resolution(width: width, height: height) }
}

/// A block that stopped before all its steps: `completed` steps are done and kept.
public struct BlockInterrupted: Error, CustomStringConvertible {
    public var completed: Int
    public var reason: String
    /// Set when a device failed (the request can continue elsewhere).
    public var failedDevice: Int?

    public init(completed: Int, reason: String, failedDevice: Int? = nil) {
        self.completed = completed
        self.reason = reason
        self.failedDevice = failedDevice
    }

    public var description: String { reason }
}

/// Where steps run: real workers, or simulated devices that take the profiled time.
///
/// The round loop calls `begin` once per request, then `run` for each block on the GPU set the
/// scheduler chose (a block may run on different devices from the last), and `finish` to encode
/// the image, off the devices' critical path. `run` stops at the next step boundary when its task
/// is cancelled and then throws ``BlockInterrupted`` with the steps it completed.
public protocol ExecutionBackend: Sendable {
    /// `cpu` or `simulated`.
    var kind: String { get }
    /// The model name clients may send (`model` field).
    var modelName: String { get }
    /// Devices.
    var devices: Int { get }
    /// The cost model the scheduler plans with.
    var costModel: CostModel { get }
    /// Checks that a size can be served; returns a message naming what is allowed otherwise.
    func validate(width: Int, height: Int) -> String?
    /// The cost-model class the scheduler plans a (validated) size with.
    func costClass(width: Int, height: Int) -> Int?
    /// Prepares per-request state (initial noise, prompt encoding). Returns a handle.
    func begin(_ job: GenerationJob) async throws -> Int
    /// Runs `steps` consecutive steps of the request, starting at step `from`, on `devices`.
    /// `start` is the virtual time the loop started the block at (simulated devices keep to it;
    /// real ones run as fast as they can).
    /// `progress` is told the steps of this block completed so far, after each step.
    func run(
        handle: Int, from: Int, steps: Int, devices: [Int], start: Micros, progress: @escaping @Sendable (Int) -> Void
    ) async throws
    /// Encodes the finished image as PNG bytes and releases the request.
    func finish(handle: Int) async throws -> [UInt8]
    /// Releases a request that will not finish.
    func release(handle: Int) async
    /// Stops the devices.
    func shutdown() async
    /// Bytes of request memory a job of this (validated) size holds from `begin` until `finish`
    /// or `release`; 0 when the backend does not limit it.
    func memoryCost(width: Int, height: Int) -> Int
    /// Bytes of request memory for all jobs together; nil when not limited.
    var memoryCapacity: Int? { get }
    /// Devices that cannot take work now (being replaced after a failure, or down).
    var unavailableDevices: Int { get }
}

extension ExecutionBackend {
    public func memoryCost(width: Int, height: Int) -> Int { 0 }
    public var memoryCapacity: Int? { nil }
    public var unavailableDevices: Int { 0 }
}

/// `begin` found no room for the request in the backend's request memory (it may fit later).
public struct RequestMemoryFull: Error, CustomStringConvertible {
    public var description: String

    public init(_ description: String) { self.description = description }
}
