import Foundation
import Testing

@testable import TetriSim

/// The profiles built into the binary are the files of `profiles/`, byte for byte (re-run
/// `scripts/embed-profiles` after changing one).
@Suite struct EmbeddedProfilesTests {
    let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("profiles")

    @Test func everyProfileFileIsEmbeddedExactly() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".json") }
        #expect(!files.isEmpty)
        let names = files.map { String($0.dropLast(".json".count)) }
        #expect(Set(names) == Set(EmbeddedProfiles.files.keys), "re-run scripts/embed-profiles")
        for file in files {
            let bytes = try Data(contentsOf: folder.appendingPathComponent(file))
            let embedded = EmbeddedProfiles.files[String(file.dropLast(".json".count))].map { Data($0.utf8) }
            #expect(embedded == bytes, "\(file) differs from its embedded copy; re-run scripts/embed-profiles")
        }
    }

    @Test func aBareNameSelectsTheBuiltInProfileAndAPathAFile() throws {
        let byName = try ProfileFile.contents(of: "flux1-dev-h100x8")
        let byPath = try ProfileFile.contents(of: folder.appendingPathComponent("flux1-dev-h100x8.json").path)
        #expect(byName == byPath)
        #expect(try ProfileFile.load("sd3-medium-a40x4").gpus == 4)
        #expect(ProfileFile.builtInNames == EmbeddedProfiles.files.keys.sorted())
        #expect(throws: FileError.unknownProfile("nope", ProfileFile.builtInNames)) {
            try ProfileFile.contents(of: "nope")
        }
        // A path is never looked up among the built-in profiles.
        #expect(throws: FileError.unreadable("elsewhere/flux1-dev-h100x8.json")) {
            try ProfileFile.contents(of: "elsewhere/flux1-dev-h100x8.json")
        }
    }
}
