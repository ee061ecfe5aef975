import BlockIR
import Codegen
import Foundation
import Interpreter
import Schedule

/// The settings of the code-generation subcommands, read from `--reps`, `--peak` and
/// `--sanitize`.
struct CodegenSettings {
    /// Timed repetitions of `bench` (after one warm-up).
    var reps = 20
    /// The FLOP/s peak `bench` reports a percentage of (`--peak`; nil: measured on this host).
    var peakGFLOPS: Double?
    /// Whether `verify` builds with address and undefined-behaviour sanitizers.
    var sanitize = false

    init(_ options: CommandLineOptions) {
        reps = options.reps
        peakGFLOPS = options.peak
        sanitize = options.sanitize
    }
}

extension Command {
    /// The options of the code-generation subcommands.
    static let codegenOptions: Set<CommandLineOptions.Key> = common.union([.output, .noFusion, .onlyRule, .tuned])

    /// What code generation renders: the fused program (the naive one with --no-fusion) and its
    /// schedule for `--target`.
    static func codegenSchedule(_ command: String, _ options: CommandLineOptions, _ console: Console)
        throws(DriverError) -> ProgramSchedule
    {
        let pipeline = try Pipeline(path: try options.inputFile(command: command), options: options, console: console)
        let schedule = try pipeline.scheduled()
        return schedule
    }

    /// `blockc emit-c FILE -o out.c`: writes `out.c` and `out.h`.
    static let emitC = Command(
        name: "emit-c", summary: "write the program as C/OpenMP (a .c and a .h)",
        usage: """
            USAGE: blockc emit-c FILE [-o OUT.c] [options]

            Emits the (fused) block program as one self-contained C file with OpenMP kernels and a C
            entry point, plus a header declaring it. With -o OUT.c the header is OUT.h (the source
            includes it by that name); without -o the source goes to standard output.
            """,
        options: codegenOptions
    ) { options, console throws(DriverError) in
        let headerPath = options.outputPath.map(Self.headerPath)
        var plan = OutputPlan(options, withOutput: false)
        if let path = options.outputPath, let headerPath, path != "-" {
            plan.write("the C source (-o)", path)
            plan.write("the header", headerPath)
            plan.hint = "give -o a path ending in .c, and not the path of an input"
        }
        try plan.check()
        let schedule = try codegenSchedule("emit-c", options, console)
        guard let path = options.outputPath, let headerPath, path != "-" else {
            console.out(Pipeline.emit(schedule, options: options, console: console).source)
            return
        }
        let stem = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        let c = Pipeline.emit(schedule, headerName: stem, options: options, console: console)
        try emit(c.source, to: path, console: console)
        try emit(c.header, to: headerPath, console: console)
    }

    /// `blockc build FILE -o libNAME.so`: compiles the C with gcc into a shared library.
    static let build = Command(
        name: "build", summary: "compile the program's C into a shared library with gcc",
        usage: """
            USAGE: blockc build FILE [-o libNAME.so] [options]

            Emits the (fused) program as C and compiles it with
            '\(CCompiler.baseFlags.joined(separator: " ")) -fPIC -shared'. NAME.c and NAME.h are
            written beside the library (default lib<program>.so in the current directory).
            """,
        options: codegenOptions
    ) { options, console throws(DriverError) in
        let schedule = try codegenSchedule("build", options, console)
        let program = schedule.program
        let c = Pipeline.emit(schedule, options: options, console: console)
        let output = options.outputPath ?? "lib\(c.headerName).so"
        let folder = URL(fileURLWithPath: output).deletingLastPathComponent().path
        var plan = OutputPlan(options, withOutput: false)
        plan.write("the library (-o)", output)
        if output != "-" {
            plan.write("the C source", folder + "/" + c.headerName + ".c")
            plan.write("the header", folder + "/" + c.headerName + ".h")
        }
        try plan.check()
        // gcc builds in a scratch folder; the results are then written like any other output.
        let scratch = try ScratchDirectory(tag: c.headerName)
        defer { scratch.remove() }
        let library: [UInt8]
        do throws(CCompiler.Failure) {
            try CCompiler.compileSharedLibrary(
                source: c.source, header: c.header, name: c.headerName, outputPath: scratch.path + "/lib.so")
            library = try readScratch(scratch.path + "/lib.so")
        } catch {
            throw DriverError(error.message)
        }
        if output != "-" {
            try OutputFile(folder + "/" + c.headerName + ".c").write(c.source)
            try OutputFile(folder + "/" + c.headerName + ".h").write(c.header)
        }
        try OutputFile(output).write(library, newFileMode: 0o777)
        let line = "built \(output) (entry '\(c.name)', \(program.kernels.count) kernel(s))\n"
        // With -o - the library is standard output; the summary goes to standard error.
        if output == "-" { console.err(line) } else { console.out(line) }
    }

