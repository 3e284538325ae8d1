import Foundation
import Testing
import TetriCore

@testable import DiTEngine

/// The tiny model with the options of a scene model: word tokenizer, x-prediction, canvas RoPE,
/// canvas-position features, RoPE text positions.
let tinySceneConfig: ModelConfig = {
    var config = ModelConfig.tiny
    config.name = "tiny-scenes"
    config.tokenizer = .words
    config.vocabulary = ["a", "red", "blue", "circle", "square", "on", "white", "background", "top", "left"]
    config.prediction = .x
    config.ropePositions = .canvas
    config.ropeCanvas = 4
    config.positionFrequencies = 3
    config.textPositions = .rope
    return config
}()

let tinySceneModel = try! DiTModel(config: tinySceneConfig, seed: 42)

/// Writes ``tinySceneModel``'s weights to a fresh temporary file (the caller removes it).
func writeTinySceneWeights() throws -> String {
    let path = FileManager.default.temporaryDirectory
        .appendingPathComponent("tiny-scenes-\(getpid())-\(UUID().uuidString).safetensors").path
    try tinySceneModel.weights.save(to: path)
    return path
}

@Suite struct ModelOptionsTests {
    @Test func namedConfigurationsKeepTheirBehaviour() throws {
        for config in [ModelConfig.tiny, .small] {
            #expect(config.tokenizer == .bytes && config.prediction == .velocity && config.ropePositions == .grid)
            #expect(config.textVocabularySize == 257)
            let decoded = try JSONDecoder().decode(ModelConfig.self, from: JSONEncoder().encode(config))
            #expect(decoded == config)
        }
        // A configuration written before the options existed decodes with today's behaviour.
        let old = """
            {"name":"old","hidden":32,"heads":4,"doubleBlocks":1,"singleBlocks":1,"mlpRatio":4,"patchSize":8,
            "channels":3,"textHidden":32,"textHeads":2,"textLayers":1,"maxTextTokens":16,"timeEmbedding":32,
            "ropeTheta":10000}
            """
        var want = ModelConfig.tiny
        want.name = "old"
        #expect(try JSONDecoder().decode(ModelConfig.self, from: Data(old.utf8)) == want)
    }

    /// With `textPositions: rope` a query at token i and a key at token j score the same as at
    /// i + s and j + s: the text encoder sees how far apart two words are, not where they stand.
    /// The configuration has no `text.position` tensor and travels through JSON.
    @Test func ropeTextPositionsDependOnDistanceOnly() throws {
        let hd = 8
        let (cosT, sinT) = Ops.rope1DTable(count: 12, headDim: hd, theta: 10_000)
        #expect(cosT.count == 12 * 4)
        #expect(cosT[3 * 4 + 1] == Float(Foundation.cos(3 * Foundation.pow(10_000, -2.0 / 8))))
        #expect(sinT[5 * 4 + 2] == Float(Foundation.sin(5 * Foundation.pow(10_000, -4.0 / 8))))
        var rng = SplitMix64(seed: 3)
        let q = (0..<hd).map { _ in rng.nextGaussian() }
        let k = (0..<hd).map { _ in rng.nextGaussian() }
        func score(_ i: Int, _ j: Int) -> Float {
            var a = q
            var b = k
            cosT.withUnsafeBufferPointer { c in
                sinT.withUnsafeBufferPointer { s in
                    Ops.applyRope(
                        &a, rows: 1, heads: 1, headDim: hd, ld: hd, cos: c.baseAddress! + i * 4,
                        sin: s.baseAddress! + i * 4)
                    Ops.applyRope(
                        &b, rows: 1, heads: 1, headDim: hd, ld: hd, cos: c.baseAddress! + j * 4,
                        sin: s.baseAddress! + j * 4)
                }
            }
            return zip(a, b).map { $0 * $1 }.reduce(0, +)
        }
        for (i, j, shift) in [(0, 1, 4), (2, 1, 7), (5, 5, 3), (1, 6, 5)] {
            #expect(abs(score(i, j) - score(i + shift, j + shift)) < 1e-5)
        }
        #expect(abs(score(0, 1) - score(0, 2)) > 1e-3)

        var config = tinySceneConfig
        #expect(!config.parameterShapes.contains { $0.name == "text.position" })
        #expect(ModelConfig.tiny.parameterShapes.contains { $0.name == "text.position" })
        #expect(try JSONDecoder().decode(ModelConfig.self, from: JSONEncoder().encode(config)) == config)
        config.textHidden = 30
        config.textHeads = 10  // head width 3: no pairs to rotate
        #expect(throws: EngineError.self) { try config.validate() }
    }

