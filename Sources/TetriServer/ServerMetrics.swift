import CoreMetrics
import Foundation
import Prometheus
import Synchronization

/// The server's metrics, recorded through swift-metrics into a Prometheus registry of its own
/// (so several servers, e.g. in tests, never share counters) and rendered for `GET /metrics`.
///
/// | name | type | labels |
/// |---|---|---|
/// | `tetriserve_requests_total` | counter | `outcome` (met, missed, failed, cancelled), `resolution` |
/// | `tetriserve_requests_rejected_total` | counter | |
/// | `tetriserve_slo_attainment` | gauge | share of finished requests that met their deadline |
/// | `tetriserve_e2e_request_latency_seconds` | histogram | `resolution` |
/// | `tetriserve_num_requests_waiting`, `tetriserve_num_requests_running` | gauge | |
/// | `tetriserve_busy_devices` | gauge | |
/// | `tetriserve_block_degree` | histogram | degree of every block started |
/// | `tetriserve_block_steps_total` | counter | `degree` |
/// | `tetriserve_scheduler_decision_seconds` | histogram | |
/// | `tetriserve_device_failures_total` | counter | |
public final class ServerMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    let factory: PrometheusMetricsFactory
    let tally = Mutex<(met: Int, done: Int)>((0, 0))
    let attainment: CoreMetrics.Gauge
    let waiting: CoreMetrics.Gauge
    let running: CoreMetrics.Gauge
    let busy: CoreMetrics.Gauge
    let decisionTimer: CoreMetrics.Timer
    let degree: CoreMetrics.Recorder
    let rejections: CoreMetrics.Counter
    let failures: CoreMetrics.Counter

    public init() {
        registry = PrometheusCollectorRegistry()
        var f = PrometheusMetricsFactory(registry: registry)
        f.defaultDurationHistogramBuckets = [0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 30, 60, 120].map {
            .milliseconds(Int64($0 * 1000))
        }
        f.durationHistogramBuckets["tetriserve_scheduler_decision_seconds"] = [
            1, 5, 10, 25, 50, 100, 250, 500, 1000, 10_000,
        ].map { .microseconds($0) }
        f.valueHistogramBuckets["tetriserve_block_degree"] = [1, 2, 4, 8, 16, 32, 64]
        factory = f
        attainment = Gauge(label: "tetriserve_slo_attainment", factory: f)
        waiting = Gauge(label: "tetriserve_num_requests_waiting", factory: f)
        running = Gauge(label: "tetriserve_num_requests_running", factory: f)
        busy = Gauge(label: "tetriserve_busy_devices", factory: f)
        decisionTimer = Timer(label: "tetriserve_scheduler_decision_seconds", factory: f)
        degree = Recorder(label: "tetriserve_block_degree", factory: f)
        rejections = Counter(label: "tetriserve_requests_rejected_total", factory: f)
        failures = Counter(label: "tetriserve_device_failures_total", factory: f)
    }

    func finished(_ job: JobSnapshot, resolution: String) {
        let outcome: String
        switch job.status {
        case .succeeded: outcome = job.sloMet == true ? "met" : "missed"
        case .failed: outcome = "failed"
        case .cancelled: outcome = "cancelled"
        case .queued, .running: return
        }
        Counter(
            label: "tetriserve_requests_total", dimensions: [("outcome", outcome), ("resolution", resolution)],
            factory: factory
        ).increment()
        if job.status == .succeeded, let seconds = job.inferenceSeconds {
            Timer(
                label: "tetriserve_e2e_request_latency_seconds", dimensions: [("resolution", resolution)],
                factory: factory
            )
            .recordNanoseconds(Int64(seconds * 1e9))
            let ratio = tally.withLock { t in
                t.done += 1
                if job.sloMet == true { t.met += 1 }
                return Double(t.met) / Double(t.done)
            }
            attainment.record(ratio)
        }
    }

    func rejected() { rejections.increment() }

    func deviceFailure() { failures.increment() }

    func load(waiting w: Int, running r: Int, busyDevices: Int) {
        waiting.record(w)
        running.record(r)
        busy.record(busyDevices)
    }

    func block(degree k: Int, steps: Int) {
        degree.record(k)
        Counter(label: "tetriserve_block_steps_total", dimensions: [("degree", String(k))], factory: factory)
            .increment(by: steps)
    }

    func decision(_ d: Duration) {
        decisionTimer.recordNanoseconds(d.components.seconds * 1_000_000_000 + d.components.attoseconds / 1_000_000_000)
    }

    /// The Prometheus text exposition.
    public func render() -> String {
        registry.emitToString()
    }
}
