import BlockIR
import Schedule

extension FusionRule {
    /// R15 — skipping the blocks a mask given as data removes entirely.
    ///
    /// Precondition: a store-free loop `for k in lo ..< hi` without a condition loads a block of
    /// a `bool` tensor `M` (that the kernel does not store) whose access reads only grid
    /// variables and `k`, and where, if that block were 0 everywhere, every carried value would
    /// come out of the iteration unchanged — the abstract evaluation of R9, with the loaded block
    /// known to be 0 (`select(0, s, -inf) = -inf`, then `max(m, -inf) = m`, `exp(-inf) = 0`, …).
    /// Every value the access takes must lie inside `M` for `k` in `0 ..< max hi`.
    ///
    /// ```
    /// kernel kc grid(b < 8, i < 16) {
    ///   for k in 0 ..< 16 iter(…) { %c = load M[0, i * 64 +: 64, k * 64 +: 64]; %s = select %c, %x, %f … }
    /// }
    /// ```
    /// →
    /// ```
    /// tensor M_any: bool[16,16] @global temp
    /// kernel kc_M_any grid(i < 16, k < 16) {
    ///   %0 = load M[0, i * 64 +: 64, k * 64 +: 64]; %1 = reduce_max %0 axis 1; %2 = reduce_max %1 axis 0
    ///   store %2 -> M_any[i, k]
    /// }
    /// kernel kc grid(b < 8, i < 16) { for k in 0 ..< 16 if M_any[i, k] iter(…) { … } }
    /// ```
    /// Exact: `M_any[i, k]` is 0 exactly when the block the iteration loads is 0 at every valid
    /// element (`reduce_max` ignores elements past the extent, as the select does), and such an
    /// iteration changes no carried value, so skipping it gives the same results. The summary
    /// kernel reads each element of `M` once per block of the consumer's grid that its access
    /// names (once in all when the mask is broadcast over heads), never the scores.
    ///
    /// The rule adds a kernel, so the driver runs it after every other rule is stable (Docs/Fusion.md).
    public static let dataMaskSkipping = FusionRule(
        id: "R15", name: "data-mask-skipping",
        summary: "skip the loop iterations whose block of a bool mask tensor is all false, by a block summary"
    ) { program, _ in
        for (index, kernel) in program.kernels.enumerated() {
            var constants: [ValueID: Float] = [:]
            kernel.walk { inst in
                if case .fill(let c) = inst.op, let r = inst.result { constants[r.id] = c }
            }
            guard let found = guardLoop(kernel.body, kernel: kernel, program: program, constants: constants) else {
                continue
            }
            return summarize(program, kernelIndex: index, found)
        }
        return nil
    }

    /// What R15 found: the loop (by its path of body positions), the mask load's tensor and
    /// access, the loaded block's type, the grid variables the access names and the range of `k`.
    struct DataMaskMatch {
        var path: [Int]
        var loop: Loop
        var tensor: TensorID
        var access: [AxisAccess]
        var blockType: BlockType
        var variables: [GridAxis]
        var trips: Int
    }

    private static func guardLoop(
        _ body: [Instruction], kernel: Kernel, program: Program, constants: [ValueID: Float], path: [Int] = []
    ) -> DataMaskMatch? {
        for (position, inst) in body.enumerated() {
            guard case .loop(let loop) = inst.op else { continue }
            if let inner = guardLoop(
                loop.body, kernel: kernel, program: program, constants: constants, path: path + [position])
            {
                return inner
            }
            guard loop.condition == nil, loop.body.isStoreFree else { continue }
            var ranges: [IndexVar: IndexRange] = [:]
            for axis in kernel.grid { ranges[axis.variable] = IndexRange(lower: 0, upper: axis.extent - 1) }
            let lower = IndexRange.of(loop.lower, ranges)
            let upper = IndexRange.of(loop.upper, ranges)
            guard lower.lower >= 0, upper.upper >= 1, upper.upper <= 1 << 20 else { continue }
            ranges[loop.variable] = IndexRange(lower: 0, upper: upper.upper - 1)
            let stored = Set(kernel.body.storedTensors.map(program.storage(of:)))
            for candidate in loop.body {
                guard case .load(let t, let access) = candidate.op, let r = candidate.result,
                    program[t].elementType == .bool, !stored.contains(program.storage(of: t))
                else { continue }
                let names = Set(access.flatMap(\.variables))
                guard names.contains(loop.variable),
                    names.allSatisfy({ $0 == loop.variable || kernel.gridVariables.contains($0) }),
                    inside(access, program[t].shape, ranges),
                    unchangedWhenMasked(loop, constants: constants, mask: nil, zeros: [r.id])
                else { continue }
                return DataMaskMatch(
                    path: path + [position], loop: loop, tensor: t, access: access, blockType: r.type,
                    variables: kernel.grid.filter { names.contains($0.variable) }, trips: upper.upper)
            }
        }
        return nil
    }

