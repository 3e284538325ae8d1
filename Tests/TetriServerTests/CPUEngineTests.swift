import DiTEngine
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing

@testable import TetriCore
@testable import TetriServer

/// The tiny model on two real worker processes, scheduled with a cost model of its classes.
func makeCPULoop(heapBytes: Int = 256 << 20) throws -> RoundLoop {
    let pool = try WorkerPool(options: try WorkerPool.Options(workers: 2, model: "tiny", seed: 0, heapBytes: heapBytes))
    // Step times in the proportions the tiny model shows on these CPUs (any positive table
    // schedules correctly; images do not depend on it).
    let profile = Profile(
        name: "tiny-test", description: "", gpus: 2, degrees: [1, 2],
        resolutions: [
            "32x32": .init(latentTokens: 16, stepMs: ["1": 2, "2": 2]),
            "64x64": .init(latentTokens: 64, stepMs: ["1": 6, "2": 4]),
            "128x128": .init(latentTokens: 256, stepMs: ["1": 60, "2": 32]),
            "256x256": .init(latentTokens: 1024, stepMs: ["1": 800, "2": 400]),
        ])
    let backend = CPUBackend(pool: pool, costModel: try CostModel(profile: profile))
    var logger = Logger(label: "test")
    logger.logLevel = .critical
    return RoundLoop(
        backend: backend, scheduler: try Policies.make("tetriserve", model: backend.costModel, gpus: 2),
        clock: ServingClock(), metrics: ServerMetrics(), logger: logger)
}

/// `tetriserve generate` for the same request, as PNG bytes.
func generateReference(prompt: String, size: String, steps: Int, seed: Int) throws -> Data {
    let out = FileManager.default.temporaryDirectory.appendingPathComponent("ref-\(UUID().uuidString).png")
    defer { try? FileManager.default.removeItem(at: out) }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: try WorkerPool.locateExecutable())
    p.arguments = [
        "generate", "--prompt", prompt, "--size", size, "--steps", String(steps), "--seed", String(seed), "--model",
        "tiny", "--workers", "1", "--out", out.path,
    ]
    p.standardError = FileHandle.nullDevice
    p.standardOutput = FileHandle.nullDevice
    try p.run()
    p.waitUntilExit()
    #expect(p.terminationStatus == 0)
    return try Data(contentsOf: out)
}

/// Expects `got` to be a PNG of the reference's size whose pixels differ from it by at most one
/// level per channel: a plan that changes degree agrees with degree 1 to float rounding
/// (docs/engine.md), so a pixel on a rounding edge may move by one. The message gives the
/// largest difference.
func expectSameImage(_ got: Data?, as reference: Data, sourceLocation: SourceLocation = #_sourceLocation) {
    var difference: String
    if let got, let a = try? PNG.decode([UInt8](got)), let b = try? PNG.decode([UInt8](reference)) {
        if a.width == b.width && a.height == b.height {
            let largest = zip(a.rgb, b.rgb).map { abs(Int($0) - Int($1)) }.max() ?? 0
            difference = "\(largest)"
            if largest <= 1 { return }
        } else {
            difference = "n/a: \(a.width)x\(a.height) against \(b.width)x\(b.height)"
        }
    } else {
        difference = "n/a: not a PNG"
    }
    Issue.record("largest channel difference from the reference: \(difference)", sourceLocation: sourceLocation)
}

@Suite(.serialized) struct CPUEngineTests {
    @Test func imagesEqualGenerateSynchronouslyAndAsJobs() async throws {
        let loop = try makeCPULoop()
        let app = makeApp(loop)
        let reference = try generateReference(prompt: "a lighthouse", size: "64x64", steps: 6, seed: 5)
        try await app.test(.live) { client in
            let id = try await client.execute(
                uri: "/v1/images/jobs", method: .post, headers: jsonHeaders,
                body: body(["prompt": "a lighthouse", "size": "64x64", "num_inference_steps": 6, "seed": 5])
            ) { res in
                #expect(res.status == .accepted)
                return try #require(try json(res.body)["id"] as? String)
            }
            let final = await loop.wait(id)
            #expect(final?.status == .succeeded)
            try await client.execute(uri: "/v1/images/jobs/\(id)/content", method: .get) { res in
                #expect(res.status == .ok)
                expectSameImage(Data(buffer: res.body), as: reference)
            }
            try await client.execute(uri: "/metrics", method: .get) { res in
                let text = String(buffer: res.body)
                #expect(text.contains("tetriserve_requests_total{") && text.contains("resolution=\"64x64\""))
            }
            // Last on this connection: the synchronous endpoint closes it after answering.
            try await client.execute(
                uri: "/v1/images/generations", method: .post, headers: jsonHeaders,
                body: body([
                    "prompt": "a lighthouse", "size": "64x64", "num_inference_steps": 6, "seed": 5, "slo_ms": 60_000,
                ])
            ) { res in
                #expect(res.status == .ok)
                let data = try #require(try json(res.body)["data"] as? [[String: Any]])
                let b64 = try #require(data.first?["b64_json"] as? String)
                expectSameImage(Data(base64Encoded: b64), as: reference)
            }
        }
    }

