import TetriCore

/// Where a job is in its life. `cancelling`: a cancelled job whose running block stops at its
/// next step boundary (it then becomes `cancelled`).
public enum JobStatus: String, Sendable, Codable {
    case queued, running, cancelling, succeeded, failed, cancelled

    public var isTerminal: Bool { self == .succeeded || self == .failed || self == .cancelled }
}

/// Consecutive steps a job ran at one degree on one set of devices.
public struct DegreeSegment: Sendable, Equatable, Codable {
    public var degree: Int
    public var steps: Int
    public var devices: [Int]
    /// Virtual seconds after the job's arrival when the segment began.
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
    /// Why it failed, for machines: `deadline_exceeded` (dropped by `--drop-late-after`) or
    /// `internal_error`.
    public var errorCode: String?
    /// Ahead-of-time estimate of the finish, virtual microseconds (queued/running jobs).
    public var estimate: Micros?
    /// The cost-model class it is scheduled (and labelled in metrics) as.
    public var resolutionClass: String

    /// Whether it met its deadline: only a succeeded job can; failed and cancelled jobs never
    /// do; nil while it is unfinished.
    public var sloMet: Bool? {
        switch status {
        case .succeeded: finish.map { $0 <= deadline }
        case .failed, .cancelled: false
        case .queued, .running, .cancelling: nil
        }
    }

    /// Arrival to finish, virtual seconds, for a succeeded job only.
    public var inferenceSeconds: Double? {
        guard status == .succeeded else { return nil }
        return finish.map { Double($0 - arrival) / 1e6 }
    }
}

/// Why a job was not accepted.
public enum AdmissionError: Error, Equatable, CustomStringConvertible {
    case queueFull(limit: Int, retryAfterSeconds: Int)
    /// The backend's request memory is taken by admitted jobs; it frees as they finish.
    case memoryFull(capacityBytes: Int, retryAfterSeconds: Int)
    /// The job needs more request memory than the backend has at all.
    case neverFits(bytes: Int, capacityBytes: Int)
    /// The `request_id` created a job whose result has since been evicted.
    case evicted(requestID: String, id: String, status: JobStatus)
    /// The backend could not begin the job (the server log has the reason).
    case startFailed
    case shuttingDown
    case conflictingRequestID(String)
    /// Even alone on the whole node the job would finish `earliest` microseconds after its
    /// deadline allows.
    case infeasible(fastestSeconds: Double, sloSeconds: Double)

    public var description: String {
        switch self {
        case .queueFull(let limit, _): "the server has \(limit) requests waiting or running; retry later"
        case .memoryFull(let capacity, _):
            "the server's request memory (\(capacity) bytes) is taken by admitted requests; retry later"
        case .neverFits(let bytes, let capacity):
            "this request needs \(bytes) bytes of request memory and the server has \(capacity) in all"
        case .evicted(let rid, let id, let status):
            "request_id '\(rid)' created job '\(id)', which \(status.rawValue) and whose result has since been "
                + "removed (--result-ttl, --result-memory); send a new request_id to run it again"
        case .startFailed: "the server could not start this request; retry later"
        case .shuttingDown: "the server is shutting down and accepts no new requests"
        case .conflictingRequestID(let id): "request_id '\(id)' was already used for a different request"
        case .infeasible(let fastest, let slo):
            "the deadline cannot be met: the fastest this request can run is "
                + "\((fastest * 1000).rounded() / 1000) s, its deadline is \((slo * 1000).rounded() / 1000) s away"
        }
    }
}
