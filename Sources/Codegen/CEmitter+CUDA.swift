import BlockIR
import Schedule

/// The host side of the CUDA dialect: the header and the two C ABI launchers.
///
/// `blk_u_NAME_device(...)` takes device pointers: it allocates the temporaries (zeroed),
/// launches the kernels in program order on the default stream and frees the temporaries.
/// `blk_u_NAME(...)` takes host pointers: it copies the inputs to the device, runs
/// `blk_u_NAME_device` and copies the outputs back. Both return 0 or a `cudaError_t`. (`CNames`
/// says how names are formed.)
extension CEmitter {
    /// The launch facts of each kernel of a program under a GPU dialect.
    static func launches(_ schedule: ProgramSchedule) -> [LaunchConfiguration] {
        schedule.kernels.map { k in
            k.launch
                ?? LaunchConfiguration(
                    kernel: k.kernel, plan: k.buffers, threads: 256,
                    sharedLimitBytes: schedule.target.localCapacityBytes)
        }
    }

    /// The parameter list of an entry (inputs const, then outputs).
    static func parameters(_ program: Program, names: CNames, dialect: Dialect, suffix: String = "") -> String {
        var params: [String] = []
        for t in program.inputs {
            params.append("const \(dialect.abiType(program[t].elementType)) *\(names.parameter(t))\(suffix)")
        }
        for t in program.outputs {
            params.append("\(dialect.abiType(program[t].elementType)) *\(names.parameter(t))\(suffix)")
        }
        return params.isEmpty ? "void" : params.joined(separator: ", ")
    }

    static func gpuHeader(_ schedule: ProgramSchedule, names: CNames, dialect: Dialect) -> String {
        let program = schedule.program
        let mappings = launches(schedule)
        var w = CodeWriter()
        headerPreamble(
            &w, program, names: names, dialect: dialect,
            intro: [
                "\(names.entry) (host pointers) and \(names.deviceEntry) (device pointers) run the program.",
                narrowTypes(program).isEmpty
                    ? "Tensors: fp32, row-major (C order), densely packed."
                    : "Tensors: row-major (C order), densely packed, each in its element type (f16 and bf16 as "
                        + "uint16_t bit patterns).",
            ])
        w.line(
            "/* Launch requirements (one CUDA block per grid instance, \(mappings.first?.threads ?? 0) threads each,")
        w.line("   dynamic shared memory; more than 48 KiB needs sm_80 or newer, set by the launcher): */")
        for (k, (kernel, m)) in zip(program.kernels, mappings).enumerated() {
            let memory =
                m.scratchFloats > 0
                ? "blocks in \(m.scratchFloats * 4) bytes of global scratch (allocated by the launcher)"
                : "\(m.sharedBytes) bytes shared"
            w.line(
                "/*   \(names.kernel(k)) (\(CNames.comment(kernel.name))): \(m.blocks) block(s) x \(m.threads) threads, "
                    + "\(memory) */")
        }
        w.line()
        w.line("#ifdef __cplusplus")
        w.line("extern \"C\" {")
        w.line("#endif")
        w.line("/* Device pointers; runs on the default stream. Returns 0 or a cudaError_t. */")
        w.line("int \(names.deviceEntry)(\(parameters(program, names: names, dialect: dialect)));")
        w.line("/* Host pointers: copies inputs in and outputs out. Returns 0 or a cudaError_t. */")
        w.line("int \(names.entry)(\(parameters(program, names: names, dialect: dialect)));")
        w.line("#ifdef __cplusplus")
        w.line("}")
        w.line("#endif")
        w.line()
        w.line("#endif")
        return w.text
    }

