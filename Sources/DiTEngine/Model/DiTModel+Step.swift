/// How one step's tokens and heads are divided among the ranks of a group.
struct Shards {
    let text: [Range<Int>]
    let image: [Range<Int>]
    let heads: [Range<Int>]

    init(geometry: SequenceGeometry, heads: Int, size: Int) {
        text = (0..<size).map { shardRange(count: geometry.textTokens, parts: size, index: $0) }
        image = (0..<size).map { shardRange(count: geometry.imageTokens, parts: size, index: $0) }
        self.heads = (0..<size).map { shardRange(count: heads, parts: size, index: $0) }
    }
}

extension DiTModel {
    /// One Euler step `x ← x + (tNext − t) · v(x, t)` for the image tokens of this rank (`v` is the
    /// network output, or `(x − x̂) / t` for a model predicting the clean image `x̂`).
    ///
    /// - Parameters:
    ///   - context: this rank's group; its slot A must hold `geometry.tokens × 3 · hidden` floats
    ///     and slot B `geometry.tokens × hidden`.
    ///   - text: the text encoder output of every text token (`textTokens × textHidden`).
    ///   - pooled: the pooled text vector (`textHidden`).
    ///   - latent: the whole latent (`imageTokens × patchDim`) at time `t`; this rank reads only
    ///     its own rows.
    ///   - output: where this rank writes its rows of the latent at `tNext` (may be `latent`
    ///     itself; a separate buffer keeps the step's input intact if the step fails).
    public func step(
        context: SPContext, geometry: SequenceGeometry, text: UnsafePointer<Float>, pooled: UnsafePointer<Float>,
        latent: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, t: Float, tNext: Float
    ) throws {
        let d = config.hidden
        let hd = config.headDim
        let shards = Shards(geometry: geometry, heads: config.heads, size: context.size)
        let txtR = shards.text[context.rank]
        let imgR = shards.image[context.rank]
        let tr = txtR.count
        let ir = imgR.count
        let lr = tr + ir
        let patch = config.patchDim

        let vec = conditioning(t: t, pooled: pooled)
        let positions = imgR.map { config.ropePosition(token: $0, geometry: geometry) }
        let (cosT, sinT) = Ops.rope2DTable(rows: positions, headDim: hd, theta: config.ropeTheta)

        // x holds this rank's tokens: its text rows, then its image rows.
        let x = Buffer(lr * d)
        txtIn(text + txtR.lowerBound * config.textHidden, rows: tr, out: x.p)
        imgIn(latent + imgR.lowerBound * patch, rows: ir, out: x.p + tr * d)
        if let posIn, ir > 0 {
            let features = config.positionFeatures(tokens: imgR, geometry: geometry)
            let embedded = Buffer(ir * d)
            features.withUnsafeBufferPointer { posIn($0.baseAddress!, rows: ir, out: embedded.p) }
            for i in 0..<(ir * d) { x.p[tr * d + i] += embedded.p[i] }
        }

        let xn = Buffer(lr * d)
        let attn = Buffer(lr * d)
        let y = Buffer(lr * d)
        let mlp = Buffer(lr * config.mlpHidden)
        let mod = Buffer(6 * d)
        let modText = Buffer(6 * d)
        let qkv = context.slotA[context.rank]

        func rope(_ base: UnsafeMutablePointer<Float>) {
            cosT.withUnsafeBufferPointer { c in
                sinT.withUnsafeBufferPointer { s in
                    Ops.applyRope(
                        base, rows: ir, heads: config.heads, headDim: hd, ld: 3 * d, cos: c.baseAddress!,
                        sin: s.baseAddress!)
                }
            }
        }

        for (img, txt) in doubles {
            img.mod(vec.p, rows: 1, out: mod.p)
            txt.mod(vec.p, rows: 1, out: modText.p)
            for (stream, m, rows, offset) in [(txt, modText, tr, 0), (img, mod, ir, tr)] {
                let xs = x.p + offset * d
                let xns = xn.p + offset * d
                Ops.layerNorm(xs, rows: rows, dim: d, ld: d, out: xns, ldo: d)
                Ops.modulate(xns, rows: rows, dim: d, ld: d, shift: m.p, scale: m.p + d)
                let q = qkv + offset * 3 * d
                stream.qkv(xns, rows: rows, out: q)
                Ops.rmsNorm(q, rows: rows, groups: config.heads, dim: hd, ld: 3 * d, weight: stream.queryNorm)
                Ops.rmsNorm(q + d, rows: rows, groups: config.heads, dim: hd, ld: 3 * d, weight: stream.keyNorm)
            }
            rope(qkv + tr * 3 * d)
            rope(qkv + tr * 3 * d + d)
            try ulysses(context: context, geometry: geometry, shards: shards, out: attn.p)
            for (stream, m, rows, offset) in [(txt, modText, tr, 0), (img, mod, ir, tr)] {
                let xs = x.p + offset * d
                stream.proj(attn.p + offset * d, rows: rows, out: y.p)
                Ops.addGated(xs, ldx: d, y.p, ldd: d, rows: rows, dim: d, gate: m.p + 2 * d)
                Ops.layerNorm(xs, rows: rows, dim: d, ld: d, out: xn.p, ldo: d)
                Ops.modulate(xn.p, rows: rows, dim: d, ld: d, shift: m.p + 3 * d, scale: m.p + 4 * d)
                stream.mlp1(xn.p, rows: rows, out: mlp.p)
                Ops.gelu(mlp.p, count: rows * config.mlpHidden)
                stream.mlp2(mlp.p, rows: rows, out: y.p)
                Ops.addGated(xs, ldx: d, y.p, ldd: d, rows: rows, dim: d, gate: m.p + 5 * d)
            }
        }

        let hidden = config.mlpHidden
        for block in singles {
            block.mod(vec.p, rows: 1, out: mod.p)
            Ops.layerNorm(x.p, rows: lr, dim: d, ld: d, out: xn.p, ldo: d)
            Ops.modulate(xn.p, rows: lr, dim: d, ld: d, shift: mod.p, scale: mod.p + d)
            block.linear1.apply(xn.p, rows: lr, ldx: d, outputRows: 0..<(3 * d), out: qkv, ldo: 3 * d)
            block.linear1.apply(xn.p, rows: lr, ldx: d, outputRows: (3 * d)..<(3 * d + hidden), out: mlp.p, ldo: hidden)
            Ops.rmsNorm(qkv, rows: lr, groups: config.heads, dim: hd, ld: 3 * d, weight: block.queryNorm)
            Ops.rmsNorm(qkv + d, rows: lr, groups: config.heads, dim: hd, ld: 3 * d, weight: block.keyNorm)
            rope(qkv + tr * 3 * d)
            rope(qkv + tr * 3 * d + d)
            try ulysses(context: context, geometry: geometry, shards: shards, out: attn.p)
            Ops.gelu(mlp.p, count: lr * hidden)
            if lr > 0 {
                let w2 = block.linear2
                BLAS.sgemm(
                    transB: true, m: lr, n: d, k: d, a: attn.p, lda: d, b: w2.weight, ldb: d + hidden, c: y.p, ldc: d)
                BLAS.sgemm(
                    transB: true, m: lr, n: d, k: hidden, a: mlp.p, lda: hidden, b: w2.weight + d, ldb: d + hidden,
                    beta: 1, c: y.p, ldc: d)
                Ops.addBias(y.p, rows: lr, dim: d, ld: d, bias: w2.bias)
            }
            Ops.addGated(x.p, ldx: d, y.p, ldd: d, rows: lr, dim: d, gate: mod.p + 2 * d)
        }

        finalMod(vec.p, rows: 1, out: mod.p)
        Ops.layerNorm(x.p + tr * d, rows: ir, dim: d, ld: d, out: xn.p, ldo: d)
        Ops.modulate(xn.p, rows: ir, dim: d, ld: d, shift: mod.p, scale: mod.p + d)
        let prediction = Buffer(ir * patch)
        finalLinear(xn.p, rows: ir, out: prediction.p)
        let dt = tNext - t
        let mine = latent + imgR.lowerBound * patch
        let out = output + imgR.lowerBound * patch
        switch config.prediction {
        case .velocity:
            for i in 0..<(ir * patch) { out[i] = mine[i] + dt * prediction.p[i] }
        case .x:
            // v = (x_t − x̂) / t makes the Euler step x_next = r·x_t + (1 − r)·x̂ with r = t_next / t,
            // element by element on this rank's own rows.
            let r = tNext / t
            for i in 0..<(ir * patch) { out[i] = r * mine[i] + (1 - r) * prediction.p[i] }
        }
        // No rank leaves (and may start other work that reuses its slots) while a peer can still
        // be reading them.
        try context.barrier()
    }

