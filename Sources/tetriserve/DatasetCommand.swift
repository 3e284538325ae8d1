import ArgumentParser
import Foundation
import Scenes
import TetriCore

struct DatasetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dataset",
        abstract: "Render captioned scenes (training data for the scene model).",
        discussion: """
            Writes DIR/images.u8 (COUNT × H × W × 3 bytes, RGB, row-major, no header), DIR/prompts.txt \
            (one prompt a line), DIR/scenes.jsonl (the scene each prompt describes) and DIR/meta.json \
            (count, width, height, seed and the grammar's word vocabulary). Prompts use the training \
            phrasings of the scene grammar only (docs/model.md); item i depends only on --seed and i.
            """
    )

    @Option(parsing: .unconditional, help: "Number of images.")
    var count: Int

    @Option(help: "Image size WIDTHxHEIGHT, for example 64x64.")
    var size: String

    @Option(parsing: .unconditional, help: "Seed of the scenes and prompts.")
    var seed: UInt64 = 0

    @Option(help: "Output directory (created if missing).")
    var out: String

    func run() throws {
        guard count > 0 else { throw ValidationError("--count must be positive, got \(count)") }
        guard let resolution = Resolution(parsing: size) else {
            throw ValidationError("--size must be WIDTHxHEIGHT with positive integers, got '\(size)'")
        }
        let start = Date()
        try userFacing {
            try Dataset.write(
                count: count, width: resolution.width, height: resolution.height, seed: seed,
                to: URL(fileURLWithPath: out))
        }
        print(
            "wrote \(count) scenes of \(resolution) to \(out) in "
                + String(format: "%.1f", Date().timeIntervalSince(start)) + " s")
    }
}