    @Test func configurationTravelsInTheSafetensorsMetadata() throws {
        let path = try writeTinySceneWeights()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let metadata = try SafeTensors.metadata(path: path)
        let json = try #require(metadata["tetriserve.config"])
        #expect(try JSONDecoder().decode(ModelConfig.self, from: Data(json.utf8)) == tinySceneConfig)
        #expect(try ModelConfig.stored(inWeightsFile: path) == tinySceneConfig)
        // The file's configuration wins over a fallback; the fallback serves files without one.
        let loaded = try Weights.load(from: path, fallback: .tiny)
        #expect(loaded.config == tinySceneConfig)
        #expect(loaded.isIdentical(to: tinySceneModel.weights))
        #expect(tinySceneModel.weights.layout["text.embed"]!.shape == [11, 32])
        let model = try Worker.loadModel(name: "small", seed: 0, weights: path)
        #expect(model.config == tinySceneConfig)
    }

    @Test func wordTokenizerKeepsKnownWordsAfterTheStartToken() {
        #expect(tinySceneModel.tokenize("A RED circle, on purple!") == [0, 1, 2, 4, 6])
        #expect(tinySceneModel.tokenize("") == [0])
        #expect(tinySceneModel.tokenize("top-left  white_background") == [0, 9, 10, 7, 8])
        let long = String(repeating: "red ", count: 40)
        #expect(tinySceneModel.tokenize(long) == [0] + Array(repeating: 2, count: 15))
        #expect(DiTModel.words("Top-left2 é x") == ["top", "left2", "x"])
    }

    @Test func canvasPositionsAreFractionsOfTheCanvas() {
        let geometry = SequenceGeometry(textTokens: 3, columns: 4, rows: 2)
        let p = (0..<8).map { tinySceneConfig.ropePosition(token: $0, geometry: geometry) }
        #expect(p[0] == (row: 1, col: 0.5))
        #expect(p[5] == (row: 3, col: 1.5))
        // The same place on a canvas twice as fine gets the same position.
        let fine = SequenceGeometry(textTokens: 3, columns: 8, rows: 4)
        let q = tinySceneConfig.ropePosition(token: 1 * 8 + 2, geometry: fine)
        #expect(q == (row: 1.5, col: 1.25))
        #expect(ModelConfig.tiny.ropePosition(token: 5, geometry: geometry) == (row: 1, col: 1))
    }

    @Test func positionFeaturesDescribeThePlaceOnTheCanvas() {
        let k = tinySceneConfig.positionFrequencies
        #expect(tinySceneConfig.positionFeatureWidth == 12)
        #expect(ModelConfig.tiny.positionFeatureWidth == 0)
        // Token 5 of a 4-column, 2-row grid: row 1, column 1, centre at v = 0.75, u = 0.375.
        let geometry = SequenceGeometry(textTokens: 3, columns: 4, rows: 2)
        let all = tinySceneConfig.positionFeatures(tokens: 0..<8, geometry: geometry)
        #expect(all.count == 8 * 12)
        let row5 = Array(all[(5 * 12)..<(6 * 12)])
        for j in 0..<k {
            let f = Double.pi * Double(j + 1)
            let v: Double = 0.75 * f
            let u: Double = 0.375 * f
            let want: [Float] = [
                Float(Foundation.cos(v)), Float(Foundation.sin(v)), Float(Foundation.cos(u)), Float(Foundation.sin(u)),
            ]
            let got: [Float] = [row5[j], row5[k + j], row5[2 * k + j], row5[3 * k + j]]
            #expect(got == want)
        }
        // A shard's rows are those of its tokens in the whole grid.
        #expect(tinySceneConfig.positionFeatures(tokens: 5..<7, geometry: geometry) == Array(all[60..<84]))
        // The centre of a 1×1 grid and of a 3×3 grid is the same place; every token differs.
        let one = tinySceneConfig.positionFeatures(tokens: 0..<1, geometry: .init(textTokens: 1, columns: 1, rows: 1))
        let nine = tinySceneConfig.positionFeatures(tokens: 4..<5, geometry: .init(textTokens: 1, columns: 3, rows: 3))
        #expect(one == nine)
        let rows: [[Float]] = (0..<8).map { (i: Int) -> [Float] in Array(all[(i * 12)..<(i * 12 + 12)]) }
        #expect(Set(rows).count == 8)
    }

