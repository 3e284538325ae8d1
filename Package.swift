// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "TetriServe",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "tetriserve", targets: ["tetriserve"]),
        .library(name: "TetriCore", targets: ["TetriCore"]),
        .library(name: "TetriSim", targets: ["TetriSim"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2")
    ],
    targets: [
        .target(name: "TetriCore"),
        .target(name: "TetriSim", dependencies: ["TetriCore"]),
        .executableTarget(
            name: "tetriserve",
            dependencies: [
                "TetriCore",
                "TetriSim",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "TetriCoreTests", dependencies: ["TetriCore"]),
        .testTarget(name: "TetriSimTests", dependencies: ["TetriCore", "TetriSim"]),
    ]
)
