/// Step times learnt from the blocks a server runs, on top of its profile.
///
/// A profile is measured once; the devices it describes drift (another tenant on the host,
/// thermal limits, a profile taken on a quieter day). A schedule that packs requests to just meet
/// their deadlines misses them all when every step runs 30% slower than planned. The calibration
/// keeps, for every resolution class and degree, a factor `observed / profiled` step time:
///
/// - each completed block gives one sample, its wall time per step over the profile's step time;
///   samples are clamped to `[1/4, 4]` (a block stalled by a failing worker must not teach the
///   scheduler that a class is ten times slower);
/// - the factor moves toward the sample by `1 − (1 − rate)^steps` (a block of many steps weighs
///   more than a block of one);
/// - the scheduler plans with the factor's mean plus `margin` standard deviations of its samples
///   (both moving averages), and never with less than `floor` (1 by default: the profile is the
///   fastest it plans with). A deadline punishes a step planned too short and forgives one
///   planned too long, so the estimate leans to the slow side of the noise;
/// - a class and degree never observed takes the mean of its class's planning factors, else of
///   all of them, else the floor (or 1) — so an unexplored degree is judged like its neighbours,
///   not by a profile the others have already shown to be off.
///
/// It is a value with no clock: the server feeds it blocks and asks for the model to plan with;
/// the simulator never uses it (its devices run at the profile's times exactly).
public struct StepTimeCalibration: Sendable, Equatable {
    /// The profile's model.
    public let base: CostModel
    /// How far one step's sample moves its factor.
    public let rate: Double
    /// Standard deviations of the samples added to a cell's mean factor.
    public let margin: Double
    /// The least factor planned with; nil: none.
    public let floor: Double?
    /// Moving mean and variance of the factor's samples, for observed cells; nil for the others.
    public private(set) var observed: [[(mean: Double, variance: Double)?]]
    /// Samples taken per cell.
    public private(set) var samples: [[Int]]

    public static let sampleRange: ClosedRange<Double> = 0.25...4

    public init(base: CostModel, rate: Double = 0.1, margin: Double = 1, floor: Double? = 1) {
        precondition(rate > 0 && rate <= 1, "rate must be in (0, 1]")
        precondition(margin >= 0 && margin.isFinite, "margin must be >= 0")
        precondition(floor.map { $0 > 0 && $0.isFinite } ?? true, "floor must be positive")
        self.base = base
        self.rate = rate
        self.margin = margin
        self.floor = floor
        self.observed = base.stepTime.map { $0.map { _ in nil } }
        self.samples = base.stepTime.map { $0.map { _ in 0 } }
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.base == b.base && a.rate == b.rate && a.margin == b.margin && a.floor == b.floor && a.samples == b.samples
            && a.observed.elementsEqual(b.observed) { x, y in
                x.elementsEqual(y) { $0?.mean == $1?.mean && $0?.variance == $1?.variance }
            }
    }

    /// Records a block of `steps` steps of class `r` at `degree` that took `seconds` of wall time
    /// for its steps (without dispatch and hand-off). Ignores blocks of no steps, degrees the
    /// profile lacks and non-finite or non-positive times.
    public mutating func observe(resolution r: Int, degree: Int, steps: Int, seconds: Double) {
        guard steps > 0, seconds.isFinite, seconds > 0, base.stepTime.indices.contains(r),
            let d = base.degreeIndex(degree)
        else { return }
        let profiled = Double(base.stepTime[r][d]) / 1e6
        let sample = min(
            max(seconds / Double(steps) / profiled, Self.sampleRange.lowerBound), Self.sampleRange.upperBound)
        var keep = 1.0
        for _ in 0..<min(steps, 1000) { keep *= 1 - rate }
        let weight = 1 - keep
        // A first sample starts from what the cell was planned with, with no spread.
        let old = observed[r][d] ?? (factor(resolution: r, degreeIndex: d), 0)
        let diff = sample - old.mean
        observed[r][d] = (old.mean + weight * diff, (1 - weight) * (old.variance + weight * diff * diff))
        samples[r][d] += 1
    }

    /// The moving mean of the factor's samples of an observed cell.
    public func meanFactor(resolution r: Int, degreeIndex d: Int) -> Double? { observed[r][d]?.mean }

    /// The factor the model applies to class `r` at degree index `d`.
    public func factor(resolution r: Int, degreeIndex d: Int) -> Double {
        if let o = observed[r][d] {
            let f = o.mean + margin * o.variance.squareRoot()
            return floor.map { Swift.max($0, f) } ?? f
        }
        let row = observed[r].indices.filter { observed[r][$0] != nil }.map { factor(resolution: r, degreeIndex: $0) }
        if !row.isEmpty { return Self.mean(row) }
        let all = observed.indices.flatMap { r in
            observed[r].indices.filter { observed[r][$0] != nil }.map { factor(resolution: r, degreeIndex: $0) }
        }
        return all.isEmpty ? Swift.max(1, floor ?? 1) : Self.mean(all)
    }

    /// All factors, `[r][d]`.
    public var factors: [[Double]] {
        base.stepTime.indices.map { r in base.stepTime[r].indices.map { factor(resolution: r, degreeIndex: $0) } }
    }

    /// The profile's model with every step time (and crossing-island time) scaled by its factor.
    public var model: CostModel { base.scaled(by: factors) }

    /// The largest relative difference between the factors of two calibrations of one base, e.g.
    /// the current one and the one the scheduler plans with: `max |a/b − 1|` over the cells.
    public func drift(from other: StepTimeCalibration) -> Double {
        zip(factors.joined(), other.factors.joined()).map { abs($0 / $1 - 1) }.max() ?? 0
    }

    static func mean(_ values: [Double]) -> Double {
        values.reduce(0, +) / Double(values.count)
    }
}

extension CostModel {
    /// This model with `stepTime[r][d]` (and the topology's crossing time of the same cell)
    /// multiplied by `factors[r][d]`, at least 1 µs. Factors must be positive and finite and
    /// match the model's shape.
    public func scaled(by factors: [[Double]]) -> CostModel {
        precondition(
            factors.count == stepTime.count && zip(factors, stepTime).allSatisfy { $0.count == $1.count },
            "factors must match the model's classes and degrees")
        precondition(factors.joined().allSatisfy { $0.isFinite && $0 > 0 }, "factors must be positive")
        func scale(_ t: Micros, _ f: Double) -> Micros { max(1, Micros((Double(t) * f).rounded())) }
        var copy = self
        copy.stepTime = zip(stepTime, factors).map { row, f in zip(row, f).map(scale) }
        if let topology, !topology.crossStepTime.isEmpty {
            copy.topology = topology.scaled(by: factors, scale: scale)
        }
        return copy
    }
}

extension NodeTopology {
    fileprivate func scaled(by factors: [[Double]], scale: (Micros, Double) -> Micros) -> NodeTopology {
        var copy = self
        copy.crossStepTime = zip(crossStepTime, factors).map { row, f in
            zip(row, f).map { t, f in t.map { scale($0, f) } }
        }
        return copy
    }
}
