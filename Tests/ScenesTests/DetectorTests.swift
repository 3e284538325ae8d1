import Foundation
import Testing

@testable import Scenes

@Suite("Scene detector")
struct DetectorTests {
    /// Random scenes at each resolution class are read back exactly.
    @Test(arguments: [(64, 150), (128, 60), (256, 16), (512, 5)])
    func rendersAreDetectedExactly(side: Int, count: Int) {
        for index in 0..<count {
            var rng = SceneRandom(seed: UInt64(side), index: index)
            let scene = Scene.random(using: &rng)
            let rgb = Renderer.render(scene, width: side, height: side)
            let detection = Detector.detect(rgb: rgb, width: side, height: side)
            #expect(detection.scene == scene, "\(side)²: \(scene) read as \(detection)")
        }
    }

    /// Every shape, size and position (one colour pair per case, rotating) at 64², the smallest.
    @Test func everyGeometryAt64() {
        var k = 0
        for shape in Shape.allCases {
            for size in ObjectSize.allCases {
                for position in Position.allCases {
                    let color = SceneColor.allCases[k % 8]
                    let background = SceneColor.allCases[(k * 3 + 1) % 8 == k % 8 ? (k + 1) % 8 : (k * 3 + 1) % 8]
                    k += 1
                    let scene = Scene(
                        shape: shape, color: color, size: size, position: position, background: background)
                    let rgb = Renderer.render(scene, width: 64, height: 64)
                    let detection = Detector.detect(rgb: rgb, width: 64, height: 64)
                    #expect(detection.scene == scene, "\(scene) read as \(detection)")
                }
            }
        }
    }

    @Test func plainImageHasNoObject() {
        let rgb = [UInt8](repeating: 0, count: 32 * 32 * 3).enumerated().map { $0.offset % 3 == 2 ? 220 : 35 }
        let detection = Detector.detect(rgb: rgb.map(UInt8.init), width: 32, height: 32)
        #expect(detection.background == .blue)
        #expect(detection.color == nil && detection.shape == nil && detection.scene == nil)
        let scores = detection.score(
            Scene(shape: .circle, color: .red, size: .small, position: .center, background: .blue))
        #expect(scores == [.background: true, .color: false, .shape: false, .size: false, .position: false])
    }

    @Test func evaluationCyclesPhrasingsAndTalliesScores() {
        let cases = Evaluation.cases(count: 25, seed: 1)
        #expect(cases.map(\.phrasing.id) == (0..<25).map { $0 % Grammar.phrasings.count })
        #expect(cases.filter(\.phrasing.heldOut).count == 6)
        var report = Evaluation.Report()
        for item in cases {
            let rgb = Renderer.render(item.scene, width: 64, height: 64)
            report.add(size: "64x64", case: item, detection: Detector.detect(rgb: rgb, width: 64, height: 64))
            // A wrong detection: every attribute except the background differs.
            var wrong = Detection(background: item.scene.background)
            wrong.shape = item.scene.shape == .circle ? .square : .circle
            report.add(size: "32x32", case: item, detection: wrong)
        }
        #expect(report.sizes == ["64x64", "32x32"])
        #expect(report.all["64x64"]!.allAccuracy == 1)
        #expect(report.heldOut["64x64"]!.images == 6)
        #expect(report.all["32x32"]!.accuracy(.background) == 1)
        #expect(report.all["32x32"]!.accuracy(.shape) == 0)
        #expect(report.all["32x32"]!.allAccuracy == 0)
        let table = report.table()
        #expect(table.contains("64x64     25     100.0%     100.0%"))
        #expect(table.contains("32x32     25     100.0%     0.0%"))
    }

    @Test func contactSheetDrawsImagesAndCaptions() {
        let scene = Scene(shape: .square, color: .red, size: .large, position: .center, background: .blue)
        let rgb = Renderer.render(scene, width: 64, height: 64)
        let sheet = ContactSheet(columns: 2, cells: [ContactSheet.Cell(rgb: rgb, width: 64, height: 64, caption: "ab")])
        let (w, h) = sheet.size
        #expect(w == 2 * (128 + 12) && h == 128 + 12 + 5 * 9)
        let out = sheet.render()
        func pixel(_ x: Int, _ y: Int) -> [UInt8] { Array(out[((y * w + x) * 3)..<((y * w + x) * 3 + 3)]) }
        #expect(pixel(6 + 64, 6 + 64) == [220, 30, 30])  // the square's centre, scaled ×2
        #expect(pixel(6 + 1, 6 + 1) == [35, 75, 220])
        // "A": top row 0x0E lights columns 1–3 of the first glyph below the image.
        let top = 6 + 128 + 4
        #expect(pixel(6, top) == [255, 255, 255] && pixel(7, top) == [0, 0, 0] && pixel(9, top) == [0, 0, 0])
        #expect(
            ContactSheet.wrap("a large red circle in the top left", width: 10) == [
                "a large", "red circle", "in the top", "left",
            ])
    }
}
