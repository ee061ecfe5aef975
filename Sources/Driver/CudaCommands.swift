import BlockIR
import Codegen
import Foundation
import Interpreter
import Schedule

extension Command {
    /// `blockc emit-cuda FILE -o out.cu [--bundle DIR]`: writes CUDA and, optionally, a GPU bundle.
    static let emitCuda = Command(
        name: "emit-cuda", summary: "write the program as CUDA (a .cu and a .h), or a GPU bundle",
        usage: """
            USAGE: blockc emit-cuda FILE [-o OUT.cu] [--bundle DIR] [--seed N] [options]

            Emits the (fused) block program as CUDA: one kernel per block-program kernel (a CUDA
            block per grid instance, local blocks in shared memory) and two host launchers with a C
            ABI, NAME_device (device pointers) and NAME (host pointers, copies in and out). With
            -o OUT.cu the header is OUT.h; without -o (and without --bundle) the source goes to
            standard output. With --bundle DIR it writes a self-contained folder: NAME.cu, NAME.h,
            harness.cu, inputs/*.npy (seeded, --seed), expected/*.npy (the interpreter's outputs),
            compare.py and run.sh, which builds with nvcc ($NVCC or nvcc on PATH), runs on the GPU,
            and prints max errors and timings; 'run.sh --emulate' builds it with g++ against the
            CUDA emulator the bundle carries (emulator/) and runs it on the CPU, no GPU needed.
            The program is fused for sm_90's shared memory
            unless --target names another GPU target (sm_80). See Docs/CUDA.md.
            """,
        options: codegenOptions.union([.bundle, .seed, .target, .maxMemory, .weightsDir])
    ) { options, console throws(DriverError) in
        var options = options
        if !options.target.isGPU {
            if options.targetGiven {
                throw DriverError(
                    "emit-cuda needs a GPU target; --target \(options.target.name) is a CPU (use sm_80 or sm_90)")
            }
            options.target = .sm90
            options.target.tf32 = options.tf32
            console.err("note: no --target given; scheduling for sm_90\n")
        }
        let pipeline = try Pipeline(
            path: try options.inputFile(command: "emit-cuda"), options: options, console: console)
        let schedule = try pipeline.scheduled()
        let program = schedule.program
        var plan = OutputPlan(options, withOutput: false)
        if let path = options.outputPath, path != "-" {
            plan.write("the CUDA source (-o)", path)
            plan.write("the header", headerPath(path))
        }
        if let dir = options.bundleDir {
            for file in CudaBundle.files(of: program) { plan.write("the bundle's file", dir + "/" + file) }
            // The bundle's expected outputs come from the interpreter.
            try MemoryBudget(options).check(
                MemoryBudget.bytes(of: program), running: "computing the expected outputs of '\(program.name)'")
        }
        plan.hint = "give -o a path ending in .cu outside the bundle, and not the path of an input"
        try plan.check()
        if let dir = options.bundleDir {
            let weights = try Weights.load(
                pipeline,
                signature: program.inputs.map { (program[$0].name, program[$0].shape, program[$0].elementType) },
                options: options, console: console)
            try CudaBundle.write(schedule, to: dir, seed: options.seed, console: console, given: weights)
            if options.outputPath == nil { return }
        }
        guard let path = options.outputPath, path != "-" else {
            console.out(Pipeline.emit(schedule, dialect: .cuda, options: options, console: console).source)
            return
        }
        let stem = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        let cu = Pipeline.emit(schedule, dialect: .cuda, headerName: stem, options: options, console: console)
        try emit(cu.source, to: path, console: console)
        try emit(cu.header, to: headerPath(path), console: console)
    }
}

/// A self-contained folder to build and check a program's CUDA on a machine with a GPU.
enum CudaBundle {
    /// The files a bundle holds, relative to its folder.
    static func files(of program: Program) -> [String] {
        let name = CEmitter.fileStem(program)
        return [
            name + ".cu", name + ".h", "harness.cu", "compare.py", "run.sh", "emulator/blockc_cuda_emu.h",
            "emulator/cuda_runtime.h",
        ]
            + program.inputs.map { "inputs/" + program[$0].name + ".npy" }
            + program.outputs.map { "expected/" + program[$0].name + ".npy" }
    }