    @Test func cancellingARunningCPUJobStopsAtAStepBoundary() async throws {
        let loop = try makeCPULoop()
        let job = GenerationJob(prompt: "slow", width: 128, height: 128, steps: 200, seed: 1)
        let s = try await loop.submit(job, deadline: 3_600_000_000)
        for _ in 0..<500 {
            if let st = await loop.status(s.id), st.status == .running, st.stepsDone >= 1 { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        guard case .found(let cancelling) = await loop.cancel(s.id) else {
            Issue.record("the job should be found")
            return
        }
        #expect(cancelling.status == .cancelling)
        let final = await loop.wait(s.id)
        #expect(final?.status == .cancelled)
        #expect((final?.stepsDone ?? 200) < 200)
        #expect(await loop.free == GPUSet(first: 2))
        await loop.backend.shutdown()
    }

    @Test func admissionRefusesWhatThePoolsSharedMemoryCannotHold() async throws {
        // A request heap that holds three 64² requests; 256² needs more than all of it.
        let probe = try makeCPULoop()
        let region = probe.backend.memoryCost(width: 64, height: 64)
        #expect(region > 0 && probe.backend.memoryCapacity == 256 << 20)
        #expect(probe.backend.memoryCost(width: 256, height: 256) > 3 * region)
        await probe.backend.shutdown()
        let loop = try makeCPULoop(heapBytes: 3 * region)
        var admitted: [JobSnapshot] = []
        for i in 0..<3 {
            let job = GenerationJob(prompt: "p\(i)", width: 64, height: 64, steps: 200, seed: UInt64(i))
            admitted.append(try await loop.submit(job, deadline: 3_600_000_000))
        }
        let more = GenerationJob(prompt: "more", width: 64, height: 64, steps: 5, seed: 9)
        do {
            _ = try await loop.submit(more, deadline: 3_600_000_000)
            Issue.record("a fourth 64² request should be refused")
        } catch {
            guard case .memoryFull(let capacity, let retry) = error else {
                Issue.record("refused for the wrong reason: \(error)")
                return
            }
            #expect(capacity == 3 * region && retry >= 1)
        }
        let huge = GenerationJob(prompt: "huge", width: 256, height: 256, steps: 5, seed: 9)
        let hugeBytes = loop.backend.memoryCost(width: 256, height: 256)
        await #expect(throws: AdmissionError.neverFits(bytes: hugeBytes, capacityBytes: 3 * region)) {
            try await loop.submit(huge, deadline: 3_600_000_000)
        }
        // None of the admitted ones failed; once one is cancelled its memory takes the next.
        #expect(await admitted.asyncAllSatisfy { await loop.status($0.id)?.status != .failed })
        _ = await loop.cancel(admitted[0].id)
        #expect(await loop.wait(admitted[0].id)?.status == .cancelled)
        let next = try await loop.submit(more, deadline: 3_600_000_000)
        for s in admitted.dropFirst() { _ = await loop.cancel(s.id) }
        #expect(await loop.wait(next.id)?.status == .succeeded)
        await loop.backend.shutdown()
    }

    @Test func aKilledWorkerIsReplacedAndTheRequestFinishesWithTheSameImage() async throws {
        let loop = try makeCPULoop()
        let backend = try #require(loop.backend as? CPUBackend)
        let reference = try generateReference(prompt: "a storm", size: "128x128", steps: 12, seed: 9)
        let job = GenerationJob(prompt: "a storm", width: 128, height: 128, steps: 12, seed: 9)
        let other = GenerationJob(prompt: "calm", width: 64, height: 64, steps: 8, seed: 2)
        let s = try await loop.submit(job, deadline: 3_600_000_000)
        let o = try await loop.submit(other, deadline: 3_600_000_000)
        var victim = 0
        for _ in 0..<1000 {
            if let st = await loop.status(s.id), st.status == .running, st.stepsDone >= 2,
                let devices = st.history.last?.devices
            {
                victim = devices[0]
                break
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        let before = backend.pool.pids
        // Kill a worker of the group running the request, mid-block.
        kill(before[victim], SIGKILL)
        let final = await loop.wait(s.id)
        #expect(final?.status == .succeeded)
        #expect(final?.stepsDone == 12)
        #expect(await loop.wait(o.id)?.status == .succeeded)
        expectSameImage(Data(await loop.image(s.id) ?? []), as: reference)
        #expect(backend.pool.pids[victim] != before[victim])
        #expect(loop.metrics.render().contains("tetriserve_device_failures_total 1"))
        await backend.shutdown()
    }
}

extension Sequence where Element: Sendable {
    func asyncAllSatisfy(_ predicate: (Element) async -> Bool) async -> Bool {
        for e in self {
            if await !predicate(e) { return false }
        }
        return true
    }
}
