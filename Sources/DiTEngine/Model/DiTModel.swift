import Foundation

/// The shape of one request's token sequence: text tokens, then the image patch grid.
public struct SequenceGeometry: Sendable, Equatable, Codable {
    public var textTokens: Int
    public var columns: Int
    public var rows: Int

    public init(textTokens: Int, columns: Int, rows: Int) {
        self.textTokens = textTokens
        self.columns = columns
        self.rows = rows
    }

    public var imageTokens: Int { columns * rows }
    public var tokens: Int { textTokens + imageTokens }
}

/// A FLUX-style MMDiT: a byte-level text encoder, double-stream blocks (separate text and image
/// weights, joint attention), single-stream blocks, 2D RoPE on image tokens, and adaLN modulation
/// from a sinusoidal timestep embedding plus the pooled text vector.
///
/// ``step(context:geometry:text:pooled:latent:t:tNext:)`` runs one Euler step for one rank of a
/// sequence-parallel group (Ulysses attention); with a group of one it is the plain model.
/// Immutable after initialisation, so ranks on several threads may share one instance.
public final class DiTModel: @unchecked Sendable {
    public let config: ModelConfig
    public let weights: Weights

    struct Stream {
        let mod: Linear
        let qkv: Linear
        let proj: Linear
        let mlp1: Linear
        let mlp2: Linear
        let queryNorm: UnsafePointer<Float>
        let keyNorm: UnsafePointer<Float>

        init(_ w: Weights, _ p: String) {
            mod = Linear(w, "\(p).mod")
            qkv = Linear(w, "\(p).qkv")
            proj = Linear(w, "\(p).proj")
            mlp1 = Linear(w, "\(p).mlp1")
            mlp2 = Linear(w, "\(p).mlp2")
            queryNorm = w.pointer("\(p).query_norm.weight")
            keyNorm = w.pointer("\(p).key_norm.weight")
        }
    }

    struct SingleBlock {
        let mod: Linear
        let linear1: Linear
        let linear2: Linear
        let queryNorm: UnsafePointer<Float>
        let keyNorm: UnsafePointer<Float>
    }

    struct TextLayer {
        let norm1: (UnsafePointer<Float>, UnsafePointer<Float>)
        let qkv: Linear
        let proj: Linear
        let norm2: (UnsafePointer<Float>, UnsafePointer<Float>)
        let mlp1: Linear
        let mlp2: Linear
    }

    let doubles: [(img: Stream, txt: Stream)]
    let singles: [SingleBlock]
    let textLayers: [TextLayer]
    let imgIn: Linear
    /// The projection of the canvas-position features (models with `positionFrequencies > 0`).
    let posIn: Linear?
    let txtIn: Linear
    let timeIn: (Linear, Linear)
    let vectorIn: (Linear, Linear)
    let finalMod: Linear
    let finalLinear: Linear
    /// Word → token id of the `words` tokenizer.
    let wordIds: [String: Int]

    public init(weights: Weights) throws {
        try weights.config.validate()
        config = weights.config
        self.weights = weights
        let w = weights
        doubles = (0..<config.doubleBlocks).map { (Stream(w, "double.\($0).img"), Stream(w, "double.\($0).txt")) }
        singles = (0..<config.singleBlocks).map {
            SingleBlock(
                mod: Linear(w, "single.\($0).mod"), linear1: Linear(w, "single.\($0).linear1"),
                linear2: Linear(w, "single.\($0).linear2"), queryNorm: w.pointer("single.\($0).query_norm.weight"),
                keyNorm: w.pointer("single.\($0).key_norm.weight"))
        }
        textLayers = (0..<config.textLayers).map {
            let p = "text.layers.\($0)"
            return TextLayer(
                norm1: (w.pointer("\(p).norm1.weight"), w.pointer("\(p).norm1.bias")), qkv: Linear(w, "\(p).qkv"),
                proj: Linear(w, "\(p).proj"), norm2: (w.pointer("\(p).norm2.weight"), w.pointer("\(p).norm2.bias")),
                mlp1: Linear(w, "\(p).mlp1"), mlp2: Linear(w, "\(p).mlp2"))
        }
        imgIn = Linear(w, "img_in")
        posIn = config.positionFrequencies > 0 ? Linear(w, "pos_in") : nil
        txtIn = Linear(w, "txt_in")
        timeIn = (Linear(w, "time_in.in"), Linear(w, "time_in.out"))
        vectorIn = (Linear(w, "vector_in.in"), Linear(w, "vector_in.out"))
        finalMod = Linear(w, "final.mod")
        finalLinear = Linear(w, "final.linear")
        var ids: [String: Int] = [:]
        for (i, word) in config.vocabulary.enumerated() where ids[word] == nil { ids[word] = i + 1 }
        wordIds = ids
    }

    /// A model with seeded weights.
    public convenience init(config: ModelConfig, seed: UInt64) throws {
        try config.validate()
        try self.init(weights: Weights(config: config, seed: seed))
    }

    // MARK: Text encoder

    /// Token ids of a prompt, truncated to `maxTextTokens`: with the `bytes` tokenizer a start
    /// token (256), then its UTF-8 bytes; with `words` a start token (0), then the ids of its known
    /// words (see ``DiTModel/words(_:)``; unknown words are dropped).
    public func tokenize(_ prompt: String) -> [Int] {
        switch config.tokenizer {
        case .bytes:
            return Array(([256] + prompt.utf8.map(Int.init)).prefix(config.maxTextTokens))
        case .words:
            return Array(([0] + DiTModel.words(prompt).compactMap { wordIds[$0] }).prefix(config.maxTextTokens))
        }
    }

