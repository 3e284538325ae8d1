import Foundation
import Testing

/// The shipped weights follow prompts at least as far as docs/model.md reports: on a small
/// sample the background colour is right far above chance (1/8). Object colour, shape and
/// position are at chance for these weights (docs/model.md), so they are not asserted.
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
    }
}
