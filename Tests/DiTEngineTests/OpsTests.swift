import Foundation
import Testing

@testable import DiTEngine

/// Random values in [-scale, scale] from a fixed seed.
func randomValues(_ count: Int, seed: UInt64, scale: Float = 1) -> [Float] {
    var rng = SplitMix64(seed: seed)
    return (0..<count).map { _ in (rng.nextUniform() * 2 - 1) * scale }
}

func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}

/// max |a − b| / max |b|: the normwise relative error used for the exactness checks.
func relativeError(_ a: [Float], _ b: [Float]) -> Float {
    let scale = b.reduce(0) { max($0, abs($1)) }
    return maxAbsDiff(a, b) / max(scale, 1e-30)
}

@Suite struct OpsTests {
    @Test func expMatchesFoundation() {
        let xs = randomValues(4096, seed: 1, scale: 80)
        for x in xs {
            let want = Foundation.exp(Double(x))
            let got = Double(Ops.exp(x))
            #expect(abs(got - want) <= 4e-7 * want)
        }
        #expect(Ops.exp(-200) < 1.2e-38)
        #expect(Ops.exp(200) > 1e38)
        #expect(Ops.exp(Float(0)) == 1)
    }

    @Test(arguments: [(1, 5), (3, 16), (4, 37), (2, 128)])
    func softmaxMatchesReference(rows: Int, cols: Int) {
        var x = randomValues(rows * (cols + 3), seed: UInt64(rows * cols), scale: 10)
        let original = x
        x.withUnsafeMutableBufferPointer { Ops.softmaxRows($0.baseAddress!, rows: rows, cols: cols, ld: cols + 3) }
        for r in 0..<rows {
            let row = original[(r * (cols + 3))..<(r * (cols + 3) + cols)].map(Double.init)
            let m = row.max()!
            let e = row.map { Foundation.exp($0 - m) }
            let s = e.reduce(0, +)
            for c in 0..<cols {
                #expect(abs(Double(x[r * (cols + 3) + c]) - e[c] / s) < 1e-6)
            }
            // Padding columns are untouched.
            for c in cols..<(cols + 3) { #expect(x[r * (cols + 3) + c] == original[r * (cols + 3) + c]) }
        }
    }

    @Test func layerNormMatchesReference() {
        let rows = 5
        let dim = 24
        let x = randomValues(rows * dim, seed: 7, scale: 3)
        let w = randomValues(dim, seed: 8)
        let b = randomValues(dim, seed: 9)
        var out = [Float](repeating: 0, count: rows * dim)
        x.withUnsafeBufferPointer { xp in
            out.withUnsafeMutableBufferPointer { op in
                Ops.layerNorm(
                    xp.baseAddress!, rows: rows, dim: dim, ld: dim, out: op.baseAddress!, ldo: dim, weight: w, bias: b)
            }
        }
        for r in 0..<rows {
            let row = x[(r * dim)..<((r + 1) * dim)].map(Double.init)
            let mean = row.reduce(0, +) / Double(dim)
            let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(dim)
            for i in 0..<dim {
                let want = (row[i] - mean) / (variance + 1e-6).squareRoot() * Double(w[i]) + Double(b[i])
                #expect(abs(Double(out[r * dim + i]) - want) < 1e-5)
            }
        }
    }

    @Test func rmsNormPerHeadMatchesReference() {
        let rows = 3
        let heads = 2
        let dim = 8
        let ld = 20
        var x = randomValues(rows * ld, seed: 11, scale: 2)
        let original = x
        let w = randomValues(dim, seed: 12)
        x.withUnsafeMutableBufferPointer {
            Ops.rmsNorm($0.baseAddress!, rows: rows, groups: heads, dim: dim, ld: ld, weight: w)
        }
        for r in 0..<rows {
            for h in 0..<heads {
                let v = (0..<dim).map { Double(original[r * ld + h * dim + $0]) }
                let rms = (v.map { $0 * $0 }.reduce(0, +) / Double(dim) + 1e-6).squareRoot()
                for i in 0..<dim {
                    #expect(abs(Double(x[r * ld + h * dim + i]) - v[i] / rms * Double(w[i])) < 1e-5)
                }
            }
            for i in (heads * dim)..<ld { #expect(x[r * ld + i] == original[r * ld + i]) }
        }
    }

    @Test func geluAndSiluMatchReference() {
        var g = randomValues(100, seed: 13, scale: 6)
        var s = g
        let original = g
        g.withUnsafeMutableBufferPointer { Ops.gelu($0.baseAddress!, count: 100) }
        s.withUnsafeMutableBufferPointer { Ops.silu($0.baseAddress!, count: 100) }
        for (i, x) in original.map(Double.init).enumerated() {
            let gelu = 0.5 * x * (1 + Foundation.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))
            #expect(abs(Double(g[i]) - gelu) < 1e-5)
            #expect(abs(Double(s[i]) - x / (1 + Foundation.exp(-x))) < 1e-5)
        }
    }

    @Test func modulationMatchesReference() {
        let rows = 4
        let dim = 10
        var x = randomValues(rows * dim, seed: 14)
        let original = x
        let shift = randomValues(dim, seed: 15)
        let scale = randomValues(dim, seed: 16)
        x.withUnsafeMutableBufferPointer {
            Ops.modulate($0.baseAddress!, rows: rows, dim: dim, ld: dim, shift: shift, scale: scale)
        }
        for r in 0..<rows {
            for i in 0..<dim {
                #expect(abs(x[r * dim + i] - (original[r * dim + i] * (1 + scale[i]) + shift[i])) < 1e-6)
            }
        }
    }

    @Test func ropeMatchesComplexRotation() {
        let headDim = 16
        let heads = 2
        let positions: [(row: Double, col: Double)] = [(0, 0), (3, 5), (7, 1), (2.75, 0.5)]
        let ld = heads * headDim
        var x = randomValues(positions.count * ld, seed: 17)
        let original = x
        let (c, s) = Ops.rope2DTable(rows: positions, headDim: headDim, theta: 10_000)
        x.withUnsafeMutableBufferPointer {
            Ops.applyRope(
                $0.baseAddress!, rows: positions.count, heads: heads, headDim: headDim, ld: ld, cos: c, sin: s)
        }
        for (t, pos) in positions.enumerated() {
            for h in 0..<heads {
                for pair in 0..<(headDim / 2) {
                    // First half of the pairs rotate with the row, second half with the column.
                    let axisPairs = headDim / 4
                    let i = pair % axisPairs
                    let p = pair < axisPairs ? pos.row : pos.col
                    let angle = Double(p) * Foundation.pow(10_000, -Double(2 * i) / Double(headDim / 2))
                    let a = Double(original[t * ld + h * headDim + 2 * pair])
                    let b = Double(original[t * ld + h * headDim + 2 * pair + 1])
                    let wantA = a * Foundation.cos(angle) - b * Foundation.sin(angle)
                    let wantB = a * Foundation.sin(angle) + b * Foundation.cos(angle)
                    #expect(abs(Double(x[t * ld + h * headDim + 2 * pair]) - wantA) < 1e-5)
                    #expect(abs(Double(x[t * ld + h * headDim + 2 * pair + 1]) - wantB) < 1e-5)
                }
            }
        }
        // Position (0, 0) is the identity.
        #expect(maxAbsDiff(Array(x[0..<ld]), Array(original[0..<ld])) < 1e-7)
    }

    @Test(arguments: [(1, 1), (7, 2), (130, 3), (257, 1)])
    func attentionMatchesNaiveReference(tokens: Int, heads: Int) {
        let hd = 8
        let w = heads * hd
        let q = randomValues(tokens * w, seed: 21, scale: 2)
        let k = randomValues(tokens * w, seed: 22, scale: 2)
        let v = randomValues(tokens * w, seed: 23)
        var out = [Float](repeating: 0, count: tokens * w)
        out.withUnsafeMutableBufferPointer { o in
            Attention.multiHead(
                q: q, k: k, v: v, ld: w, out: o.baseAddress!, ldo: w, tokens: tokens, heads: heads, headDim: hd)
        }
        for h in 0..<heads {
            for i in 0..<tokens {
                var scores = (0..<tokens).map { j in
                    (0..<hd).reduce(0.0) { $0 + Double(q[i * w + h * hd + $1]) * Double(k[j * w + h * hd + $1]) }
                        / Double(hd).squareRoot()
                }
                let m = scores.max()!
                scores = scores.map { Foundation.exp($0 - m) }
                let sum = scores.reduce(0, +)
                for c in 0..<hd {
                    let want = (0..<tokens).reduce(0.0) { $0 + scores[$1] / sum * Double(v[$1 * w + h * hd + c]) }
                    #expect(abs(Double(out[i * w + h * hd + c]) - want) < 1e-5)
                }
            }
        }
    }

    @Test func shardRangesCoverEvenlyInOrder() {
        for count in 0..<20 {
            for parts in 1...6 {
                let ranges = (0..<parts).map { shardRange(count: count, parts: parts, index: $0) }
                #expect(ranges.first!.lowerBound == 0)
                #expect(ranges.last!.upperBound == count)
                for i in 1..<parts { #expect(ranges[i].lowerBound == ranges[i - 1].upperBound) }
                let sizes = ranges.map(\.count)
                #expect(sizes.max()! - sizes.min()! <= 1)
            }
        }
    }
}
