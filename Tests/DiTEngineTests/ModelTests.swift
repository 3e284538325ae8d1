import CZlib
import Foundation
import Testing

@testable import DiTEngine

let tinyModel = try! DiTModel(config: .tiny, seed: 42)

@Suite struct ModelTests {
    @Test func seededWeightsAreDeterministicAndSeedDependent() {
        let a = Weights(config: .tiny, seed: 1)
        let b = Weights(config: .tiny, seed: 1)
        let c = Weights(config: .tiny, seed: 2)
        #expect(a.isIdentical(to: b))
        #expect(!a.isIdentical(to: c))
        #expect(a.count == ModelConfig.tiny.parameterShapes.reduce(0) { $0 + $1.shape.reduce(1, *) })
    }

    @Test func safetensorsRoundTrips() throws {
        let weights = Weights(config: .tiny, seed: 5)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tiny-\(getpid()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try weights.save(to: path)
        let loaded = try Weights.load(from: path)
        #expect(loaded.config == .tiny)
        #expect(loaded.isIdentical(to: weights))
        // The file is standard safetensors: header length, JSON header, little-endian F32 data.
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let length = Int(data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * $1.offset) })
        let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + length))) as! [String: Any]
        let entry = header["img_in.bias"] as! [String: Any]
        #expect(entry["dtype"] as? String == "F32")
        #expect(entry["shape"] as? [Int] == [ModelConfig.tiny.hidden])
        let offsets = entry["data_offsets"] as! [Int]
        let first = data.subdata(in: (8 + length + offsets[0])..<(8 + length + offsets[0] + 4))
        let value = Float(
            bitPattern: first.enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * $1.offset) })
        #expect(value == weights.values("img_in.bias")[0])
    }

    @Test func loadingRejectsAMissingTensor() throws {
        var tensors: [String: (shape: [Int], values: [Float])] = [:]
        let weights = Weights(config: .tiny, seed: 5)
        for name in weights.names { tensors[name] = (weights.layout[name]!.shape, weights.values(name)) }
        tensors["final.linear.weight"] = nil
        #expect(throws: EngineError.weights("tensor 'final.linear.weight' is missing")) {
            try Weights(config: .tiny, tensors: tensors)
        }
    }

    @Test func scheduleIsShiftedAndMonotone() {
        let s = Sampler.schedule(steps: 10, imageTokens: 1024)
        #expect(s.count == 11)
        #expect(s.first == 1)
        #expect(s.last == 0)
        for i in 1..<s.count { #expect(s[i] < s[i - 1]) }
        // Shifted towards noise: the midpoint time is above 0.5.
        #expect(s[5] > 0.5)
    }

    @Test func planParsing() throws {
        let plan = try DegreePlan(parsing: "1x10,2x15,1x25")
        #expect(plan.totalSteps == 50)
        #expect(plan.maxDegree == 2)
        #expect(plan.perStep.count == 50)
        #expect(plan.description == "1x10,2x15,1x25")
        #expect(throws: EngineError.self) { try DegreePlan(parsing: "2y3") }
        #expect(throws: EngineError.self) { try DegreePlan(parsing: "0x3") }
    }

    @Test func requestIsDeterministicAndDependsOnEveryInput() throws {
        let engine = LocalEngine(model: tinyModel)
        let base = GenerationRequest(prompt: "a red fox", width: 32, height: 24, steps: 3, seed: 9)
        let a = try engine.generateLatent(base)
        let b = try engine.generateLatent(base)
        #expect(a == b)
        #expect(a.allSatisfy { $0.isFinite })
        var other = base
        other.prompt = "a blue fox"
        #expect(try engine.generateLatent(other) != a)
        other = base
        other.seed = 10
        #expect(try engine.generateLatent(other) != a)
        other = base
        other.steps = 4
        #expect(try engine.generateLatent(other) != a)
    }

    @Test func sizesOffThePatchGridAreRejected() {
        let engine = LocalEngine(model: tinyModel)
        #expect(throws: EngineError.self) {
            try engine.generateLatent(GenerationRequest(prompt: "x", width: 30, height: 24, steps: 1, seed: 1))
        }
    }

    /// Threads as ranks: the Ulysses code path at degree k gives the degree-1 latent.
    @Test(arguments: [
        ("1x2,2x1,3x1", 40, 24), ("4x2", 24, 24), ("2x1,5x1,1x1,3x1", 8, 56), ("3x3", 16, 8),
    ])
    func inProcessSequenceParallelMatchesDegreeOne(plan: String, width: Int, height: Int) throws {
        let engine = LocalEngine(model: tinyModel)
        let parsed = try DegreePlan(parsing: plan)
        let request = GenerationRequest(
            prompt: "plan \(plan)", width: width, height: height, steps: parsed.totalSteps, seed: 77)
        let reference = try engine.generateLatent(request)
        let parallel = try engine.generateLatent(request, plan: parsed)
        #expect(relativeError(parallel, reference) <= 1e-4)
    }

    @Test func patchifyRoundTrips() {
        let config = ModelConfig.tiny
        let pixels = randomValues(16 * 24 * 3, seed: 3)
        let latent = Patches.patchify(pixels, config: config, width: 16, height: 24)
        #expect(Patches.unpatchify(latent, config: config, width: 16, height: 24) == pixels)
        // Token 1 is the second patch of the first patch row; its first value is pixel (0, 8), red.
        #expect(latent[config.patchDim] == pixels[8 * 3])
    }

    @Test func pngDecodesToThePixelsWritten() throws {
        let width = 13
        let height = 7
        var rng = SplitMix64(seed: 4)
        let rgb = (0..<(width * height * 3)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let png = try PNG.encode(rgb: rgb, width: width, height: height)
        let decoded = try PNG.decode([UInt8](png))
        #expect(decoded.width == width)
        #expect(decoded.height == height)
        #expect(decoded.rgb == rgb)
    }

    /// Rows filtered with each of the five PNG filters (sub, up, average, Paeth written out here
    /// from the specification) and the data split over two IDAT chunks decode to the pixels; a
    /// broken CRC, a truncated file and a grey-scale header are errors that say so.
    @Test func pngDecoderReadsEveryFilterAndRejectsBrokenFiles() throws {
        let width = 9
        let height = 10
        let stride = width * 3
        var rng = SplitMix64(seed: 8)
        let rgb = (0..<(height * stride)).map { _ in UInt8(truncatingIfNeeded: rng.next() % 7 * 37) }
        func at(_ y: Int, _ x: Int) -> Int { y < 0 || x < 0 ? 0 : Int(rgb[y * stride + x]) }
        var raw: [UInt8] = []
        for y in 0..<height {
            let filter = y % 5
            raw.append(UInt8(filter))
            for x in 0..<stride {
                let (a, b, c) = (at(y, x - 3), at(y - 1, x), at(y - 1, x - 3))
                let p = a + b - c
                let paeth =
                    abs(p - a) <= abs(p - b) && abs(p - a) <= abs(p - c) ? a : (abs(p - b) <= abs(p - c) ? b : c)
                let predictor = [0, a, b, (a + b) / 2, paeth][filter]
                raw.append(UInt8(truncatingIfNeeded: at(y, x) - predictor))
            }
        }
        var size = compressBound(uLong(raw.count))
        var deflated = [UInt8](repeating: 0, count: Int(size))
        #expect(compress2(&deflated, &size, raw, uLong(raw.count), 9) == Z_OK)
        deflated.removeSubrange(Int(size)...)
        func chunk(_ type: String, _ body: [UInt8]) -> [UInt8] {
            let typed = Array(type.utf8) + body
            return PNG.bigEndian(UInt32(body.count)) + typed + PNG.bigEndian(UInt32(crc32(0, typed, uInt(typed.count))))
        }
        let header = PNG.bigEndian(UInt32(width)) + PNG.bigEndian(UInt32(height)) + [8, 2, 0, 0, 0]
        let half = deflated.count / 2
        let file: [UInt8] =
            [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", header)
            + chunk("IDAT", Array(deflated[..<half])) + chunk("IDAT", Array(deflated[half...])) + chunk("IEND", [])
        let decoded = try PNG.decode(file)
        #expect(decoded.width == width && decoded.height == height)
        #expect(decoded.rgb == rgb)

        func message(_ bytes: [UInt8]) -> String {
            do {
                _ = try PNG.decode(bytes)
                return "decoded"
            } catch { return "\(error)" }
        }
        var corrupt = file
        corrupt[40] ^= 1
        #expect(message(corrupt).contains("CRC mismatch"))
        #expect(
            message(Array(file[..<30])).contains("truncated") || message(Array(file[..<30])).contains("past the end"))
        let grey = PNG.bigEndian(UInt32(width)) + PNG.bigEndian(UInt32(height)) + [8, 0, 0, 0, 0]
        let greyFile = Array(file[..<8]) + chunk("IHDR", grey) + Array(file[(8 + 25)...])
        #expect(message(greyFile).contains("colour type 0"))
        #expect(message([1, 2, 3]).contains("signature"))
        let huge = PNG.bigEndian(5000) + PNG.bigEndian(UInt32(height)) + [8, 2, 0, 0, 0]
        #expect(
            message(Array(file[..<8]) + chunk("IHDR", huge) + Array(file[(8 + 25)...])).contains("larger than 4096"))
    }
}
