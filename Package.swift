// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "blockc",
    products: [
        .library(
            name: "Blockc",
            targets: [
                "BlockIR", "Graph", "Fusion", "BlockParser", "Interpreter", "Schedule", "Codegen", "ONNX", "Driver",
            ]),
        .executable(name: "blockc", targets: ["blockc"]),
    ],
    targets: [
        .target(name: "BlockIR"),
        .target(name: "Graph", dependencies: ["BlockIR"]),
        .target(name: "Fusion", dependencies: ["BlockIR", "Schedule"]),
        .target(name: "BlockParser", dependencies: ["BlockIR"]),
        .target(name: "Interpreter", dependencies: ["BlockIR", "Graph"]),
        .target(name: "Schedule", dependencies: ["BlockIR"]),
        .target(name: "Codegen", dependencies: ["BlockIR", "Schedule"]),
        .target(name: "ONNX", dependencies: ["BlockIR", "Graph"]),
        .target(
            name: "Driver",
            dependencies: [
                "BlockIR", "Graph", "Fusion", "BlockParser", "Interpreter", "Schedule", "Codegen", "ONNX",
            ]),
        .executableTarget(name: "blockc", dependencies: ["Driver"]),
        .executableTarget(name: "transformer-stack", dependencies: ["Graph", "Fusion", "BlockIR"]),
        .target(name: "BlockTestSupport", dependencies: ["Graph", "BlockIR"]),
        .testTarget(name: "BlockIRTests", dependencies: ["BlockIR", "BlockParser", "Schedule"]),
        .testTarget(name: "ScheduleTests", dependencies: ["Schedule", "BlockIR", "BlockParser"]),
        .testTarget(name: "GraphTests", dependencies: ["Graph", "BlockIR", "BlockTestSupport"]),
        .testTarget(name: "InterpreterTests", dependencies: ["Interpreter", "Graph", "BlockIR"]),
        .testTarget(
            name: "ONNXTests",
            dependencies: ["ONNX", "Graph", "BlockIR", "Interpreter", "Fusion", "BlockTestSupport"]),
        .testTarget(name: "DriverTests", dependencies: ["Driver", "BlockTestSupport"]),
        .testTarget(
            name: "FusionTests",
            dependencies: ["Fusion", "Schedule", "Graph", "BlockIR", "BlockParser", "Interpreter", "BlockTestSupport"]),
        .testTarget(
            name: "CodegenTests",
            dependencies: [
                "Codegen", "Schedule", "BlockIR", "BlockParser", "Graph", "Interpreter", "Fusion", "BlockTestSupport",
            ]),
    ]
)
