import BlockIR
import Codegen
import Foundation
import Fusion
import Graph
import Interpreter
import Schedule

/// A subcommand: its name, options, help and action.
struct Command: Sendable {
    /// The name typed on the command line.
    var name: String
    /// One line for the overview.
    var summary: String
    /// The usage line and description.
    var usage: String
    /// The options it accepts.
    var options: Set<CommandLineOptions.Key>
    /// The action.
    var action: @Sendable (CommandLineOptions, Console) throws(DriverError) -> Void

    /// Runs the action.
    func run(_ options: CommandLineOptions, _ console: Console) throws(DriverError) {
        try action(options, console)
    }

    /// The `--help` text.
    var help: String {
        let keys = CommandLineOptions.Key.allCases.filter { options.contains($0) }
        return "\(usage)\n\nOPTIONS:\n" + keys.map(Help.describe).joined(separator: "\n")
            + "\n  -h, --help              show this help\n"
    }

    /// The subcommands, in the order the overview lists them.
    static let all: [Command] = [
        importONNX, lower, fuse, schedule, explain, run, report, check, dot, emitC, emitCuda, build, verify, bench,
        tune, peak,
    ]

    /// The subcommand with a name.
    static func named(_ name: String) -> Command? { all.first { $0.name == name } }

    static let common: Set<CommandLineOptions.Key> = [.dim, .block, .target, .tf32, .cores, .printAfter]

    static let lower = Command(
        name: "lower", summary: "print the naive block program of a .graph (one kernel per op)",
        usage: """
            USAGE: blockc lower FILE [options]

            Lowers a .graph to its naive block program (every op one kernel through global memory),
            verifies it and prints it in the .block text form.
            """,
        options: common.union([.output])
    ) { options, console throws(DriverError) in
        try OutputPlan(options).check()
        let pipeline = try Pipeline(path: try options.inputFile(command: "lower"), options: options, console: console)
        let program = try pipeline.lowered()
        try emit(BlockPrinter.print(program), to: options.outputPath, console: console)
    }

    static let check = Command(
        name: "check", summary: "parse and verify a .graph or .block file",
        usage: """
            USAGE: blockc check FILE [options]

            Parses the file, lowers a .graph, and runs the verifier (types, tiers, shapes, SSA
            dominance, local-tier capacity of the target). Prints 'ok' and exits 0 when all hold.
            """,
        options: common
    ) { options, console throws(DriverError) in
        let pipeline = try Pipeline(path: try options.inputFile(command: "check"), options: options, console: console)
        let program = try pipeline.lowered()
        console.out("\(pipeline.path): ok (\(program.kernels.count) kernels, \(program.tensors.count) tensors)\n")
    }

    static let report = Command(
        name: "report", summary: "print global bytes, FLOPs and local peak per kernel",
        usage: """
            USAGE: blockc report FILE [options]

            Prints, per kernel and in total, the global bytes read and written, the FLOPs (2 per
            multiply-add of a dot, 1 per elementwise op or reduction step) and the peak live
            local-tier bytes of the block program (the fused one unless --stage lower or
            --no-fusion).
            """,
        options: common.union([.json, .output, .stage, .noFusion, .onlyRule])
    ) { options, console throws(DriverError) in
        try OutputPlan(options).check()
        let pipeline = try Pipeline(path: try options.inputFile(command: "report"), options: options, console: console)
        let program = try pipeline.program(at: options.stage ?? (options.noFusion ? "lower" : "fuse"))
        let report = CostReport.analyze(
            program, localPeak: { LocalStorage.bytes($0, in: program, target: options.target) })
        try emit(options.json ? report.json : report.text, to: options.outputPath, console: console)
    }

    static let run = Command(
        name: "run", summary: "run a program in the interpreter on random or .npy inputs",
        usage: """
            USAGE: blockc run FILE [options]

            Runs the program in the reference interpreter. Inputs are standard-normal random numbers
            from --seed (input number k uses stream k) unless given with --input, or carried by the
            file: a .onnx model's weights, or DIR/NAME.npy with --weights-dir DIR. Prints a summary
            of every output; with --output-dir writes them as NAME.npy.
            """,
        options: common.union([
            .input, .outputDir, .seed, .saveInputs, .stage, .noFusion, .onlyRule, .maxMemory, .weightsDir,
        ])
    ) { options, console throws(DriverError) in
        try RunCommand(options: options, console: console).execute()
    }

