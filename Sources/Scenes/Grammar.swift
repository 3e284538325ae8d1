/// The prompt language of scenes: phrasings (templates) that name all five attributes of a
/// scene, with synonyms, a parser that reads any phrasing back, and the word vocabulary of the
/// training phrasings.
///
/// A phrasing is a template of literal words and slots: `{size}` (small | little, large | big),
/// `{color}` (the eight colour names), `{shape}` (the five shape names), `{bg}` (a colour name,
/// always followed by the word `background`), `{where}` (a prepositional phrase: `in the top left
/// corner`, `on the left`, `at the top`, `in the center` / `in the middle`, …) or `{pos}` (the
/// bare position: `top left`, `left`, `center` / `middle`, …). `a` becomes `an` before a vowel.
/// Phrasings marked held-out are never used for training data; evaluation reports them apart.
public enum Grammar {
    public struct Phrasing: Sendable, Hashable {
        public var id: Int
        public var template: String
        public var heldOut: Bool
    }

    /// Every phrasing; `heldOut` ones are only emitted for evaluation.
    public static let phrasings: [Phrasing] = [
        ("a {size} {color} {shape} {where} on a {bg} background", false),
        ("{size} {color} {shape}, {pos}, {bg} background", false),
        ("a {color} {shape}, {size}, {pos}, on a {bg} background", false),
        ("{bg} background with a {size} {color} {shape} {where}", false),
        ("a {size} {color} {shape} {where}, {bg} background", false),
        ("an image of a {size} {color} {shape} {where} on a {bg} background", false),
        ("{pos}: a {size} {color} {shape} on a {bg} background", false),
        ("on a {bg} background, a {size} {color} {shape} {where}", true),
        ("{bg} background, {pos}, {color} {shape}, {size}", true),
        ("a picture of a {color} {shape} that is {size}, {where}, against a {bg} background", true),
    ].enumerated().map { Phrasing(id: $0.offset, template: $0.element.0, heldOut: $0.element.1) }

    public static var trainingPhrasings: [Phrasing] { phrasings.filter { !$0.heldOut } }
    public static var heldOutPhrasings: [Phrasing] { phrasings.filter { $0.heldOut } }

    static func sizeWords(_ size: ObjectSize) -> [String] {
        switch size {
        case .small: ["small", "little"]
        case .large: ["large", "big"]
        }
    }

    static func positionWords(_ position: Position) -> [String] {
        switch position {
        case .center: ["center", "middle"]
        default: [position.rawValue]
        }
    }

    static func wherePhrases(_ position: Position) -> [String] {
        switch position {
        case .center: ["in the center", "in the middle"]
        case .left, .right: ["on the \(position.rawValue)"]
        case .top, .bottom: ["at the \(position.rawValue)"]
        default: ["in the \(position.rawValue)", "in the \(position.rawValue) corner"]
        }
    }

    /// The prompt of `scene` in phrasing `phrasing`; `rng` picks among synonyms.
    public static func prompt(_ scene: Scene, phrasing: Phrasing, using rng: inout SceneRandom) -> String {
        func pick(_ options: [String]) -> String { options[rng.below(options.count)] }
        var text = phrasing.template
        let slots: [(String, String)] = [
            ("{size}", pick(sizeWords(scene.size))),
            ("{color}", scene.color.rawValue),
            ("{shape}", scene.shape.rawValue),
            ("{bg}", scene.background.rawValue),
            ("{where}", pick(wherePhrases(scene.position))),
            ("{pos}", pick(positionWords(scene.position))),
        ]
        for (slot, value) in slots {
            text = text.replacingOccurrences(of: slot, with: value)
        }
        return fixArticles(text)
    }

    /// A random training-phrasing prompt for `scene` (held-out phrasings are never drawn).
    public static func trainingPrompt(_ scene: Scene, using rng: inout SceneRandom) -> String {
        let choices = trainingPhrasings
        let phrasing = choices[rng.below(choices.count)]
        return prompt(scene, phrasing: phrasing, using: &rng)
    }

    /// "a" → "an" before a word starting with a vowel.
    static func fixArticles(_ text: String) -> String {
        var words = text.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        for i in words.indices.dropLast() where words[i] == "a" || words[i] == "an" {
            let next = words[i + 1].lowercased()
            words[i] = next.first.map { "aeiou".contains($0) } == true ? "an" : "a"
        }
        return words.joined(separator: " ")
    }

