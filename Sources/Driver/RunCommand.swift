import BlockIR
import Foundation
import Graph
import Interpreter

/// `blockc run`: the interpreter on seeded or given inputs.
struct RunCommand {
    let options: CommandLineOptions
    let console: Console

    func execute() throws(DriverError) {
        let pipeline = try Pipeline(path: try options.inputFile(command: "run"), options: options, console: console)
        let stages = pipeline.isBlockFile ? ["lower", "fuse", "schedule"] : ["graph", "lower", "fuse", "schedule"]
        let stage = options.stage ?? (options.noFusion ? "lower" : "fuse")
        guard stages.contains(stage) else {
            throw DriverError(
                "unknown stage '\(stage)' for this file; choose one of: \(stages.joined(separator: ", "))")
        }
        if options.saveInputs && options.outputDir == nil {
            throw DriverError("--save-inputs needs --output-dir DIR to know where to write")
        }
        let signature: [(name: String, shape: [Int], type: ElementType)]
        let execute: ([String: NDArray]) throws(Diagnostic) -> [String: NDArray]
        let outputNames: [String]
        let bounds: [String: Int]
        let offsets: [String: Int]
        let maxLengths: [String: Int]
        let budget = MemoryBudget(options)
        let progress = Progress.forStandardError(console)
        if stage == "graph", case .graph(let graph) = try pipeline.parse() {
            try budget.check(MemoryBudget.bytes(of: graph), running: "running '\(graph.name)' at stage graph")
            signature = graph.inputs.map { (graph[$0].name, graph[$0].shape, graph[$0].elementType) }
            bounds = graph.gatherIndexBounds()
            offsets = graph.offsetInputs
            maxLengths = graph.segmentMaxLengths
            outputNames = graph.outputs.map { graph[$0].name }
            execute = { inputs throws(Diagnostic) in
                try GraphInterpreter.run(graph, inputs: inputs, progress: progress?.report)
            }
        } else {
            let program = try pipeline.program(at: stage)
            try budget.check(MemoryBudget.bytes(of: program), running: "running '\(program.name)' at stage \(stage)")
            signature = program.inputs.map { (program[$0].name, program[$0].shape, program[$0].elementType) }
            bounds = program.gatherIndexBounds()
            offsets = program.segmentOffsetInputs
            maxLengths = program.segmentMaxLengths
            outputNames = program.outputs.map { program[$0].name }
            execute = { inputs throws(Diagnostic) in
                try BlockInterpreter.run(program, inputs: inputs, progress: progress?.report)
            }
        }
        if let dir = options.outputDir {
            var plan = OutputPlan(options)
            let written = outputNames + (options.saveInputs ? signature.map(\.name) : [])
            for name in written { plan.write("the output file of '\(name)' (--output-dir)", dir + "/" + name + ".npy") }
            plan.hint = "choose another --output-dir"
            try plan.check()
        }
        let weights = try Weights.load(pipeline, signature: signature, options: options, console: console)
        let inputs = try makeInputs(
            signature, bounds: bounds, offsets: offsets, maxLengths: maxLengths, weights: weights)
        if let dir = options.outputDir { try makeDirectory(dir) }
        if options.saveInputs, let dir = options.outputDir {
            for (name, _, _) in signature { try write(inputs[name]!, name: name, dir: dir) }
        }
        let outputs: [String: NDArray]
        do {
            outputs = try execute(inputs)
            progress?.finish()
        } catch {
            progress?.finish()
            throw DriverError(error.message)
        }
        for name in outputNames {
            guard let array = outputs[name] else { continue }
            console.out(summary(name, array) + "\n")
            if let dir = options.outputDir { try write(array, name: name, dir: dir) }
        }
    }