    /// Ulysses attention: q/k/v of this rank's tokens (all heads) are in its slot A; gathers the
    /// whole sequence for this rank's heads, attends, and gathers this rank's tokens back for all
    /// heads into `out` (`localTokens × hidden`).
    func ulysses(
        context: SPContext, geometry: SequenceGeometry, shards: Shards, out: UnsafeMutablePointer<Float>
    ) throws {
        let d = config.hidden
        let hd = config.headDim
        let l = geometry.tokens
        let lt = geometry.textTokens
        let r = context.rank
        try context.barrier()
        let mine = shards.heads[r]
        let w = mine.count * hd
        if w > 0 {
            let q = Buffer(l * w)
            let k = Buffer(l * w)
            let v = Buffer(l * w)
            for s in 0..<context.size {
                let src = UnsafePointer(context.slotA[s])
                let ts = shards.text[s]
                let local = ts.count + shards.image[s].count
                for i in 0..<local {
                    let g = i < ts.count ? ts.lowerBound + i : lt + shards.image[s].lowerBound + (i - ts.count)
                    let row = src + i * 3 * d + mine.lowerBound * hd
                    (q.p + g * w).update(from: row, count: w)
                    (k.p + g * w).update(from: row + d, count: w)
                    (v.p + g * w).update(from: row + 2 * d, count: w)
                }
            }
            Attention.multiHead(
                q: q.p, k: k.p, v: v.p, ld: w, out: context.slotB[r], ldo: w, tokens: l, heads: mine.count, headDim: hd)
        }
        try context.barrier()
        let tr = shards.text[r]
        let ir = shards.image[r]
        for s in 0..<context.size {
            let heads = shards.heads[s]
            let ws = heads.count * hd
            guard ws > 0 else { continue }
            let src = UnsafePointer(context.slotB[s])
            for i in 0..<(tr.count + ir.count) {
                let g = i < tr.count ? tr.lowerBound + i : lt + ir.lowerBound + (i - tr.count)
                (out + i * d + heads.lowerBound * hd).update(from: src + g * ws, count: ws)
            }
        }
    }
}
