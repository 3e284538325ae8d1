import Foundation

/// Sizes of the MMDiT and its text encoder.
public struct ModelConfig: Codable, Sendable, Equatable {
    public var name: String
    /// Hidden width of the transformer.
    public var hidden: Int
    /// Attention heads (the head width is `hidden / heads`, a multiple of 4 for 2D RoPE).
    public var heads: Int
    public var doubleBlocks: Int
    public var singleBlocks: Int
    /// Hidden width of each MLP as a multiple of `hidden`.
    public var mlpRatio: Int
    /// Side of a square pixel patch; one patch is one image token.
    public var patchSize: Int
    /// Image channels (RGB).
    public var channels: Int
    public var textHidden: Int
    public var textHeads: Int
    public var textLayers: Int
    /// The prompt's UTF-8 bytes plus a start token, truncated to this many tokens.
    public var maxTextTokens: Int
    /// Width of the sinusoidal timestep embedding.
    public var timeEmbedding: Int
    public var ropeTheta: Float
    /// How prompts become token ids.
    public var tokenizer: Tokenizer
    /// The words the `words` tokenizer knows (word i has id i + 1; id 0 is the start token).
    public var vocabulary: [String]
    /// What the network's output is.
    public var prediction: Prediction
    /// Where RoPE places image tokens.
    public var ropePositions: RopePositions
    /// The canvas extent (in RoPE position units) of `canvas` positions.
    public var ropeCanvas: Float
    /// Frequencies per axis of the canvas-position features added to the image tokens (through
    /// the `pos_in` layer, see ``positionFeatures(tokens:geometry:)``); 0: none, the image tokens
    /// know their place only through RoPE, which is relative.
    public var positionFrequencies: Int
    /// How the text encoder knows where a token stands in the prompt.
    public var textPositions: TextPositions

    /// How prompts become token ids.
    public enum Tokenizer: String, Codable, Sendable {
        /// A start token (256), then the prompt's UTF-8 bytes (vocabulary 257).
        case bytes
        /// A start token (0), then the ids of the prompt's known words (lower-cased, split on every
        /// character that is not an ASCII letter or digit; unknown words dropped).
        case words
    }

    /// What the network predicts.
    public enum Prediction: String, Codable, Sendable {
        /// The velocity `noise − image`.
        case velocity
        /// The clean image `x̂`; the step uses the velocity `(x_t − x̂) / t`.
        case x
    }

    /// Image token positions of RoPE.
    public enum RopePositions: String, Codable, Sendable {
        /// The integer row and column of the token grid.
        case grid
        /// `(row + 0.5) · ropeCanvas / rows` and `(col + 0.5) · ropeCanvas / columns`: the same
        /// place on the canvas has the same angle at every resolution.
        case canvas
    }

    /// Text token positions of the text encoder.
    public enum TextPositions: String, Codable, Sendable {
        /// A learned vector per place (`text.position`, `maxTextTokens × textHidden`) added to each
        /// token's embedding: absolute, so a phrase at a place no training prompt put it reads
        /// differently.
        case learned
        /// 1D RoPE on the text attention's queries and keys (token i at angle
        /// `i · ropeTheta^(−2j / textHeadDim)` for pair j): attention depends on how far apart two
        /// words are, not on where they stand, and there is no `text.position` tensor.
        case rope
    }

    public init(
        name: String, hidden: Int, heads: Int, doubleBlocks: Int, singleBlocks: Int, mlpRatio: Int = 4,
        patchSize: Int, channels: Int = 3, textHidden: Int, textHeads: Int, textLayers: Int, maxTextTokens: Int,
        timeEmbedding: Int = 256, ropeTheta: Float = 10_000, tokenizer: Tokenizer = .bytes, vocabulary: [String] = [],
        prediction: Prediction = .velocity, ropePositions: RopePositions = .grid, ropeCanvas: Float = 16,
        positionFrequencies: Int = 0, textPositions: TextPositions = .learned
    ) {
        self.name = name
        self.hidden = hidden
        self.heads = heads
        self.doubleBlocks = doubleBlocks
        self.singleBlocks = singleBlocks
        self.mlpRatio = mlpRatio
        self.patchSize = patchSize
        self.channels = channels
        self.textHidden = textHidden
        self.textHeads = textHeads
        self.textLayers = textLayers
        self.maxTextTokens = maxTextTokens
        self.timeEmbedding = timeEmbedding
        self.ropeTheta = ropeTheta
        self.tokenizer = tokenizer
        self.vocabulary = vocabulary
        self.prediction = prediction
        self.ropePositions = ropePositions
        self.ropeCanvas = ropeCanvas
        self.positionFrequencies = positionFrequencies
        self.textPositions = textPositions
    }