    /// The header written beside a source: `out.c` → `out.h`.
    static func headerPath(_ sourcePath: String) -> String {
        (sourcePath as NSString).deletingPathExtension + ".h"
    }

    /// The bytes of a file the compiler wrote into a scratch folder.
    static func readScratch(_ path: String) throws(CCompiler.Failure) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CCompiler.Failure("the C compiler reported success but wrote no '\(path)'")
        }
        return [UInt8](data)
    }

    /// `blockc verify FILE`: the compiled C against the interpreter on the same random inputs.
    static let verify = Command(
        name: "verify", summary: "compare the compiled C with the interpreter on random inputs",
        usage: """
            USAGE: blockc verify FILE [--seed N] [--input NAME=FILE.npy ...] [options]

            Compiles the (fused) program's C with a harness, runs it and the interpreter on the same
            standard-normal inputs (--seed; --input NAME=FILE.npy gives an input from a file, such as a
            structured mask; a .onnx model's weights, or DIR/NAME.npy with --weights-dir DIR, where
            they exist), and prints each output's largest absolute and relative error (to standard
            output, or to the file -o names). Fails (exit 1) when an output's absolute error exceeds
            1e-4 · max(1, max|ref|).
            """,
        options: codegenOptions.union([.seed, .sanitize, .maxMemory, .weightsDir, .input])
    ) { options, console throws(DriverError) in
        try OutputPlan(options).check()
        let pipeline = try Pipeline(path: try options.inputFile(command: "verify"), options: options, console: console)
        let schedule = try pipeline.scheduled()
        let program = schedule.program
        let weights = try Weights.load(
            pipeline, signature: program.inputs.map { (program[$0].name, program[$0].shape, program[$0].elementType) },
            options: options, console: console)
        // The interpreter's tensors, the compiled program's outputs, read back, and its scratch.
        try MemoryBudget(options).check(
            MemoryBudget.saturatingAdd(
                MemoryBudget.bytes(of: program, extraOutputCopies: 1), MemoryBudget.scratchBytes(of: schedule)),
            running: "verifying '\(program.name)'")
        let settings = CodegenSettings(options)
        let run = try CodegenRun(
            schedule: schedule, seed: options.seed, console: console, given: options.inputs, weights: weights)
        defer { run.cleanUp() }
        let reference: [String: NDArray]
        let progress = Progress.forStandardError(console)
        do throws(Diagnostic) {
            reference = try BlockInterpreter.run(program, inputs: run.inputs, progress: progress?.report)
            progress?.finish()
        } catch {
            progress?.finish()
            throw DriverError(error.message)
        }
        let exe = try run.build(extraFlags: settings.sanitize ? CCompiler.sanitizerFlags : [])
        _ = try run.execute(exe, reps: 0)
        var failed: [String] = []
        var report = ""
        for t in program.outputs {
            let name = program[t].name
            let got = try run.output(name)
            let errors = OutputErrors(
                got: got.data, reference: reference[name]?.data ?? [], elementType: program[t].elementType)
            report += errors.line(name: name) + "\n"
            if !errors.withinTolerance { failed.append(name) }
        }
        try emit(report, to: options.outputPath, console: console)
        guard failed.isEmpty else {
            throw DriverError(
                "compiled C differs from the interpreter beyond tolerance in: " + failed.joined(separator: ", "))
        }
    }

    /// `blockc bench FILE`: times the compiled C.
    static let bench = Command(
        name: "bench", summary: "time the compiled C (median/min ms, GFLOP/s, % of peak)",
        usage: """
            USAGE: blockc bench FILE [--seed N] [--input NAME=FILE.npy ...] [options]

            Compiles the (fused) program's C with a harness on random inputs (--seed; --input gives
            one from a file, such as a structured mask whose density sets the work; a .onnx model's
            weights, or --weights-dir DIR), runs it once to warm up, then times
            repeated runs; prints the median and minimum milliseconds, GFLOP/s (FLOPs as counted
            by 'blockc report') and the percentage of this host's fp32 FMA peak at the same thread
            count (measured by the probe of 'blockc peak' before and after the timing, the higher
            reading; --peak gives one instead), to standard output or to the file -o names.
            """,
        options: codegenOptions.union([.seed, .reps, .peak, .weightsDir, .input])
    ) { options, console throws(DriverError) in
        try OutputPlan(options).check()
        let pipeline = try Pipeline(path: try options.inputFile(command: "bench"), options: options, console: console)
        let schedule = try pipeline.scheduled()
        let program = schedule.program
        let settings = CodegenSettings(options)
        let weights = try Weights.load(
            pipeline, signature: program.inputs.map { (program[$0].name, program[$0].shape, program[$0].elementType) },
            options: options, console: console)
        let run = try CodegenRun(
            schedule: schedule, seed: options.seed, console: console, given: options.inputs, weights: weights)
        defer { run.cleanUp() }
        let exe = try run.build(extraFlags: [])
        var measured: PeakProbe.Measurement? = nil
        if settings.peakGFLOPS == nil {
            console.err("measuring this host's FMA peak (blockc peak)...\n")
            measured = try Self.measurePeak(directory: run.directory)
        }
        console.err("running \(settings.reps) timed repetitions after a warm-up...\n")
        let output = try run.execute(exe, reps: settings.reps)
        // Measured again after the timing, the higher of the two counts: a probe that shared a
        // core with something else for its half second reads low (half the peak at 2 threads was
        // seen on a 2-vCPU machine), and one low reading must not inflate the percentage.
        var peak: (gflops: Double, source: String) = (settings.peakGFLOPS ?? 0, "given")
        if let before = measured {
            let after = try Self.measurePeak(directory: run.directory)
            let best = after.best > before.best ? after : before
            peak = (best.best, "measured, the higher before and after, \(best.isa), \(best.threads) threads")
        }
        let fields = output.split(separator: " ").map(String.init)
        func field(_ key: String) -> Double? {
            guard let k = fields.firstIndex(of: key), k + 1 < fields.count else { return nil }
            return Double(fields[k + 1].trimmingCharacters(in: .whitespacesAndNewlines))
        }
        guard let median = field("median_ms"), let best = field("min_ms") else {
            throw DriverError("the benchmark harness printed no timing: \(output)")
        }
        let flops = Double(CostReport.analyze(program, localPeak: { _ in 0 }).total.flops)
        let gflops = flops / (median * 1e6)
        let percent = 100 * gflops / peak.gflops
        let line = String(
            format: "%@: median %.3f ms, min %.3f ms (%d reps), %.1f GFLOP/s, %.1f%% of %.0f GFLOP/s peak (%@)\n",
            program.name, median, best, settings.reps, gflops, percent, peak.gflops, peak.source)
        try emit(line, to: options.outputPath, console: console)
    }

    /// The probe's measurement at the most threads (the count the generated code runs with).
    static func measurePeak(directory: String, seconds: Double = 0.1, reps: Int = 5) throws(DriverError)
        -> PeakProbe.Measurement
    {
        let lines: [PeakProbe.Measurement]
        do {
            lines = try PeakProbe.measure(directory: directory, seconds: seconds, reps: reps).measurements
        } catch {
            throw DriverError(error.message + "\n(give the peak with --peak GFLOPS to skip the measurement)")
        }
        return lines.max { $0.threads < $1.threads }!
    }

    /// `blockc peak`: this host's fp32 FMA peak.
    static let peak = Command(
        name: "peak", summary: "measure this CPU's fp32 FMA peak (the 100% of bench)",
        usage: """
            USAGE: blockc peak [--reps N] [-o FILE]

            Builds a small C program with the flags the generated C uses (-march=native) and runs
            independent FMA chains on the widest vectors the compiler targets (AVX-512, else AVX2),
            on 1 thread and on OMP_NUM_THREADS threads (default: every processor). Prints the CPU
            model and one line per thread count with the best and median of N reps (default 20, at
            most 64) of 0.1 s: 'peak_fma isa=… threads=… accumulators=… max … median … GFLOP/s (N reps)'.
            Where the compiler's target has AVX512_BF16 it then measures the bf16 dot peak the same
            way (vdpbf16ps chains, 64 FLOPs each): 'peak_dpbf16 isa=avx512_zmm_dpbf16 threads=… …'.
            """,
        options: [.output, .reps]
    ) { options, console throws(DriverError) in
        try OutputPlan(options).check()
        guard options.positional.isEmpty else {
            throw DriverError("'peak' takes no file; run 'blockc peak' alone (see 'blockc peak --help')")
        }
        let scratch = try ScratchDirectory(tag: "peak")
        defer { scratch.remove() }
        let output: String
        do throws(CCompiler.Failure) {
            output = try PeakProbe.measure(directory: scratch.path, seconds: 0.1, reps: min(options.reps, 64)).output
        } catch {
            throw DriverError(error.message)
        }
        try emit("cpu \(TuningCache.cpuModel())\n" + output, to: options.outputPath, console: console)
    }
}