    func makeInputs(
        _ signature: [(name: String, shape: [Int], type: ElementType)], bounds: [String: Int],
        offsets: [String: Int] = [:], maxLengths: [String: Int] = [:], weights: [String: NDArray] = [:]
    ) throws(DriverError) -> [String: NDArray] {
        try Self.makeInputs(
            signature, bounds: bounds, offsets: offsets, maxLengths: maxLengths, given: options.inputs,
            weights: weights, seed: options.seed)
    }

    /// The inputs `--input NAME=FILE.npy` gives (checked against the signature's shapes and
    /// types), and seeded random values for the others (gather indices within their table,
    /// segment offsets valid for their positions).
    static func makeInputs(
        _ signature: [(name: String, shape: [Int], type: ElementType)], bounds: [String: Int],
        offsets: [String: Int] = [:], maxLengths: [String: Int] = [:], given list: [(key: String, value: String)],
        weights: [String: NDArray] = [:],
        seed: UInt64
    ) throws(DriverError) -> [String: NDArray] {
        var given: [String: String] = [:]
        for (name, path) in list {
            guard signature.contains(where: { $0.name == name }) else {
                let names = signature.map(\.name).joined(separator: ", ")
                throw DriverError("--input \(name)=...: the program has no input '\(name)'; its inputs are: \(names)")
            }
            given[name] = path
        }
        var inputs: [String: NDArray] = [:]
        for (k, (name, shape, type)) in signature.enumerated() {
            if let path = given[name] {
                inputs[name] = try Weights.read(path, name: name, shape: shape, type: type)
            } else if let weight = weights[name] {
                inputs[name] = weight
            } else {
                inputs[name] = RandomInputs.values(
                    shape: shape, type: type, seed: seed, stream: UInt64(k), bound: bounds[name],
                    offsetsInto: offsets[name], maxSegment: maxLengths[name])
            }
        }
        return inputs
    }

    func makeDirectory(_ dir: String) throws(DriverError) {
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        } catch {
            throw DriverError("cannot create the output directory '\(dir)': \(Self.whyNotAFolder(dir))")
        }
    }

    /// Why a folder cannot be made at `dir`: the first component that exists and is not a
    /// folder, or the system's reason.
    static func whyNotAFolder(_ dir: String) -> String {
        var prefix = dir.hasPrefix("/") ? "" : "."
        for component in dir.split(separator: "/") {
            prefix = prefix.isEmpty ? "/" + component : prefix + "/" + component
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: prefix, isDirectory: &isDirectory) else { break }
            if !isDirectory.boolValue {
                let shown = prefix.hasPrefix("./") ? String(prefix.dropFirst(2)) : prefix
                return "'\(shown)' is a file, not a folder; choose another --output-dir"
            }
        }
        let parent = (dir as NSString).deletingLastPathComponent
        if access(parent.isEmpty ? "." : parent, W_OK) != 0, FileManager.default.fileExists(atPath: parent) {
            return "'\(parent)' is not writable; choose another --output-dir"
        }
        return "check that its parent folders exist and are writable"
    }

    func write(_ array: NDArray, name: String, dir: String) throws(DriverError) {
        try OutputFile(dir + "/" + name + ".npy").write(NPY.write(array))
    }

    func summary(_ name: String, _ a: NDArray) -> String {
        let n = a.data.count
        var sum = 0.0
        var lo = Float.infinity
        var hi = -Float.infinity
        var nonFinite = 0
        for x in a.data {
            if x.isFinite {
                sum += Double(x)
                lo = min(lo, x)
                hi = max(hi, x)
            } else {
                nonFinite += 1
            }
        }
        let mean = n > nonFinite ? sum / Double(n - nonFinite) : 0
        var s = "\(name): \(a.elementType)\(a.shape) mean \(fmt(mean)) min \(fmt(Double(lo))) max \(fmt(Double(hi)))"
        if nonFinite > 0 { s += " (\(nonFinite) non-finite)" }
        return s
    }

    func fmt(_ x: Double) -> String { x.isFinite ? String(format: "%.6g", x) : "\(x)" }
}
