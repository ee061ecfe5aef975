import BlockIR
import Foundation

/// Compiles generated C with gcc: a shared library, or an executable harness.
public enum CCompiler {
    /// A compile or run failure, with the tool's message (truncated to a readable size).
    public struct Failure: Error, CustomStringConvertible, Sendable {
        /// What failed and why.
        public var message: String
        /// Makes a failure.
        public init(_ message: String) { self.message = message }
        public var description: String { message }
    }

    /// The compiler command (`BLOCKC_CC` overrides `gcc`).
    public static var compiler: String { ProcessInfo.processInfo.environment["BLOCKC_CC"] ?? "gcc" }

    /// The flags every build uses.
    public static let baseFlags = [
        "-O3", "-march=native", "-fopenmp", "-fno-math-errno", "-fno-trapping-math", "-std=gnu11",
    ]

    /// The flags of a sanitised build (address and undefined-behaviour sanitizers).
    public static let sanitizerFlags = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g"]

    /// The result of running a program.
    public struct RunResult: Sendable {
        /// The exit status.
        public var status: Int32
        /// Standard output.
        public var stdout: String
        /// Standard error.
        public var stderr: String
    }

    /// Runs a command, capturing its output.
    public static func run(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:]
    ) throws(Failure) -> RunResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [executable] + arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        do {
            try process.run()
        } catch {
            throw Failure("cannot run '\(executable)': \(error.localizedDescription)")
        }
        // Read both pipes before waiting, so a chatty child cannot block on a full pipe.
        let errData = LockedData()
        let reader = Thread { errData.set(err.fileHandleForReading.readDataToEndOfFile()) }
        reader.start()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        while !errData.isSet { usleep(1000) }
        return RunResult(
            status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData.get(), as: UTF8.self))
    }

    /// Shortens a compiler message to its first lines.
    static func truncated(_ text: String, lines: Int = 40) -> String {
        let all = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard all.count > lines else { return text }
        return all.prefix(lines).joined(separator: "\n") + "\n... (\(all.count - lines) more lines)"
    }

    private static func write(_ text: String, to path: String) throws(Failure) {
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8)) else {
            throw Failure("cannot write '\(path)'; check that its folder exists and is writable")
        }
    }

    private static func gcc(_ arguments: [String]) throws(Failure) {
        let result: RunResult
        do {
            result = try run(compiler, arguments)
        } catch {
            throw Failure("cannot run the C compiler '\(compiler)' (is gcc installed?): \(error.message)")
        }
        if result.status == 127 {
            throw Failure("the C compiler '\(compiler)' was not found; install gcc or set BLOCKC_CC")
        }
        guard result.status == 0 else {
            throw Failure("\(compiler) failed (status \(result.status)):\n" + truncated(result.stderr))
        }
    }

    /// Writes `NAME.c` and `NAME.h` beside `outputPath` and compiles them into a shared library
    /// there; returns the library's path.
    @discardableResult
    public static func compileSharedLibrary(
        source: String, header: String, name: String, outputPath: String, extraFlags: [String] = []
    ) throws(Failure) -> String {
        let dir = URL(fileURLWithPath: outputPath).deletingLastPathComponent().path
        let cPath = dir + "/" + name + ".c"
        try write(source, to: cPath)
        try write(header, to: dir + "/" + name + ".h")
        // The source includes its header by the name it was emitted with; `name` must match it.
        try gcc(baseFlags + ["-fPIC", "-shared"] + extraFlags + ["-o", outputPath, cPath, "-lm"])
        return outputPath
    }

    /// Writes a self-contained C program as `NAME.c` in `directory` and builds it there with
    /// `-march=native -fopenmp` and `flags`; returns the executable's path.
    public static func buildProgram(
        source: String, name: String, directory: String, flags: [String]
    ) throws(Failure) -> String {
        let cPath = directory + "/" + name + ".c"
        let exe = directory + "/" + name
        try write(source, to: cPath)
        try gcc(flags + ["-march=native", "-fopenmp", "-o", exe, cPath, "-lm"])
        return exe
    }

    /// Writes the program's source, header and harness into `directory` and builds the harness
    /// executable there; returns its path.
    @discardableResult
    public static func buildHarness(
        program: Program, source: CSource, directory: String, extraFlags: [String] = [], dialect: Dialect = .c
    ) throws(Failure) -> String {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw Failure("cannot create '\(directory)': \(error.localizedDescription)")
        }
        let cPath = directory + "/" + source.headerName + "." + dialect.sourceExtension
        let hPath = directory + "/" + source.headerName + "." + dialect.headerExtension
        let harnessPath = directory + "/harness_" + source.headerName + ".c"
        let exe = directory + "/harness_" + source.headerName
        try write(source.source, to: cPath)
        try write(source.header, to: hPath)
        try write(CHarness.source(for: program, dialect: dialect, headerName: source.headerName), to: harnessPath)
        try gcc(baseFlags + extraFlags + ["-I", directory, "-o", exe, cPath, harnessPath, "-lm"])
        return exe
    }
}

/// Data written by one thread and read by another.
private final class LockedData: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    private var done = false

    func set(_ d: Data) {
        lock.lock()
        data = d
        done = true
        lock.unlock()
    }

    var isSet: Bool {
        lock.lock()
        defer { lock.unlock() }
        return done
    }

    func get() -> Data {
        lock.lock()
        defer { lock.unlock() }
        return data
    }
}
