import Foundation
import Testing

/// The shipped weights follow prompts at least as far as docs/model.md reports: on a small
/// sample the background colour (chance 1/8) and the object's colour (chance 1/7) are right far
/// above chance. Shape and position are near chance for these weights (docs/model.md), so they
/// are not asserted.
@Suite(.serialized) struct ShippedModelEvalTests {
    @Test func shippedWeightsDrawThePromptedBackground() throws {
        let (status, out, err) = try runCLI([
            "eval", "--weights", "models/scenes-v1.safetensors", "--prompts", "16", "--size", "64x64", "--steps",
            "10",
        ])
        #expect(status == 0, "\(err)")
        let accuracy = evalAccuracies(out)
        let background = try #require(accuracy["64x64"]?["background"], "\(out)")
        // Measured 15 of 16 (93.8%) with these arguments; chance is 12.5%.
        #expect(background >= 0.75, "\(out)")
        let color = try #require(accuracy["64x64"]?["color"], "\(out)")
        // Measured 6 of 16 (37.5%) with these arguments; chance is 1/7 (about 2 of 16).
        #expect(color >= 0.25, "\(out)")
    }
}
