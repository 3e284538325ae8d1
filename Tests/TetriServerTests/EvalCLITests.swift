import DiTEngine
import Foundation
import Testing

/// Parses eval's table: size → attribute → accuracy (0…1), for the block after `heading`.
func evalAccuracies(_ output: String, heading: String = "all phrasings") -> [String: [String: Double]] {
    let lines = output.split(separator: "\n").map(String.init)
    guard let start = lines.firstIndex(of: heading), start + 1 < lines.count else { return [:] }
    let columns = lines[start + 1].split(separator: " ").map(String.init)
    var result: [String: [String: Double]] = [:]
    for line in lines[(start + 2)...] {
        let cells = line.split(separator: " ").map(String.init)
        guard cells.count == columns.count, cells[0].contains("x") else { break }
        var row: [String: Double] = [:]
        for (name, cell) in zip(columns, cells).dropFirst(2) {
            row[name] = Double(cell.dropLast()).map { $0 / 100 }
        }
        result[cells[0]] = row
    }
    return result
}

@Suite(.serialized) struct EvalCLITests {
    /// The evaluation's plumbing: the renderer's own images score 100% on every attribute, with
    /// held-out phrasings reported apart, and a contact sheet is written.
    @Test func rendererImagesScorePerfectly() throws {
        let sheet = FileManager.default.temporaryDirectory.appendingPathComponent("sheet-\(UUID().uuidString).png")
        defer { try? FileManager.default.removeItem(at: sheet) }
        let (status, out, err) = try runCLI([
            "eval", "--renderer", "--model", "tiny", "--prompts", "20", "--size", "64x64,128x96", "--sheet",
            sheet.path, "--sheet-count", "3",
        ])
        #expect(status == 0, "\(err)")
        let all = evalAccuracies(out)
        #expect(all.keys.sorted() == ["128x96", "64x64"])
        for row in all.values {
            #expect(row == ["background": 1, "color": 1, "shape": 1, "size": 1, "position": 1, "all": 1])
        }
        #expect(evalAccuracies(out, heading: "held-out phrasings only")["64x64"]?["all"] == 1)
        #expect(out.contains("\n64x64     6      100.0%"))
        let png = try Data(contentsOf: sheet)
        #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]))
    }

    /// Random weights do not follow prompts: accuracies stay far from perfect.
    @Test func randomModelScoresNearChance() throws {
        let (status, out, err) = try runCLI([
            "eval", "--model", "tiny", "--prompts", "10", "--size", "64x64", "--steps", "2",
        ])
        #expect(status == 0, "\(err)")
        let row = try #require(evalAccuracies(out)["64x64"])
        #expect(row.count == 6)
        #expect(row["all"]! <= 0.1)
        #expect(row["color"]! + row["shape"]! + row["position"]! < 1.5)
    }
}
