import TetriCore

/// The FLUX.1-dev / 8×H100 table of `profiles/flux1-dev-h100x8.json`.
let fluxProfile = Profile(
    name: "flux-test", description: "", gpus: 8, degrees: [1, 2, 4, 8],
    resolutions: [
        "256x256": .init(latentTokens: 256, stepMs: ["1": 28.0, "2": 26.6, "4": 21.1, "8": 18.1]),
        "512x512": .init(latentTokens: 1024, stepMs: ["1": 49.8, "2": 39.4, "4": 28.0, "8": 21.7]),
        "1024x1024": .init(latentTokens: 4096, stepMs: ["1": 153.2, "2": 98.6, "4": 59.7, "8": 38.3]),
        "2048x2048": .init(latentTokens: 16384, stepMs: ["1": 823.8, "2": 463.8, "4": 250.8, "8": 136.9]),
    ])

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
