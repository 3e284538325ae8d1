/// A command from the pool to a worker: one JSON object on one line of the worker's stdin.
struct WorkerMessage: Codable, Sendable {
    enum Operation: String, Codable, Sendable {
        /// Report identity and OpenBLAS core.
        case hello
        /// Encode `prompt` into the region's text slots.
        case encode
        /// Run one step as `rank` of `group` on the region.
        case step
        /// Measure single-thread sgemm on `gemmSize`³ products.
        case gemm
        /// Exit cleanly.
        case exit
    }

    var op: Operation
    var region: RegionLayout?
    var prompt: String?
    var geometry: SequenceGeometry?
    var group: [Int]?
    /// Index of the step in the request (selects the latent buffers).
    var step: Int?
    var rank: Int?
    var t: Float?
    var tNext: Float?
    var gemmSize: Int?
    var repetitions: Int?
}

/// A worker's answer: one JSON object on one line of its stdout.
struct WorkerReply: Codable, Sendable {
    var ok: Bool
    var error: String?
    var core: String?
    var pid: Int32?
    var cpu: Int?
    var textTokens: Int?
    /// Seconds the command took inside the worker.
    var seconds: Double?
    /// FLOP/s of a `gemm` measurement.
    var flops: Double?
}
