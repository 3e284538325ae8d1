/// Multi-head attention on gathered per-head buffers.
enum Attention {
    /// Query rows processed at once, fixed so that results do not depend on the group size.
    static let queryBlock = 128

    /// For each of `heads` heads, `O_h = softmax(Q_h K_hᵀ / √d) V_h` over `tokens` tokens; Q, K, V
    /// and O hold the heads side by side (`heads · headDim` columns, row strides given).
    static func multiHead(
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, ld: Int,
        out: UnsafeMutablePointer<Float>, ldo: Int, tokens: Int, heads: Int, headDim: Int
    ) {
        guard tokens > 0, heads > 0 else { return }
        let block = Swift.min(queryBlock, tokens)
        let scores = Buffer(block * tokens)
        let sums = Buffer(block)
        let scale = 1 / Float(headDim).squareRoot()
        for h in 0..<heads {
            var r0 = 0
            while r0 < tokens {
                let rows = Swift.min(block, tokens - r0)
                BLAS.sgemm(
                    transB: true, m: rows, n: tokens, k: headDim, alpha: scale, a: q + r0 * ld + h * headDim, lda: ld,
                    b: k + h * headDim, ldb: ld, c: scores.p, ldc: tokens)
                Ops.expShiftedRows(scores.p, rows: rows, cols: tokens, ld: tokens, sums: sums.p)
                let o = out + r0 * ldo + h * headDim
                BLAS.sgemm(
                    m: rows, n: headDim, k: tokens, a: scores.p, lda: tokens, b: v + h * headDim, ldb: ld, c: o,
                    ldc: ldo)
                for r in 0..<rows {
                    let inv = 1 / sums.p[r]
                    let row = o + r * ldo
                    for c in 0..<headDim { row[c] *= inv }
                }
                r0 += rows
            }
        }
    }
}
