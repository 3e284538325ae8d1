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

    public init(
        name: String, hidden: Int, heads: Int, doubleBlocks: Int, singleBlocks: Int, mlpRatio: Int = 4,
        patchSize: Int, channels: Int = 3, textHidden: Int, textHeads: Int, textLayers: Int, maxTextTokens: Int,
        timeEmbedding: Int = 256, ropeTheta: Float = 10_000
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
    /// Text vocabulary: 256 byte values and the start token.
    public var vocabulary: Int { 257 }

    /// Checks the sizes fit together.
    public func validate() throws(EngineError) {
        guard hidden > 0, heads > 0, hidden % heads == 0, headDim % 4 == 0 else {
            throw .invalidModel("hidden (\(hidden)) must split into heads (\(heads)) of a multiple of 4")
        }
        guard textHidden > 0, textHeads > 0, textHidden % textHeads == 0 else {
            throw .invalidModel("textHidden (\(textHidden)) must split into textHeads (\(textHeads))")
        }
        guard patchSize > 0, channels > 0, maxTextTokens > 0, timeEmbedding > 0, timeEmbedding % 2 == 0 else {
            throw .invalidModel("patchSize, channels, maxTextTokens and an even timeEmbedding must be positive")
        }
        guard doubleBlocks >= 0, singleBlocks >= 0, doubleBlocks + singleBlocks > 0, textLayers >= 0 else {
            throw .invalidModel("needs at least one transformer block")
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
        list.append(("text.embed", [vocabulary, t]))
        list.append(("text.position", [maxTextTokens, t]))
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
        return imageTokens * patchDim * d + textTokens * textHidden * d + doubleBlocks * double
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
