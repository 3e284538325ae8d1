import Foundation
import Testing

@testable import DiTEngine

/// Fixtures written by the JAX trainer (`training/parity.py`): one engine step and one short
/// sampling run computed in JAX, which the Swift engine must reproduce.
struct ParityFixture: Decodable {
    struct Forward: Decodable {
        var prompt: String
        var width: Int
        var height: Int
        var seed: UInt64
        var t: Float
        var expected: String
    }
    struct Sample: Decodable {
        var prompt: String
        var width: Int
        var height: Int
        var steps: Int
        var seed: UInt64
        var expected: String
    }
    var weights: String
    var forward: [Forward]
    var sample: Sample

    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures")
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func load(_ name: String) throws -> ParityFixture {
        let data = try Data(contentsOf: directory.appendingPathComponent("\(name).json"))
        return try JSONDecoder().decode(ParityFixture.self, from: data)
    }

    static func bytes(_ file: String) throws -> Data {
        try Data(contentsOf: directory.appendingPathComponent(file))
    }
}

/// One engine step of a whole sequence at degree 1 from the seeded noise at `t` to `tNext`.
func engineStep(model: DiTModel, prompt: String, width: Int, height: Int, seed: UInt64, t: Float, tNext: Float)
    throws -> [Float]
{
    let grid = try model.config.grid(width: width, height: height)
    let (text, pooled) = model.encodeText(prompt)
    let geometry = SequenceGeometry(
        textTokens: text.count / model.config.textHidden, columns: grid.columns, rows: grid.rows)
    let latent = Sampler.noise(seed: seed, count: geometry.imageTokens * model.config.patchDim)
    let a = Buffer(SPContext.slotAFloats(tokens: geometry.tokens, hidden: model.config.hidden))
    let b = Buffer(SPContext.slotBFloats(tokens: geometry.tokens, hidden: model.config.hidden))
    var out = [Float](repeating: 0, count: latent.count)
    try text.withUnsafeBufferPointer { tp in
        try pooled.withUnsafeBufferPointer { pp in
            try latent.withUnsafeBufferPointer { lp in
                try out.withUnsafeMutableBufferPointer { op in
                    let ctx = SPContext(rank: 0, size: 1, slotA: [a.p], slotB: [b.p], barrier: {})
                    try model.step(
                        context: ctx, geometry: geometry, text: tp.baseAddress!, pooled: pp.baseAddress!,
                        latent: lp.baseAddress!, output: op.baseAddress!, t: t, tNext: tNext)
                }
            }
        }
    }
    withExtendedLifetime((a, b)) {}
    return out
}

@Suite struct ParityTests {
    static let fixtures = ["random-tiny", "random-canvas", "random-textrope", "scenes-v4"]

    @Test(arguments: fixtures) func forwardPassMatchesTheTrainer(name: String) throws {
        let fixture = try ParityFixture.load(name)
        let model = try DiTModel(
            weights: Weights.load(from: ParityFixture.root.appendingPathComponent(fixture.weights).path))
        for case_ in fixture.forward {
            let got = try engineStep(
                model: model, prompt: case_.prompt, width: case_.width, height: case_.height, seed: case_.seed,
                t: case_.t, tNext: 0)
            let data = try ParityFixture.bytes(case_.expected)
            let expected = data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            #expect(got.count == expected.count)
            var diff: Double = 0
            var norm: Double = 0
            for (g, e) in zip(got, expected) {
                diff += Double(g - e) * Double(g - e)
                norm += Double(e) * Double(e)
            }
            let relative = (diff / norm).squareRoot()
            #expect(relative <= 1e-4, "\(name) \(case_.width)x\(case_.height): relative error \(relative)")
        }
    }

    @Test(arguments: fixtures) func sampledImageMatchesTheTrainer(name: String) throws {
        let fixture = try ParityFixture.load(name)
        let model = try DiTModel(
            weights: Weights.load(from: ParityFixture.root.appendingPathComponent(fixture.weights).path))
        let s = fixture.sample
        let image = try LocalEngine(model: model).generateImage(
            GenerationRequest(prompt: s.prompt, width: s.width, height: s.height, steps: s.steps, seed: s.seed))
        let expected = [UInt8](try ParityFixture.bytes(s.expected))
        #expect(image.count == expected.count)
        let worst = zip(image, expected).map { abs(Int($0) - Int($1)) }.max() ?? 0
        #expect(worst <= 2, "\(name): largest channel difference \(worst) LSB")
    }
}