    static let fuse = Command(
        name: "fuse", summary: "print the fused block program",
        usage: """
            USAGE: blockc fuse FILE [options]

            Lowers a .graph (or reads a .block), applies the fusion rules to a fixed point, verifies
            the result and prints it in the .block text form. Fusing a fused program changes nothing.
            """,
        options: common.union([.output, .noFusion, .onlyRule])
    ) { options, console throws(DriverError) in
        try OutputPlan(options).check()
        let pipeline = try Pipeline(path: try options.inputFile(command: "fuse"), options: options, console: console)
        let program = try pipeline.fused().program
        try emit(BlockPrinter.print(program), to: options.outputPath, console: console)
    }

    static let schedule = Command(
        name: "schedule", summary: "print every kernel's schedule for a target",
        usage: """
            USAGE: blockc schedule FILE [--target cpu|sm_80|sm_90] [options]

            Runs the pipeline through the schedule stage and prints, per kernel: the grid and its
            parallel axes, the block sizes, the local buffers and every value's storage (a buffer,
            a view, a splat, in place), each dot's micro-kernel and, on a GPU target, the launch
            configuration and the barriers the CUDA keeps. The emitters render exactly this schedule.
            """,
        options: common.union([.output, .noFusion, .onlyRule])
    ) { options, console throws(DriverError) in
        let pipeline = try Pipeline(
            path: try options.inputFile(command: "schedule"), options: options, console: console)
        let schedule = try pipeline.scheduled()
        var text = SchedulePrinter.print(schedule)
        if schedule.kernels.contains(where: { $0.launch != nil }) {
            text += "\nbarriers (CUDA): kept of the placed after each shared access (Docs/CUDA.md, \"Barriers\")\n"
            for (k, counts) in CEmitter.barrierCounts(schedule).enumerated() {
                text += "  kernel #\(k): \(counts.kept) of \(counts.placed)\n"
            }
        }
        try emit(text, to: options.outputPath, console: console)
    }

    static let explain = Command(
        name: "explain", summary: "print the fusion plan's decisions and every rule application",
        usage: """
            USAGE: blockc explain FILE [options]

            Prints the rules in priority order, the fusion plan's decisions (what may be recomputed
            where, and why not), the trace: every rule application with its place and the
            program's size before and after, and the schedule's decisions for --target (block
            sizes: row coarsening).
            """,
        options: common.union([.output, .onlyRule])
    ) { options, console throws(DriverError) in
        try OutputPlan(options).check()
        let pipeline = try Pipeline(path: try options.inputFile(command: "explain"), options: options, console: console)
        guard let result = try pipeline.fused().fusion else { return }
        var text = "rules, in priority order:\n"
        for rule in Fusion.rules { text += "  \(rule.id) \(rule.name): \(rule.summary)\n" }
        text += "\nplan decisions:\n"
        text += result.decisions.isEmpty ? "  (none)\n" : result.decisions.map { "  " + $0 + "\n" }.joined()
        text += "\ntrace (\(result.trace.count) steps):\n"
        text += result.trace.map { "  \($0)\n" }.joined()
        if result.hitStepCap { text += "  (stopped at the step cap before a fixed point)\n" }
        text += "\ncandidates (each fused kernel and the naive kernels whose work it does):\n"
        for c in result.candidates { text += "  \(c.kernel) ← " + c.from.joined(separator: ", ") + "\n" }
        text +=
            "\nresult: \(result.program.kernels.count) kernel(s): "
            + result.program.kernels.map(\.name).joined(separator: ", ") + "\n"
        let schedule = Scheduler.schedule(result.program, target: options.target)
        text += "\nschedule decisions for \(options.target.name):\n"
        text += schedule.decisions.isEmpty ? "  (none)\n" : schedule.decisions.map { "  " + $0 + "\n" }.joined()
        try emit(text, to: options.outputPath, console: console)
    }

    static let dot = Command(
        name: "dot", summary: "draw a block program as Graphviz DOT",
        usage: """
            USAGE: blockc dot FILE [options]

            Writes the block program (the fused one unless --stage lower or --no-fusion) as Graphviz
            DOT: global tensors, kernels with their grids, loops with their carried values and tiers,
            and the loads and stores between them. Render with 'dot -Tsvg out.dot -o out.svg'.
            """,
        options: common.union([.output, .stage, .noFusion, .onlyRule])
    ) { options, console throws(DriverError) in
        try OutputPlan(options).check()
        let pipeline = try Pipeline(path: try options.inputFile(command: "dot"), options: options, console: console)
        let program = try pipeline.program(at: options.stage ?? (options.noFusion ? "lower" : "fuse"))
        try emit(DotPrinter.print(program), to: options.outputPath, console: console)
    }

    /// Writes text to a file (see `OutputFile`; `-` is standard output), or to the console
    /// without a path.
    static func emit(_ text: String, to path: String?, console: Console) throws(DriverError) {
        guard let path else {
            console.out(text)
            return
        }
        try OutputFile(path).write(text)
    }
}