/// The largest errors of one output against the interpreter's.
struct OutputErrors {
    /// The largest absolute difference (infinite when NaN or infinity patterns differ).
    var maxAbsolute: Float = 0
    /// The largest `|got - ref| / max(|ref|, 1e-6)`.
    var maxRelative: Float = 0
    /// The largest finite `|ref|`.
    var referenceMax: Float = 0
    /// The output's element type (narrower types allow one unit in the last place of rounding).
    var elementType: ElementType = .f32

    init(got: [Float], reference: [Float], elementType: ElementType = .f32) {
        self.elementType = elementType
        if got.count != reference.count { maxAbsolute = .infinity }
        for (x, y) in zip(got, reference) {
            if y.isFinite { referenceMax = Swift.max(referenceMax, Swift.abs(y)) }
            if x.isNaN || y.isNaN || x.isInfinite || y.isInfinite {
                if !(x.isNaN && y.isNaN) && x != y { maxAbsolute = .infinity }
                continue
            }
            let d = Swift.abs(x - y)
            maxAbsolute = Swift.max(maxAbsolute, d)
            maxRelative = Swift.max(maxRelative, d / Swift.max(Swift.abs(y), 1e-6))
        }
    }

    /// The allowed absolute error: `1e-4 · max(1, max|ref|)` for f32 (float reassociation); for
    /// f16 and bf16 one unit in the last place at that magnitude (`2^-10`, `2^-7`), since the C
    /// and the interpreter may round a value that differs in its last f32 bits to neighbouring
    /// values; 1 for i32 (truncation of such a value); 0 for bool.
    var tolerance: Float {
        let scale = Swift.max(1, referenceMax)
        switch elementType {
        case .f32: return 1e-4 * scale
        case .f16: return 0x1p-10 * scale
        case .bf16: return 0x1p-7 * scale
        case .i32: return Swift.max(1, 1e-4 * scale)
        case .bool: return 0
        }
    }

