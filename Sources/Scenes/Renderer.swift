import Foundation

/// Draws scenes at any resolution, anti-aliased by supersampling each pixel near the object
/// (`samples × samples` points a pixel; coverage blends object and background colour).
public enum Renderer {
    /// Supersampling points per pixel side.
    public static let samples = 4

    /// The `height × width × 3` RGB bytes (row-major) of `scene`.
    public static func render(_ scene: Scene, width: Int, height: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: width * height * 3)
        out.withUnsafeMutableBufferPointer { render(scene, width: width, height: height, into: $0) }
        return out
    }

    /// Renders `scene` into `out` (`width × height × 3` bytes).
    public static func render(
        _ scene: Scene, width: Int, height: Int, into out: UnsafeMutableBufferPointer<UInt8>
    ) {
        precondition(out.count == width * height * 3)
        let bg = scene.background.rgb
        let fg = scene.color.rgb
        for i in 0..<(width * height) {
            out[3 * i] = bg.0
            out[3 * i + 1] = bg.1
            out[3 * i + 2] = bg.2
        }
        let placement = Placement(scene, width: width, height: height)
        let coverage = placement.coverage(width: width, height: height)
        for (index, c) in coverage where c > 0 {
            out[3 * index] = blend(bg.0, fg.0, c)
            out[3 * index + 1] = blend(bg.1, fg.1, c)
            out[3 * index + 2] = blend(bg.2, fg.2, c)
        }
    }

    static func blend(_ a: UInt8, _ b: UInt8, _ t: Float) -> UInt8 {
        UInt8((Float(a) + (Float(b) - Float(a)) * t).rounded())
    }
}

/// Where a shape lies on a canvas: its centre and radius in pixels.
struct Placement {
    var shape: Shape
    var cx: Double
    var cy: Double
    var radius: Double

    init(shape: Shape, cx: Double, cy: Double, radius: Double) {
        self.shape = shape
        self.cx = cx
        self.cy = cy
        self.radius = radius
    }

    init(_ scene: Scene, width: Int, height: Int) {
        let anchor = scene.position.anchor
        self.init(
            shape: scene.shape, cx: anchor.x * Double(width), cy: anchor.y * Double(height),
            radius: scene.size.radius * Double(min(width, height)))
    }

    /// The fraction of each pixel the shape covers, for the pixels it touches (index = y·width + x).
    func coverage(width: Int, height: Int) -> [(Int, Float)] {
        let extent = radius * ShapeGeometry.extent(shape)
        let x0 = max(0, Int((cx - extent).rounded(.down)))
        let x1 = min(width - 1, Int((cx + extent).rounded(.up)))
        let y0 = max(0, Int((cy - extent).rounded(.down)))
        let y1 = min(height - 1, Int((cy + extent).rounded(.up)))
        guard x0 <= x1, y0 <= y1 else { return [] }
        let n = Renderer.samples
        let step = 1.0 / Double(n)
        let scale = 1.0 / radius
        var result = [(Int, Float)]()
        result.reserveCapacity((x1 - x0 + 1) * (y1 - y0 + 1))
        for y in y0...y1 {
            for x in x0...x1 {
                var hits = 0
                for sy in 0..<n {
                    let uy = (Double(y) + (Double(sy) + 0.5) * step - cy) * scale
                    for sx in 0..<n {
                        let ux = (Double(x) + (Double(sx) + 0.5) * step - cx) * scale
                        if ShapeGeometry.contains(shape, ux, uy) { hits += 1 }
                    }
                }
                if hits > 0 { result.append((y * width + x, Float(hits) / Float(n * n))) }
            }
        }
        return result
    }
}

/// The shapes in unit coordinates: centre (0, 0), radius 1, y downwards. Every shape's area
/// centroid is its centre.
enum ShapeGeometry {
    static let squareHalfSide = 0.85
    static let triangleRadius = 1.15
    static let ringInner = 0.55
    static let starOuter = 1.1
    static let starInner = 0.45

    /// A radius in unit coordinates outside which no shape has points.
    static func extent(_ shape: Shape) -> Double {
        switch shape {
        case .circle, .ring: 1
        case .square: squareHalfSide
        case .triangle: triangleRadius
        case .star: starOuter
        }
    }

    static let triangle: [(Double, Double)] = (0..<3).map { k in
        let a = -Double.pi / 2 + Double(k) * 2 * Double.pi / 3
        return (triangleRadius * cos(a), triangleRadius * sin(a))
    }

    static let star: [(Double, Double)] = (0..<10).map { k in
        let a = -Double.pi / 2 + Double(k) * Double.pi / 5
        let r = k % 2 == 0 ? starOuter : starInner
        return (r * cos(a), r * sin(a))
    }

    /// Whether (x, y) lies to the left of (or on) the directed edge a → b in y-down coordinates,
    /// the inside of a clockwise-on-screen polygon.
    @inline(__always)
    static func inside(_ a: (Double, Double), _ b: (Double, Double), _ x: Double, _ y: Double) -> Bool {
        (b.0 - a.0) * (y - a.1) - (b.1 - a.1) * (x - a.0) >= 0
    }

    static func contains(_ shape: Shape, _ x: Double, _ y: Double) -> Bool {
        switch shape {
        case .circle:
            return x * x + y * y <= 1
        case .ring:
            let d = x * x + y * y
            return d <= 1 && d >= ringInner * ringInner
        case .square:
            return abs(x) <= squareHalfSide && abs(y) <= squareHalfSide
        case .triangle:
            let t = triangle
            return inside(t[0], t[1], x, y) && inside(t[1], t[2], x, y) && inside(t[2], t[0], x, y)
        case .star:
            if x * x + y * y > starOuter * starOuter { return false }
            // The sector between two consecutive vertices, then the edge that bounds it.
            var angle = atan2(y, x) + Double.pi / 2
            if angle < 0 { angle += 2 * Double.pi }
            let k = min(9, Int(angle / (Double.pi / 5)))
            return inside(star[k], star[(k + 1) % 10], x, y)
        }
    }

    /// The shape's area in unit coordinates (measured on a fine grid, cached).
    static let unitArea: [Shape: Double] = Dictionary(
        uniqueKeysWithValues: Shape.allCases.map { shape in
            let n = 600
            let e = extent(shape)
            var hits = 0
            for j in 0..<n {
                let y = -e + (Double(j) + 0.5) * 2 * e / Double(n)
                for i in 0..<n {
                    let x = -e + (Double(i) + 0.5) * 2 * e / Double(n)
                    if contains(shape, x, y) { hits += 1 }
                }
            }
            return (shape, Double(hits) / Double(n * n) * 4 * e * e)
        })
}
