import ArgumentParser
import DiTEngine
import Foundation
import Scenes
import TetriCore

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract:
            "Measure prompt adherence: generate images for grammar prompts and score them with the scene detector.",
        discussion: """
            Prompts come from the scene grammar with a fixed seed, cycling through every phrasing \
            (held-out phrasings included and reported on their own). Each prompt is generated at each \
            size in-process (degree 1, noise seed --seed + prompt index) and the detector reads back \
            background colour, object colour, shape, size and position. Prints the accuracy of each \
            attribute per size (docs/model.md describes the grammar and the detector).
            """
    )

    @Option(parsing: .unconditional, help: "Prompts to evaluate at each size.")
    var prompts: Int = 40

    @Option(help: "Sizes: 'classes' (the model's resolution classes) or a list such as 128x128,256x256.")
    var size: String = "classes"

    @Option(parsing: .unconditional, help: "Denoising steps.")
    var steps: Int = 20

    @Option(parsing: .unconditional, help: "Seed of the prompts; image i uses noise seed --seed + i.")
    var seed: UInt64 = 0

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "Write a contact sheet PNG of the first images at each size with their prompts.")
    var sheet: String?

    @Option(name: .customLong("sheet-count"), help: "Images per size on the contact sheet.")
    var sheetCount: Int = 6

    @Flag(help: "Score the renderer's own images instead of the model's (checks the detector: expect 100%).")
    var renderer = false

    func run() throws {
        guard prompts > 0 else { throw ValidationError("--prompts must be positive, got \(prompts)") }
        guard steps > 0 else { throw ValidationError("--steps must be positive, got \(steps)") }
        guard sheetCount >= 0 else { throw ValidationError("--sheet-count must be >= 0, got \(sheetCount)") }
        let choice = try modelOptions.choose()
        let dit = try userFacing {
            try Worker.loadModel(name: choice.model, seed: modelOptions.weightsSeed, weights: choice.weights)
        }
        let config = dit.config
        let sizes: [Resolution]
        if size == "classes" {
            sizes = config.resolutionClasses
        } else {
            sizes = try size.split(separator: ",").map { part in
                guard let r = Resolution(parsing: part) else {
                    throw ValidationError("--size must be 'classes' or WIDTHxHEIGHT,..., got '\(size)'")
                }
                return r
            }
        }
        for r in sizes where !renderer {
            _ = try userFacing { try config.grid(width: r.width, height: r.height) }
        }
        let source =
            renderer ? "the renderer" : (choice.weights ?? "\(choice.model) seeded \(modelOptions.weightsSeed)")
        log("eval: \(prompts) prompts x \(sizes.count) sizes, \(steps) steps, images from \(source)")
        let engine = LocalEngine(model: dit)
        let cases = Evaluation.cases(count: prompts, seed: seed)
        var report = Evaluation.Report()
        var cells: [ContactSheet.Cell] = []
        let start = Date()
        for r in sizes {
            let sizeStart = Date()
            for item in cases {
                let rgb: [UInt8]
                if renderer {
                    rgb = Renderer.render(item.scene, width: r.width, height: r.height)
                } else {
                    let request = GenerationRequest(
                        prompt: item.prompt, width: r.width, height: r.height, steps: steps,
                        seed: seed &+ UInt64(item.index))
                    rgb = try userFacing { try engine.generateImage(request) }
                }
                let detection = Detector.detect(rgb: rgb, width: r.width, height: r.height)
                report.add(size: r.description, case: item, detection: detection)
                if item.index < sheetCount {
                    cells.append(ContactSheet.Cell(rgb: rgb, width: r.width, height: r.height, caption: item.prompt))
                }
            }
            log("  \(r): \(prompts) images in \(String(format: "%.1f", Date().timeIntervalSince(sizeStart))) s")
        }
        print(report.table())
        print("(\(prompts * sizes.count) images in \(String(format: "%.1f", Date().timeIntervalSince(start))) s)")
        if let sheet, !cells.isEmpty {
            let contact = ContactSheet(columns: min(sheetCount, prompts), cells: cells)
            let (w, h) = contact.size
            let png = try userFacing { try PNG.encode(rgb: contact.render(), width: w, height: h) }
            do {
                try png.write(to: URL(fileURLWithPath: sheet))
            } catch {
                throw ValidationError("cannot write --sheet '\(sheet)': \(error.localizedDescription)")
            }
            print("wrote \(sheet): \(w)x\(h), \(cells.count) images")
        }
    }
}
