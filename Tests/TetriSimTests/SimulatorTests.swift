import Foundation
import Testing

@testable import TetriCore
@testable import TetriSim

/// The FLUX.1-dev / 8×H100 profile the package ships (`profiles/flux1-dev-h100x8.json`).
let fluxProfile: Profile = {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    let data = try! Data(contentsOf: root.appendingPathComponent("profiles/flux1-dev-h100x8.json"))
    return try! JSONDecoder().decode(Profile.self, from: data)
}()

func model(handoffMs: Double = 0) throws -> CostModel {
    try CostModel(profile: fluxProfile, handoff: .fromMilliseconds(handoffMs))
}

func square(_ n: Int) -> Resolution { Resolution(width: n, height: n) }

@Suite struct FixedDegreeBaselineTests {
    /// Four requests: 1024² ×50 at 0 s, 2048² ×10 at 0.5 s, 256² ×50 at 1.0 s, 512² ×20 at 1.2 s.
    let trace = try! Trace([
        TraceRequest(id: 0, arrival: 0, resolution: square(1024), steps: 50, slo: 3_000_000),
        TraceRequest(id: 1, arrival: 500_000, resolution: square(2048), steps: 10, slo: 5_000_000),
        TraceRequest(id: 2, arrival: 1_000_000, resolution: square(256), steps: 50, slo: 1_500_000),
        TraceRequest(id: 3, arrival: 1_200_000, resolution: square(512), steps: 20, slo: 2_000_000),
    ])

    func finishes(_ policy: String) throws -> [Micros] {
        let m = try model()
        var s = try Policies.make(policy, model: m, gpus: 8)
        return try Simulator.run(trace: trace, model: m, gpus: 8, scheduler: &s).completions.map(\.finish)
    }

    @Test func sp1FinishTimes() throws {
        // Eight single-GPU groups: nobody waits.
        #expect(try finishes("sp1") == [7_660_000, 500_000 + 8_238_000, 1_000_000 + 1_400_000, 1_200_000 + 996_000])
    }

    @Test func sp4FinishTimes() throws {
        // Groups [0-3], [4-7]. 0 → 2.985 on group 0; 1 → 0.5 + 2.508 on group 1; 2 waits for
        // group 0 (2.985 + 1.055); 3 waits for group 1 (3.008 + 0.560).
        #expect(try finishes("sp4") == [2_985_000, 3_008_000, 4_040_000, 3_568_000])
    }

    @Test func sp8FinishTimes() throws {
        // One group, FCFS: 1.915, then 1.915 + 1.369, + 0.905, + 0.434.
        #expect(try finishes("sp8") == [1_915_000, 3_284_000, 4_189_000, 4_623_000])
    }

    @Test func arrivalAtACompletionStartsAtOnce() throws {
        let m = try model()
        let t = try Trace([
            TraceRequest(id: 0, arrival: 0, resolution: square(256), steps: 50, slo: 1),
            TraceRequest(id: 1, arrival: 905_000, resolution: square(256), steps: 10, slo: 1),
        ])
        var s = try Policies.make("sp8", model: m, gpus: 8)
        let out = try Simulator.run(trace: t, model: m, gpus: 8, scheduler: &s, recordBlocks: true)
        #expect(out.completions.map(\.finish) == [905_000, 905_000 + 181_000])
        #expect(out.blocks.map(\.start) == [0, 905_000])
        #expect(out.blocks[1].gpus == Array(0..<8))
    }
}

@Suite struct SimulatorInvariantTests {
    /// Checks a run against its block log.
    func check(_ out: SimulationOutcome, trace: Trace, model m: CostModel, gpus: Int) {
        var byGPU: [Int: [BlockRecord]] = [:]
        var byRequest: [Int: [BlockRecord]] = [:]
        for b in out.blocks {
            #expect(b.degree == b.gpus.count && b.steps >= 1)
            #expect(Set(b.gpus).count == b.gpus.count && b.gpus.allSatisfy { $0 >= 0 && $0 < gpus })
            for g in b.gpus { byGPU[g, default: []].append(b) }
            byRequest[b.request, default: []].append(b)
        }
        for (_, blocks) in byGPU {
            let sorted = blocks.sorted { $0.start < $1.start }
            for (a, b) in zip(sorted, sorted.dropFirst()) { #expect(a.end <= b.start, "GPU runs two blocks at once") }
        }
        let finish = Dictionary(uniqueKeysWithValues: out.completions.map { ($0.id, $0.finish) })
        for r in trace.requests {
            let blocks = (byRequest[r.id] ?? []).sorted { $0.start < $1.start }
            #expect(blocks.map(\.steps).reduce(0, +) == r.steps, "request \(r.id) ran every step")
            #expect((blocks.first?.start ?? -1) >= r.arrival)
            #expect(blocks.last?.end == finish[r.id])
            var last: [Int]? = nil
            var prevEnd = r.arrival
            for b in blocks {
                #expect(b.start >= prevEnd, "request \(r.id) runs one block at a time")
                let moved = last != nil && last! != b.gpus
                let res = m.resolutionIndex(r.resolution)!
                #expect(
                    b.end - b.start
                        == Micros(b.steps) * m.stepTime(resolution: res, degree: b.degree) + (moved ? m.handoff : 0))
                last = b.gpus
                prevEnd = b.end
            }
        }
        // GPU-time adds up, overall and over the timeline's windows.
        #expect(out.gpuTime == out.blocks.reduce(Int64(0)) { $0 + Int64($1.degree) * ($1.end - $1.start) })
        #expect(out.windowGPUTime.reduce(0, +) == out.gpuTime)
        #expect(out.windowBlockTime.reduce(0, +) == out.blockTime)
        // No window holds more GPU-time than the node has.
        #expect(out.windowGPUTime.allSatisfy { $0 <= Int64(gpus) * Simulator.timelineWindow })
    }

