import BlockIR
import Fusion

/// The options of one `blockc` invocation, parsed from its arguments.
struct CommandLineOptions {
    /// Positional arguments (the input file).
    var positional: [String] = []
    /// `--dim NAME=VALUE`, in order.
    var dims: [(key: String, value: Int)] = []
    /// `--block i=64,j=64,k=64`, in order.
    var blocks: [(key: String, value: Int)] = []
    /// `--input NAME=file.npy`, in order.
    var inputs: [(key: String, value: String)] = []
    /// `-o FILE`.
    var outputPath: String?
    /// `--output-dir DIR`.
    var outputDir: String?
    /// `--seed N`.
    var seed: UInt64 = 0
    /// `--save-inputs`.
    var saveInputs = false
    /// `--stage NAME`.
    var stage: String?
    /// `--print-after STAGE`.
    var printAfter: [String] = []
    /// `--json`.
    var json = false
    /// `--target NAME`.
    var target: TargetDescription = .cpu
    /// Whether `--target` was given (commands with another default say which they chose).
    var targetGiven = false
    /// `--tf32`: f32 products on a GPU's tensor cores as TF32 (`target.tf32`).
    var tf32 = false
    /// `--cores N`: the cores a kernel's grid should fill (fusion splits reductions of smaller
    /// grids); `nil`: `Fusion.defaultCores(for:)`.
    var cores: Int?
    /// `--help`.
    var help = false
    /// `--no-fusion`: stop after lowering.
    var noFusion = false
    /// `--only-rule NAME`: apply only one fusion rule.
    var onlyRule: String?
    /// `--reps N`: timed repetitions of `bench`.
    var reps = 20
    /// `--peak GFLOPS`: the peak `bench` reports a percentage of (nil: measure it).
    var peak: Double?
    /// `--sanitize`: `verify` builds with address and undefined-behaviour sanitizers.
    var sanitize = false
    /// `--bundle DIR`: `emit-cuda` writes a self-contained GPU bundle there.
    var bundleDir: String?
    /// `--max-memory BYTES`: the most an interpreter run may need (default: half the RAM).
    var maxMemory: Int?
    /// `--cache FILE`: where `tune` keeps its choices.
    var cachePath: String?
    /// `--tuned FILE`: the tuning cache code generation takes block sizes from.
    var tunedPath: String?
    /// `--budget SECONDS`: how long `tune` may time candidates.
    var budget = 60.0
    /// `--dry-run`: `tune` prints its key and candidates without timing.
    var dryRun = false
    /// `--weights-dir DIR`: `import` writes the weights there; `run` and `verify` read
    /// `DIR/NAME.npy` for inputs `--input` does not give.
    var weightsDir: String?

    /// Which options a subcommand accepts (besides `--help`).
    enum Key: String, CaseIterable {
        case dim, block, input, output = "o", outputDir = "output-dir", seed, saveInputs = "save-inputs", stage
        case printAfter = "print-after", json, target, tf32, cores
        case noFusion = "no-fusion", onlyRule = "only-rule"
        case reps, peak, sanitize, bundle
        case maxMemory = "max-memory"
        case cache, tuned, budget, dryRun = "dry-run"
        case weightsDir = "weights-dir"
    }

