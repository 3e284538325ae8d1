import CShm
import Foundation

/// Runs requests inside the calling process: degree 1 on the calling thread, or degree k with
/// one thread per rank sharing in-process slots (the same Ulysses code the worker processes
/// run). The reference that worker-pool results are compared with.
public struct LocalEngine: Sendable {
    public let model: DiTModel

    public init(model: DiTModel) { self.model = model }

    /// The final latent (`imageTokens × patchDim`) of a request following `plan` (degree 1 for
    /// every step when nil).
    public func generateLatent(_ request: GenerationRequest, plan: DegreePlan? = nil) throws -> [Float] {
        let plan = plan ?? .uniform(degree: 1, steps: request.steps)
        guard plan.totalSteps == request.steps else {
            throw EngineError.invalidPlan(
                "the plan covers \(plan.totalSteps) steps but the request has \(request.steps)")
        }
        let grid = try model.config.grid(width: request.width, height: request.height)
        let (text, pooled) = model.encodeText(request.prompt)
        let geometry = SequenceGeometry(
            textTokens: text.count / model.config.textHidden, columns: grid.columns, rows: grid.rows)
        let times = Sampler.schedule(steps: request.steps, imageTokens: geometry.imageTokens)
        var latent = Sampler.noise(seed: request.seed, count: geometry.imageTokens * model.config.patchDim)
        let maxK = plan.maxDegree
        let aFloats = SPContext.slotAFloats(tokens: geometry.tokens, hidden: model.config.hidden)
        let bFloats = SPContext.slotBFloats(tokens: geometry.tokens, hidden: model.config.hidden)
        let slotsA = (0..<maxK).map { _ in Buffer(aFloats) }
        let slotsB = (0..<maxK).map { _ in Buffer(bFloats) }
        let slots = Unchecked((slotsA.map(\.p), slotsB.map(\.p)))
        let barrierMemory = UnsafeMutableRawPointer.allocate(byteCount: SharedBarrier.byteCount, alignment: 64)
        defer { barrierMemory.deallocate() }
        let barrier = SharedBarrier(barrierMemory)
        barrier.reset()
        try text.withUnsafeBufferPointer { textBuffer in
            try pooled.withUnsafeBufferPointer { pooledBuffer in
                try latent.withUnsafeMutableBufferPointer { latentBuffer in
                    for (i, k) in plan.perStep.enumerated() {
                        let shared = Unchecked(
                            (textBuffer.baseAddress!, pooledBuffer.baseAddress!, latentBuffer.baseAddress!))
                        let step: @Sendable (Int) throws -> Void = { rank in
                            let ctx = SPContext(
                                rank: rank, size: k, slotA: Array(slots.value.0.prefix(k)),
                                slotB: Array(slots.value.1.prefix(k)),
                                barrier: { try barrier.wait(parties: k) })
                            try model.step(
                                context: ctx, geometry: geometry, text: shared.value.0, pooled: shared.value.1,
                                latent: shared.value.2, output: shared.value.2, t: times[i], tNext: times[i + 1])
                        }
                        try runRanks(k, step)
                    }
                }
            }
        }
        withExtendedLifetime((slotsA, slotsB)) {}
        return latent
    }

    /// The request's image as RGB bytes.
    public func generateImage(_ request: GenerationRequest, plan: DegreePlan? = nil) throws -> [UInt8] {
        let latent = try generateLatent(request, plan: plan)
        return Patches.toBytes(
            Patches.unpatchify(latent, config: model.config, width: request.width, height: request.height))
    }
}

/// Carries values across a thread boundary whose synchronisation the caller guarantees.
struct Unchecked<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// Runs `body(rank)` for ranks `0..<k`, rank 0 on the calling thread and the others on their own
/// threads, and rethrows the first error.
func runRanks(_ k: Int, _ body: @escaping @Sendable (Int) throws -> Void) throws {
    if k == 1 {
        try body(0)
        return
    }
    let errors = ErrorBox()
    let group = DispatchGroup()
    for rank in 1..<k {
        group.enter()
        let thread = Thread {
            do { try body(rank) } catch { errors.record(error) }
            group.leave()
        }
        thread.stackSize = 8 << 20
        thread.start()
    }
    do { try body(0) } catch { errors.record(error) }
    group.wait()
    if let error = errors.first { throw error }
}

final class ErrorBox: @unchecked Sendable {
    private let lock = NSLock()
    private var errors: [any Error] = []

    func record(_ error: any Error) { lock.withLock { errors.append(error) } }
    var first: (any Error)? { lock.withLock { errors.first } }
}
