import Foundation
import Testing

@testable import Scenes

@Suite("Scene renderer")
struct RendererTests {
    /// Coverage comes in steps of 1/16 (4 × 4 samples): curved and slanted edges take many of
    /// them; the square's straight edges one per side, where they cut pixels.
    @Test("Edges are anti-aliased: pixels between background and object colour exist on every shape")
    func antiAliased() {
        for shape in Shape.allCases {
            let scene = Scene(shape: shape, color: .white, size: .large, position: .center, background: .black)
            let px = Renderer.render(scene, width: 90, height: 90)
            let greys = Set(stride(from: 0, to: px.count, by: 3).map { px[$0] })
            #expect(greys.contains(20) && greys.contains(245))
            let between = greys.subtracting([20, 245]).count
            #expect(between >= (shape == .square ? 1 : 8), "\(shape): \(greys.sorted())")
            // Every intermediate value is a multiple of 1/16 of the way from background to object.
            for g in greys {
                let steps = (Double(g) - 20) / (245 - 20) * 16
                #expect(abs(steps - steps.rounded()) <= 0.5 * 16 / 225 + 1e-9, "\(g)")
            }
        }
    }

    @Test("Coverage matches the shape's area and is centred on the anchor")
    func coverage() {
        for scene in Scene.all where scene.background == .black && scene.color == .white {
            let (w, h) = (256, 192)
            let placement = Placement(scene, width: w, height: h)
            let cells = placement.coverage(width: w, height: h)
            let area = cells.reduce(0.0) { $0 + Double($1.1) }
            let expected = ShapeGeometry.unitArea[scene.shape]! * placement.radius * placement.radius
            #expect(abs(area - expected) / expected < 0.01, "\(scene)")
            let cx = cells.reduce(0.0) { $0 + Double($1.1) * (Double($1.0 % w) + 0.5) } / area
            let cy = cells.reduce(0.0) { $0 + Double($1.1) * (Double($1.0 / w) + 0.5) } / area
            #expect(abs(cx - placement.cx) < 0.2 && abs(cy - placement.cy) < 0.2, "\(scene)")
        }
    }

    @Test("The dataset files have the documented layout")
    func datasetFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("scenes-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try Dataset.write(count: 5, width: 32, height: 16, seed: 4, to: dir)
        let images = try Data(contentsOf: dir.appendingPathComponent("images.u8"))
        #expect(images.count == 5 * 16 * 32 * 3)
        let prompts = try String(contentsOf: dir.appendingPathComponent("prompts.txt"), encoding: .utf8)
            .split(separator: "\n").map(String.init)
        let scenes = try String(contentsOf: dir.appendingPathComponent("scenes.jsonl"), encoding: .utf8)
            .split(separator: "\n").map { try JSONDecoder().decode(Scene.self, from: Data($0.utf8)) }
        #expect(prompts.count == 5 && scenes.count == 5)
        for i in 0..<5 {
            #expect(prompts[i] == Dataset.item(seed: 4, index: i).prompt)
            #expect(scenes[i] == Dataset.item(seed: 4, index: i).scene)
            let expected = Renderer.render(scenes[i], width: 32, height: 16)
            #expect(Array(images[(i * 1536)..<((i + 1) * 1536)]) == expected)
        }
        let meta = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("meta.json")))
        let dict = try #require(meta as? [String: Any])
        #expect(dict["count"] as? Int == 5 && dict["width"] as? Int == 32 && dict["height"] as? Int == 16)
        #expect(dict["seed"] as? Int == 4)
        #expect(dict["vocabulary"] as? [String] == Grammar.vocabulary)
    }
}
