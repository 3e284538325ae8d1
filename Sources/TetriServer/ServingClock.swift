import TetriCore

/// The server's clock: virtual microseconds since start, running `timeScale` times faster than
/// the wall clock. With the real engine the scale is 1; the simulated engine can rehearse a
/// long trace quickly (a step that the profile says takes 100 ms sleeps 10 ms at scale 10, and
/// every SLO, deadline and latency is in virtual time).
public struct ServingClock: Sendable {
    public let origin: ContinuousClock.Instant
    public let timeScale: Double

    /// The largest time scale: a day of wall-clock time stays far inside `Micros` (2^63 µs is
    /// 292,000 years, so a scale up to 10^6 keeps 292 years of virtual time).
    public static let maxTimeScale = 1_000_000.0

    public init(timeScale: Double = 1, origin: ContinuousClock.Instant = .now) {
        precondition(timeScale > 0 && timeScale <= Self.maxTimeScale)
        self.timeScale = timeScale
        self.origin = origin
    }

    /// Virtual microseconds since the origin.
    public func now() -> Micros {
        let d = origin.duration(to: .now)
        let real = Double(d.components.seconds) * 1e6 + Double(d.components.attoseconds) / 1e12
        return Micros(clamping: real * timeScale)
    }

    /// The wall-clock instant of virtual time `t`.
    public func instant(at t: Micros) -> ContinuousClock.Instant {
        origin + realDuration(t)
    }

    /// The wall-clock length of a virtual duration.
    public func realDuration(_ t: Micros) -> Duration {
        // Whole microseconds: Duration's Double initialiser traps far from where Int64 does.
        .microseconds(Int64(clamping: Double(t) / timeScale))
    }

    /// Sleeps until virtual time `t` (returns at once if it has passed).
    public func sleep(until t: Micros) async throws {
        try await Task.sleep(until: instant(at: t), clock: .continuous)
    }
}

extension Micros {
    /// The nearest `Micros` to a double, saturating at the ends of the range (NaN gives 0): for
    /// conversions whose inputs are bounded but should never trap.
    public init(clamping value: Double) {
        if value.isNaN {
            self = 0
        } else if value >= 9.2e18 {
            self = .max
        } else if value <= -9.2e18 {
            self = .min
        } else {
            self = Micros(value.rounded())
        }
    }
}
