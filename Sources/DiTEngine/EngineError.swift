/// Errors of the engine, each naming what was wrong.
public enum EngineError: Error, Equatable, CustomStringConvertible {
    case invalidModel(String)
    case invalidSize(String)
    case invalidPlan(String)
    case weights(String)
    case io(String)
    /// A worker process exited or was killed while it had work; the pool replaced it.
    case workerDied(worker: Int, pid: Int32, detail: String)
    /// A worker answered a command with an error.
    case workerFailed(worker: Int, message: String)
    case pool(String)

    public var description: String {
        switch self {
        case .invalidModel(let m): "invalid model configuration: \(m)"
        case .invalidSize(let m): m
        case .invalidPlan(let m): "invalid degree plan: \(m)"
        case .weights(let m): "weights: \(m)"
        case .io(let m): m
        case .workerDied(let w, let pid, let detail): "worker \(w) (pid \(pid)) died during the step: \(detail)"
        case .workerFailed(let w, let m): "worker \(w) failed: \(m)"
        case .pool(let m): "worker pool: \(m)"
        }
    }
}
