import Foundation

/// Vectorised element-wise and row-wise kernels on raw row-major float buffers.
///
/// Every kernel works on `UnsafeMutablePointer<Float>` with an explicit row count, width and
/// leading dimension, so that callers can apply them to slices of larger buffers (one head's
/// columns, one shard's rows) without copies.
public enum Ops {
    typealias V = SIMD16<Float>
    static let width = 16

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> V {
        UnsafeRawPointer(p).loadUnaligned(as: V.self)
    }

    @inline(__always)
    static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self)
    }

    /// Lanes of `b` where `a < b`, else of `a`. The mask comes from the sign bit of `a − b`
    /// (exact under IEEE rounding) rather than a vector comparison, whose mask type compiles to
    /// slow per-lane code for 16-lane vectors.
    @inline(__always)
    static func lanewiseMax(_ a: V, _ b: V) -> V {
        let m = unsafeBitCast(a - b, to: SIMD16<Int32>.self) &>> 31
        let ai = unsafeBitCast(a, to: SIMD16<Int32>.self)
        let bi = unsafeBitCast(b, to: SIMD16<Int32>.self)
        return unsafeBitCast((ai & ~m) | (bi & m), to: V.self)
    }

    /// Lanes of `b` where `b < a`, else of `a` (see ``lanewiseMax(_:_:)``).
    @inline(__always)
    static func lanewiseMin(_ a: V, _ b: V) -> V {
        let m = unsafeBitCast(b - a, to: SIMD16<Int32>.self) &>> 31
        let ai = unsafeBitCast(a, to: SIMD16<Int32>.self)
        let bi = unsafeBitCast(b, to: SIMD16<Int32>.self)
        return unsafeBitCast((ai & ~m) | (bi & m), to: V.self)
    }

    /// `e^x` for 16 lanes (Cephes-style range reduction and a degree-6 polynomial, about 2 ulp;
    /// inputs are clamped to [-87.3, 88.3], so far-negative inputs give about 1e-38 instead of 0
    /// and far-positive ones about 2.4e38 instead of +inf).
    @inline(__always)
    public static func exp(_ x: SIMD16<Float>) -> SIMD16<Float> {
        let hi = V(repeating: 88.3762626647949)
        let lo = V(repeating: -87.3365478515625)
        let xc = lanewiseMin(lanewiseMax(x, lo), hi)
        // Adding 1.5·2²³ rounds x·log2(e) to the nearest integer n and leaves n in the low
        // mantissa bits, so no float-to-integer conversion is needed.
        let magic = V(repeating: 12_582_912)
        let shifted = xc * V(repeating: 1.44269504088896341) + magic
        let n = shifted - magic
        var r = xc - n * V(repeating: 0.693359375)
        r = r + n * V(repeating: 2.12194440e-4)
        var p = V(repeating: 1.9875691500e-4)
        p = p * r + V(repeating: 1.3981999507e-3)
        p = p * r + V(repeating: 8.3334519073e-3)
        p = p * r + V(repeating: 4.1665795894e-2)
        p = p * r + V(repeating: 1.6666665459e-1)
        p = p * r + V(repeating: 5.0000001201e-1)
        let r2 = r * r
        let poly = p * r2 + r + V(repeating: 1)
        let ni = unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- SIMD16<Int32>(repeating: 0x4B40_0000)
        let scale = unsafeBitCast((ni &+ SIMD16<Int32>(repeating: 127)) &<< 23, to: V.self)
        return poly * scale
    }

    /// Scalar `e^x` through the same approximation as the vector one.
    @inline(__always)
    public static func exp(_ x: Float) -> Float {
        exp(V(repeating: x))[0]
    }

    /// Applies `body` to `count` floats in place, 16 at a time, with a padded tail.
    @inline(__always)
    static func map(_ p: UnsafeMutablePointer<Float>, count: Int, _ body: (V) -> V) {
        var i = 0
        while i + width <= count {
            store(body(load(p + i)), p + i)
            i += width
        }
        if i < count {
            var tail = V(repeating: 0)
            for j in 0..<(count - i) { tail[j] = p[i + j] }
            let out = body(tail)
            for j in 0..<(count - i) { p[i + j] = out[j] }
        }
    }

    /// In-place softmax of each of `rows` rows of `cols` values (row stride `ld`).
    public static func softmaxRows(_ p: UnsafeMutablePointer<Float>, rows: Int, cols: Int, ld: Int) {
        var sums = [Float](repeating: 0, count: rows)
        sums.withUnsafeMutableBufferPointer { s in
            expShiftedRows(p, rows: rows, cols: cols, ld: ld, sums: s.baseAddress!)
        }
        for r in 0..<rows {
            let inv = 1 / sums[r]
            map(p + r * ld, count: cols) { $0 * V(repeating: inv) }
        }
    }

    /// The unnormalised softmax: replaces each row `x` by `e^(x − max x)` and stores the row's
    /// sum in `sums[r]` (dividing by it later, on a narrower product, finishes the softmax).
    public static func expShiftedRows(
        _ p: UnsafeMutablePointer<Float>, rows: Int, cols: Int, ld: Int, sums: UnsafeMutablePointer<Float>
    ) {
        for r in 0..<rows {
            let row = p + r * ld
            var mv = V(repeating: -.infinity)
            var i = 0
            while i + width <= cols {
                mv = lanewiseMax(mv, load(row + i))
                i += width
            }
            var m = mv.max()
            while i < cols {
                m = Swift.max(m, row[i])
                i += 1
            }
            let mb = V(repeating: m)
            var sv = V(repeating: 0)
            i = 0
            while i + width <= cols {
                let e = exp(load(row + i) - mb)
                store(e, row + i)
                sv += e
                i += width
            }
            var s = sv.sum()
            while i < cols {
                let e = exp(row[i] - m)
                row[i] = e
                s += e
                i += 1
            }
            sums[r] = s
        }
    }

    /// Layer norm of each row over `dim` values (row stride `ld`), written to `out` (stride
    /// `ldo`), with optional per-channel `weight` and `bias`.
    public static func layerNorm(
        _ x: UnsafePointer<Float>, rows: Int, dim: Int, ld: Int, out: UnsafeMutablePointer<Float>, ldo: Int,
        weight: UnsafePointer<Float>? = nil, bias: UnsafePointer<Float>? = nil, eps: Float = 1e-6
    ) {
        for r in 0..<rows {
            let row = x + r * ld
            let o = out + r * ldo
            var sum: Float = 0
            for i in 0..<dim { sum += row[i] }
            let mean = sum / Float(dim)
            var sq: Float = 0
            for i in 0..<dim {
                let d = row[i] - mean
                sq += d * d
            }
            let inv = 1 / (sq / Float(dim) + eps).squareRoot()
            for i in 0..<dim { o[i] = (row[i] - mean) * inv }
            if let weight {
                for i in 0..<dim { o[i] *= weight[i] }
            }
            if let bias {
                for i in 0..<dim { o[i] += bias[i] }
            }
        }
    }

    /// In-place RMS norm with a learned `weight`, over each of `groups` consecutive runs of `dim`
    /// values in each row (one run per attention head).
    public static func rmsNorm(
        _ x: UnsafeMutablePointer<Float>, rows: Int, groups: Int, dim: Int, ld: Int,
        weight: UnsafePointer<Float>, eps: Float = 1e-6
    ) {
        for r in 0..<rows {
            for g in 0..<groups {
                let v = x + r * ld + g * dim
                var sq: Float = 0
                for i in 0..<dim { sq += v[i] * v[i] }
                let inv = 1 / (sq / Float(dim) + eps).squareRoot()
                for i in 0..<dim { v[i] = v[i] * inv * weight[i] }
            }
        }
    }

    /// In-place GELU (tanh approximation) of `count` values.
    public static func gelu(_ p: UnsafeMutablePointer<Float>, count: Int) {
        let c = V(repeating: 0.7978845608028654)
        let k = V(repeating: 0.044715)
        map(p, count: count) { x in
            let u = c * (x + k * x * x * x)
            let e = exp(V(repeating: 2) * u)
            let t = V(repeating: 1) - V(repeating: 2) / (e + V(repeating: 1))
            return V(repeating: 0.5) * x * (V(repeating: 1) + t)
        }
    }

    /// In-place SiLU (`x · sigmoid(x)`) of `count` values.
    public static func silu(_ p: UnsafeMutablePointer<Float>, count: Int) {
        map(p, count: count) { x in x / (V(repeating: 1) + exp(-x)) }
    }

    /// `x[r] = x[r] · (1 + scale) + shift` for each of `rows` rows of `dim` values (stride `ld`).
    public static func modulate(
        _ x: UnsafeMutablePointer<Float>, rows: Int, dim: Int, ld: Int,
        shift: UnsafePointer<Float>, scale: UnsafePointer<Float>
    ) {
        for r in 0..<rows {
            let row = x + r * ld
            for i in 0..<dim { row[i] = row[i] * (1 + scale[i]) + shift[i] }
        }
    }

    /// `x[r] += gate ⊙ delta[r]` (gate optional) for `rows` rows of `dim` values.
    public static func addGated(
        _ x: UnsafeMutablePointer<Float>, ldx: Int, _ delta: UnsafePointer<Float>, ldd: Int, rows: Int, dim: Int,
        gate: UnsafePointer<Float>?
    ) {
        for r in 0..<rows {
            let xr = x + r * ldx
            let dr = delta + r * ldd
            if let gate {
                for i in 0..<dim { xr[i] += gate[i] * dr[i] }
            } else {
                for i in 0..<dim { xr[i] += dr[i] }
            }
        }
    }

    /// Adds `bias` (length `dim`) to each of `rows` rows (stride `ld`).
    public static func addBias(
        _ x: UnsafeMutablePointer<Float>, rows: Int, dim: Int, ld: Int, bias: UnsafePointer<Float>
    ) {
        for r in 0..<rows {
            let row = x + r * ld
            for i in 0..<dim { row[i] += bias[i] }
        }
    }

    /// Rotary position tables for 2D positions: for each token, `headDim / 2` (cos, sin) pairs;
    /// the first half of a head's dimensions rotates with the row, the second with the column.
    public static func rope2DTable(
        rows positions: [(row: Double, col: Double)], headDim: Int, theta: Float = 10_000
    ) -> (cos: [Float], sin: [Float]) {
        let pairs = headDim / 2
        let perAxis = pairs / 2
        var cosT = [Float](repeating: 1, count: positions.count * pairs)
        var sinT = [Float](repeating: 0, count: positions.count * pairs)
        for (t, pos) in positions.enumerated() {
            for i in 0..<perAxis {
                let freq = Foundation.pow(Double(theta), -Double(2 * i) / Double(headDim / 2))
                let a = pos.row * freq
                let b = pos.col * freq
                cosT[t * pairs + i] = Float(Foundation.cos(a))
                sinT[t * pairs + i] = Float(Foundation.sin(a))
                cosT[t * pairs + perAxis + i] = Float(Foundation.cos(b))
                sinT[t * pairs + perAxis + i] = Float(Foundation.sin(b))
            }
        }
        return (cosT, sinT)
    }

    /// Rotary position table for 1D positions `0..<count` (the text encoder's `rope` positions):
    /// for each token, `headDim / 2` (cos, sin) pairs, pair j of token i at angle
    /// `i · theta^(−2j / headDim)`.
    public static func rope1DTable(count: Int, headDim: Int, theta: Float = 10_000) -> (cos: [Float], sin: [Float]) {
        let pairs = headDim / 2
        let freq = (0..<pairs).map { Foundation.pow(Double(theta), -Double(2 * $0) / Double(headDim)) }
        var cosT = [Float](repeating: 1, count: count * pairs)
        var sinT = [Float](repeating: 0, count: count * pairs)
        for t in 0..<count {
            for j in 0..<pairs {
                let a = Double(t) * freq[j]
                cosT[t * pairs + j] = Float(Foundation.cos(a))
                sinT[t * pairs + j] = Float(Foundation.sin(a))
            }
        }
        return (cosT, sinT)
    }

    /// Rotates each head's adjacent pairs `(x[2i], x[2i+1])` of `rows` tokens by the angles in a
    /// table from ``rope2DTable(rows:headDim:theta:)`` or ``rope1DTable(count:headDim:theta:)``.
    public static func applyRope(
        _ x: UnsafeMutablePointer<Float>, rows: Int, heads: Int, headDim: Int, ld: Int,
        cos: UnsafePointer<Float>, sin: UnsafePointer<Float>
    ) {
        let pairs = headDim / 2
        for r in 0..<rows {
            let c = cos + r * pairs
            let s = sin + r * pairs
            for h in 0..<heads {
                let v = x + r * ld + h * headDim
                for i in 0..<pairs {
                    let a = v[2 * i]
                    let b = v[2 * i + 1]
                    v[2 * i] = a * c[i] - b * s[i]
                    v[2 * i + 1] = a * s[i] + b * c[i]
                }
            }
        }
    }
}