    static func gpuEntry(
        _ schedule: ProgramSchedule, names: CNames, dialect: Dialect, gpu: GPUSpellings, into w: inout CodeWriter
    ) {
        let program = schedule.program
        let mappings = launches(schedule)
        w.line("/* ---- host: launchers with a C ABI ---- */")
        w.line("#define BLK_CHECK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) return (int)e_; } while (0)")
        w.line()
        w.line("/* Runs the kernels in program order on device pointers. */")
        w.block("extern \"C\" int \(names.deviceEntry)(\(parameters(program, names: names, dialect: dialect)))") { w in
            for (index, t) in program.tensors.enumerated() {
                let id = TensorID(index)
                guard t.viewOf == nil else { continue }
                let type = dialect.storageType(t.elementType)
                let bytes = "(size_t)\(t.elementCount) * sizeof(\(type))"
                let cast =
                    type == dialect.abiType(t.elementType) ? "" : "(\(t.role == .input ? "const " : "")\(type) *)"
                switch t.role {
                case .temp:
                    let note = "temp \(CNames.comment(t.name)): \(t.elementType)\(t.shape)"
                    w.line("\(type) *\(names.storage(id)) = NULL; /* \(note) */")
                    w.line("BLK_CHECK(cudaMalloc((void **)&\(names.storage(id)), \(bytes)));")
                    w.line("BLK_CHECK(cudaMemset(\(names.storage(id)), 0, \(bytes)));")
                case .input:
                    w.line("const \(type) *\(names.storage(id)) = \(cast)\(names.parameter(id));")
                case .output:
                    w.line("\(type) *\(names.storage(id)) = \(cast)\(names.parameter(id));")
                }
            }
            for t in program.inputs where program[t].viewOf != nil {
                let s = names.storage(program.storage(of: t))
                w.line(
                    "BLK_CHECK(cudaMemcpy((void *)\(s), \(names.parameter(t)), (size_t)\(program[t].elementCount) * "
                        + "sizeof(\(dialect.storageType(program[t].elementType))), cudaMemcpyDeviceToDevice));")
            }
            for (k, kernel) in program.kernels.enumerated() {
                let m = mappings[k]
                var args = KernelEmitter.storageParameters(program, kernel).map { p in
                    p.written
                        ? "(\(dialect.storageType(program[p.tensor].elementType)) *)\(names.storage(p.tensor))"
                        : names.storage(p.tensor)
                }
                if m.scratchFloats > 0 {
                    w.line(
                        "float *blk_scratch\(k) = NULL; /* the blocks of \(CNames.comment(kernel.name)) exceed shared "
                            + "memory */")
                    w.line(
                        "BLK_CHECK(cudaMalloc((void **)&blk_scratch\(k), (size_t)\(m.scratchFloats) * sizeof(float)));")
                    args.append("blk_scratch\(k)")
                }
                if m.sharedBytes > 48 * 1024 {
                    w.line(
                        "BLK_CHECK(cudaFuncSetAttribute(\(names.kernel(k)), cudaFuncAttributeMaxDynamicSharedMemorySize, "
                            + "\(m.sharedBytes)));")
                }
                w.line(
                    "\(names.kernel(k))<<<\(m.blocks), \(m.threads), \(m.sharedBytes)>>>(\(args.joined(separator: ", ")));"
                        + " /* \(CNames.comment(kernel.name)) */")
                w.line("BLK_CHECK(cudaGetLastError());")
                if m.scratchFloats > 0 { w.line("BLK_CHECK(cudaFree(blk_scratch\(k)));") }
            }
            for t in program.outputs where program[t].viewOf != nil {
                let s = names.storage(program.storage(of: t))
                w.line(
                    "BLK_CHECK(cudaMemcpy(\(names.parameter(t)), \(s), (size_t)\(program[t].elementCount) * "
                        + "sizeof(\(dialect.storageType(program[t].elementType))), cudaMemcpyDeviceToDevice));")
            }
            for (index, t) in program.tensors.enumerated() where t.viewOf == nil && t.role == .temp {
                w.line("BLK_CHECK(cudaFree(\(names.storage(TensorID(index)))));")
            }
            w.line("return 0;")
        }
        w.line()
        w.line("/* Copies the inputs to the device, runs the kernels, copies the outputs back. */")
        w.block("extern \"C\" int \(names.entry)(\(parameters(program, names: names, dialect: dialect)))") { w in
            var args: [String] = []
            for t in program.inputs + program.outputs {
                let p = names.parameter(t)
                let d = names.device(t)
                let abi = dialect.abiType(program[t].elementType)
                let bytes = "(size_t)\(program[t].elementCount) * sizeof(\(abi))"
                w.line("\(abi) *\(d) = NULL;")
                w.line("BLK_CHECK(cudaMalloc((void **)&\(d), \(bytes)));")
                if program[t].role == .input {
                    w.line("BLK_CHECK(cudaMemcpy(\(d), \(p), \(bytes), cudaMemcpyHostToDevice));")
                }
                args.append(d)
            }
            w.line("int status_ = \(names.deviceEntry)(\(args.joined(separator: ", ")));")
            w.line("if (status_ != 0) return status_;")
            w.line("BLK_CHECK(cudaDeviceSynchronize());")
            for t in program.outputs {
                let p = names.parameter(t)
                let bytes = "(size_t)\(program[t].elementCount) * sizeof(\(dialect.abiType(program[t].elementType)))"
                w.line("BLK_CHECK(cudaMemcpy(\(p), \(names.device(t)), \(bytes), cudaMemcpyDeviceToHost));")
            }
            for t in program.inputs + program.outputs { w.line("BLK_CHECK(cudaFree(\(names.device(t))));") }
            w.line("return 0;")
        }
    }
}
