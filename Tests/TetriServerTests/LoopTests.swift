import Foundation
import Testing

@testable import TetriCore
@testable import TetriServer
@testable import TetriSim

@Suite struct RoundLoopTests {
    /// Replays a trace into a loop in (scaled) real time and returns each request's snapshot.
    func replay(_ trace: Trace, loop: RoundLoop) async throws -> [JobSnapshot] {
        let clock = loop.clock
        let keys = try await withThrowingTaskGroup(of: (Int, String).self) { group in
            for r in trace.requests {
                try await clock.sleep(until: r.arrival)
                let job = GenerationJob(
                    prompt: "request \(r.id)", width: r.resolution.width, height: r.resolution.height, steps: r.steps,
                    seed: UInt64(r.id))
                let s = try await loop.submit(job, deadline: clock.now() + r.slo)
                group.addTask { (r.id, s.id) }
            }
            var out: [(Int, String)] = []
            for try await k in group { out.append(k) }
            return out.sorted { $0.0 < $1.0 }.map(\.1)
        }
        var snaps: [JobSnapshot] = []
        for k in keys { snaps.append(try #require(await loop.wait(k))) }
        return snaps
    }

    @Test func simulatedDevicesReproduceTheSimulator() async throws {
        // The paper's workload: 100 requests at 12 req/min (about 500 s of virtual time), at 20× real time
        // (docs/serving.md has the 10× run over HTTP).
        let trace = try WorkloadSpec(mix: .uniform, ratePerMinute: 12, count: 100, sloScale: 1.0, seed: 3).generate()
        let model = try CostModel(profile: fluxProfile)
        var scheduler = try Policies.make("tetriserve", model: model, gpus: 8)
        let simulated = SimulationSummary(try Simulator.run(trace: trace, model: model, gpus: 8, scheduler: &scheduler))
        let loop = try makeLoop(timeScale: 20)
        let snaps = try await replay(trace, loop: loop)
        #expect(snaps.allSatisfy { $0.status == .succeeded })
        #expect(snaps.allSatisfy { $0.stepsDone == 50 && $0.history.map(\.steps).reduce(0, +) == 50 })
        let served = Double(snaps.count { $0.sloMet == true }) / Double(snaps.count)
        #expect(abs(served - simulated.sloAttainment) <= 0.05, "served \(served) simulated \(simulated.sloAttainment)")
    }

    @Test func devicesAreNeverDoubleBooked() async throws {
        let trace = try WorkloadSpec(mix: .skewed, ratePerMinute: 240, count: 40, sloScale: 1, steps: 20, seed: 8)
            .generate()
        let loop = try makeLoop(timeScale: 20)
        let snaps = try await replay(trace, loop: loop)
        #expect(snaps.allSatisfy { $0.status == .succeeded })
        // Every segment's devices are distinct ids on the node, of the segment's degree.
        for s in snaps {
            for seg in s.history {
                #expect(Set(seg.devices).count == seg.degree && seg.devices.allSatisfy { (0..<8).contains($0) })
            }
        }
        #expect(await loop.free == GPUSet(first: 8))
    }

    @Test func drainWaitsForAdmittedJobsAndRefusesNewOnes() async throws {
        let loop = try makeLoop(timeScale: 50)
        let job = GenerationJob(prompt: "p", width: 1024, height: 1024, steps: 20, seed: 1)
        let s = try await loop.submit(job, deadline: 100_000_000)
        await loop.drain()
        #expect(await loop.status(s.id)?.status == .succeeded)
        await #expect(throws: AdmissionError.shuttingDown) { try await loop.submit(job, deadline: 1) }
    }
}
