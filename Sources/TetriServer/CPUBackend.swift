import DiTEngine
import Dispatch
import Foundation
import Synchronization
import TetriCore

/// Real devices: `tetriserve worker` processes running the DiT, one per device, through a
/// ``WorkerPool``. A request's latent lives in the pool's shared memory, so consecutive blocks
/// may run on any groups; a worker that dies mid-block is replaced by the pool and the request
/// continues from its last completed step.
public final class CPUBackend: ExecutionBackend {
    public let pool: WorkerPool
    public let costModel: CostModel
    public var devices: Int { pool.workerCount }
    public var kind: String { "cpu" }
    public var modelName: String {
        pool.options.weights.map { ModelLocator.modelID(weights: $0) } ?? "tetriserve-\(pool.config.name)"
    }
    private let jobs = Mutex<(next: Int, table: [Int: PoolRequest])>((0, [:]))
    /// Blocks run on threads of their own: a pool call blocks its caller for the whole block.
    private let queue = DispatchQueue(label: "tetriserve.cpu-backend", attributes: .concurrent)

    public init(pool: WorkerPool, costModel: CostModel) {
        self.pool = pool
        self.costModel = costModel
    }

    public func validate(width: Int, height: Int) -> String? {
        do {
            try pool.validate(width: width, height: height)
        } catch {
            return "\(error); the resolution classes are \(costModel.resolutionNames.joined(separator: ", "))"
        }
        return costClass(width: width, height: height) == nil
            ? "larger than the largest profiled class \(costModel.resolutionNames.last ?? "")" : nil
    }

    /// Sizes between classes are scheduled with the cost of the smallest class at least as large.
    public func costClass(width: Int, height: Int) -> Int? {
        if let exact = costModel.resolutionIndex(Resolution(width: width, height: height)) { return exact }
        guard let grid = try? pool.config.grid(width: width, height: height) else { return nil }
        return costModel.latentTokens.firstIndex { $0 >= grid.columns * grid.rows }
    }

    public func begin(_ job: GenerationJob) async throws -> Int {
        let request = GenerationRequest(
            prompt: job.prompt, width: job.width, height: job.height, steps: job.steps, seed: job.seed)
        let handle = try pool.begin(request)
        return jobs.withLock { state in
            state.next += 1
            state.table[state.next] = handle
            return state.next
        }
    }

    public func run(
        handle: Int, from: Int, steps: Int, devices: [Int], start: Micros, progress: @escaping @Sendable (Int) -> Void
    ) async throws {
        guard let job = jobs.withLock({ $0.table[handle] }) else {
            throw BlockInterrupted(completed: 0, reason: "unknown request handle \(handle)")
        }
        guard job.stepsDone == from else {
            throw BlockInterrupted(completed: 0, reason: "request is at step \(job.stepsDone), block starts at \(from)")
        }
        let stop = Atomic<Bool>(false)
        let pool = self.pool
        let outcome: Result<Void, any Error> = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                queue.async {
                    do {
                        // Asked before each step: report the steps done so far, then whether to stop.
                        try pool.run(job, steps: steps, on: devices) {
                            if job.stepsDone > from { progress(job.stepsDone - from) }
                            return stop.load(ordering: .relaxed)
                        }
                        continuation.resume(returning: .success(()))
                    } catch {
                        continuation.resume(returning: .failure(error))
                    }
                }
            }
        } onCancel: {
            stop.store(true, ordering: .relaxed)
        }
        let completed = job.stepsDone - from
        switch outcome {
        case .success:
            if completed < steps { throw BlockInterrupted(completed: completed, reason: "cancelled") }
        case .failure(let error):
            if case EngineError.workerDied(let worker, _, _) = error {
                throw BlockInterrupted(completed: completed, reason: "\(error)", failedDevice: worker)
            }
            throw BlockInterrupted(completed: completed, reason: "\(error)")
        }
    }

    public func finish(handle: Int) async throws -> [UInt8] {
        guard let job = jobs.withLock({ $0.table.removeValue(forKey: handle) }) else {
            throw BlockInterrupted(completed: 0, reason: "unknown request handle \(handle)")
        }
        defer { pool.release(job) }
        return [UInt8](try pool.png(job))
    }

    public func release(handle: Int) async {
        if let job = jobs.withLock({ $0.table.removeValue(forKey: handle) }) { pool.release(job) }
    }

    public func shutdown() async {
        pool.shutdown()
    }
}
