/// Prompt-adherence evaluation: prompts drawn from the grammar with a fixed seed (every phrasing
/// in turn, held-out ones included), images scored per attribute by the ``Detector``.
public enum Evaluation {
    public struct Case: Sendable {
        public var index: Int
        public var scene: Scene
        public var prompt: String
        public var phrasing: Grammar.Phrasing
    }

    /// `count` prompts: case i uses phrasing i mod (number of phrasings) and a random scene.
    public static func cases(count: Int, seed: UInt64) -> [Case] {
        (0..<count).map { i in
            var rng = SceneRandom(seed: seed ^ 0xE7A1_5EED, index: i)
            let scene = Scene.random(using: &rng)
            let phrasing = Grammar.phrasings[i % Grammar.phrasings.count]
            return Case(
                index: i, scene: scene, prompt: Grammar.prompt(scene, phrasing: phrasing, using: &rng),
                phrasing: phrasing)
        }
    }

    /// The accuracy of guessing each attribute uniformly at random.
    public static let chance: [Attribute: Double] = [
        .background: 1.0 / Double(SceneColor.allCases.count),
        .color: 1.0 / Double(SceneColor.allCases.count - 1),
        .shape: 1.0 / Double(Shape.allCases.count),
        .size: 1.0 / Double(ObjectSize.allCases.count),
        .position: 1.0 / Double(Position.allCases.count),
    ]

    /// Correct counts per attribute over some images.
    public struct Tally: Sendable, Equatable {
        public var images = 0
        public var correct: [Attribute: Int] = [:]
        /// Images with every attribute right.
        public var allCorrect = 0

        public init() {}

        public mutating func add(_ scores: [Attribute: Bool]) {
            images += 1
            for (attribute, ok) in scores where ok { correct[attribute, default: 0] += 1 }
            if scores.values.allSatisfy({ $0 }) { allCorrect += 1 }
        }

        public func accuracy(_ attribute: Attribute) -> Double {
            images == 0 ? 0 : Double(correct[attribute, default: 0]) / Double(images)
        }

        public var allAccuracy: Double { images == 0 ? 0 : Double(allCorrect) / Double(images) }
    }

    /// Results per size (in the order first added), for all prompts and for held-out phrasings.
    public struct Report: Sendable {
        public var sizes: [String] = []
        public var all: [String: Tally] = [:]
        public var heldOut: [String: Tally] = [:]

        public init() {}

        public mutating func add(size: String, case item: Case, detection: Detection) {
            if all[size] == nil { sizes.append(size) }
            let scores = detection.score(item.scene)
            all[size, default: Tally()].add(scores)
            if item.phrasing.heldOut { heldOut[size, default: Tally()].add(scores) }
        }

        /// A text table: one row per size, a column per attribute (percent), then the held-out rows.
        public func table() -> String {
            let attributes = Attribute.allCases
            func row(_ label: String, _ tally: Tally) -> String {
                let cells =
                    attributes.map { pad(percent(tally.accuracy($0)), 11) } + [pad(percent(tally.allAccuracy), 8)]
                return pad(label, 10) + pad(String(tally.images), 7) + cells.joined()
            }
            let header =
                pad("size", 10) + pad("images", 7) + attributes.map { pad($0.rawValue, 11) }.joined() + pad("all", 8)
            var lines = ["all phrasings", header]
            lines += sizes.map { row($0, all[$0]!) }
            lines += ["held-out phrasings only", header]
            lines += sizes.map { row($0, heldOut[$0] ?? Tally()) }
            let chanceRow =
                pad("chance", 17) + attributes.map { pad(percent(chance[$0]!), 11) }.joined()
            lines.append(chanceRow)
            return lines.map { String($0.reversed().drop(while: { $0 == " " }).reversed()) }
                .joined(separator: "\n")
        }

        func percent(_ x: Double) -> String {
            let tenths = Int((x * 1000).rounded())
            return "\(tenths / 10).\(tenths % 10)%"
        }

        func pad(_ text: String, _ width: Int) -> String {
            text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
        }
    }
}