    /// Parses `arguments`, accepting only `allowed` options.
    static func parse(_ arguments: [String], allowed: Set<Key>, command: String) throws(DriverError) -> Self {
        var o = Self()
        var index = 0
        func fail(_ message: String) -> DriverError {
            DriverError("\(message) (see 'blockc \(command) --help')")
        }
        while index < arguments.count {
            let arg = arguments[index]
            index += 1
            if arg == "--help" || arg == "-h" {
                o.help = true
                continue
            }
            guard arg.hasPrefix("-") && arg != "-" else {
                o.positional.append(arg)
                continue
            }
            var name = String(arg.drop { $0 == "-" })
            var inlineValue: String?
            if let eq = name.firstIndex(of: "=") {
                inlineValue = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            }
            guard let key = Key(rawValue: name), allowed.contains(key) else {
                throw fail("unknown option '\(arg)' for '\(command)'")
            }
            func value() throws(DriverError) -> String {
                if let inlineValue { return inlineValue }
                guard index < arguments.count else { throw fail("option '--\(name)' needs a value") }
                index += 1
                return arguments[index - 1]
            }
            switch key {
            case .dim:
                for (k, v) in try keyValues(try value(), option: "--dim", command: command) {
                    guard !o.dims.contains(where: { $0.key == k }) else { throw fail(repeated("--dim", k)) }
                    o.dims.append((k, try positiveInteger(v, option: "--dim \(k)", command: command)))
                }
            case .block:
                for (k, v) in try keyValues(try value(), option: "--block", command: command) {
                    guard !o.blocks.contains(where: { $0.key == k }) else { throw fail(repeated("--block", k)) }
                    o.blocks.append((k, try positiveInteger(v, option: "--block \(k)", command: command)))
                }
            case .input:
                for (k, v) in try keyValues(try value(), option: "--input", command: command) {
                    guard !o.inputs.contains(where: { $0.key == k }) else { throw fail(repeated("--input", k)) }
                    o.inputs.append((k, v))
                }
            case .output: o.outputPath = try value()
            case .outputDir: o.outputDir = try value()
            case .seed:
                let v = try value()
                guard let s = UInt64(v) else { throw fail("--seed \(v): expected a non-negative integer") }
                o.seed = s
            case .saveInputs: o.saveInputs = true
            case .stage: o.stage = try value()
            case .printAfter:
                let v = try value()
                guard Pipeline.stageNames.contains(v) else {
                    throw fail(
                        "unknown stage '\(v)' for --print-after; stages: \(Pipeline.stageNames.joined(separator: ", "))"
                    )
                }
                o.printAfter.append(v)
            case .json: o.json = true
            case .noFusion: o.noFusion = true
            case .tf32: o.tf32 = true
            case .reps:
                let v = try value()
                guard let n = Int(v), n > 0, n <= 100_000 else {
                    throw fail("--reps \(v): expected a positive integer")
                }
                o.reps = n
            case .peak:
                let v = try value()
                guard let x = Double(v), x > 0, x.isFinite else {
                    throw fail("--peak \(v): expected a positive number")
                }
                o.peak = x
            case .sanitize: o.sanitize = true
            case .bundle: o.bundleDir = try value()
            case .maxMemory:
                let v = try value()
                guard let bytes = MemoryBudget.parse(v) else {
                    throw fail("--max-memory \(v): expected a size in bytes such as 8G, 512M or 1000000")
                }
                o.maxMemory = bytes
            case .cache: o.cachePath = try value()
            case .tuned: o.tunedPath = try value()
            case .budget:
                let v = try value()
                guard let x = Double(v), x > 0, x <= 86_400 else {
                    throw fail("--budget \(v): expected a number of seconds between 0 and 86400")
                }
                o.budget = x
            case .dryRun: o.dryRun = true
            case .weightsDir: o.weightsDir = try value()
            case .onlyRule:
                let v = try value()
                guard Fusion.rule(named: v) != nil else {
                    let names = Fusion.rules.map(\.name).joined(separator: ", ")
                    throw fail("unknown rule '\(v)' for --only-rule; rules: \(names)")
                }
                o.onlyRule = v
            case .cores:
                let v = try value()
                guard let n = Int(v), n > 0, n <= 1 << 20 else {
                    throw fail("--cores \(v): expected a positive number of cores (at most \(1 << 20))")
                }
                o.cores = n
            case .target:
                let v = try value()
                guard let t = TargetDescription.all.first(where: { $0.name == v }) else {
                    throw fail(
                        "unknown target '\(v)'; targets: \(TargetDescription.all.map(\.name).joined(separator: ", "))")
                }
                o.target = t
                o.targetGiven = true
            }
        }
        if o.tf32 {
            // emit-cuda chooses sm_90 when no --target is given; everything else defaults to the CPU.
            guard o.target.isGPU || (!o.targetGiven && command == "emit-cuda") else {
                throw fail(
                    o.targetGiven
                        ? "--tf32 applies to GPU targets; --target \(o.target.name) is a CPU (use sm_80 or sm_90)"
                        : "--tf32 applies to GPU targets; give --target sm_80 or sm_90")
            }
            o.target.tf32 = true
        }
        return o
    }

    /// The message for a key given twice (`--dim N=1 --dim N=2`).
    static func repeated(_ option: String, _ key: String) -> String {
        "\(option) \(key) is given more than once; give each name once"
    }

    /// The value of `NAME=N`: a positive integer that fits in 64 bits.
    static func positiveInteger(_ text: String, option: String, command: String) throws(DriverError) -> Int {
        if let n = Int(text), n > 0 { return n }
        let digits = text.hasPrefix("+") ? text.dropFirst() : Substring(text)
        let why =
            !digits.isEmpty && digits.allSatisfy(\.isASCII) && digits.allSatisfy(\.isNumber)
            ? "is too large (at most \(Int.max))" : "must be a positive integer"
        throw DriverError("\(option)=\(text): the value \(why) (see 'blockc \(command) --help')")
    }

    /// Splits `A=1,B=2` into pairs.
    static func keyValues(_ text: String, option: String, command: String) throws(DriverError) -> [(
        key: String, value: String
    )] {
        var out: [(key: String, value: String)] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let eq = part.firstIndex(of: "="), eq != part.startIndex else {
                throw DriverError("\(option) expects NAME=VALUE, got '\(part)' (see 'blockc \(command) --help')")
            }
            out.append((String(part[..<eq]), String(part[part.index(after: eq)...])))
        }
        return out
    }

    /// The single input file, or an error saying one is needed.
    func inputFile(command: String) throws(DriverError) -> String {
        guard positional.count == 1 else {
            throw DriverError(
                positional.isEmpty
                    ? "'\(command)' needs an input file (.graph, .onnx or .block); see 'blockc \(command) --help'"
                    : "'\(command)' takes one input file, got \(positional.count): \(positional.joined(separator: " "))"
            )
        }
        return positional[0]
    }
}
