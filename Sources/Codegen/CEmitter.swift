import BlockIR
import Schedule

/// Writes a block program as one self-contained C-family translation unit.
///
/// Every kernel becomes a function whose grid is a parallel loop (the dialect says how) and
/// whose body is the kernel's instructions in order, each under a comment that names it;
/// the entry point allocates the temporaries, calls the kernels in program order and frees
/// them. Output is deterministic: nothing is ordered by a hash. Every identifier derived from
/// a user's name carries a reserved prefix (`CNames`): the entry of `graph attention` is
/// `blk_u_attention`, the parameter of tensor `Q` is `blk_t_Q`.
///
/// ```c
/// void blk_u_attention(const float *restrict blk_t_Q, const float *restrict blk_t_K,
///                      const float *restrict blk_t_V, float *restrict blk_t_O);
/// ```
public enum CEmitter {
    /// Emits a program: inputs then outputs (each in declaration order) are the entry's
    /// parameters, row-major fp32. The source includes `headerName.h` (default: the program's
    /// name, `attention.h`; the entry point is `blk_u_attention`).
    public static func emit(_ schedule: ProgramSchedule, dialect: Dialect = .c, headerName: String? = nil) -> CSource {
        let names = CNames(program: schedule.program, dialect: dialect)
        let stem = headerName ?? names.stem
        return CSource(
            source: source(schedule, names: names, dialect: dialect, headerName: stem),
            header: header(schedule, names: names, dialect: dialect), name: names.entry, headerName: stem)
    }

    /// Emits a program scheduled at its own block sizes (`Scheduler.scheduleKeepingBlocks`) for
    /// the dialect's usual target (`cpu` for C, `sm_90` for CUDA); the driver schedules for the
    /// target the user names instead.
    public static func emit(_ program: Program, dialect: Dialect = .c, headerName: String? = nil) -> CSource {
        let target: TargetDescription = dialect.gpu == nil ? .cpu : .sm90
        return emit(
            Scheduler.scheduleKeepingBlocks(program, target: target), dialect: dialect, headerName: headerName)
    }

    /// The element types other than f32 a program's tensors use, in `ElementType` order.
    static func narrowTypes(_ program: Program) -> [ElementType] {
        ElementType.allCases.filter { type in type != .f32 && program.tensors.contains { $0.elementType == type } }
    }

    /// The headers, introduction and helpers a program's element types need.
    static func typeIntro(_ program: Program) -> String {
        narrowTypes(program).isEmpty
            ? "Every tensor is fp32, row-major (C order), densely packed."
            : "Every tensor is row-major (C order), densely packed, in its element type (f16 and bf16 as uint16_t bit patterns)."
    }

    /// The type and size of a tensor for a header comment: `f32[8, 64], 512 floats`.
    static func tensorText(_ t: GlobalTensor) -> String {
        let count = t.elementType == .f32 ? "\(t.elementCount) floats" : "\(t.elementCount) elements"
        return "\(t.elementType)\(t.shape), " + count
    }

    /// The default stem of a program's generated files (`attention` for `attention.c`, `.h`, `.cu`).
    public static func fileStem(_ program: Program) -> String { CNames.stem(program) }

    /// Each kernel's barriers under a GPU dialect: how many `__syncthreads()` the emitter placed and how many
    /// `BarrierPlan` keeps (all zero for a CPU dialect).
    public static func barrierCounts(_ schedule: ProgramSchedule, dialect: Dialect = .cuda) -> [(
        kept: Int, placed: Int
    )] {
        let names = CNames(program: schedule.program, dialect: dialect)
        return schedule.kernels.map { kernel in
            var emitter = KernelEmitter(program: schedule.program, schedule: kernel, names: names, dialect: dialect)
            emitter.emitFunction()
            return (emitter.barriers.kept, emitter.barriers.placed)
        }
    }

    /// The entry point's declaration (without the trailing semicolon).
    static func signature(_ program: Program, names: CNames, dialect: Dialect) -> String {
        let r = dialect.restrictQualifier
        var params: [String] = []
        for t in program.inputs {
            params.append("const \(dialect.abiType(program[t].elementType)) *\(r) \(names.parameter(t))")
        }
        for t in program.outputs {
            params.append("\(dialect.abiType(program[t].elementType)) *\(r) \(names.parameter(t))")
        }
        return "\(dialect.entryQualifier) \(names.entry)(\(params.isEmpty ? "void" : params.joined(separator: ", ")))"
    }

    /// The header's opening shared by the C and CUDA dialects: include guard, includes, an
    /// introduction and one comment line per tensor parameter, giving the tensor's own name.
    static func headerPreamble(
        _ w: inout CodeWriter, _ program: Program, names: CNames, dialect: Dialect, intro: [String]
    ) {
        let program_ = CNames.comment(program.name)
        w.line("/* \(names.stem).\(dialect.headerExtension): generated by blockc from program '\(program_)'. */")
        w.line("#ifndef \(names.headerGuard)")
        w.line("#define \(names.headerGuard)")
        var includes = dialect.headerIncludes
        if !narrowTypes(program).isEmpty && !includes.contains("stdint.h") { includes.append("stdint.h") }
        for h in includes { w.line("#include <\(h)>") }
        w.line()
        for line in intro { w.line("/* \(line) */") }
        w.line(
            "/* C names: the program's name prefixed with blk_u_, each tensor's with blk_t_ "
                + "(see Docs/Architecture.md). */")
        w.line("/* Parameters, in order: */")
        for t in program.inputs + program.outputs {
            let role = program[t].role == .input ? "input" : "output"
            w.line(
                "/*   \(names.parameter(t)): \(role) '\(CNames.comment(program[t].name))', "
                    + "\(tensorText(program[t])) */")
        }
    }

