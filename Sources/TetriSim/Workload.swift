import Foundation
import TetriCore

/// The share of each resolution class in a workload.
public enum Mix: Sendable, Equatable, CustomStringConvertible {
    /// Equal shares.
    case uniform
    /// `p ∝ exp(L / L_max)`, `L` the latent token count.
    case skewed
    /// Explicit weights, one per class in ascending order.
    case weights([Double])

    /// Parses `uniform`, `skewed` or comma-separated weights such as `1,1,2,4`.
    public init?(parsing text: String) {
        switch text {
        case "uniform": self = .uniform
        case "skewed": self = .skewed
        default:
            let parts = text.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard !parts.isEmpty, parts.allSatisfy({ $0 != nil && $0! >= 0 && $0!.isFinite }) else { return nil }
            let w = parts.map { $0! }
            guard w.reduce(0, +) > 0 else { return nil }
            self = .weights(w)
        }
    }

    /// Normalised probabilities for classes with these latent token counts.
    public func probabilities(latentTokens: [Int]) -> [Double] {
        let raw: [Double]
        switch self {
        case .uniform: raw = latentTokens.map { _ in 1 }
        case .skewed:
            let maxL = Double(latentTokens.max() ?? 1)
            raw = latentTokens.map { Foundation.exp(Double($0) / maxL) }
        case .weights(let w): raw = w
        }
        let total = raw.reduce(0, +)
        return raw.map { $0 / total }
    }

    public var description: String {
        switch self {
        case .uniform: "uniform"
        case .skewed: "skewed"
        case .weights(let w): w.map { String($0) }.joined(separator: ",")
        }
    }
}

/// The knobs of a synthetic workload.
public struct WorkloadSpec: Sendable, Equatable {
    /// Resolution classes (ascending) with their latent token counts.
    public var classes: [Resolution]
    public var latentTokens: [Int]
    /// Base SLO of each class in seconds, scaled by ``sloScale``.
    public var baseSLO: [Double]
    public var mix: Mix
    /// Mean arrival rate in requests per minute.
    public var ratePerMinute: Double
    public var count: Int
    public var sloScale: Double
    public var steps: Int
    public var seed: UInt64
    /// Coefficient of variation of inter-arrival times: 1 is Poisson, larger is burstier
    /// (gamma-distributed gaps with the same mean).
    public var burstiness: Double

    /// The paper's classes and base SLOs: 256² … 2048² with 1.5, 2, 3, 5 s.
    public static let paperClasses = [256, 512, 1024, 2048].map { Resolution(width: $0, height: $0) }
    public static let paperTokens = [256, 1024, 4096, 16_384]
    public static let paperBaseSLO = [1.5, 2.0, 3.0, 5.0]

    public init(
        classes: [Resolution] = paperClasses, latentTokens: [Int] = paperTokens, baseSLO: [Double] = paperBaseSLO,
        mix: Mix = .uniform, ratePerMinute: Double = 12, count: Int = 300, sloScale: Double = 1, steps: Int = 50,
        seed: UInt64 = 1, burstiness: Double = 1
    ) {
        self.classes = classes
        self.latentTokens = latentTokens
        self.baseSLO = baseSLO
        self.mix = mix
        self.ratePerMinute = ratePerMinute
        self.count = count
        self.sloScale = sloScale
        self.steps = steps
        self.seed = seed
        self.burstiness = burstiness
    }

    /// The classes of a cost model, with the paper's base SLOs by rank (the i-th smallest class
    /// gets the i-th base SLO; classes past the fourth repeat the last one).
    public init(model: CostModel) {
        self.init(
            classes: model.resolutions, latentTokens: model.latentTokens,
            baseSLO: model.resolutions.indices.map { Self.paperBaseSLO[min($0, Self.paperBaseSLO.count - 1)] })
    }

    /// Checks every field, naming the bad one.
    public func validate() throws(WorkloadError) {
        guard !classes.isEmpty else { throw .invalid("classes", "at least one resolution class is needed") }
        guard latentTokens.count == classes.count else { throw .invalid("latent_tokens", "one per class") }
        guard baseSLO.count == classes.count, baseSLO.allSatisfy({ $0 > 0 && $0.isFinite }) else {
            throw .invalid("base-slo", "one positive value per class (\(classes.count))")
        }
        if case .weights(let w) = mix, w.count != classes.count {
            throw .invalid("mix", "custom weights need one value per class (\(classes.count)), got \(w.count)")
        }
        guard ratePerMinute > 0 && ratePerMinute.isFinite else { throw .invalid("rate", "must be > 0") }
        guard count >= 1 else { throw .invalid("count", "must be >= 1") }
        guard sloScale > 0 && sloScale.isFinite else { throw .invalid("slo-scale", "must be > 0") }
        guard steps >= 1 && steps <= 10_000 else { throw .invalid("steps", "must be in 1...10000") }
        guard burstiness > 0 && burstiness.isFinite else { throw .invalid("burstiness", "must be > 0") }
    }

    /// Draws the trace: arrivals first (gaps with mean `60 / rate` s), then classes.
    public func generate() throws(WorkloadError) -> Trace {
        try validate()
        var rng = SeededRandom(seed: seed)
        let p = mix.probabilities(latentTokens: latentTokens)
        let meanGap = 60 / ratePerMinute
        let shape = 1 / (burstiness * burstiness)
        var t = 0.0
        var requests: [TraceRequest] = []
        for id in 0..<count {
            let gap = burstiness == 1 ? rng.exponential(mean: meanGap) : rng.gamma(shape: shape) * meanGap / shape
            t += gap
            var u = rng.unitOpen()
            var k = 0
            while k < p.count - 1 && u > p[k] {
                u -= p[k]
                k += 1
            }
            requests.append(
                TraceRequest(
                    id: id, arrival: .fromSeconds(t), resolution: classes[k], steps: steps,
                    slo: .fromSeconds(baseSLO[k] * sloScale)))
        }
        do {
            return try Trace(requests)
        } catch {
            throw .invalid("trace", error.description)
        }
    }
}

/// A bad workload setting, naming the option.
public enum WorkloadError: Error, Equatable, CustomStringConvertible {
    case invalid(String, String)

    public var description: String {
        switch self {
        case .invalid(let field, let why): "workload option '\(field)': \(why)"
        }
    }
}
