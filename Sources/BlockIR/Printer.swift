/// Prints block programs in the `.block` text form of `Docs/IR.md`.
///
/// The output is deterministic and the `.block` parser reads it back to an equal program. The
/// printer never traps, even on programs the verifier would reject (out-of-range tensor IDs print
/// as `<invalid T5>`), so it can show the program after any stage.
public enum BlockPrinter {
    /// Prints a whole program: `program NAME`, a blank line, one `tensor` line per tensor, then
    /// every kernel preceded by a blank line. The text ends with a newline.
    public static func print(_ program: Program) -> String {
        var out = "program \(program.name)\n"
        if !program.tensors.isEmpty {
            out += "\n"
            for tensor in program.tensors {
                out += tensorLine(tensor, in: program) + "\n"
            }
        }
        for kernel in program.kernels {
            out += "\n"
            out += print(kernel, in: program)
        }
        return out
    }

    /// Prints one kernel (`kernel NAME grid(...) { ... }`), ending with a newline; tensor names are
    /// taken from `program`.
    public static func print(_ kernel: Kernel, in program: Program) -> String {
        var out = "kernel \(kernel.name) grid("
        out += kernel.grid.map { "\($0.variable.name) < \($0.extent)" }.joined(separator: ", ")
        out += ") {\n"
        printBody(kernel.body, indent: 1, program: program, into: &out)
        out += "}\n"
        return out
    }

    /// The one-line form of an instruction, without indentation; a loop prints only its header
    /// line (`%1 = for k in 0 ..< 4 iter(%2 = %0) : f32[64,64] @local {`).
    public static func line(_ instruction: Instruction, in program: Program) -> String {
        let results = instruction.results.map(\.id.description).joined(separator: ", ")
        let prefix = results.isEmpty ? "" : results + " = "
        let typeSuffix = instruction.results.first.map { " : \($0.type)" } ?? ""
        switch instruction.op {
        case .load(let t, let access):
            return prefix + "load " + tensorName(t, program) + accessText(access) + typeSuffix
        case .store(let v, let t, let access):
            return prefix + "store \(v) -> " + tensorName(t, program) + accessText(access) + typeSuffix
        case .fill(let c):
            return prefix + "fill " + formatFloat(c) + typeSuffix
        case .index(let e, let axis):
            return prefix + "index \(e)" + (axis.map { " axis \($0)" } ?? "") + typeSuffix
        case .unary(_, let a):
            return prefix + "\(instruction.op.mnemonic) \(a)" + typeSuffix
        case .binary(_, let a, let b):
            return prefix + "\(instruction.op.mnemonic) \(a), \(b)" + typeSuffix
        case .broadcast(let a, let axis):
            return prefix + "broadcast \(a) axis \(axis)" + typeSuffix
        case .reduce(_, let a, let axis):
            return prefix + "\(instruction.op.mnemonic) \(a) axis \(axis)" + typeSuffix
        case .dot(let a, let b, let ta, let tb, let precision):
            let flags =
                (ta ? " transpose_a" : "") + (tb ? " transpose_b" : "") + (precision == .f32 ? "" : " \(precision)")
            return prefix + "dot \(a), \(b)" + flags + typeSuffix
        case .scan(_, let a, let axis, let reverse, let exclusive):
            let flags = (reverse ? " reverse" : "") + (exclusive ? " exclusive" : "")
            return prefix + "\(instruction.op.mnemonic) \(a) axis \(axis)" + flags + typeSuffix
        case .transpose(let a):
            return prefix + "transpose \(a)" + typeSuffix
        case .concat(let a, let b, let axis):
            return prefix + "concat \(a), \(b) axis \(axis)" + typeSuffix
        case .mask(let a, let row, let column, let predicate, let fill):
            let pred = predicate.atoms.isEmpty ? "true" : predicate.description
            return prefix + "mask \(a) at (\(row), \(column)) if \(pred) else " + formatFloat(fill) + typeSuffix
        case .select(let c, let a, let b):
            return prefix + "select \(c), \(a), \(b)" + typeSuffix
        case .gather(let t, let access, let index, let axis):
            var items = access.map(\.description)
            items.insert(index.description, at: Swift.max(0, Swift.min(axis, items.count)))
            return prefix + "gather " + tensorName(t, program) + "[" + items.joined(separator: ", ") + "]" + typeSuffix
        case .loop(let loop):
            var text = prefix + "for \(loop.variable.name) in \(loop.lower) ..< \(loop.upper)"
            func element(_ c: LoopCondition) -> String {
                tensorName(c.tensor, program) + "[" + c.indices.map(\.description).joined(separator: ", ") + "]"
            }
            if let b = loop.bounds { text += " within " + element(b.lower) + " ..< " + element(b.upper) }
            if let l = loop.links { text += " next " + element(l.next) + " when " + element(l.mode) }
            if let condition = loop.condition { text += " if " + element(condition) }
            if let f = loop.full {
                text +=
                    " full " + element(f.element) + " true(" + f.trueValues.map(\.description).joined(separator: ", ")
                    + ")"
            }
            if !loop.carried.isEmpty || !loop.initial.isEmpty {
                let count = Swift.max(loop.carried.count, loop.initial.count)
                var pairs: [String] = []
                for k in 0..<count {
                    let c = k < loop.carried.count ? loop.carried[k].id.description : "%?"
                    let i = k < loop.initial.count ? loop.initial[k].description : "%?"
                    pairs.append("\(c) = \(i)")
                }
                text += " iter(" + pairs.joined(separator: ", ") + ")"
            }
            let types = instruction.results.isEmpty ? loop.carried.map(\.type) : instruction.results.map(\.type)
            if !types.isEmpty {
                text += " : " + types.map(\.description).joined(separator: ", ")
            }
            return text + " {"
        case .yield(let values):
            let list = values.map(\.description).joined(separator: ", ")
            return prefix + (list.isEmpty ? "yield" : "yield " + list)
        }
    }

    private static func printBody(_ body: [Instruction], indent: Int, program: Program, into out: inout String) {
        let pad = String(repeating: "  ", count: indent)
        for inst in body {
            out += pad + line(inst, in: program) + "\n"
            if case .loop(let loop) = inst.op {
                printBody(loop.body, indent: indent + 1, program: program, into: &out)
                out += pad + "}\n"
            }
        }
    }

    private static func tensorLine(_ tensor: GlobalTensor, in program: Program) -> String {
        let type = BlockType(tensor.shape, .global).description.dropFirst(3)  // the shape and tier after "f32"
        var text = "tensor \(tensor.name): \(tensor.elementType)" + type + " \(tensor.role.rawValue)"
        if let view = tensor.viewOf { text += " view " + tensorName(view, program) }
        if let window = tensor.window { text += " at [" + window.map(String.init).joined(separator: ", ") + "]" }
        if let n = tensor.offsetsInto { text += " offsets into \(n)" }
        if let m = tensor.segmentMaxLength { text += " max_len \(m)" }
        return text
    }

    private static func tensorName(_ id: TensorID, _ program: Program) -> String {
        guard id.index >= 0 && id.index < program.tensors.count else { return "<invalid \(id)>" }
        return program.tensors[id.index].name
    }

    private static func accessText(_ access: [AxisAccess]) -> String {
        "[" + access.map(\.description).joined(separator: ", ") + "]"
    }
}
