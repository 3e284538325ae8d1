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
        let decoded = try decodePNG([UInt8](png))
        #expect(decoded.width == width)
        #expect(decoded.height == height)
        #expect(decoded.rgb == rgb)
    }
}

/// A minimal PNG decoder for 8-bit RGB, non-interlaced files with any row filters (checks the
/// signature, chunk CRCs and IHDR fields).
func decodePNG(_ bytes: [UInt8]) throws -> (width: Int, height: Int, rgb: [UInt8]) {
    struct Bad: Error { let why: String }
    guard bytes.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) else { throw Bad(why: "signature") }
    func be32(_ i: Int) -> Int {
        Int(bytes[i]) << 24 | Int(bytes[i + 1]) << 16 | Int(bytes[i + 2]) << 8 | Int(bytes[i + 3])
    }
    var i = 8
    var width = 0
    var height = 0
    var idat: [UInt8] = []
    while i < bytes.count {
        let length = be32(i)
        let type = String(decoding: bytes[(i + 4)..<(i + 8)], as: UTF8.self)
        let body = Array(bytes[(i + 8)..<(i + 8 + length)])
        let crcInput = Array(bytes[(i + 4)..<(i + 8 + length)])
        let crc = crc32(0, crcInput, uInt(crcInput.count))
        guard UInt(crc) == UInt(be32(i + 8 + length)) else { throw Bad(why: "crc of \(type)") }
        switch type {
        case "IHDR":
            width = Int(body[0]) << 24 | Int(body[1]) << 16 | Int(body[2]) << 8 | Int(body[3])
            height = Int(body[4]) << 24 | Int(body[5]) << 16 | Int(body[6]) << 8 | Int(body[7])
            guard body[8] == 8, body[9] == 2, body[12] == 0 else { throw Bad(why: "not 8-bit RGB") }
        case "IDAT": idat += body
        default: break
        }
        i += 12 + length
    }
    let stride = width * 3
    var raw = [UInt8](repeating: 0, count: height * (stride + 1))
    var rawLength = uLong(raw.count)
    guard uncompress(&raw, &rawLength, idat, uLong(idat.count)) == Z_OK, Int(rawLength) == raw.count else {
        throw Bad(why: "zlib")
    }
    var out = [UInt8](repeating: 0, count: height * stride)
    for y in 0..<height {
        let filter = raw[y * (stride + 1)]
        for x in 0..<stride {
            let v = raw[y * (stride + 1) + 1 + x]
            let a = x >= 3 ? Int(out[y * stride + x - 3]) : 0
            let b = y > 0 ? Int(out[(y - 1) * stride + x]) : 0
            let c = x >= 3 && y > 0 ? Int(out[(y - 1) * stride + x - 3]) : 0
            let predictor: Int
            switch filter {
            case 0: predictor = 0
            case 1: predictor = a
            case 2: predictor = b
            case 3: predictor = (a + b) / 2
            case 4:
                let p = a + b - c
                let (pa, pb, pc) = (abs(p - a), abs(p - b), abs(p - c))
                predictor = pa <= pb && pa <= pc ? a : (pb <= pc ? b : c)
            default: throw Bad(why: "filter \(filter)")
            }
            out[y * stride + x] = UInt8(truncatingIfNeeded: Int(v) + predictor)
        }
    }
    return (width, height, out)
}
