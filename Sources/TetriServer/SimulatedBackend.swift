import DiTEngine
import Foundation
import Synchronization
import TetriCore

/// Virtual devices that sleep `T(resolution, degree)` per step (scaled by the clock), for
/// rehearsing a node's scheduling without its hardware. The image they return is a
/// deterministic placeholder (a gradient from the request's seed), not a model output.
public final class SimulatedBackend: ExecutionBackend {
    public let costModel: CostModel
    public let devices: Int
    public let clock: ServingClock
    public var kind: String { "simulated" }
    public var modelName: String { "simulated-\(costModel.name)" }
    private let jobs = Mutex<(next: Int, table: [Int: GenerationJob])>((0, [:]))

    public init(model: CostModel, devices: Int, clock: ServingClock) {
        self.costModel = model
        self.devices = devices
        self.clock = clock
    }

    public func validate(width: Int, height: Int) -> String? {
        costModel.resolutionIndex(Resolution(width: width, height: height)) == nil
            ? "size must be one of the profile's classes: \(costModel.resolutionNames.joined(separator: ", "))" : nil
    }

    public func costClass(width: Int, height: Int) -> Int? {
        costModel.resolutionIndex(Resolution(width: width, height: height))
    }

    public func begin(_ job: GenerationJob) async throws -> Int {
        jobs.withLock { state in
            state.next += 1
            state.table[state.next] = job
            return state.next
        }
    }

    /// Sleeps until `start + dispatch + i × T(resolution, degree)` for each step `i` (the cost
    /// model's per-block dispatch overhead, then the steps), so that blocks keep the virtual
    /// timeline exactly, whatever the scheduling latency of the host.
    public func run(
        handle: Int, from: Int, steps: Int, devices: [Int], start: Micros, progress: @escaping @Sendable (Int) -> Void
    ) async throws {
        guard let job = jobs.withLock({ $0.table[handle] }), let r = costModel.resolutionIndex(job.resolution) else {
            throw BlockInterrupted(completed: 0, reason: "unknown request handle \(handle)")
        }
        // A group that crosses islands runs at the profile's crossing time.
        let step =
            costModel.stepTime(resolution: r, on: GPUSet(devices))
            ?? costModel.stepTime(resolution: r, degree: devices.count)
        for i in 0..<steps {
            do {
                try await clock.sleep(until: start + costModel.dispatchOverhead + step * Micros(i + 1))
            } catch {
                throw BlockInterrupted(completed: i, reason: "cancelled")
            }
            if i + 1 < steps { progress(i + 1) }
        }
    }

    public func finish(handle: Int) async throws -> [UInt8] {
        guard let job = jobs.withLock({ $0.table.removeValue(forKey: handle) }) else {
            throw BlockInterrupted(completed: 0, reason: "unknown request handle \(handle)")
        }
        return try Self.placeholder(job)
    }

    public func release(handle: Int) async {
        _ = jobs.withLock { $0.table.removeValue(forKey: handle) }
    }

    public func shutdown() async {}

    /// A 64×64 RGB gradient tinted by the seed.
    static func placeholder(_ job: GenerationJob) throws -> [UInt8] {
        let side = 64
        var pixels = [UInt8](repeating: 0, count: side * side * 3)
        let tint = UInt8(truncatingIfNeeded: job.seed &* 2_654_435_761 >> 24)
        for y in 0..<side {
            for x in 0..<side {
                let i = (y * side + x) * 3
                pixels[i] = UInt8(x * 4)
                pixels[i + 1] = UInt8(y * 4)
                pixels[i + 2] = tint
            }
        }
        return [UInt8](try PNG.encode(rgb: pixels, width: side, height: side))
    }
}
