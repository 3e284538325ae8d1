import Foundation

/// Reads a whole text file.
func readTextFile(_ path: String) throws -> String {
    try String(contentsOfFile: path, encoding: .utf8)
}

/// The half-open range of items that part `index` of `parts` holds when `count` items are split
/// as evenly as possible (the first `count % parts` parts get one extra; parts may be empty).
public func shardRange(count: Int, parts: Int, index: Int) -> Range<Int> {
    let base = count / parts
    let extra = count % parts
    let start = index * base + Swift.min(index, extra)
    return start..<(start + base + (index < extra ? 1 : 0))
}

/// A deterministic pseudo-random generator (SplitMix64), so that weights and noise depend only
/// on their seed.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform float in [0, 1).
    public mutating func nextUniform() -> Float {
        Float(next() >> 40) * (1.0 / 16_777_216.0)
    }

    /// A standard normal float (Box–Muller in double precision).
    public mutating func nextGaussian() -> Float {
        let u1 = Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
        let u2 = Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
        return Float((-2 * Foundation.log(Swift.max(u1, 1e-300))).squareRoot() * Foundation.cos(2 * Double.pi * u2))
    }
}

/// The median of non-empty values (mean of the middle two for an even count).
public func median(_ values: [Double]) -> Double {
    precondition(!values.isEmpty)
    let s = values.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}
