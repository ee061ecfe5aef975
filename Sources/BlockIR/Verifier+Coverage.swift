extension Verifier {
    /// The most store instances (grid instances times loop iterations of stores) enumerated for
    /// one output; beyond it the output's coverage is not checked.
    public static let maximumCoverageStores = 1 << 20
    /// The most cells (blocks between store boundaries) tracked for one output.
    static let maximumCoverageCells = 1 << 22

    /// Checks that every element of every output is written exactly once over all kernels.
    ///
    /// Each store instance (one grid instance, one iteration of the loops around the store) writes
    /// a box of the tensor: per axis `[start, start + size)`, clipped to the tensor. The boxes'
    /// boundaries cut each axis into intervals, the tensor into cells; each box covers whole
    /// cells, so counting writes per cell is exact. An output is not checked (never rejected) when
    /// some store to its storage goes through a view of another shape or when there are too many
    /// store instances or cells to count. Only the first problem of each output is reported: the
    /// store instance that writes a region a second time, or the first region no store writes.
    static func coverageErrors(_ program: Program, sourceMap: BlockSourceMap?) -> [VerificationError] {
        var errors: [VerificationError] = []
        for (t, tensor) in program.tensors.enumerated() where tensor.role == .output && tensor.viewOf == nil {
            if let error = coverageError(program, output: TensorID(t), sourceMap: sourceMap) { errors.append(error) }
        }
        return errors
    }

    /// A store of a program: where it is and what it writes.
    private struct StoreSite {
        var kernel: Int
        var path: [Int]
        var tensor: TensorID
        var access: [AxisAccess]
        var value: ValueID
        /// The loops around the store, outermost first.
        var loops: [Loop]
    }

    private static func coverageError(
        _ program: Program, output: TensorID, sourceMap: BlockSourceMap?
    ) -> VerificationError? {
        let shape = program[output].shape
        let name = program[output].name
        // Every store to the output's storage, through tensors of its shape.
        var sites: [StoreSite] = []
        var instanceCount = 0
        for (k, kernel) in program.kernels.enumerated() {
            func visit(_ body: [Instruction], path: [Int], loops: [Loop]) -> Bool {
                for (index, inst) in body.enumerated() {
                    switch inst.op {
                    case .store(let v, let t, let access) where program.storage(of: t) == output:
                        guard program[t].shape == shape else { return false }
                        sites.append(
                            StoreSite(
                                kernel: k, path: path + [index], tensor: t, access: access, value: v, loops: loops))
                    case .loop(let loop):
                        guard visit(loop.body, path: path + [index], loops: loops + [loop]) else { return false }
                    default: continue
                    }
                }
                return true
            }
            guard visit(kernel.body, path: [], loops: []) else { return nil }
        }
        guard !sites.isEmpty else {
            return VerificationError(
                kernel: nil,
                message: "output '\(name)' is never written; store every element of every output once",
                location: sourceMap?.tensor(output.index))
        }
        // The boxes every store instance writes, in program order.
        var boxes: [(site: Int, env: [IndexVar: Int], box: [Range<Int>])] = []
        for (s, site) in sites.enumerated() {
            let kernel = program.kernels[site.kernel]
            var env: [IndexVar: Int] = [:]
            var overBudget = false
            func enumerateLoops(_ depth: Int) {
                guard !overBudget else { return }
                guard depth < site.loops.count else {
                    instanceCount += 1
                    if instanceCount > maximumCoverageStores {
                        overBudget = true
                        return
                    }
                    var box: [Range<Int>] = []
                    for (axis, a) in site.access.enumerated() {
                        let (start, size): (Int, Int)
                        switch a {
                        case .point(let e): (start, size) = (e.evaluate(env), 1)
                        case .slice(let e, let n): (start, size) = (e.evaluate(env), n)
                        }
                        let lo = Swift.min(Swift.max(start, 0), shape[axis])
                        let hi = Swift.min(Swift.max(saturatingSum(start, size), lo), shape[axis])
                        box.append(lo..<hi)
                    }
                    if !box.contains(where: \.isEmpty) { boxes.append((s, env, box)) }
                    return
                }
                let loop = site.loops[depth]
                let (lower, upper) = (loop.lower.evaluate(env), loop.upper.evaluate(env))
                guard lower < upper else { return }
                for v in lower..<upper where !overBudget {
                    env[loop.variable] = v
                    enumerateLoops(depth + 1)
                }
                env[loop.variable] = nil
            }
            func enumerateGrid(_ axis: Int) {
                guard !overBudget else { return }
                guard axis < kernel.grid.count else { return enumerateLoops(0) }
                for v in 0..<kernel.grid[axis].extent where !overBudget {
                    env[kernel.grid[axis].variable] = v
                    enumerateGrid(axis + 1)
                }
            }
            enumerateGrid(0)
            if overBudget { return nil }
        }
        // Cut each axis at every box boundary.
        var cuts: [[Int]] = shape.map { [0, $0] }
        for b in boxes {
            for (axis, r) in b.box.enumerated() {
                cuts[axis].append(r.lowerBound)
                cuts[axis].append(r.upperBound)
            }
        }
        cuts = cuts.map { Array(Set($0)).sorted() }
        let cutIndex = cuts.map { Dictionary(uniqueKeysWithValues: $0.enumerated().map { ($1, $0) }) }
        let cells = cuts.reduce(1) { saturatingProduct($0, $1.count - 1) }
        guard cells <= maximumCoverageCells else { return nil }
        var strides = Array(repeating: 1, count: shape.count)
        for axis in stride(from: shape.count - 2, through: 0, by: -1) {
            strides[axis] = strides[axis + 1] * (cuts[axis + 1].count - 1)
        }
        var writer = Array(repeating: -1, count: cells)
        func region(_ cell: Int) -> String {
            var rest = cell
            var parts: [String] = []
            for axis in shape.indices {
                let k = rest / strides[axis]
                rest %= strides[axis]
                parts.append("\(cuts[axis][k]) ..< \(cuts[axis][k + 1])")
            }
            return "\(name)[\(parts.joined(separator: ", "))]"
        }
        for (n, b) in boxes.enumerated() {
            // The cell ranges the box covers, per axis.
            let ranges = b.box.enumerated().map { axis, r in
                cutIndex[axis][r.lowerBound]!..<cutIndex[axis][r.upperBound]!
            }
            var index = Array(repeating: 0, count: shape.count)
            for axis in shape.indices { index[axis] = ranges[axis].lowerBound }
            while true {
                let cell = zip(index, strides).reduce(0) { $0 + $1.0 * $1.1 }
                if writer[cell] >= 0 {
                    let site = sites[b.site]
                    let first = sites[boxes[writer[cell]].site]
                    let kernel = program.kernels[site.kernel]
                    let at =
                        kernel.gridVariables.map { "\($0) = \(b.env[$0] ?? 0)" }
                        + site.loops.map { "\($0.variable) = \(b.env[$0.variable] ?? 0)" }
                    let earlier =
                        writer[cell] == n
                        ? "" : " already written by \(program.kernels[first.kernel].name)'s store \(first.value)"
                    return VerificationError(
                        kernel: kernel.name,
                        message:
                            "'store \(site.value)' writes \(region(cell)) of output '\(name)' a second time (at "
                            + at.joined(separator: ", ") + ")\(earlier); store every element of an output once",
                        location: sourceMap?.instruction(InstructionPath(kernel: site.kernel, indices: site.path))
                            ?? sourceMap?.kernel(site.kernel))
                }
                writer[cell] = n
                // The next cell of the box, last axis fastest.
                var axis = shape.count - 1
                while axis >= 0 {
                    index[axis] += 1
                    if index[axis] < ranges[axis].upperBound { break }
                    index[axis] = ranges[axis].lowerBound
                    axis -= 1
                }
                if axis < 0 { break }
            }
        }
        if let cell = writer.firstIndex(of: -1) {
            return VerificationError(
                kernel: nil,
                message:
                    "no store writes \(region(cell)) of output '\(name)'; store every element of every output once",
                location: sourceMap?.tensor(output.index))
        }
        return nil
    }
}
