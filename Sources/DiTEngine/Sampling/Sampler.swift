import Foundation

/// Rectified-flow (flow-matching) sampling with FLUX's resolution-dependent shifted schedule.
public enum Sampler {
    /// `steps + 1` times from 1 (noise) to 0 (image): a uniform grid bent by
    /// `t' = e^μ / (e^μ + 1/t − 1)`, with μ growing linearly in the image token count from 0.5
    /// at 256 tokens to 1.15 at 4096.
    public static func schedule(steps: Int, imageTokens: Int) -> [Float] {
        let mu = 0.5 + (1.15 - 0.5) * (Double(imageTokens) - 256) / (4096 - 256)
        let e = Foundation.exp(mu)
        return (0...steps).map { i in
            let t = 1 - Double(i) / Double(steps)
            if t <= 0 { return 0 }
            return Float(e / (e + (1 / t - 1)))
        }
    }

    /// The seeded initial noise, `imageTokens × patchDim` standard normal values in token order.
    public static func noise(seed: UInt64, count: Int) -> [Float] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { _ in rng.nextGaussian() }
    }
}

/// One request: everything that determines its image, together with the model.
public struct GenerationRequest: Sendable, Equatable, Codable {
    public var prompt: String
    public var width: Int
    public var height: Int
    public var steps: Int
    public var seed: UInt64

    public init(prompt: String, width: Int, height: Int, steps: Int, seed: UInt64) {
        self.prompt = prompt
        self.width = width
        self.height = height
        self.steps = steps
        self.seed = seed
    }
}

/// A degree plan: blocks of consecutive steps, each at one sequence-parallel degree.
public struct DegreePlan: Sendable, Equatable, CustomStringConvertible {
    public var blocks: [(degree: Int, steps: Int)]

    public init(blocks: [(degree: Int, steps: Int)]) { self.blocks = blocks }

    public static func == (a: DegreePlan, b: DegreePlan) -> Bool {
        a.blocks.map(\.degree) == b.blocks.map(\.degree) && a.blocks.map(\.steps) == b.blocks.map(\.steps)
    }

    /// All `steps` at one degree.
    public static func uniform(degree: Int, steps: Int) -> DegreePlan { DegreePlan(blocks: [(degree, steps)]) }

    /// Parses `"1x10,2x15,1x25"` (`KxN`: N steps at degree K, in order).
    public init(parsing text: String) throws(EngineError) {
        var blocks: [(Int, Int)] = []
        for part in text.split(separator: ",") {
            let kn = part.split(separator: "x")
            guard kn.count == 2, let k = Int(kn[0].trimmingCharacters(in: .whitespaces)),
                let n = Int(kn[1].trimmingCharacters(in: .whitespaces)), k > 0, n > 0
            else {
                throw .invalidPlan("'\(part)' is not KxN with positive K (degree) and N (steps), e.g. 1x10,2x15")
            }
            blocks.append((k, n))
        }
        guard !blocks.isEmpty else { throw .invalidPlan("the plan is empty; write KxN blocks such as 1x10,2x15") }
        self.blocks = blocks
    }

    public var totalSteps: Int { blocks.reduce(0) { $0 + $1.steps } }
    public var maxDegree: Int { blocks.map(\.degree).max() ?? 1 }

    /// The degree of each step in order.
    public var perStep: [Int] { blocks.flatMap { Array(repeating: $0.degree, count: $0.steps) } }

    public var description: String { blocks.map { "\($0.degree)x\($0.steps)" }.joined(separator: ",") }
}