    /// Writes the bundle of a program into `dir` (created if missing).
    /// Inputs in `given` (a model's weights) are written as they are; the others are random.
    static func write(
        _ schedule: ProgramSchedule, to dir: String, seed: UInt64, console: Console, given: [String: NDArray] = [:]
    ) throws(DriverError) {
        let program = schedule.program
        let fm = FileManager.default
        for sub in ["", "/inputs", "/expected", "/emulator"] {
            do {
                try fm.createDirectory(atPath: dir + sub, withIntermediateDirectories: true)
            } catch {
                throw DriverError("cannot create '\(dir + sub)': \(error.localizedDescription)")
            }
        }
        let cu = CEmitter.emit(schedule, dialect: .cuda)
        var inputs: [String: NDArray] = [:]
        let bounds = program.gatherIndexBounds()
        for (k, t) in program.inputs.enumerated() {
            let a =
                given[program[t].name]
                ?? RandomInputs.values(
                    shape: program[t].shape, type: program[t].elementType, seed: seed, stream: UInt64(k),
                    bound: bounds[program[t].name], offsetsInto: program[t].offsetsInto,
                    maxSegment: program[t].segmentMaxLength)
            inputs[program[t].name] = a
            try writeNPY(a, dir + "/inputs/" + program[t].name + ".npy")
        }
        let expected: [String: NDArray]
        do throws(Diagnostic) {
            expected = try BlockInterpreter.run(program, inputs: inputs)
        } catch {
            throw DriverError("the interpreter failed: \(error.message)")
        }
        for t in program.outputs {
            guard let a = expected[program[t].name] else { continue }
            try writeNPY(a, dir + "/expected/" + program[t].name + ".npy")
        }
        let outputs = program.outputs.map { program[$0].name }
        try Command.emit(cu.source, to: dir + "/\(cu.headerName).cu", console: console)
        try Command.emit(cu.header, to: dir + "/\(cu.headerName).h", console: console)
        try Command.emit(
            CHarness.cudaSource(for: program, headerName: cu.headerName), to: dir + "/harness.cu", console: console)
        try Command.emit(compareScript(outputs), to: dir + "/compare.py", console: console)
        try Command.emit(CUDAEmulator.header, to: dir + "/emulator/blockc_cuda_emu.h", console: console)
        try Command.emit(CUDAEmulator.runtimeShim, to: dir + "/emulator/cuda_runtime.h", console: console)
        // TF32 products (--tf32) differ from the interpreter's exact f32 by about 2^-10 per product: a looser default.
        let tf32 = schedule.kernels.contains { k in
            k.dots.contains { if case .tf32TensorCores? = $0.gpu { true } else { false } }
        }
        try OutputFile(dir + "/run.sh").write(
            runScript(cu.headerName, entry: cu.name, tolerance: tf32 ? "0.0039" : "1e-3"), newFileMode: 0o777)
    }

    private static func writeNPY(_ a: NDArray, _ path: String) throws(DriverError) {
        try OutputFile(path).write(NPY.write(a))
    }

