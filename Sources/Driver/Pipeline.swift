import BlockIR
import BlockParser
import Codegen
import Foundation
import Fusion
import Graph
import ONNX
import Schedule

/// The compilation pipeline: the stages in order, by name. Each name is a `--print-after` key.
///
/// ```
/// parse (.graph → Graph, or .block → block program) → lower (naive block program, verified)
///   → fuse (rules to a fixed point, verified) → schedule (block sizes, storage, parallel axes,
///   launch, micro-kernels; verified) → emit (C/OpenMP or CUDA, by a subcommand's dialect)
/// ```
///
/// `run(through:)` lists the stages top to bottom; `lowered()`, `fused()` and `scheduled()` stop
/// after theirs, and the code-generation commands render the schedule with their dialect (`emit`).
struct Pipeline {
    /// The stage names, in order.
    static let stageNames = Stage.allCases.map(\.rawValue)

    /// What a source file holds once parsed.
    enum Parsed {
        case graph(Graph)
        case program(Program)
    }

    let options: CommandLineOptions
    let console: Console
    /// The input file's path as given.
    let path: String
    /// The input file's text (empty for an ONNX model).
    let text: String
    /// The imported model, for a `.onnx` file: its graph and its weights.
    let imported: ONNXImport?

    /// Reads the input file; an ONNX model is imported here (its `--dim` bindings apply).
    init(path: String, options: CommandLineOptions, console: Console) throws(DriverError) {
        self.options = options
        self.console = console
        self.path = path
        if path.hasSuffix(".onnx") {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else {
                throw DriverError(
                    isDirectory.boolValue
                        ? "'\(path)' is a directory; give a .onnx, .graph or .block file"
                        : "cannot read '\(path)': no such file")
            }
            var dims: [String: Int] = [:]
            for (k, v) in options.dims { dims[k] = v }
            let name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
            do {
                self.imported = try ONNXImporter.importFile(path, name: Self.sanitized(name), dims: dims)
            } catch {
                throw DriverError("\(error.message)")
            }
            self.text = ""
            return
        }
        self.imported = nil
        guard let data = FileManager.default.contents(atPath: path) else {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
                throw DriverError("'\(path)' is a directory; give a .graph or .block file")
            }
            throw DriverError("cannot read '\(path)': no such file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw DriverError("'\(path)' is not UTF-8 text")
        }
        self.text = text
    }

    /// Whether the file is a `.block` program (otherwise a `.graph`).
    var isBlockFile: Bool { path.hasSuffix(".block") }

    /// Renders a diagnostic against the input file.
    func render(_ d: Diagnostic) -> DriverError {
        DriverError(rendered: d.rendered(file: path, source: text))
    }

    /// Runs `parse`.
    func parse() throws(DriverError) -> Parsed {
        let parsed: Parsed
        if let imported {
            parsed = .graph(imported.graph)
        } else if isBlockFile {
            guard options.dims.isEmpty else {
                throw DriverError("--dim applies to .graph files; '\(path)' is a block program with fixed shapes")
            }
            do {
                parsed = .program(try BlockParser.parse(text))
            } catch {
                throw render(error)
            }
        } else {
            let name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
            var overrides: [String: Int] = [:]
            for (k, v) in options.dims { overrides[k] = v }
            do {
                parsed = .graph(try GraphParser.parse(text, defaultName: Self.sanitized(name), dimOverrides: overrides))
            } catch {
                throw render(error)
            }
        }
        if options.printAfter.contains("parse") {
            switch parsed {
            case .graph(let g): console.err("// after parse\n" + GraphPrinter.print(g))
            case .program(let p): console.err("// after parse\n" + BlockPrinter.print(p))
            }
        }
        return parsed
    }

    /// What the stages produced, up to the last one run.
    struct Artifacts {
        /// The parsed file.
        var parsed: Parsed?
        /// The naive block program (or the `.block` file's program), verified.
        var lowered: Program?
        /// The fused program and its trace (`nil` trace with `--no-fusion`), verified.
        var fused: (program: Program, fusion: FusionResult?)?
        /// The program with its schedule for `--target`, verified.
        var schedule: ProgramSchedule?
        /// The generated source.
        var source: CSource?
    }

    /// The stages, in order; each name is a `--print-after` key.
    enum Stage: String, CaseIterable, Comparable {
        case parse, lower, fuse, schedule, emit
        static func < (a: Stage, b: Stage) -> Bool {
            allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
        }
    }