    enum CodingKeys: String, CodingKey {
        case name, hidden, heads, doubleBlocks, singleBlocks, mlpRatio, patchSize, channels, textHidden, textHeads
        case textLayers, maxTextTokens, timeEmbedding, ropeTheta, tokenizer, vocabulary, prediction, ropePositions
        case ropeCanvas, positionFrequencies, textPositions
    }

    /// Decodes a configuration; fields added after the first format default to the behaviour
    /// before them (bytes tokenizer, velocity prediction, grid positions, no position features).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            name: try c.decode(String.self, forKey: .name), hidden: try c.decode(Int.self, forKey: .hidden),
            heads: try c.decode(Int.self, forKey: .heads), doubleBlocks: try c.decode(Int.self, forKey: .doubleBlocks),
            singleBlocks: try c.decode(Int.self, forKey: .singleBlocks),
            mlpRatio: try c.decodeIfPresent(Int.self, forKey: .mlpRatio) ?? 4,
            patchSize: try c.decode(Int.self, forKey: .patchSize),
            channels: try c.decodeIfPresent(Int.self, forKey: .channels) ?? 3,
            textHidden: try c.decode(Int.self, forKey: .textHidden),
            textHeads: try c.decode(Int.self, forKey: .textHeads),
            textLayers: try c.decode(Int.self, forKey: .textLayers),
            maxTextTokens: try c.decode(Int.self, forKey: .maxTextTokens),
            timeEmbedding: try c.decodeIfPresent(Int.self, forKey: .timeEmbedding) ?? 256,
            ropeTheta: try c.decodeIfPresent(Float.self, forKey: .ropeTheta) ?? 10_000,
            tokenizer: try c.decodeIfPresent(Tokenizer.self, forKey: .tokenizer) ?? .bytes,
            vocabulary: try c.decodeIfPresent([String].self, forKey: .vocabulary) ?? [],
            prediction: try c.decodeIfPresent(Prediction.self, forKey: .prediction) ?? .velocity,
            ropePositions: try c.decodeIfPresent(RopePositions.self, forKey: .ropePositions) ?? .grid,
            ropeCanvas: try c.decodeIfPresent(Float.self, forKey: .ropeCanvas) ?? 16,
            positionFrequencies: try c.decodeIfPresent(Int.self, forKey: .positionFrequencies) ?? 0,
            textPositions: try c.decodeIfPresent(TextPositions.self, forKey: .textPositions) ?? .learned)
    }

    /// For tests: 32 wide, 4 heads, one block of each kind, 8-pixel patches.
    public static let tiny = ModelConfig(
        name: "tiny", hidden: 32, heads: 4, doubleBlocks: 1, singleBlocks: 1, patchSize: 8,
        textHidden: 32, textHeads: 2, textLayers: 1, maxTextTokens: 16, timeEmbedding: 32)

    /// The served default: 384 wide, 6 heads of 64, 2 double and 3 single blocks, 16-pixel patches.
    public static let small = ModelConfig(
        name: "small", hidden: 384, heads: 6, doubleBlocks: 2, singleBlocks: 3, patchSize: 16,
        textHidden: 128, textHeads: 2, textLayers: 2, maxTextTokens: 64)

    /// The named configurations.
    public static let named: [String: ModelConfig] = ["tiny": .tiny, "small": .small]

    public var headDim: Int { hidden / heads }
    public var mlpHidden: Int { hidden * mlpRatio }
    /// Values in one patch token.
    public var patchDim: Int { channels * patchSize * patchSize }
    /// Rows of the text embedding: 256 byte values and the start token, or the start token and
    /// the vocabulary's words.
    public var textVocabularySize: Int {
        switch tokenizer {
        case .bytes: 257
        case .words: vocabulary.count + 1
        }
    }

    /// Checks the sizes fit together.
    public func validate() throws(EngineError) {
        guard hidden > 0, heads > 0, hidden % heads == 0, headDim % 4 == 0 else {
            throw .invalidModel("hidden (\(hidden)) must split into heads (\(heads)) of a multiple of 4")
        }
        guard textHidden > 0, textHeads > 0, textHidden % textHeads == 0 else {
            throw .invalidModel("textHidden (\(textHidden)) must split into textHeads (\(textHeads))")
        }
        guard textPositions == .learned || (textHidden / textHeads) % 2 == 0 else {
            throw .invalidModel(
                "textPositions rope needs an even text head width, got \(textHidden / textHeads)")
        }
        guard patchSize > 0, channels > 0, maxTextTokens > 0, timeEmbedding > 0, timeEmbedding % 2 == 0 else {
            throw .invalidModel("patchSize, channels, maxTextTokens and an even timeEmbedding must be positive")
        }
        guard doubleBlocks >= 0, singleBlocks >= 0, doubleBlocks + singleBlocks > 0, textLayers >= 0 else {
            throw .invalidModel("needs at least one transformer block")
        }
        guard tokenizer == .bytes || !vocabulary.isEmpty else {
            throw .invalidModel("the words tokenizer needs a non-empty vocabulary")
        }
        guard ropeCanvas > 0, ropeCanvas.isFinite else {
            throw .invalidModel("ropeCanvas must be a positive number, got \(ropeCanvas)")
        }
        guard (0...256).contains(positionFrequencies) else {
            throw .invalidModel("positionFrequencies must be in 0...256, got \(positionFrequencies)")
        }
    }

    /// The image token grid (columns, rows) of a size, or an error naming the allowed sizes.
    public func grid(width: Int, height: Int) throws(EngineError) -> (columns: Int, rows: Int) {
        guard width > 0, height > 0, width % patchSize == 0, height % patchSize == 0 else {
            throw .invalidSize(
                "size \(width)x\(height) does not fit the \(patchSize)-pixel patch grid of model '\(name)': "
                    + "width and height must be positive multiples of \(patchSize)")
        }
        return (width / patchSize, height / patchSize)
    }

    /// The RoPE (row, column) position of image token `token` (row-major in the grid).
    public func ropePosition(token: Int, geometry: SequenceGeometry) -> (row: Double, col: Double) {
        let row = token / geometry.columns
        let col = token % geometry.columns
        switch ropePositions {
        case .grid:
            return (Double(row), Double(col))
        case .canvas:
            let canvas = Double(ropeCanvas)
            return (
                (Double(row) + 0.5) * canvas / Double(geometry.rows),
                (Double(col) + 0.5) * canvas / Double(geometry.columns)
            )
        }
    }

    /// Width of one image token's canvas-position features.
    public var positionFeatureWidth: Int { 4 * positionFrequencies }

    /// The canvas-position features of image tokens `tokens` (row-major in the grid), one row of
    /// ``positionFeatureWidth`` values each: with the token's centre at `v = (row + 0.5) / rows`
    /// and `u = (col + 0.5) / columns` on the unit canvas, `cos(πkv)`, `sin(πkv)`, `cos(πku)`,
    /// `sin(πku)` for `k = 1 … positionFrequencies`, each group in order of `k` (computed in
    /// double precision). The same place on the canvas gets the same features at every
    /// resolution, and every token gets its own, wherever its rank's shard starts.
    public func positionFeatures(tokens: Range<Int>, geometry: SequenceGeometry) -> [Float] {
        let k = positionFrequencies
        let width = positionFeatureWidth
        var out = [Float](repeating: 0, count: tokens.count * width)
        for (i, token) in tokens.enumerated() {
            let v = (Double(token / geometry.columns) + 0.5) / Double(geometry.rows)
            let u = (Double(token % geometry.columns) + 0.5) / Double(geometry.columns)
            for j in 0..<k {
                let f = Double.pi * Double(j + 1)
                let a = v * f
                let b = u * f
                out[i * width + j] = Float(Foundation.cos(a))
                out[i * width + k + j] = Float(Foundation.sin(a))
                out[i * width + 2 * k + j] = Float(Foundation.cos(b))
                out[i * width + 3 * k + j] = Float(Foundation.sin(b))
            }
        }
        return out
    }

    /// Every parameter tensor with its shape, in a fixed order (linear weights are
    /// `[out, in]`; `y = x Wᵀ + b`).
    public var parameterShapes: [(name: String, shape: [Int])] {
        var list: [(String, [Int])] = []
        func linear(_ name: String, _ input: Int, _ output: Int) {
            list.append(("\(name).weight", [output, input]))
            list.append(("\(name).bias", [output]))
        }
        func norm(_ name: String, _ dim: Int, bias: Bool) {
            list.append(("\(name).weight", [dim]))
            if bias { list.append(("\(name).bias", [dim])) }
        }
        let d = hidden
        let t = textHidden
        list.append(("text.embed", [textVocabularySize, t]))
        if textPositions == .learned { list.append(("text.position", [maxTextTokens, t])) }
        for i in 0..<textLayers {
            let p = "text.layers.\(i)"
            norm("\(p).norm1", t, bias: true)
            linear("\(p).qkv", t, 3 * t)
            linear("\(p).proj", t, t)
            norm("\(p).norm2", t, bias: true)
            linear("\(p).mlp1", t, t * mlpRatio)
            linear("\(p).mlp2", t * mlpRatio, t)
        }
        norm("text.final_norm", t, bias: true)
        linear("img_in", patchDim, d)
        if positionFrequencies > 0 { linear("pos_in", positionFeatureWidth, d) }
        linear("txt_in", t, d)
        linear("time_in.in", timeEmbedding, d)
        linear("time_in.out", d, d)
        linear("vector_in.in", t, d)
        linear("vector_in.out", d, d)
        for i in 0..<doubleBlocks {
            for stream in ["img", "txt"] {
                let p = "double.\(i).\(stream)"
                linear("\(p).mod", d, 6 * d)
                linear("\(p).qkv", d, 3 * d)
                norm("\(p).query_norm", headDim, bias: false)
                norm("\(p).key_norm", headDim, bias: false)
                linear("\(p).proj", d, d)
                linear("\(p).mlp1", d, mlpHidden)
                linear("\(p).mlp2", mlpHidden, d)
            }
        }
        for i in 0..<singleBlocks {
            let p = "single.\(i)"
            linear("\(p).mod", d, 3 * d)
            linear("\(p).linear1", d, 3 * d + mlpHidden)
            norm("\(p).query_norm", headDim, bias: false)
            norm("\(p).key_norm", headDim, bias: false)
            linear("\(p).linear2", d + mlpHidden, d)
        }
        linear("final.mod", d, 2 * d)
        linear("final.linear", d, patchDim)
        return list
    }

    /// Multiply-adds per call of the linear layers for `tokens` joint tokens (text + image).
    public func linearMACs(textTokens: Int, imageTokens: Int) -> Int {
        let d = hidden
        let l = textTokens + imageTokens
        let double = l * (3 * d * d + d * d + 2 * d * mlpHidden)
        let single = l * (d * (3 * d + mlpHidden) + (d + mlpHidden) * d)
        return imageTokens * (patchDim + positionFeatureWidth) * d + textTokens * textHidden * d + doubleBlocks * double
            + singleBlocks * single + imageTokens * d * patchDim
    }

    /// Floating-point operations of one denoising step over the whole sequence (linear layers
    /// and attention score and value products; element-wise work not counted).
    public func stepFLOPs(textTokens: Int, imageTokens: Int) -> Double {
        let l = Double(textTokens + imageTokens)
        let attention = 4 * l * l * Double(hidden) * Double(doubleBlocks + singleBlocks)
        return 2 * Double(linearMACs(textTokens: textTokens, imageTokens: imageTokens)) + attention
    }
}
