/// Virtual or real time in whole microseconds. Schedulers and the simulator count time in
/// integers so that every finish time is exact and reproducible across runs and machines.
public typealias Micros = Int64

extension Micros {
    /// Converts seconds to microseconds, rounding to the nearest microsecond.
    public static func fromSeconds(_ seconds: Double) -> Micros {
        Micros((seconds * 1_000_000).rounded())
    }

    /// Converts milliseconds to microseconds, rounding to the nearest microsecond.
    public static func fromMilliseconds(_ ms: Double) -> Micros {
        Micros((ms * 1000).rounded())
    }

    /// This value in seconds.
    public var seconds: Double { Double(self) / 1_000_000 }
}
