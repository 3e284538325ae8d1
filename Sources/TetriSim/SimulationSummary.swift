import Foundation
import TetriCore

/// The metrics of a simulation, in the shape of the result JSON.
public struct SimulationSummary: Sendable, Codable, Equatable {
    public struct ClassStats: Sendable, Codable, Equatable {
        public var requests: Int
        public var met: Int
        public var sloAttainment: Double
        /// Step-weighted mean SP degree of the class's requests.
        public var meanDegree: Double

        enum CodingKeys: String, CodingKey {
            case requests, met
            case sloAttainment = "slo_attainment"
            case meanDegree = "mean_degree"
        }
    }

    public struct Latency: Sendable, Codable, Equatable {
        public var mean: Double
        public var p50: Double
        public var p90: Double
        public var p99: Double
    }

    /// One window of the degree timeline.
    public struct TimelinePoint: Sendable, Codable, Equatable {
        /// Window start in seconds.
        public var tS: Double
        /// Block-time-weighted mean degree of the blocks running in the window (0 when idle).
        public var averageDegree: Double
        /// Mean number of busy GPUs in the window.
        public var busyGPUs: Double

        enum CodingKeys: String, CodingKey {
            case tS = "t_s"
            case averageDegree = "average_degree"
            case busyGPUs = "busy_gpus"
        }
    }

    public struct Completion: Sendable, Codable, Equatable {
        public var id: Int
        public var arrivalS: Double
        public var finishS: Double
        public var deadlineS: Double
        public var met: Bool

        enum CodingKeys: String, CodingKey {
            case id, met
            case arrivalS = "arrival_s"
            case finishS = "finish_s"
            case deadlineS = "deadline_s"
        }
    }

    public var policy: String
    public var profile: String
    public var gpus: Int
    public var requests: Int
    public var met: Int
    public var sloAttainment: Double
    public var perResolution: [String: ClassStats]
    /// Seconds from arrival to finish, over every request (late ones run to completion).
    public var latencyS: Latency
    public var gpuSeconds: Double
    /// Block-time-weighted mean degree of the running blocks.
    public var averageDegree: Double
    /// Average degree and busy GPUs over time, in windows of ``Simulator/timelineWindow``.
    public var degreeTimeline: [TimelinePoint]
    /// Scheduler invocations.
    public var decisions: Int
    public var completions: [Completion]

    enum CodingKeys: String, CodingKey {
        case policy, profile, gpus, requests, met, decisions, completions
        case sloAttainment = "slo_attainment"
        case perResolution = "per_resolution"
        case latencyS = "latency_s"
        case gpuSeconds = "gpu_seconds"
        case averageDegree = "average_degree"
        case degreeTimeline = "degree_timeline"
    }

    public init(_ o: SimulationOutcome) {
        policy = o.policy
        profile = o.profile
        gpus = o.gpus
        requests = o.completions.count
        met = o.completions.count { $0.met }
        sloAttainment = requests == 0 ? 0 : Double(met) / Double(requests)
        var groups: [Resolution: [CompletionRecord]] = [:]
        for c in o.completions { groups[c.resolution, default: []].append(c) }
        perResolution = [:]
        for (res, cs) in groups {
            let m = cs.count { $0.met }
            perResolution[res.description] = ClassStats(
                requests: cs.count, met: m, sloAttainment: Double(m) / Double(cs.count),
                meanDegree: cs.map(\.meanDegree).reduce(0, +) / Double(cs.count))
        }
        let lat = o.completions.map { $0.latency.seconds }.sorted()
        latencyS = Latency(
            mean: lat.isEmpty ? 0 : lat.reduce(0, +) / Double(lat.count), p50: Self.percentile(lat, 50),
            p90: Self.percentile(lat, 90), p99: Self.percentile(lat, 99))
        gpuSeconds = o.gpuTime.seconds
        averageDegree = o.blockTime == 0 ? 0 : Double(o.gpuTime) / Double(o.blockTime)
        decisions = o.decisions
        let window = Double(Simulator.timelineWindow)
        degreeTimeline = o.windowGPUTime.indices.map { w in
            TimelinePoint(
                tS: Double(w) * window / 1e6,
                averageDegree: o.windowBlockTime[w] == 0
                    ? 0 : Double(o.windowGPUTime[w]) / Double(o.windowBlockTime[w]),
                busyGPUs: Double(o.windowGPUTime[w]) / window)
        }
        completions = o.completions.map {
            Completion(
                id: $0.id, arrivalS: $0.arrival.seconds, finishS: $0.finish.seconds, deadlineS: $0.deadline.seconds,
                met: $0.met)
        }
    }

    /// Nearest-rank percentile of sorted values.
    public static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))
        return sorted[min(max(rank, 1), sorted.count) - 1]
    }

    /// Pretty, key-sorted JSON.
    public func json() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try e.encode(self)
    }

    /// A few lines for a terminal.
    public var text: String {
        var s = "policy \(policy) on \(profile) (\(gpus) GPUs): \(requests) requests, \(met) met, "
        s += "SLO attainment \(Self.fmt(sloAttainment, 3))\n"
        for key in perResolution.keys.sorted(by: { Resolution(parsing: $0)! < Resolution(parsing: $1)! }) {
            let c = perResolution[key]!
            s += "  \(key): \(c.met)/\(c.requests) met (\(Self.fmt(c.sloAttainment, 3))), mean degree "
            s += "\(Self.fmt(c.meanDegree, 2))\n"
        }
        s += "latency s: mean \(Self.fmt(latencyS.mean, 3)) p50 \(Self.fmt(latencyS.p50, 3)) "
        s += "p90 \(Self.fmt(latencyS.p90, 3)) p99 \(Self.fmt(latencyS.p99, 3))\n"
        s += "GPU-seconds \(Self.fmt(gpuSeconds, 1)), average degree \(Self.fmt(averageDegree, 2)), "
        s += "\(decisions) scheduler decisions"
        return s
    }

    static func fmt(_ v: Double, _ digits: Int) -> String {
        String(format: "%.\(digits)f", v)
    }
}

extension BlockRecord {
    /// One block-log line: `{"request", "gpus", "degree", "steps", "start_s", "end_s"}`.
    public var jsonLine: String {
        "{\"request\":\(request),\"gpus\":[\(gpus.map(String.init).joined(separator: ","))],\"degree\":\(degree),"
            + "\"steps\":\(steps),\"start_s\":\(Trace.format(start)),\"end_s\":\(Trace.format(end))}"
    }
}
