// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "blockc",
    products: [
        .library(name: "Blockc", targets: ["BlockIR", "Graph", "BlockParser", "Interpreter", "Driver"]),
        .executable(name: "blockc", targets: ["blockc"]),
    ],
    targets: [
        .target(name: "BlockIR"),
        .target(name: "Graph", dependencies: ["BlockIR"]),
        .target(name: "BlockParser", dependencies: ["BlockIR"]),
        .target(name: "Interpreter", dependencies: ["BlockIR", "Graph"]),
        .target(name: "Driver", dependencies: ["BlockIR", "Graph", "BlockParser", "Interpreter"]),
        .executableTarget(name: "blockc", dependencies: ["Driver"]),
        .testTarget(name: "BlockIRTests", dependencies: ["BlockIR", "BlockParser"]),
        .testTarget(name: "GraphTests", dependencies: ["Graph", "BlockIR"]),
        .testTarget(name: "InterpreterTests", dependencies: ["Interpreter", "Graph", "BlockIR"]),
        .testTarget(name: "DriverTests", dependencies: ["Driver"]),
    ]
)
