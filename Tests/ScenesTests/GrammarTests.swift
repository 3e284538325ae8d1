import Foundation
import Testing

@testable import Scenes

@Suite("Scene grammar")
struct GrammarTests {
    @Test("Every phrasing of every scene parses back to the scene")
    func roundTrip() throws {
        var rng = SceneRandom(seed: 7)
        for scene in Scene.all {
            for phrasing in Grammar.phrasings {
                let prompt = Grammar.prompt(scene, phrasing: phrasing, using: &rng)
                #expect(try Grammar.parse(prompt) == scene, "\(prompt)")
            }
        }
    }

    @Test("The documented examples parse")
    func examples() throws {
        let scene = Scene(shape: .circle, color: .red, size: .large, position: .topLeft, background: .white)
        #expect(try Grammar.parse("a large red circle in the top left on a white background") == scene)
        #expect(try Grammar.parse("Large red circle, top left, white background") == scene)
        #expect(try Grammar.parse("big RED circle in the top-left corner; white background!") == scene)
        #expect(throws: Grammar.ParseError.self) { try Grammar.parse("a red circle on a white background") }
        #expect(throws: Grammar.ParseError.self) { try Grammar.parse("a large red blue circle, top, white background") }
    }

    @Test("Articles agree with the next word")
    func articles() {
        var rng = SceneRandom(seed: 1)
        let scene = Scene(shape: .ring, color: .orange, size: .small, position: .left, background: .black)
        let prompt = Grammar.prompt(scene, phrasing: Grammar.phrasings[2], using: &rng)
        #expect(prompt == "an orange ring, little, left, on a black background")
    }

    @Test("Training prompts never use a held-out phrasing; the vocabulary covers every training word")
    func heldOut() throws {
        let heldOutWords = Set(Grammar.heldOutPhrasings.flatMap { Grammar.words($0.template) })
        let trainingWords = Set(Grammar.trainingPhrasings.flatMap { Grammar.words($0.template) })
        let onlyHeldOut = heldOutWords.subtracting(trainingWords).subtracting(["size", "color", "shape", "bg"])
        #expect(!onlyHeldOut.isEmpty)
        let vocabulary = Set(Grammar.vocabulary)
        #expect(vocabulary.count == Grammar.vocabulary.count)
        for index in 0..<2000 {
            let (scene, prompt) = Dataset.item(seed: 3, index: index)
            #expect(try Grammar.parse(prompt) == scene)
            let words = Set(Grammar.words(prompt))
            #expect(words.isSubset(of: vocabulary), "\(prompt)")
            #expect(words.isDisjoint(with: onlyHeldOut.subtracting(["where", "pos"])), "\(prompt)")
            #expect(scene.color != scene.background)
        }
    }

    @Test("Tokenizer words split on non-alphanumerics and lower-case")
    func words() {
        #expect(Grammar.words("A  big,RED star—top-left2 é") == ["a", "big", "red", "star", "top", "left2"])
    }

    @Test("Items depend only on seed and index")
    func items() {
        let a = (0..<50).map { Dataset.item(seed: 9, index: $0).prompt }
        let b = (0..<50).map { Dataset.item(seed: 9, index: $0).prompt }
        let c = (0..<50).map { Dataset.item(seed: 10, index: $0).prompt }
        #expect(a == b)
        #expect(a != c)
        #expect(Set(a).count > 40)
    }
}
