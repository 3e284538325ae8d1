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
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
    ],
    targets: [
        .target(name: "TetriCore", dependencies: [.product(name: "HeapModule", package: "swift-collections")]),
        .target(name: "TetriSim", dependencies: ["TetriCore", "CGLPK"]),
        .systemLibrary(name: "CGLPK"),
        .target(name: "Scenes"),
        .systemLibrary(name: "COpenBLAS"),
        .systemLibrary(name: "CZlib"),
        .target(name: "CShm"),
        .target(name: "DiTEngine", dependencies: ["TetriCore", "COpenBLAS", "CZlib", "CShm"]),
        .target(
            name: "TetriServer",
            dependencies: [
                "TetriCore",
                "TetriSim",
                "DiTEngine",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "tetriserve",
            dependencies: [
                "TetriCore",
                "TetriSim",
                "DiTEngine",
                "TetriServer",
                "Scenes",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                // Only loadgen's HTTP client uses it; the server and libraries do not.
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "TetriCoreTests", dependencies: ["TetriCore"]),
        .testTarget(name: "TetriSimTests", dependencies: ["TetriCore", "TetriSim"]),
        .testTarget(
            name: "TetriServerTests",
            dependencies: [
                "TetriServer", "TetriCore", "TetriSim", "DiTEngine",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]
        ),
        .testTarget(name: "ScenesTests", dependencies: ["Scenes"]),
        .testTarget(
            name: "DiTEngineTests", dependencies: ["DiTEngine", "TetriCore", "CZlib"], exclude: ["Fixtures"]),
    ]
)
