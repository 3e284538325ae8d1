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
        .systemLibrary(name: "COpenBLAS"),
        .systemLibrary(name: "CZlib"),
        .target(name: "CShm"),
        .target(name: "DiTEngine", dependencies: ["TetriCore", "COpenBLAS", "CZlib", "CShm"]),
        .executableTarget(
            name: "tetriserve",
            dependencies: [
                "TetriCore",
                "TetriSim",
                "DiTEngine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "TetriCoreTests", dependencies: ["TetriCore"]),
        .testTarget(name: "TetriSimTests", dependencies: ["TetriCore", "TetriSim"]),
        .testTarget(name: "DiTEngineTests", dependencies: ["DiTEngine", "TetriCore", "CZlib"]),
    ]
)
