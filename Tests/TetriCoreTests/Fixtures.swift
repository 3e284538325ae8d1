import Foundation
import TetriCore

/// The FLUX.1-dev / 8×H100 profile the package ships (`profiles/flux1-dev-h100x8.json`).
let fluxProfile: Profile = {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    let data = try! Data(contentsOf: root.appendingPathComponent("profiles/flux1-dev-h100x8.json"))
    return try! JSONDecoder().decode(Profile.self, from: data)
}()

// swift-format-ignore: NeverUseForceTry
let flux = try! CostModel(profile: fluxProfile)

/// A deterministic generator for test cases.
struct TestRandom: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
