import Foundation

/// The result of running a command.
public struct CommandResult: Sendable {
    /// Exit status.
    public var status: Int32
    /// Standard output.
    public var stdout: String
    /// Standard error.
    public var stderr: String
}

/// Locates files of the package and runs the built `blockc` binary in tests.
public enum CLI {
    /// The package root (found from this source file's path).
    public static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// The `blockc` binary next to the running test bundle (SwiftPM builds it with the tests),
    /// or `$BLOCKC_BIN`.
    public static let binary: String = {
        if let env = ProcessInfo.processInfo.environment["BLOCKC_BIN"] { return env }
        var url = URL(
            fileURLWithPath: CommandLine.arguments.first(where: { $0.hasSuffix(".xctest") }) ?? CommandLine.arguments[0]
        )
        url.deleteLastPathComponent()
        return url.appendingPathComponent("blockc").path
    }()

    /// The core count tests pin (`BLOCKC_CORES` for every command they run, `FusionOptions.cores`
    /// in process), so fused programs do not depend on the machine: a grid of fewer instances
    /// has its reductions split (R15).
    public static let pinnedCores = 16

    /// Runs `blockc` with arguments, in the package root; `environment` adds to (or overrides)
    /// the test's environment, and `BLOCKC_CORES` is `pinnedCores` unless it names another.
    public static func blockc(_ arguments: [String], environment: [String: String] = [:]) -> CommandResult {
        run(binary, arguments, environment: environment)
    }

    /// Runs an executable with arguments in the package root; output is captured.
    public static func run(
        _ executable: String, _ arguments: [String], stdin: String? = nil, environment: [String: String] = [:]
    ) -> CommandResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(
            ["BLOCKC_CORES": String(pinnedCores)].merging(environment) { $1 }
        ) { $1 }
        process.currentDirectoryURL = URL(fileURLWithPath: packageRoot)
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            return CommandResult(status: -1, stdout: "", stderr: "cannot run \(executable): \(error)")
        }
        // Read both pipes concurrently so neither fills up and blocks the child.
        let group = DispatchGroup()
        nonisolated(unsafe) var errData = Data()
        group.enter()
        DispatchQueue.global().async {
            errData = err.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        return CommandResult(
            status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData, as: UTF8.self))
    }

    /// A fresh temporary directory.
    public static func temporaryDirectory(_ tag: String) -> String {
        let path =
            NSTemporaryDirectory()
            + "blockc-\(tag)-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString.prefix(8))"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}