    /// The pipeline, top to bottom: each stage takes the previous one's result, is verified and
    /// printed with `--print-after=NAME`, and the run stops after `last`. `emit` renders the
    /// schedule with `dialect`.
    func run(through last: Stage, dialect: Dialect = .c, headerName: String? = nil) throws(DriverError)
        -> Artifacts
    {
        var a = Artifacts()
        let parsed = try parse()
        a.parsed = parsed
        guard last > .parse else { return a }
        let naive = try lower(parsed)
        a.lowered = naive
        guard last > .lower else { return a }
        let fused: (program: Program, fusion: FusionResult?)
        if let choice = gpuRowBlockChoice(parsed, naive) {
            // The GPU plan chose the row block by its cost model (it fused every candidate it tried).
            if choice.rowBlock != LoweringOptions(target: options.target).rowBlock {
                try verify(choice.lowered, stage: "lower")
            }
            a.lowered = choice.lowered
            if options.printAfter.contains("fuse") {
                console.err("// after fuse\n" + BlockPrinter.print(choice.result.program))
            }
            try verify(choice.result.program, stage: "fuse")
            fused = (choice.result.program, choice.result)
        } else {
            fused = try fuse(naive)
        }
        a.fused = fused
        guard last > .fuse else { return a }
        let schedule = try self.schedule(fused.program)
        a.schedule = schedule
        guard last > .schedule else { return a }
        a.source = Self.emit(schedule, dialect: dialect, headerName: headerName, options: options, console: console)
        return a
    }

    /// `lower`: the naive block program of a graph (a `.block` file's program as it is), verified.
    func lower(_ parsed: Parsed) throws(DriverError) -> Program {
        let program: Program
        switch parsed {
        case .program(let p):
            program = p
        case .graph(let g):
            var lowering = LoweringOptions(target: options.target)
            let tuned = options.blocks.isEmpty ? try tunedBlocks(g) : nil
            do {
                try lowering.override(tuned ?? options.blocks)
                program = try Lowering.lower(g, options: lowering)
            } catch {
                throw DriverError(error.message)
            }
            if options.printAfter.contains("lower") { console.err("// after lower\n" + BlockPrinter.print(program)) }
            try checkBlocksFit(program, g, lowering, tuned: tuned != nil)
        }
        try verify(program, stage: isBlockFile ? "parse" : "lower")
        return program
    }

    /// Says up front when the block sizes make a kernel of the naive program too large for the
    /// target's local tier (a user's choice, not a compiler bug): which blocks, which kernels,
    /// and what to do. Fusion never makes a kernel that does not fit from one that does.
    func checkBlocksFit(
        _ program: Program, _ graph: Graph, _ lowering: LoweringOptions, tuned: Bool
    ) throws(DriverError) {
        let target = options.target
        let problems = program.kernels.compactMap { kernel in
            LocalStorage.capacityError(kernel, in: program, target: target).map { "kernel \(kernel.name): \($0)" }
        }
        guard !problems.isEmpty else { return }
        func text(_ l: LoweringOptions) -> String { "i=\(l.rowBlock),j=\(l.columnBlock),k=\(l.reductionBlock)" }
        let origin =
            !options.blocks.isEmpty
            ? "the requested block sizes" : tuned ? "the tuned block sizes" : "the default block sizes"
        var lines = problems.map { "\(path): error: \($0)" }
        let advice = Self.fittingBlocks(graph, from: lowering).map { "for example --block \(text($0))" }
        lines.append(
            "\(path): error: \(origin) (\(text(lowering))) do not fit \(target.name)'s local tier of "
                + "\(target.localCapacityBytes) bytes; give smaller ones with --block"
                + (advice.map { " (\($0))" } ?? ""))
        throw DriverError(rendered: lines.joined(separator: "\n"))
    }

    /// Block sizes near `lowering`'s whose naive program fits the target: the largest block
    /// halved until every kernel fits (at most a dozen lowerings), or nil when none is found.
    static func fittingBlocks(_ graph: Graph, from lowering: LoweringOptions) -> LoweringOptions? {
        var l = lowering
        for _ in 0..<12 {
            if l.rowBlock >= l.columnBlock && l.rowBlock >= l.reductionBlock && l.rowBlock > 1 {
                l.rowBlock /= 2
            } else if l.columnBlock >= l.reductionBlock && l.columnBlock > 1 {
                l.columnBlock /= 2
            } else if l.reductionBlock > 1 {
                l.reductionBlock /= 2
            } else {
                return nil
            }
            guard let p = try? Lowering.lower(graph, options: l) else { return nil }
            if p.kernels.allSatisfy({ LocalStorage.capacityError($0, in: p, target: l.target) == nil }) { return l }
        }
        return nil
    }

    /// The block sizes `--tuned FILE` holds for this graph on this machine, or nil (with a note
    /// saying why) when it has no entry for it: another shape, CPU, thread count or target, or a
    /// graph that changed since it was tuned. An explicit `--block` wins over the cache.
    func tunedBlocks(_ graph: Graph) throws(DriverError) -> [(key: String, value: Int)]? {
        guard let path = options.tunedPath else { return nil }
        let cache = try TuningCache.load(path)
        let key = TuningCache.key(for: graph, target: options.target)
        guard let entry = cache.entry(for: key) else {
            console.err(
                "note: \(path) has no entry for \(graph.name) at these dims on this machine (\(key.cpu), "
                    + "\(key.threads) threads, \(key.target)); using the default block sizes\n")
            return nil
        }
        var check = LoweringOptions(target: options.target)
        do {
            try check.override(entry.blocks)
        } catch {
            console.err("note: ignoring the entry of \(path) for \(graph.name): \(error.message)\n")
            return nil
        }
        let text = entry.blocks.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        console.err("note: using the tuned block sizes \(text) from \(path)\n")
        return entry.blocks
    }

