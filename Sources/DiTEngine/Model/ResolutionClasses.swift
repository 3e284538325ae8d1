import TetriCore

extension ModelConfig {
    /// The four default resolution classes: squares of 4, 8, 16 and 32 patches a side, so their
    /// token counts go 1 : 4 : 16 : 64 like 256² … 2048² in the paper (for `small`, 16-pixel
    /// patches: 64², 128², 256², 512²).
    public var resolutionClasses: [Resolution] {
        [4, 8, 16, 32].map { Resolution(width: $0 * patchSize, height: $0 * patchSize) }
    }

    /// A line per class for help texts: `64x64 (16 image tokens)`.
    public var resolutionClassSummary: String {
        resolutionClasses.map { "\($0) (\(($0.width / patchSize) * ($0.height / patchSize)) image tokens)" }
            .joined(separator: ", ")
    }
}