    /// The words of a prompt as the word tokenizer splits it: lower-cased, split on every
    /// character that is not an ASCII letter or digit.
    public static func words(_ text: String) -> [String] {
        var result = [String]()
        var current = ""
        for ch in text.lowercased().unicodeScalars {
            if ch.isASCII && (("a"..."z").contains(ch) || ("0"..."9").contains(ch)) {
                current.unicodeScalars.append(ch)
            } else if !current.isEmpty {
                result.append(current)
                current = ""
            }
        }
        if !current.isEmpty { result.append(current) }
        return result
    }

    /// Every word the given phrasings can produce, in the order first met (templates in order,
    /// then attribute words in declaration order).
    static func words(of phrasings: [Phrasing]) -> [String] {
        var seen = Set<String>()
        var list = [String]()
        func add(_ text: String) {
            for w in words(text) where seen.insert(w).inserted { list.append(w) }
        }
        for p in phrasings {
            var literal = p.template
            for slot in ["{size}", "{color}", "{shape}", "{bg}", "{where}", "{pos}"] {
                literal = literal.replacingOccurrences(of: slot, with: " ")
            }
            add(literal)
        }
        add("a an background")
        for size in ObjectSize.allCases { add(sizeWords(size).joined(separator: " ")) }
        for color in SceneColor.allCases { add(color.rawValue) }
        for shape in Shape.allCases { add(shape.rawValue) }
        for position in Position.allCases {
            add(positionWords(position).joined(separator: " "))
            add(wherePhrases(position).joined(separator: " "))
        }
        return list
    }

    /// The word vocabulary of the training phrasings (what the word tokenizer of a model trained
    /// on `dataset` output knows; words only held-out phrasings use are not in it).
    public static let vocabulary: [String] = words(of: trainingPhrasings)

    public enum ParseError: Error, CustomStringConvertible, Equatable {
        case missing(String, prompt: String)
        case ambiguous(String, prompt: String)

        public var description: String {
            switch self {
            case .missing(let what, let prompt): "prompt names no \(what): '\(prompt)'"
            case .ambiguous(let what, let prompt): "prompt names more than one \(what): '\(prompt)'"
            }
        }
    }

    /// The scene a prompt describes. The background colour is the colour word followed by
    /// `background`; the object colour is the other colour word; positions combine a vertical
    /// word (top, bottom) with a horizontal one (left, right) when they follow each other.
    public static func parse(_ prompt: String) throws -> Scene {
        let w = words(prompt)
        func one<T>(_ what: String, _ values: [T]) throws -> T {
            guard let first = values.first else { throw ParseError.missing(what, prompt: prompt) }
            guard values.count == 1 else { throw ParseError.ambiguous(what, prompt: prompt) }
            return first
        }
        var background: [SceneColor] = []
        var colors: [SceneColor] = []
        var shapes: [Shape] = []
        var sizes: [ObjectSize] = []
        var positions: [Position] = []
        var i = 0
        while i < w.count {
            let word = w[i]
            let next = i + 1 < w.count ? w[i + 1] : nil
            if let c = SceneColor(rawValue: word) {
                if next == "background" { background.append(c) } else { colors.append(c) }
            } else if let s = Shape(rawValue: word) {
                shapes.append(s)
            } else if let s = ObjectSize.allCases.first(where: { sizeWords($0).contains(word) }) {
                sizes.append(s)
            } else if word == "top" || word == "bottom" {
                if let n = next, n == "left" || n == "right", let p = Position(rawValue: "\(word) \(n)") {
                    positions.append(p)
                    i += 1
                } else {
                    positions.append(word == "top" ? .top : .bottom)
                }
            } else if word == "left" || word == "right" {
                positions.append(word == "left" ? .left : .right)
            } else if word == "center" || word == "middle" {
                positions.append(.center)
            }
            i += 1
        }
        return Scene(
            shape: try one("shape", shapes), color: try one("object colour", colors),
            size: try one("size", sizes), position: try one("position", positions),
            background: try one("background colour", background))
    }
}