    @Test(arguments: Policies.names)
    func invariantsHoldOnRandomTraces(policy: String) throws {
        for (k, mix) in [Mix.uniform, .skewed, .weights([1, 0, 0, 3])].enumerated() {
            for handoff in [0.0, 5.0] {
                let m = try model(handoffMs: handoff)
                let spec = WorkloadSpec(
                    mix: mix, ratePerMinute: [8, 14, 24][k], count: 60, sloScale: 1 + Double(k) / 4,
                    steps: [50, 20, 7][k], seed: UInt64(k + 11), burstiness: k == 2 ? 3 : 1)
                let trace = try spec.generate()
                for gpus in [8, 6] {
                    guard var s = try? Policies.make(policy, model: m, gpus: gpus) else { continue }
                    let out = try Simulator.run(trace: trace, model: m, gpus: gpus, scheduler: &s, recordBlocks: true)
                    #expect(out.completions.allSatisfy { $0.finish > 0 })
                    check(out, trace: trace, model: m, gpus: gpus)
                }
            }
        }
    }

    @Test func unknownResolutionIsAnError() throws {
        let m = try model()
        let t = try Trace([TraceRequest(id: 9, arrival: 0, resolution: square(640), steps: 5, slo: 1)])
        var s = try Policies.make("tetriserve", model: m, gpus: 8)
        #expect(throws: SimulationError.self) { try Simulator.run(trace: t, model: m, gpus: 8, scheduler: &s) }
        do {
            _ = try Simulator.run(trace: t, model: m, gpus: 8, scheduler: &s)
        } catch {
            #expect(
                error.description
                    == "trace request 9: resolution 640x640 is not in profile flux1-dev-h100x8 (it has 256x256, 512x512, "
                    + "1024x1024, 2048x2048)")
        }
    }

    @Test func summaryMatchesTheResultContract() throws {
        let m = try model()
        let trace = try WorkloadSpec(count: 40, seed: 3).generate()
        var s = try Policies.make("tetriserve", model: m, gpus: 8)
        let summary = SimulationSummary(try Simulator.run(trace: trace, model: m, gpus: 8, scheduler: &s))
        let obj = try #require(try JSONSerialization.jsonObject(with: summary.json()) as? [String: Any])
        for key in [
            "policy", "profile", "requests", "met", "slo_attainment", "per_resolution", "latency_s", "gpu_seconds",
            "completions",
        ] {
            #expect(obj[key] != nil, "missing \(key)")
        }
        #expect(obj["requests"] as? Int == 40)
        let timeline = try #require(obj["degree_timeline"] as? [[String: Double]])
        #expect(timeline.count == summary.degreeTimeline.count && !timeline.isEmpty)
        #expect(Set(timeline[0].keys) == ["t_s", "average_degree", "busy_gpus"])
        let lat = try #require(obj["latency_s"] as? [String: Double])
        #expect(Set(lat.keys) == ["mean", "p50", "p90", "p99"])
        let c = try #require((obj["completions"] as? [[String: Any]])?.first)
        #expect(Set(c.keys) == ["id", "arrival_s", "finish_s", "deadline_s", "met"])
        #expect(summary.met == summary.completions.count { $0.met })
        #expect(summary.perResolution.values.map(\.requests).reduce(0, +) == 40)
        #expect(SimulationSummary.percentile([1, 2, 3, 4], 50) == 2)
        #expect(SimulationSummary.percentile([1, 2, 3, 4], 99) == 4)
    }
}
