import BlockIR
import Schedule

extension KernelEmitter {
    /// A run of row-local ops (`RowPass`) as one loop over the rows: every result's storage and
    /// extents first, then per row each op's row in program order (an op whose row extent may
    /// differ from the pass's computes only its own rows).
    mutating func emitRowPass(_ insts: [Instruction], rows: Int) {
        w.line("// one pass over the rows: " + insts.compactMap { $0.result?.id.description }.joined(separator: ", "))
        var code: [Instruction] = []
        for inst in insts {
            let r = inst.result!.id
            switch inst.op {
            case .broadcast:
                emit(inst, carried: [])
                continue
            case .reduce(_, let a, _):
                declareBuffer(r)
                defineExtents(r, [extents[a]![0]])
            default:
                declareBuffer(r)
                if case .unary(.exp, let a) = inst.op, expRowsApply(r, a) {
                    defineExtents(r, extents[a]!)
                } else {
                    let (operands, _) = elementwiseForm(inst.op, r)!
                    defineExtents(r, elementwiseExtents(operands, r))
                }
            }
            code.append(inst)
        }
        let rowExtents = code.map { extents[$0.result!.id]![0] }
        let same = Set(rowExtents.map { canonicalExtent($0) }).count == 1
        let it = dialect.indexType
        // Reductions of unit-stride rows whose results the rest of the pass neither reads (directly
        // or through a broadcast, which is one of `insts`) nor overwrites: each row leaves its 16
        // partials, combined 16 rows at a time after the loop.
        var laned: [ValueID: String] = [:]
        for (n, inst) in insts.enumerated() {
            guard case .reduce(_, let a, _) = inst.op, rows <= 256, let la = analysis.layouts[a], la.strides[1] == 1
            else { continue }
            let r = inst.result!.id
            let later = insts[(n + 1)...]
            guard !later.contains(where: { $0.op.operands.contains(r) }),
                !later.contains(where: { $0.result.map { plan.bufferOf[$0.id] == plan.bufferOf[r] } ?? false })
            else { continue }
            laned[r] = "L\(r.number)"
            w.line("float L\(r.number)[\(rows * 16)] __attribute__((aligned(64)));")
        }
        open("for (\(it) r_ = 0; r_ < \(same ? rowExtents[0] : "\(rows)"); r_++)")
        for (inst, rowExtent) in zip(code, rowExtents) {
            let r = inst.result!.id
            w.line("// \(Self.describe(inst, program))")
            let guarded = !same && canonicalExtent(rowExtent) != "\(rows)"
            if guarded { open("if (r_ < \(rowExtent))") }
            let out = "v\(r.number)"
            let e = extents[r]!
            switch inst.op {
            case .reduce(let op, let a, _):
                if let lanes = laned[r] {
                    let la = analysis.layouts[a]!
                    let row = la.strides[0] == 0 ? "" : " + r_ * \(la.strides[0])"
                    w.line(
                        "blk_\(op == .sum ? "sum" : "max")_lanes(\(pointer(a))\(row), \(extents[a]![1]), \(lanes) + r_ * 16);"
                    )
                } else {
                    emitRowOfReduction(out, op, a)
                }
            case .select(_, let a, _) where selectIsOperand(r, a):
                break
            case .unary(.exp, let a) where expRowsApply(r, a):
                let la = analysis.layouts[a]!
                let row = la.strides[0] == 0 ? "" : " + r_ * \(la.strides[0])"
                w.line("blk_exp_row(\(pointer(a))\(row), \(out) + r_ * \(analysis.layouts[r]!.strides[0]), \(e[1]));")
            default:
                let (operands, f) = elementwiseForm(inst.op, r)!
                w.flushLeft(dialect.simdLoop)
                open("for (\(it) c_ = 0; c_ < \(e[1]); c_++)")
                let value = f(self, operands.map { element($0, ["r_", "c_"]) })
                w.line("\(out)[r_ * \(analysis.layouts[r]!.strides[0]) + c_] = \(value);")
                close()
            }
            if guarded { close() }
        }
        close()
        for inst in code {
            guard case .reduce(let op, _, _) = inst.op, let lanes = laned[inst.result!.id] else { continue }
            let r = inst.result!.id
            w.line("blk_\(op == .sum ? "sum" : "max")_of_lanes(\(lanes), \(extents[r]![0]), v\(r.number));")
        }
    }
}