    /// Whether the output is within tolerance.
    var withinTolerance: Bool { maxAbsolute <= tolerance }

    /// One report line.
    func line(name: String) -> String {
        String(
            format: "%@: max abs error %.3g, max rel error %.3g (tolerance %.3g) %@", name, Double(maxAbsolute),
            Double(maxRelative), Double(tolerance), withinTolerance ? "ok" : "FAILED")
    }
}

/// A scratch directory with a program's random inputs, its compiled harness and outputs.
struct CodegenRun {
    let schedule: ProgramSchedule
    var program: Program { schedule.program }
    let scratch: ScratchDirectory
    let inputs: [String: NDArray]
    let console: Console

    /// The scratch folder's path.
    var directory: String { scratch.path }

    /// Creates the scratch folder and writes the random inputs there; on failure nothing is
    /// left behind.
    init(
        schedule: ProgramSchedule, seed: UInt64, console: Console, given: [(key: String, value: String)] = [],
        weights: [String: NDArray] = [:]
    ) throws(DriverError) {
        self.schedule = schedule
        let program = schedule.program
        self.console = console
        let scratch = try ScratchDirectory(tag: program.name)
        self.scratch = scratch
        var inputs: [String: NDArray] = [:]
        do throws(DriverError) {
            let signature = program.inputs.map { (program[$0].name, program[$0].shape, program[$0].elementType) }
            inputs = try RunCommand.makeInputs(
                signature, bounds: program.gatherIndexBounds(), offsets: program.segmentOffsetInputs,
                maxLengths: program.segmentMaxLengths, given: given,
                weights: weights, seed: seed)
            for t in program.inputs {
                let name = program[t].name
                try OutputFile(scratch.path + "/" + name + ".npy").write(NPY.write(inputs[name]!))
            }
        } catch {
            scratch.remove()
            throw error
        }
        self.inputs = inputs
    }

    func build(extraFlags: [String]) throws(DriverError) -> String {
        do {
            return try CCompiler.buildHarness(
                program: program, source: CEmitter.emit(schedule), directory: directory, extraFlags: extraFlags)
        } catch {
            throw DriverError(error.message)
        }
    }

    /// Runs the harness; returns its standard output.
    func execute(_ exe: String, reps: Int) throws(DriverError) -> String {
        let result: CCompiler.RunResult
        do {
            result = try CCompiler.run(exe, [directory] + (reps > 0 ? ["\(reps)"] : []))
        } catch {
            throw DriverError(error.message)
        }
        if !result.stderr.isEmpty { console.err(result.stderr) }
        guard result.status == 0 else {
            throw DriverError("the compiled program failed (status \(result.status))")
        }
        return result.stdout
    }

    func output(_ name: String) throws(DriverError) -> NDArray {
        do {
            return try NPY.readFile(directory + "/" + name + ".npy")
        } catch {
            throw DriverError(error.message)
        }
    }

    /// Removes the scratch folder.
    func cleanUp() { scratch.remove() }
}
