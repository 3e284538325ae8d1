/// A zero-initialised float allocation owned by one computation.
final class Buffer {
    let p: UnsafeMutablePointer<Float>
    let count: Int

    init(_ count: Int) {
        self.count = count
        p = .allocate(capacity: Swift.max(count, 1))
        p.initialize(repeating: 0, count: Swift.max(count, 1))
    }

    deinit { p.deallocate() }
}

/// One linear layer's parameters (`y = x Wᵀ + b`, W is `[output, input]`).
struct Linear {
    let weight: UnsafePointer<Float>
    let bias: UnsafePointer<Float>
    let input: Int
    let output: Int

    init(_ weights: Weights, _ name: String) {
        weight = weights.pointer("\(name).weight")
        bias = weights.pointer("\(name).bias")
        let shape = weights.layout["\(name).weight"]!.shape
        output = shape[0]
        input = shape[1]
    }

    /// `out[rows × output] = x[rows × input] Wᵀ + b`.
    func callAsFunction(
        _ x: UnsafePointer<Float>, rows: Int, ldx: Int? = nil, out: UnsafeMutablePointer<Float>, ldo: Int? = nil
    ) {
        apply(x, rows: rows, ldx: ldx ?? input, outputRows: 0..<output, out: out, ldo: ldo ?? output)
    }

    /// The part of the layer that produces outputs `outputRows` only.
    func apply(
        _ x: UnsafePointer<Float>, rows: Int, ldx: Int, outputRows: Range<Int>, out: UnsafeMutablePointer<Float>,
        ldo: Int
    ) {
        guard rows > 0 else { return }
        BLAS.sgemm(
            transB: true, m: rows, n: outputRows.count, k: input, a: x, lda: ldx,
            b: weight + outputRows.lowerBound * input, ldb: input, c: out, ldc: ldo)
        Ops.addBias(out, rows: rows, dim: outputRows.count, ld: ldo, bias: bias + outputRows.lowerBound)
    }
}