    /// `run.sh`: build with nvcc, run, compare, print errors and timings; with `--emulate`, build with a C++
    /// compiler against the CUDA emulator in `emulator/` and run on the CPU.
    /// `tolerance`: `TOL`'s default (1e-3; 0.0039 = 2^-8 when the products run as TF32).
    static func runScript(_ name: String, entry: String, tolerance: String = "1e-3") -> String {
        """
        #!/bin/sh
        # Builds the CUDA harness for \(name) with nvcc, runs it on the GPU and compares the outputs
        # with the interpreter's (expected/*.npy). \(name).h declares the entry points \(entry)
        # (host pointers) and \(entry)_device (device pointers).
        # Environment: NVCC (default: nvcc on PATH),
        # NVCC_ARCH (default: sm_80 and sm_90 code), REPS (timed runs, default 20), TOL (default \(tolerance); at least 2^-7 for bf16 outputs and 2^-10 for f16, as blockc verify).
        #
        # run.sh --emulate: no GPU or nvcc needed; builds the harness with a C++17 compiler (CXX, default g++)
        # against blockc's CUDA emulator (emulator/blockc_cuda_emu.h) and runs it on the CPU, checking
        # barriers, warp shuffles, races on shared memory and out-of-bounds writes (a fault: exit status 4 and a
        # message). EMU_ARCH (80 or 90, default 90) picks the shared memory limit, BLOCKC_EMU_ORDER (forward,
        # reverse, random or random:SEED) the order of blocks and threads, REPS defaults to 0.
        set -u
        cd "$(dirname "$0")"
        if [ "${1:-}" = "--emulate" ]; then
            CXX="${CXX:-g++}"
            if ! command -v "$CXX" >/dev/null 2>&1; then
                echo "error: $CXX not found (set CXX to a C++17 compiler)" >&2
                exit 2
            fi
            EMU_ARCH="${EMU_ARCH:-90}"
            sed -E '\(CUDAEmulator.launchRewriteSed)' \(name).cu > emulator/\(name).emu.cpp || exit 1
            echo "building: $CXX -std=c++17 -O1 -DBLOCKC_EMU_ARCH=$EMU_ARCH harness.cu \(name).cu (emulated, race checks)"
            "$CXX" -std=c++17 -O1 -I emulator -I . -DBLOCKC_EMU_ARCH="$EMU_ARCH" \(CUDAEmulator.raceCheckFlags.joined(separator: " ")) \\
                -c -o emulator/\(name).emu.o emulator/\(name).emu.cpp || { echo "error: build failed" >&2; exit 1; }
            "$CXX" -std=c++17 -O1 -I emulator -I . -DBLOCKC_EMU_ARCH="$EMU_ARCH" -o harness-emu \\
                emulator/\(name).emu.o -x c++ harness.cu || { echo "error: build failed" >&2; exit 1; }
            mkdir -p out
            ./harness-emu inputs out "${REPS:-0}"
            status=$?
            if [ "$status" -ne 0 ]; then echo "error: the emulated harness failed ($status)" >&2; exit 1; fi
            python3 compare.py "${TOL:-\(tolerance)}"
            exit $?
        fi
        if [ "$#" -gt 0 ]; then
            echo "usage: run.sh [--emulate]" >&2
            exit 2
        fi
        NVCC="${NVCC:-nvcc}"
        if ! command -v "$NVCC" >/dev/null 2>&1; then
            echo "error: nvcc not found (set NVCC or put nvcc on PATH)" >&2
            exit 2
        fi
        ARCH="${NVCC_ARCH:--gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90}"
        LIBDIR="$(dirname "$(command -v "$NVCC")")/../lib"
        LINK=""
        if [ -d "$LIBDIR" ]; then LINK="-L$LIBDIR"; fi
        echo "building: $NVCC -O3 $ARCH harness.cu \(name).cu"
        # shellcheck disable=SC2086
        "$NVCC" -O3 $ARCH -o harness harness.cu \(name).cu $LINK || { echo "error: build failed" >&2; exit 1; }
        mkdir -p out
        ./harness inputs out "${REPS:-20}"
        status=$?
        if [ "$status" -eq 3 ]; then
            echo "run.sh: built ./harness, but no GPU is available here: copy this folder to a machine with a GPU" >&2
            exit 3
        fi
        if [ "$status" -ne 0 ]; then echo "error: the harness failed ($status)" >&2; exit 1; fi
        python3 compare.py "${TOL:-\(tolerance)}"

        """
    }

    /// `compare.py`: max absolute and relative errors of each output (bf16 outputs, stored as their `<u2` bit
    /// patterns, compared as the values they hold). As `blockc verify`, a NaN matches only a NaN (a fully masked
    /// attention row is NaN in every stage) and an infinity only the same infinity; the errors are over the
    /// elements finite in both.
    static func compareScript(_ outputs: [String]) -> String {
        let list = outputs.map { "\"\($0)\"" }.joined(separator: ", ")
        return """
            import sys
            import numpy as np


            def load(path):
                \"\"\"The values and the relative tolerance floor of the type: one unit in the last place for
                bf16 (stored as bit patterns, the upper half of a float32) and f16, as blockc verify.\"\"\"
                a = np.load(path)
                if a.dtype == np.uint16:
                    return (a.astype(np.uint32) << 16).view(np.float32).astype(np.float64), 2.0**-7
                return a.astype(np.float64), (2.0**-10 if a.dtype == np.float16 else 0.0)


            ok = True
            for name in [\(list)]:
                got, _ = load(f"out/{name}.npy")
                want, floor = load(f"expected/{name}.npy")
                tol = max(float(sys.argv[1]) if len(sys.argv) > 1 else 1e-3, floor)
                if got.shape != want.shape:
                    ok = False
                    print(f"{name}: shape {got.shape}, expected {want.shape} MISMATCH")
                    continue
                finite = np.isfinite(got) & np.isfinite(want)
                # A NaN matches only a NaN, an infinity only the same infinity.
                special = int(np.count_nonzero(~finite))
                unmatched = int(np.count_nonzero(~finite & ~((np.isnan(got) & np.isnan(want)) | (got == want))))
                err = float(np.max(np.abs(got[finite] - want[finite]))) if finite.any() else 0.0
                scale = float(np.max(np.abs(want[finite]))) if finite.any() else 0.0
                rel = err / max(scale, 1e-30)
                good = rel <= tol and unmatched == 0
                ok = ok and good
                note = f" non-finite {special} ({unmatched} unmatched)" if special else ""
                print(f"{name}: max_abs_err {err:.3e} max_rel_err {rel:.3e}{note} {'ok' if good else 'MISMATCH'}")
            sys.exit(0 if ok else 1)

            """
    }
}
