import BlockIR

extension CHarness {
    /// The message a CUDA harness prints (and exits with status 3) when no GPU is present.
    public static let noGPUMessage = "no GPU: the harness was built but there is no CUDA device to run it on"

    /// The source of a CUDA harness (`harness.cu`) for a program emitted with `Dialect.cuda`.
    ///
    /// `harness IN OUT [REPS]` reads every input from `IN/NAME.npy`, runs the program once on
    /// device pointers, writes every output to `OUT/NAME.npy`, then times `REPS` further runs with
    /// CUDA events and prints `median_ms M min_ms N reps R`. Without a device it prints
    /// `noGPUMessage` and exits with status 3. Arrays are named as in `CNames` (`blk_t_NAME`,
    /// `blk_d_NAME`).
    public static func cudaSource(for program: Program, headerName: String? = nil) -> String {
        let dialect = Dialect.cuda
        let names = CNames(program: program, dialect: dialect)
        var w = CodeWriter()
        w.line("/* CUDA harness for \(names.entry): reads IN/NAME.npy, writes OUT/NAME.npy. */")
        w.line("#include <cuda_runtime.h>")
        w.line("#include <stdio.h>")
        w.line("#include <stdlib.h>")
        w.line("#include <string.h>")
        w.line("#include \"\(headerName ?? names.stem).\(dialect.headerExtension)\"")
        w.lines(support)
        w.block("int main(int argc, char **argv)") { w in
            w.line("if (argc < 3) { fprintf(stderr, \"usage: %s IN OUT [REPS]\\n\", argv[0]); return 2; }")
            w.line("int reps = argc > 3 ? atoi(argv[3]) : 0;")
            w.line("int devices = 0;")
            w.block("if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0)") { w in
                w.line("printf(\"\(noGPUMessage)\\n\");")
                w.line("return 3;")
            }
            var args: [String] = []
            for t in program.inputs + program.outputs {
                let p = names.parameter(t)
                let d = names.device(t)
                let n = program[t].elementCount
                let type = program[t].elementType
                let abi = dialect.abiType(type)
                if program[t].role == .input {
                    w.line(
                        "\(abi) *\(p) = (\(abi) *)npy_read(argv[1], \"\(CNames.stringLiteral(program[t].name))\", "
                            + "\(n)L, \"\(type.numpyDescr)\", \(type.byteSize));")
                    w.line("if (!\(p)) return 1;")
                    if let check = CHarness.offsetsCheck(program, t, p) { w.line(check) }
                } else {
                    w.line("\(abi) *\(p) = (\(abi) *)calloc(\(Swift.max(n, 1))L, sizeof(\(abi)));")
                }
                w.line("\(abi) *\(d) = NULL;")
                w.line(
                    "if (cudaMalloc((void **)&\(d), \(Swift.max(n, 1))L * sizeof(\(abi))) != cudaSuccess) return 1;")
                if program[t].role == .input {
                    w.line("cudaMemcpy(\(d), \(p), \(n)L * sizeof(\(abi)), cudaMemcpyHostToDevice);")
                }
                args.append(d)
            }
            let call = "\(names.deviceEntry)(\(args.joined(separator: ", ")))"
            w.line("int status = \(call);")
            w.line("if (status == 0) status = (int)cudaDeviceSynchronize();")
            w.block("if (status != 0)") { w in
                w.line("fprintf(stderr, \"error: CUDA: %s\\n\", cudaGetErrorString((cudaError_t)status));")
                w.line("return 1;")
            }
            for t in program.outputs {
                let p = names.parameter(t)
                let type = program[t].elementType
                w.line(
                    "cudaMemcpy(\(p), \(names.device(t)), \(program[t].elementCount)L * sizeof(\(dialect.abiType(type))), "
                        + "cudaMemcpyDeviceToHost);")
                let shape = program[t].shape.map { "\($0)L" }.joined(separator: ", ")
                w.line("{ long shape[] = {\(shape.isEmpty ? "0" : shape)};")
                w.line(
                    "  if (npy_write(argv[2], \"\(CNames.stringLiteral(program[t].name))\", \(p), shape, "
                        + "\(program[t].shape.count), \"\(type.numpyDescr)\", \(type.byteSize))) return 1; }"
                )
            }
            w.block("if (reps > 0)") { w in
                w.line("cudaEvent_t start, stop;")
                w.line("cudaEventCreate(&start);")
                w.line("cudaEventCreate(&stop);")
                w.line("\(call); /* warm-up */")
                w.line("double *times = (double *)malloc(sizeof(double) * (size_t)reps);")
                w.block("for (int r = 0; r < reps; r++)") { w in
                    w.line("cudaEventRecord(start);")
                    w.line("\(call);")
                    w.line("cudaEventRecord(stop);")
                    w.line("cudaEventSynchronize(stop);")
                    w.line("float ms = 0.0f;")
                    w.line("cudaEventElapsedTime(&ms, start, stop);")
                    w.line("times[r] = ms;")
                }
                w.line("qsort(times, (size_t)reps, sizeof(double), cmp_double);")
                w.line("printf(\"median_ms %.6f min_ms %.6f reps %d\\n\", times[reps / 2], times[0], reps);")
                w.line("free(times);")
            }
            for t in program.inputs + program.outputs {
                w.line("cudaFree(\(names.device(t)));")
                w.line("free(\(names.parameter(t)));")
            }
            w.line("return 0;")
        }
        return w.text
    }
}
