/// One object on a plain background: what a prompt of the scene grammar describes, what the
/// renderer draws and what the detector reads back.
public struct Scene: Hashable, Codable, Sendable, CustomStringConvertible {
    public var shape: Shape
    public var color: SceneColor
    public var size: ObjectSize
    public var position: Position
    public var background: SceneColor

    public init(shape: Shape, color: SceneColor, size: ObjectSize, position: Position, background: SceneColor) {
        self.shape = shape
        self.color = color
        self.size = size
        self.position = position
        self.background = background
    }

    /// Whether the object can be seen (its colour differs from the background's).
    public var isValid: Bool { color != background }

    public var description: String {
        "\(size.rawValue) \(color.rawValue) \(shape.rawValue), \(position.rawValue), \(background.rawValue) background"
    }

    /// A uniformly random valid scene.
    public static func random(using rng: inout SceneRandom) -> Scene {
        let shape = Shape.allCases[rng.below(Shape.allCases.count)]
        let color = SceneColor.allCases[rng.below(SceneColor.allCases.count)]
        let size = ObjectSize.allCases[rng.below(ObjectSize.allCases.count)]
        let position = Position.allCases[rng.below(Position.allCases.count)]
        var background = SceneColor.allCases[rng.below(SceneColor.allCases.count - 1)]
        if background.index >= color.index { background = SceneColor.allCases[background.index + 1] }
        return Scene(shape: shape, color: color, size: size, position: position, background: background)
    }

    /// Every valid scene, in a fixed order.
    public static let all: [Scene] = Shape.allCases.flatMap { shape in
        SceneColor.allCases.flatMap { color in
            ObjectSize.allCases.flatMap { size in
                Position.allCases.flatMap { position in
                    SceneColor.allCases.filter { $0 != color }.map { background in
                        Scene(shape: shape, color: color, size: size, position: position, background: background)
                    }
                }
            }
        }
    }

    /// One line of JSON with the attributes as the grammar names them.
    public var json: String {
        "{\"shape\":\"\(shape.rawValue)\",\"color\":\"\(color.rawValue)\",\"size\":\"\(size.rawValue)\","
            + "\"position\":\"\(position.rawValue)\",\"background\":\"\(background.rawValue)\"}"
    }
}

public enum Shape: String, CaseIterable, Codable, Sendable {
    case circle, square, triangle, ring, star
}

public enum SceneColor: String, CaseIterable, Codable, Sendable {
    case red, orange, yellow, green, blue, purple, white, black

    /// The 8-bit sRGB value the renderer paints.
    public var rgb: (UInt8, UInt8, UInt8) {
        switch self {
        case .red: (220, 30, 30)
        case .orange: (250, 135, 20)
        case .yellow: (250, 225, 30)
        case .green: (30, 165, 60)
        case .blue: (35, 75, 220)
        case .purple: (140, 45, 185)
        case .white: (245, 245, 245)
        case .black: (20, 20, 20)
        }
    }

    var index: Int { SceneColor.allCases.firstIndex(of: self)! }
}

public enum ObjectSize: String, CaseIterable, Codable, Sendable {
    case small, large

    /// The object's radius as a fraction of the canvas's shorter side.
    public var radius: Double {
        switch self {
        case .small: 0.11
        case .large: 0.2
        }
    }

    /// The radius (fraction of the shorter side) between the two sizes, used by the detector.
    static let threshold = 0.155
}

public enum Position: String, CaseIterable, Codable, Sendable {
    case center
    case left, right, top, bottom
    case topLeft = "top left"
    case topRight = "top right"
    case bottomLeft = "bottom left"
    case bottomRight = "bottom right"

    /// The object's centre as fractions (x, y) of the canvas width and height, y downwards.
    public var anchor: (x: Double, y: Double) {
        switch self {
        case .center: (0.5, 0.5)
        case .left: (0.25, 0.5)
        case .right: (0.75, 0.5)
        case .top: (0.5, 0.25)
        case .bottom: (0.5, 0.75)
        case .topLeft: (0.25, 0.25)
        case .topRight: (0.75, 0.25)
        case .bottomLeft: (0.25, 0.75)
        case .bottomRight: (0.75, 0.75)
        }
    }

    /// The named position whose anchor is nearest to (x, y) (fractions of the canvas).
    public static func nearest(x: Double, y: Double) -> Position {
        allCases.min { a, b in
            let da = (a.anchor.x - x) * (a.anchor.x - x) + (a.anchor.y - y) * (a.anchor.y - y)
            let db = (b.anchor.x - x) * (b.anchor.x - x) + (b.anchor.y - y) * (b.anchor.y - y)
            return da < db
        }!
    }
}

/// The deterministic generator the scene module draws with (SplitMix64), so a dataset depends
/// only on its seed.
public struct SceneRandom: Sendable {
    var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// The generator for item `index` of a stream seeded `seed` (independent of other items).
    public init(seed: UInt64, index: Int) {
        var mixer = SceneRandom(seed: seed ^ 0x5CE4_E5B9_D1B5_4A32)
        for _ in 0..<2 { _ = mixer.next() }
        state = mixer.next() &+ UInt64(index) &* 0xD1B5_4A32_D192_ED03
        _ = next()
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform integer in 0..<n (n > 0).
    public mutating func below(_ n: Int) -> Int {
        Int(next() % UInt64(n))
    }
}