    static func header(_ schedule: ProgramSchedule, names: CNames, dialect: Dialect) -> String {
        let program = schedule.program
        if dialect.gpu != nil { return gpuHeader(schedule, names: names, dialect: dialect) }
        var w = CodeWriter()
        headerPreamble(
            &w, program, names: names, dialect: dialect,
            intro: ["\(names.entry) runs the program. " + typeIntro(program)])
        w.line(signature(program, names: names, dialect: dialect) + ";")
        w.line()
        w.line("#endif")
        return w.text
    }

    static func source(_ schedule: ProgramSchedule, names: CNames, dialect: Dialect, headerName: String) -> String {
        let program = schedule.program
        var w = CodeWriter()
        let program_ = CNames.comment(program.name)
        w.line("/* \(names.stem).\(dialect.sourceExtension): generated by blockc from program '\(program_)'. */")
        w.line("/* \(program.kernels.count) kernel(s), \(program.tensors.count) tensor(s). */")
        let types = narrowTypes(program)
        var includes = dialect.sourceIncludes
        for type in types { includes += (dialect.elements.includes[type] ?? []).filter { !includes.contains($0) } }
        for h in includes { w.line("#include <\(h)>") }
        w.line("#include \"\(headerName).\(dialect.headerExtension)\"")
        w.line()
        let helpers = types.compactMap { dialect.elements.helpers[$0] }
        if !helpers.isEmpty {
            w.line("/* ---- element type conversions ---- */")
            for h in helpers {
                w.lines(dialect.fill(h, [("QUALIFIER", dialect.helperQualifier)]))
            }
            w.line()
        }
        w.raw(dialect.runtime)
        if !dialect.runtime.hasSuffix("\n") { w.line() }
        for kernel in schedule.kernels {
            w.line()
            var emitter = KernelEmitter(program: program, schedule: kernel, names: names, dialect: dialect)
            emitter.emitFunction()
            w.raw(emitter.w.text)
        }
        w.line()
        if let gpu = dialect.gpu {
            gpuEntry(schedule, names: names, dialect: dialect, gpu: gpu, into: &w)
        } else {
            entry(program, names: names, dialect: dialect, into: &w)
        }
        return w.text
    }

    /// The entry: take the temporaries (workspaces kept between calls, zeroed), run the kernels
    /// in order, give them back.
    static func entry(_ program: Program, names: CNames, dialect: Dialect, into w: inout CodeWriter) {
        w.line("/* The entry point: runs the kernels in program order. */")
        w.block(signature(program, names: names, dialect: dialect)) { w in
            for (index, t) in program.tensors.enumerated() {
                let id = TensorID(index)
                guard t.viewOf == nil else { continue }
                let type = dialect.storageType(t.elementType)
                let bytes = "(size_t)\(t.elementCount) * sizeof(\(type))"
                // Parameters arrive in their ABI type (f16 and bf16 as uint16_t): a cast where it differs.
                let cast =
                    type == dialect.abiType(t.elementType) ? "" : "(\(t.role == .input ? "const " : "")\(type) *)"
                switch t.role {
                case .temp:
                    // Kept between calls (`blk_workspace`): its pages stay mapped, so a call does
                    // not fault them in and clear them again; zeroed on every call.
                    let note = "temp \(CNames.comment(t.name)): \(t.elementType)\(t.shape)"
                    w.line("static blk_workspace blk_tw\(index);")
                    w.line(
                        "\(type) *\(names.storage(id)) = blk_workspace_take(&blk_tw\(index), \(bytes)); /* \(note) */")
                    w.line("memset(\(names.storage(id)), 0, \(bytes));")
                case .input:
                    w.line("const \(type) *\(names.storage(id)) = \(cast)\(names.parameter(id));")
                case .output:
                    w.line("\(type) *\(names.storage(id)) = \(cast)\(names.parameter(id));")
                }
            }
            // Inputs declared as views of another tensor's storage are copied into it first.
            for t in program.inputs where program[t].viewOf != nil {
                let s = names.storage(program.storage(of: t))
                w.line(
                    "memcpy(\(s), \(names.parameter(t)), (size_t)\(program[t].elementCount) * "
                        + "sizeof(\(dialect.storageType(program[t].elementType))));")
            }
            for (k, kernel) in program.kernels.enumerated() {
                let args = KernelEmitter.storageParameters(program, kernel).map { names.storage($0.tensor) }
                w.line("\(names.kernel(k))(\(args.joined(separator: ", "))); /* \(CNames.comment(kernel.name)) */")
            }
            // Outputs declared as views of another tensor's storage are copied out last.
            for t in program.outputs where program[t].viewOf != nil {
                let s = names.storage(program.storage(of: t))
                w.line(
                    "memcpy(\(names.parameter(t)), \(s), (size_t)\(program[t].elementCount) * "
                        + "sizeof(\(dialect.storageType(program[t].elementType))));")
            }
            for (index, t) in program.tensors.enumerated() where t.viewOf == nil && t.role == .temp {
                w.line("blk_workspace_give(&blk_tw\(index), \(names.storage(TensorID(index))));")
            }
        }
    }
}