    /// The words of a prompt: lower-cased, split on every character that is not an ASCII letter
    /// or digit.
    public static func words(_ text: String) -> [String] {
        var result: [String] = []
        var current = ""
        for ch in text.lowercased().unicodeScalars {
            if ch.isASCII, ("a"..."z").contains(ch) || ("0"..."9").contains(ch) {
                current.unicodeScalars.append(ch)
            } else if !current.isEmpty {
                result.append(current)
                current = ""
            }
        }
        if !current.isEmpty { result.append(current) }
        return result
    }

    /// The text encoder's per-token output (`tokens × textHidden`) and pooled vector (their mean).
    public func encodeText(_ prompt: String) -> (hidden: [Float], pooled: [Float]) {
        let ids = tokenize(prompt)
        let n = ids.count
        let d = config.textHidden
        let x = Buffer(n * d)
        let hd = d / config.textHeads
        let embed = weights.pointer("text.embed")
        for (i, id) in ids.enumerated() {
            for j in 0..<d { x.p[i * d + j] = embed[id * d + j] }
        }
        if config.textPositions == .learned {
            let position = weights.pointer("text.position")
            for i in 0..<n {
                for j in 0..<d { x.p[i * d + j] += position[i * d + j] }
            }
        }
        let (cosT, sinT) =
            config.textPositions == .rope
            ? Ops.rope1DTable(count: n, headDim: hd, theta: config.ropeTheta) : ([], [])
        let h = Buffer(n * d)
        let qkv = Buffer(n * 3 * d)
        let a = Buffer(n * d)
        let m = Buffer(n * d * config.mlpRatio)
        for layer in textLayers {
            Ops.layerNorm(x.p, rows: n, dim: d, ld: d, out: h.p, ldo: d, weight: layer.norm1.0, bias: layer.norm1.1)
            layer.qkv(h.p, rows: n, out: qkv.p)
            if config.textPositions == .rope {
                cosT.withUnsafeBufferPointer { c in
                    sinT.withUnsafeBufferPointer { s in
                        for base in [qkv.p, qkv.p + d] {
                            Ops.applyRope(
                                base, rows: n, heads: config.textHeads, headDim: hd, ld: 3 * d, cos: c.baseAddress!,
                                sin: s.baseAddress!)
                        }
                    }
                }
            }
            Attention.multiHead(
                q: qkv.p, k: qkv.p + d, v: qkv.p + 2 * d, ld: 3 * d, out: a.p, ldo: d, tokens: n,
                heads: config.textHeads, headDim: hd)
            layer.proj(a.p, rows: n, out: h.p)
            Ops.addGated(x.p, ldx: d, h.p, ldd: d, rows: n, dim: d, gate: nil)
            Ops.layerNorm(x.p, rows: n, dim: d, ld: d, out: h.p, ldo: d, weight: layer.norm2.0, bias: layer.norm2.1)
            layer.mlp1(h.p, rows: n, out: m.p)
            Ops.gelu(m.p, count: n * layer.mlp1.output)
            layer.mlp2(m.p, rows: n, out: h.p)
            Ops.addGated(x.p, ldx: d, h.p, ldd: d, rows: n, dim: d, gate: nil)
        }
        Ops.layerNorm(
            x.p, rows: n, dim: d, ld: d, out: h.p, ldo: d, weight: weights.pointer("text.final_norm.weight"),
            bias: weights.pointer("text.final_norm.bias"))
        let hidden = Array(UnsafeBufferPointer(start: h.p, count: n * d))
        var pooled = [Float](repeating: 0, count: d)
        for i in 0..<n {
            for j in 0..<d { pooled[j] += hidden[i * d + j] }
        }
        for j in 0..<d { pooled[j] /= Float(n) }
        return (hidden, pooled)
    }

    // MARK: Conditioning

    /// The sinusoidal embedding of `t · 1000` (cosines then sines), FLUX's timestep embedding.
    public func timestepEmbedding(_ t: Float) -> [Float] {
        let half = config.timeEmbedding / 2
        var out = [Float](repeating: 0, count: 2 * half)
        for i in 0..<half {
            let freq = Foundation.exp(-Foundation.log(10_000.0) * Double(i) / Double(half))
            let arg = Double(t) * 1000 * freq
            out[i] = Float(Foundation.cos(arg))
            out[half + i] = Float(Foundation.sin(arg))
        }
        return out
    }

    /// `SiLU(vec)` where `vec = MLP(timestep embedding) + MLP(pooled text)`: the input of every
    /// modulation layer.
    func conditioning(t: Float, pooled: UnsafePointer<Float>) -> Buffer {
        let d = config.hidden
        let temb = timestepEmbedding(t)
        let a = Buffer(d)
        let b = Buffer(d)
        let vec = Buffer(d)
        temb.withUnsafeBufferPointer { timeIn.0($0.baseAddress!, rows: 1, out: a.p) }
        Ops.silu(a.p, count: d)
        timeIn.1(a.p, rows: 1, out: vec.p)
        vectorIn.0(pooled, rows: 1, out: a.p)
        Ops.silu(a.p, count: d)
        vectorIn.1(a.p, rows: 1, out: b.p)
        Ops.addGated(vec.p, ldx: d, b.p, ldd: d, rows: 1, dim: d, gate: nil)
        Ops.silu(vec.p, count: d)
        return vec
    }
}