    /// The features enter through `pos_in` only: with that layer at zero the model computes
    /// exactly what the same weights without position features compute, and with it the image
    /// changes.
    @Test func positionFeaturesEnterThroughTheirLayerOnly() throws {
        var plainConfig = tinySceneConfig
        plainConfig.positionFrequencies = 0
        var tensors: [String: (shape: [Int], values: [Float])] = [:]
        for (name, shape) in plainConfig.parameterShapes {
            tensors[name] = (shape, tinySceneModel.weights.values(name))
        }
        let plain = try DiTModel(weights: Weights(config: plainConfig, tensors: tensors))
        for name in ["pos_in.weight", "pos_in.bias"] {
            let shape = try #require(tinySceneModel.weights.layout[name]).shape
            tensors[name] = (shape, [Float](repeating: 0, count: shape.reduce(1, *)))
        }
        let zeroed = try DiTModel(weights: Weights(config: tinySceneConfig, tensors: tensors))
        let request = GenerationRequest(prompt: "a red circle top left", width: 24, height: 16, steps: 2, seed: 5)
        let reference = try LocalEngine(model: plain).generateLatent(request)
        #expect(try LocalEngine(model: zeroed).generateLatent(request) == reference)
        #expect(try LocalEngine(model: tinySceneModel).generateLatent(request) != reference)
    }

    /// With one step from t = 1 to 0 the x-prediction model's image is its network output, and
    /// the velocity model on the same weights moves the noise by minus that output's velocity:
    /// the two are tied by x̂ = x₁ − v.
    @Test func xPredictionTurnsTheOutputIntoVelocity() throws {
        var velocityConfig = tinySceneConfig
        velocityConfig.prediction = .velocity
        let velocityModel = try DiTModel(config: velocityConfig, seed: 42)
        let request = GenerationRequest(prompt: "a red circle", width: 24, height: 16, steps: 1, seed: 3)
        let noise = Sampler.noise(seed: 3, count: 6 * tinySceneConfig.patchDim)
        let xImage = try LocalEngine(model: tinySceneModel).generateLatent(request)
        let vImage = try LocalEngine(model: velocityModel).generateLatent(request)
        // v-model: x₀ = x₁ − f; x-model: x₀ = x̂ = f.
        let f = zip(noise, vImage).map { $0 - $1 }
        #expect(relativeError(xImage, f) <= 1e-5)
    }

    @Test(arguments: [("1x2,2x1,3x1", 40, 24), ("4x2", 24, 24), ("2x1,5x1,1x1,3x1", 8, 56)])
    func sceneOptionsKeepDegreeKEqualToDegreeOne(plan: String, width: Int, height: Int) throws {
        let engine = LocalEngine(model: tinySceneModel)
        let parsed = try DegreePlan(parsing: plan)
        let request = GenerationRequest(
            prompt: "a blue square in the top left on a white background", width: width, height: height,
            steps: parsed.totalSteps, seed: 77)
        let reference = try engine.generateLatent(request)
        #expect(relativeError(try engine.generateLatent(request, plan: parsed), reference) <= 1e-4)
        #expect(reference != (try LocalEngine(model: tinyModel).generateLatent(request)))
    }

    @Test func shippedWeightsAreFoundFromTheEnvironmentOrTheExecutable() throws {
        let fm = FileManager.default
        let root = fm.temporaryDirectory.appendingPathComponent("locator-\(UUID().uuidString)")
        defer { try? fm.removeItem(at: root) }
        let models = root.appendingPathComponent("models")
        let bin = root.appendingPathComponent(".build/release")
        try fm.createDirectory(at: models, withIntermediateDirectories: true)
        try fm.createDirectory(at: bin, withIntermediateDirectories: true)
        let exe = bin.appendingPathComponent("tetriserve").path
        #expect(ModelLocator.defaultWeights(environment: [:], executable: exe) == nil)
        for name in ["scenes-v1.safetensors", "scenes-v2.safetensors", "notes.txt"] {
            #expect(fm.createFile(atPath: models.appendingPathComponent(name).path, contents: Data()))
        }
        let found = try #require(ModelLocator.defaultWeights(environment: [:], executable: exe))
        #expect(found == models.appendingPathComponent("scenes-v2.safetensors").path)
        #expect(ModelLocator.modelID(weights: found) == "scenes-v2")
        // The environment variable comes first: a directory or a file.
        let other = root.appendingPathComponent("elsewhere")
        try fm.createDirectory(at: other, withIntermediateDirectories: true)
        let file = other.appendingPathComponent("mine.safetensors").path
        #expect(fm.createFile(atPath: file, contents: Data()))
        #expect(ModelLocator.defaultWeights(environment: ["TETRISERVE_MODELS": other.path], executable: exe) == file)
        #expect(ModelLocator.defaultWeights(environment: ["TETRISERVE_MODELS": file], executable: exe) == file)
    }
}