    /// Whether every element the access addresses lies inside the tensor over the ranges.
    private static func inside(_ access: [AxisAccess], _ shape: [Int], _ ranges: [IndexVar: IndexRange]) -> Bool {
        for (axis, a) in access.enumerated() {
            switch a {
            case .point(let e):
                let r = IndexRange.of(e, ranges)
                guard r.lower >= 0, r.upper < shape[axis] else { return false }
            case .slice(let start, _):
                let r = IndexRange.of(start, ranges)
                guard r.lower >= 0, r.upper < shape[axis] else { return false }
            }
        }
        return true
    }

    /// The program with the summary tensor, its kernel before the consumer, and the guard.
    private static func summarize(_ program: Program, kernelIndex: Int, _ m: DataMaskMatch) -> RuleApplication {
        var out = program
        let consumer = program.kernels[kernelIndex]
        let taken = Set(program.tensors.map(\.name))
        let stem = program[m.tensor].name + "_any"
        var name = stem
        var n = 1
        while taken.contains(name) {
            n += 1
            name = stem + "\(n)"
        }
        let summary = TensorID(out.tensors.count)
        out.tensors.append(
            GlobalTensor(
                name: name, shape: m.variables.map(\.extent) + [m.trips], role: .temp, elementType: .bool))
        // One instance per block the loop can read: the mask block, reduced to one element.
        var b = BodyBuilder()
        var block = b.emit(.load(m.tensor, m.access), m.blockType)
        var shape = m.blockType.shape
        while !shape.isEmpty {
            shape.removeLast()
            block = b.emit(
                .reduce(.max, block, axis: shape.count), BlockType(shape, shape.isEmpty ? .reg : .local))
        }
        b.emit(.store(block, summary, (m.variables.map(\.variable) + [m.loop.variable]).map { .point(.variable($0)) }))
        let kernelNames = Set(program.kernels.map(\.name))
        var kernelName = consumer.name + "_" + name
        while kernelNames.contains(kernelName) { kernelName += "_" }
        let summaryKernel = Kernel(
            name: kernelName, grid: m.variables + [GridAxis(m.loop.variable, m.trips)], body: b.instructions)
        var guarded = consumer
        guarded.body = setCondition(
            consumer.body, path: m.path,
            LoopCondition(
                tensor: summary, indices: (m.variables.map(\.variable) + [m.loop.variable]).map { .variable($0) }))
        out.kernels[kernelIndex] = guarded
        out.kernels.insert(summaryKernel, at: kernelIndex)
        return RuleApplication(
            program: out, place: consumer.name,
            detail:
                "loop \(m.loop.variable) now skips the blocks whose \(program[m.tensor].name) block is all false "
                + "(summary \(name), computed by \(kernelName))")
    }

    private static func setCondition(_ body: [Instruction], path: [Int], _ condition: LoopCondition) -> [Instruction] {
        guard let first = path.first, case .loop(var loop) = body[first].op else { return body }
        if path.count == 1 {
            loop.condition = condition
        } else {
            loop.body = setCondition(loop.body, path: Array(path.dropFirst()), condition)
        }
        var out = body
        out[first].op = .loop(loop)
        return out
    }
}
