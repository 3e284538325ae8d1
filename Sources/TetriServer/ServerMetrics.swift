import Foundation
import Prometheus
import Synchronization
import TetriCore

/// The server's metrics, in a Prometheus registry of its own (so several servers, e.g. in tests,
/// never share counters), each with a `# HELP` line, rendered for `GET /metrics`.
///
/// | name | type | labels |
/// |---|---|---|
/// | `tetriserve_requests_total` | counter | `outcome` (met, missed, failed, dropped, cancelled), `resolution` |
/// | `tetriserve_requests_rejected_total` | counter | |
/// | `tetriserve_slo_attainment` | gauge | share of succeeded requests that met their deadline |
/// | `tetriserve_e2e_request_latency_seconds` | histogram | `resolution` |
/// | `tetriserve_num_requests_waiting`, `tetriserve_num_requests_running` | gauge | |
/// | `tetriserve_busy_devices` | gauge | |
/// | `tetriserve_request_memory_bytes`, `tetriserve_result_memory_bytes` | gauge | |
/// | `tetriserve_block_degree` | histogram | degree of every block started |
/// | `tetriserve_block_steps_total` | counter | `degree` |
/// | `tetriserve_scheduler_decision_seconds` | histogram | |
/// | `tetriserve_device_failures_total` | counter | |
/// | `tetriserve_step_time_seconds` | gauge | `resolution`, `degree`: the step time the scheduler plans with (the profile's, re-estimated from the blocks run when calibration is on) |
///
/// `resolution` is the cost-model class a request was scheduled as (one of the profile's
/// resolutions), never the raw requested size, so the label's values are bounded.
public final class ServerMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    let tally = Mutex<(met: Int, done: Int)>((0, 0))
    let attainment: Gauge
    let waiting: Gauge
    let running: Gauge
    let busy: Gauge
    let requestMemory: Gauge
    let resultMemory: Gauge
    let decisionTimer: DurationHistogram
    let degree: ValueHistogram
    let rejections: Counter
    let failures: Counter

    static let latencyBuckets: [Duration] = [0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 30, 60, 120].map {
        .milliseconds(Int64($0 * 1000))
    }

    static func name(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    static var requests: MetricNameDescriptor {
        name(
            "tetriserve_requests_total",
            "Finished requests by outcome (met, missed, failed, dropped, cancelled) and resolution class.")
    }
    static var latency: MetricNameDescriptor {
        name(
            "tetriserve_e2e_request_latency_seconds",
            "Arrival to finish of succeeded requests, virtual seconds, by resolution class.")
    }
    static var stepTime: MetricNameDescriptor {
        name(
            "tetriserve_step_time_seconds",
            "Step time the scheduler plans with, virtual seconds, by resolution class and degree.")
    }
    static var blockSteps: MetricNameDescriptor {
        name("tetriserve_block_steps_total", "Denoising steps started, by the degree they ran at.")
    }

    public init() {
        let r = PrometheusCollectorRegistry()
        registry = r
        attainment = r.makeGauge(
            descriptor: Self.name(
                "tetriserve_slo_attainment", "Share of succeeded requests that finished by their deadline."),
            labels: [])
        waiting = r.makeGauge(
            descriptor: Self.name("tetriserve_num_requests_waiting", "Admitted requests not running a block."),
            labels: [])
        running = r.makeGauge(
            descriptor: Self.name("tetriserve_num_requests_running", "Requests running a block."), labels: [])
        busy = r.makeGauge(descriptor: Self.name("tetriserve_busy_devices", "Devices running a block."), labels: [])
        requestMemory = r.makeGauge(
            descriptor: Self.name(
                "tetriserve_request_memory_bytes", "Request memory (latents) held by unfinished requests."),
            labels: [])
        resultMemory = r.makeGauge(
            descriptor: Self.name(
                "tetriserve_result_memory_bytes", "Bytes of finished results kept for status and content requests."),
            labels: [])
        decisionTimer = r.makeDurationHistogram(
            descriptor: Self.name(
                "tetriserve_scheduler_decision_seconds", "Wall-clock time of one scheduler decision."),
            labels: [],
            buckets: [1, 5, 10, 25, 50, 100, 250, 500, 1000, 10_000].map { .microseconds($0) })
        degree = r.makeValueHistogram(
            descriptor: Self.name("tetriserve_block_degree", "Sequence-parallel degree of every block started."),
            labels: [], buckets: [1, 2, 4, 8, 16, 32, 64])
        rejections = r.makeCounter(
            descriptor: Self.name(
                "tetriserve_requests_rejected_total",
                "Requests refused at admission (queue or request memory full, infeasible, could not start)."),
            labels: [])
        failures = r.makeCounter(
            descriptor: Self.name(
                "tetriserve_device_failures_total", "Devices that failed during a block (the request continued)."),
            labels: [])
    }

    func finished(_ job: JobSnapshot) {
        let outcome: String
        switch job.status {
        case .succeeded: outcome = job.sloMet == true ? "met" : "missed"
        case .failed: outcome = job.errorCode == "deadline_exceeded" ? "dropped" : "failed"
        case .cancelled: outcome = "cancelled"
        case .queued, .running, .cancelling: return
        }
        let resolution = job.resolutionClass
        registry.makeCounter(descriptor: Self.requests, labels: [("outcome", outcome), ("resolution", resolution)])
            .increment()
        if job.status == .succeeded, let seconds = job.inferenceSeconds {
            registry.makeDurationHistogram(
                descriptor: Self.latency, labels: [("resolution", resolution)], buckets: Self.latencyBuckets
            )
            .recordNanoseconds(Int64(seconds * 1e9))
            let ratio = tally.withLock { t in
                t.done += 1
                if job.sloMet == true { t.met += 1 }
                return Double(t.met) / Double(t.done)
            }
            attainment.set(ratio)
        }
    }

    func rejected() { rejections.increment() }

    func deviceFailure() { failures.increment() }

    func load(waiting w: Int, running r: Int, busyDevices: Int) {
        waiting.set(Int64(w))
        running.set(Int64(r))
        busy.set(Int64(busyDevices))
    }

    func memory(held: Int, results: Int) {
        requestMemory.set(Int64(held))
        resultMemory.set(Int64(results))
    }

    func block(degree k: Int, steps: Int) {
        degree.record(Double(k))
        registry.makeCounter(descriptor: Self.blockSteps, labels: [("degree", String(k))]).increment(by: Int64(steps))
    }

    func stepTimes(_ model: CostModel) {
        for (r, name) in model.resolutionNames.enumerated() {
            for (d, k) in model.degrees.enumerated() {
                registry.makeGauge(descriptor: Self.stepTime, labels: [("resolution", name), ("degree", String(k))])
                    .set(Double(model.stepTime[r][d]) / 1e6)
            }
        }
    }

    func decision(_ d: Duration) {
        decisionTimer.record(d)
    }

    /// The Prometheus text exposition.
    public func render() -> String {
        registry.emitToString()
    }
}
