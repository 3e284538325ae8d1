import TetriCore

/// Where a job is in its life.
public enum JobStatus: String, Sendable, Codable {
    case queued, running, succeeded, failed, cancelled

    public var isTerminal: Bool { self == .succeeded || self == .failed || self == .cancelled }
}

/// Consecutive steps a job ran at one degree on one set of devices.
public struct DegreeSegment: Sendable, Equatable, Codable {
    public var degree: Int
    public var steps: Int
    public var devices: [Int]
    /// Virtual seconds since server start when the segment began.
    public var startS: Double

    enum CodingKeys: String, CodingKey {
        case degree, steps, devices
        case startS = "start_s"
    }
}

/// A point-in-time copy of a job's state.
public struct JobSnapshot: Sendable, Equatable {
    public var id: String
    public var requestID: String?
    public var job: GenerationJob
    public var status: JobStatus
    public var stepsDone: Int
    public var currentDegree: Int?
    /// Virtual microseconds since server start.
    public var arrival: Micros
    public var deadline: Micros
    public var finish: Micros?
    public var history: [DegreeSegment]
    public var error: String?
    /// Ahead-of-time estimate of the finish, virtual microseconds (queued/running jobs).
    public var estimate: Micros?

    public var sloMet: Bool? { finish.map { $0 <= deadline } }
    public var inferenceSeconds: Double? { finish.map { Double($0 - arrival) / 1e6 } }
}

/// Why a job was not accepted.
public enum AdmissionError: Error, Equatable, CustomStringConvertible {
    case queueFull(limit: Int, retryAfterSeconds: Int)
    case shuttingDown
    case conflictingRequestID(String)
    /// Even alone on the whole node the job would finish `earliest` microseconds after its
    /// deadline allows.
    case infeasible(fastestSeconds: Double, sloSeconds: Double)

    public var description: String {
        switch self {
        case .queueFull(let limit, _): "the server has \(limit) requests waiting or running; retry later"
        case .shuttingDown: "the server is shutting down and accepts no new requests"
        case .conflictingRequestID(let id): "request_id '\(id)' was already used for a different request"
        case .infeasible(let fastest, let slo):
            "the deadline cannot be met: the fastest this request can run is "
                + "\((fastest * 1000).rounded() / 1000) s, its deadline is \((slo * 1000).rounded() / 1000) s away"
        }
    }
}
