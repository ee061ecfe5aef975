/// The help texts of the command line.
enum Help {
    /// The version string.
    static let version = "0.1.0"

    /// The width of the overview's name column: the longest name and two spaces.
    static let nameWidth = (Command.all.map(\.name.count).max() ?? 0) + 2

    /// `blockc --help`.
    static let overview = """
        blockc — a block-level operator-fusion compiler

        USAGE: blockc <subcommand> [options] FILE

        FILE is a tensor graph (.graph), an ONNX model (.onnx, imported as a graph with its weights;
        see 'blockc import --help') or a block program (.block).

        SUBCOMMANDS:
        \(Command.all.map { "  " + $0.name.padding(toLength: nameWidth, withPad: " ", startingAt: 0) + $0.summary }
            .joined(separator: "\n"))

        Run 'blockc <subcommand> --help' for a subcommand's options.
        Stages (for --print-after): \(Pipeline.stageNames.joined(separator: ", ")).

        """

    /// Lines describing the options shared by several subcommands.
    static func describe(_ key: CommandLineOptions.Key) -> String {
        switch key {
        case .dim:
            return
                "  --dim NAME=N[,NAME=N]   override a dimension of a .graph, bind a named dimension of a .onnx (repeatable)"
        case .block: return "  --block i=N,j=N,k=N     block sizes: rows, columns, reductions (default from target)"
        case .input: return "  --input NAME=FILE.npy   read an input from a .npy file (float32, C order)"
        case .output: return "  -o FILE                 write the result to FILE instead of standard output"
        case .outputDir: return "  --output-dir DIR        write outputs (and inputs with --save-inputs) as NAME.npy"
        case .seed: return "  --seed N                seed for random standard-normal inputs (default 0)"
        case .saveInputs: return "  --save-inputs           also write every input as NAME.npy in --output-dir"
        case .stage:
            return "  --stage NAME            which program: graph (run only), lower, fuse or schedule (default: fuse)"
        case .printAfter:
            return
                "  --print-after STAGE     print the program after a stage to standard error (\(Pipeline.stageNames.joined(separator: ", ")))"
        case .json: return "  --json                  print JSON instead of a table"
        case .reps: return "  --reps N                bench: timed repetitions after one warm-up (default 20)"
        case .peak:
            return
                "  --peak GFLOPS           bench: the peak to report a percentage of (default: measured by 'blockc peak')"
        case .sanitize: return "  --sanitize              verify: build with -fsanitize=address,undefined"
        case .bundle:
            return "  --bundle DIR            emit-cuda: write a GPU bundle (.cu, harness, .npy, run.sh) to DIR"
        case .noFusion: return "  --no-fusion             stop after lowering (the naive program)"
        case .onlyRule: return "  --only-rule NAME        apply only this fusion rule (see 'blockc explain --help')"
        case .maxMemory:
            return
                "  --max-memory BYTES      interpreter: the most memory a run may need, e.g. 8G, 512M (default: half the RAM)"
        case .target: return "  --target NAME           target description: cpu, sm_80, sm_90 (default cpu)"
        case .tf32:
            return
                "  --tf32                  GPU targets: f32 products on the tensor cores as TF32 (mma.sync m16n8k8,\n"
                + "                          operands rounded to a 10-bit mantissa; about 1e-3 relative error);\n"
                + "                          default: exact f32 products"
        case .cores:
            return
                "  --cores N               the cores a grid should fill; fusion splits reductions of smaller grids (default: $BLOCKC_CORES, a GPU target's SMs, else this machine's)"
        case .cache:
            return "  --cache FILE            tune: the tuning cache to add the choice to (default blockc-tune.json)"
        case .tuned:
            return
                "  --tuned FILE            take block sizes from this tuning cache when it has an entry ('blockc tune')"
        case .budget: return "  --budget SECONDS        tune: stop timing new candidates after this long (default 60)"
        case .weightsDir:
            return
                "  --weights-dir DIR       import: write each weight as DIR/NAME.npy; others: read DIR/NAME.npy for inputs --input does not give"
        case .dryRun: return "  --dry-run               tune: print the cache key and the candidates, time nothing"
        }
    }
}