    /// A GPU target's plan for a graph at the default blocks (no `--block`, no `--tuned`, all rules): the row
    /// block `Fusion.fuseChoosingRowBlock` chooses by the GPU cost model, with the program lowered and fused at it;
    /// nil otherwise (the pipeline fuses `naive` as it is).
    func gpuRowBlockChoice(_ parsed: Parsed, _ naive: Program) -> Fusion.RowBlockChoice? {
        guard case .graph(let graph) = parsed, options.target.isGPU, options.blocks.isEmpty, options.tunedPath == nil,
            !options.noFusion, options.onlyRule == nil
        else { return nil }
        let target = options.target
        let defaultRows = LoweringOptions(target: target).rowBlock
        return Fusion.fuseChoosingRowBlock(
            defaultRowBlock: defaultRows,
            options: FusionOptions(target: target, cores: options.cores)
        ) { rows in
            if rows == defaultRows { return naive }
            var lowering = LoweringOptions(target: target)
            guard (try? lowering.override([(key: "i", value: rows)])) != nil,
                let program = try? Lowering.lower(graph, options: lowering),
                program.kernels.allSatisfy({ LocalStorage.capacityError($0, in: program, target: target) == nil })
            else { return nil }
            return program
        }
    }

    /// `fuse`: the rules to a fixed point (nothing with `--no-fusion`), verified.
    func fuse(_ naive: Program) throws(DriverError) -> (program: Program, fusion: FusionResult?) {
        guard !options.noFusion else { return (naive, nil) }
        let result = Fusion.fuse(
            naive, options: FusionOptions(onlyRule: options.onlyRule, target: options.target, cores: options.cores))
        if options.printAfter.contains("fuse") { console.err("// after fuse\n" + BlockPrinter.print(result.program)) }
        try verify(result.program, stage: "fuse")
        return (result.program, result)
    }

    /// `schedule`: block sizes, storage, parallel axes, micro-kernels and launches for
    /// `--target`; the scheduled program is verified again (its block sizes are final).
    func schedule(_ fused: Program) throws(DriverError) -> ProgramSchedule {
        let schedule = Scheduler.schedule(fused, target: options.target)
        if options.printAfter.contains("schedule") {
            console.err("// after schedule\n" + SchedulePrinter.print(schedule))
        }
        try verify(schedule.program, stage: "schedule")
        return schedule
    }

    /// `emit`: renders a schedule in a dialect (the C family's one emitter), printing the source
    /// with `--print-after=emit`.
    static func emit(
        _ schedule: ProgramSchedule, dialect: Dialect = .c, headerName: String? = nil, options: CommandLineOptions,
        console: Console
    ) -> CSource {
        let source = CEmitter.emit(schedule, dialect: dialect, headerName: headerName)
        if options.printAfter.contains("emit") { console.err("// after emit\n" + source.source) }
        return source
    }

    /// The pipeline through `lower`.
    func lowered() throws(DriverError) -> Program { try run(through: .lower).lowered! }

    /// The pipeline through `fuse`.
    func fused() throws(DriverError) -> (program: Program, fusion: FusionResult?) { try run(through: .fuse).fused! }

    /// The pipeline through `schedule`.
    func scheduled() throws(DriverError) -> ProgramSchedule { try run(through: .schedule).schedule! }

    /// The program at a stage: `lower`, `fuse` or `schedule` (default: `fuse`, or `lower` with
    /// `--no-fusion`).
    func program(at stage: String?) throws(DriverError) -> Program {
        switch stage ?? "fuse" {
        case "lower": return try lowered()
        case "fuse": return try fused().program
        case "schedule": return try scheduled().program
        default:
            throw DriverError("unknown stage '\(stage ?? "")'; choose lower, fuse or schedule")
        }
    }

    /// Runs the verifier; errors in a user's `.block` file are user errors, errors after a
    /// compiler stage are compiler bugs (still reported, never a trap).
    func verify(_ program: Program, stage: String) throws(DriverError) {
        var errors = LocalStorage.verify(program, target: options.target)
        guard errors.isEmpty else {
            // A user's .block file: verify again with its source map, so errors carry positions.
            if stage == "parse", isBlockFile, let map = try? BlockParser.parseWithSourceMap(text).sourceMap {
                errors = LocalStorage.verify(program, target: options.target, sourceMap: map)
            }
            let lines = errors.map { e in
                e.location.map { Diagnostic(e.description, at: $0).rendered(file: path, source: text) }
                    ?? "\(path): error: \(e)"
            }
            let suffix =
                stage == "parse"
                ? ""
                : "\n\(path): note: this is a compiler bug in stage '\(stage)'; please report it with the input file"
            throw DriverError(rendered: lines.joined(separator: "\n") + suffix)
        }
    }

    static func sanitized(_ name: String) -> String {
        let s = String(name.map { $0.isLetter || $0.isNumber || $0 == "_" ? $0 : "_" })
        if let first = s.first, first.isNumber { return "g_" + s }
        return s.isEmpty ? "graph" : s
    }
}
