import TetriCore

/// The server's clock: virtual microseconds since start, running `timeScale` times faster than
/// the wall clock. With the real engine the scale is 1; the simulated engine can rehearse a
/// long trace quickly (a step that the profile says takes 100 ms sleeps 10 ms at scale 10, and
/// every SLO, deadline and latency is in virtual time).
public struct ServingClock: Sendable {
    public let origin: ContinuousClock.Instant
    public let timeScale: Double

    public init(timeScale: Double = 1, origin: ContinuousClock.Instant = .now) {
        precondition(timeScale > 0)
        self.timeScale = timeScale
        self.origin = origin
    }

    /// Virtual microseconds since the origin.
    public func now() -> Micros {
        let d = origin.duration(to: .now)
        let real = Double(d.components.seconds) * 1e6 + Double(d.components.attoseconds) / 1e12
        return Micros(real * timeScale)
    }

    /// The wall-clock instant of virtual time `t`.
    public func instant(at t: Micros) -> ContinuousClock.Instant {
        origin + realDuration(t)
    }

    /// The wall-clock length of a virtual duration.
    public func realDuration(_ t: Micros) -> Duration {
        .microseconds(Double(t) / timeScale)
    }

    /// Sleeps until virtual time `t` (returns at once if it has passed).
    public func sleep(until t: Micros) async throws {
        try await Task.sleep(until: instant(at: t), clock: .continuous)
    }
}
