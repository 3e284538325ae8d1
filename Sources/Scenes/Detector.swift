/// The attributes of a scene, for scoring.
public enum Attribute: String, CaseIterable, Sendable, Codable {
    case background, color, shape, size, position
}

/// What the detector reads from an image; nil where it finds no object.
public struct Detection: Equatable, Sendable, CustomStringConvertible {
    public var background: SceneColor
    public var color: SceneColor?
    public var shape: Shape?
    public var size: ObjectSize?
    public var position: Position?

    /// The detected scene when every attribute was found.
    public var scene: Scene? {
        guard let color, let shape, let size, let position else { return nil }
        return Scene(shape: shape, color: color, size: size, position: position, background: background)
    }

    /// Whether each attribute matches `scene`.
    public func score(_ scene: Scene) -> [Attribute: Bool] {
        [
            .background: background == scene.background, .color: color == scene.color,
            .shape: shape == scene.shape, .size: size == scene.size, .position: position == scene.position,
        ]
    }

    public var description: String {
        "\(size?.rawValue ?? "?") \(color?.rawValue ?? "?") \(shape?.rawValue ?? "?"), "
            + "\(position?.rawValue ?? "?"), \(background.rawValue) background"
    }
}

/// Reads a scene back from an image with the renderer's knowledge: the background colour from
/// the border pixels, the object as the pixels far from it, its colour, its area centroid
/// (→ nearest named position), and its shape as the renderer's template (placed at the centroid
/// with the measured area) that overlaps it best, whose radius gives the size.
public enum Detector {
    /// The palette colour nearest to an RGB value.
    public static func nearestColor(_ r: Double, _ g: Double, _ b: Double) -> SceneColor {
        SceneColor.allCases.min { distance($0, r, g, b) < distance($1, r, g, b) }!
    }

    static func distance(_ c: SceneColor, _ r: Double, _ g: Double, _ b: Double) -> Double {
        let (cr, cg, cb) = c.rgb
        return (Double(cr) - r) * (Double(cr) - r) + (Double(cg) - g) * (Double(cg) - g)
            + (Double(cb) - b) * (Double(cb) - b)
    }

    /// The smallest RGB distance from the background that counts as an object.
    static let minimumContrast = 40.0

    /// Detects the scene in `rgb` (`height × width × 3` bytes, row-major).
    public static func detect(rgb: [UInt8], width: Int, height: Int) -> Detection {
        precondition(rgb.count == width * height * 3 && width > 0 && height > 0)
        let n = width * height
        // Background: the per-channel median of a border ring.
        let ring = max(1, min(width, height) / 32)
        var border: [[UInt8]] = [[], [], []]
        for y in 0..<height {
            for x in 0..<width where x < ring || y < ring || x >= width - ring || y >= height - ring {
                for c in 0..<3 { border[c].append(rgb[(y * width + x) * 3 + c]) }
            }
        }
        let bg = border.map { channel -> Double in
            let sorted = channel.sorted()
            return Double(sorted[sorted.count / 2])
        }
        let background = nearestColor(bg[0], bg[1], bg[2])

        // Distance of every pixel from the background; the object's contrast is a high percentile.
        var d = [Double](repeating: 0, count: n)
        for i in 0..<n {
            let dr = Double(rgb[3 * i]) - bg[0]
            let dg = Double(rgb[3 * i + 1]) - bg[1]
            let db = Double(rgb[3 * i + 2]) - bg[2]
            d[i] = (dr * dr + dg * dg + db * db).squareRoot()
        }
        let contrast = d.sorted()[min(n - 1, Int(Double(n) * 0.995))]
        var detection = Detection(background: background)
        guard contrast >= minimumContrast else { return detection }

        // Coverage estimate: distance as a fraction of the contrast, below a noise floor zero.
        var coverage = [Double](repeating: 0, count: n)
        var area = 0.0
        var sx = 0.0
        var sy = 0.0
        var colorSum = (0.0, 0.0, 0.0)
        var colorCount = 0.0
        for i in 0..<n {
            let f = d[i] / contrast
            guard f >= 0.2 else { continue }
            let c = min(1, f)
            coverage[i] = c
            area += c
            sx += c * (Double(i % width) + 0.5)
            sy += c * (Double(i / width) + 0.5)
            if f >= 0.8 {
                colorSum.0 += Double(rgb[3 * i])
                colorSum.1 += Double(rgb[3 * i + 1])
                colorSum.2 += Double(rgb[3 * i + 2])
                colorCount += 1
            }
        }
        guard area > 0, colorCount > 0 else { return detection }
        detection.color = nearestColor(colorSum.0 / colorCount, colorSum.1 / colorCount, colorSum.2 / colorCount)
        let cx = sx / area
        let cy = sy / area
        detection.position = Position.nearest(x: cx / Double(width), y: cy / Double(height))

        // Shape: the template with the best soft intersection over union.
        var best: (shape: Shape, iou: Double, radius: Double)?
        for shape in Shape.allCases {
            let radius = (area / ShapeGeometry.unitArea[shape]!).squareRoot()
            let template = Placement(shape: shape, cx: cx, cy: cy, radius: radius).coverage(
                width: width, height: height)
            var intersection = 0.0
            var templateArea = 0.0
            for (index, c) in template {
                intersection += min(Double(c), coverage[index])
                templateArea += Double(c)
            }
            let iou = intersection / (templateArea + area - intersection)
            if best == nil || iou > best!.iou { best = (shape, iou, radius) }
        }
        if let best {
            detection.shape = best.shape
            detection.size = best.radius / Double(min(width, height)) < ObjectSize.threshold ? .small : .large
        }
        return detection
    }
}
