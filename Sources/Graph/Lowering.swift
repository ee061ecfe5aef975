import BlockIR

/// Block sizes and target for lowering a graph to a block program.
public struct LoweringOptions: Hashable, Sendable {
    /// The target whose default block sizes are used.
    public var target: TargetDescription
    /// Block size along rows (second-to-last axes).
    public var rowBlock: Int
    /// Block size along columns (last axes).
    public var columnBlock: Int
    /// Block size along reduction axes (the loops of matmuls and reductions).
    public var reductionBlock: Int

    /// Options with the target's default block sizes.
    public init(target: TargetDescription = .cpu) {
        self.target = target
        self.rowBlock = target.rowBlock
        self.columnBlock = target.columnBlock
        self.reductionBlock = target.columnBlock
    }

    /// Applies `--block` overrides: keys `i` (rows), `j` (columns), `k` (reductions).
    public mutating func override(_ blocks: [(key: String, value: Int)]) throws(GraphError) {
        for (key, value) in blocks {
            guard value > 0 && value <= 4096 else {
                throw GraphError("block size \(key)=\(value) must be between 1 and 4096")
            }
            switch key {
            case "i": rowBlock = value
            case "j": columnBlock = value
            case "k": reductionBlock = value
            default:
                throw GraphError("unknown block axis '\(key)'; use i (rows), j (columns) or k (reductions)")
            }
        }
    }
}

/// Naive lowering: every graph op becomes one kernel that loads its inputs from global memory
/// and stores its output there. Reshapes become views of their operand's storage.
///
/// Elementwise ops, masks and transposes get a grid over (leading axes, row blocks, column
/// blocks); a reduction over the last axis gets a grid over (leading axes, row blocks) and a loop
/// over column blocks carrying the partial result; a matmul gets a grid over (batch, row blocks,
/// column blocks) and a loop over blocks of the inner dimension carrying the accumulator.
public enum Lowering {
    /// Lowers a graph.
    public static func lower(_ graph: Graph, options: LoweringOptions = LoweringOptions()) throws(GraphError)
        -> Program
    {
        var state = State(graph: graph, options: options)
        for node in graph.nodes { try state.lower(node) }
        return Program(name: graph.name, tensors: state.tensors, kernels: state.kernels)
    }
}

/// How one operand reaches a kernel: a global tensor or a scalar constant.
private enum Source {
    case tensor(TensorID, shape: [Int])
    case constant(Float)
}

private struct State {
    let graph: Graph
    let options: LoweringOptions
    var tensors: [GlobalTensor] = []
    var kernels: [Kernel] = []
    var sources: [Source?]
    let outputSet: Set<NodeID>

    init(graph: Graph, options: LoweringOptions) {
        self.graph = graph
        self.options = options
        self.sources = Array(repeating: nil, count: graph.nodes.count)
        self.outputSet = Set(graph.outputs)
    }

    mutating func addTensor(_ node: Node, viewOf: TensorID? = nil) -> TensorID {
        let role: TensorRole = node.op == .input ? .input : (outputSet.contains(node.id) ? .output : .temp)
        let id = TensorID(tensors.count)
        tensors.append(
            GlobalTensor(name: node.name, shape: node.shape, role: role, viewOf: viewOf, elementType: node.elementType))
        sources[node.id.index] = .tensor(id, shape: node.shape)
        return id
    }

    func source(_ id: NodeID) -> Source { sources[id.index]! }

    mutating func addKernel(_ what: String, _ node: Node, grid: [GridAxis], body: [Instruction]) {
        kernels.append(Kernel(name: "k\(kernels.count)_\(what)_\(node.name)", grid: grid, body: body))
    }

    mutating func lower(_ node: Node) throws(GraphError) {
        switch node.op {
        case .input:
            _ = addTensor(node)
        case .constant(let c):
            sources[node.id.index] = .constant(c)
        case .position(let axis):
            let out = addTensor(node)
            try positions(node, out, axis: axis)
        case .unary(let op, let a):
            let out = addTensor(node)
            elementwise(node, out, operands: [a], what: op.rawValue) { b, v, _ in
                b.emit(.unary(op, v[0]), Self.typeOf(v[0], in: b))
            }
        case .binary(let op, let a, let c):
            let out = addTensor(node)
            elementwise(node, out, operands: [a, c], what: op.rawValue) { b, v, _ in
                let type =
                    Self.typeOf(v[0], in: b).rank >= Self.typeOf(v[1], in: b).rank
                    ? Self.typeOf(v[0], in: b) : Self.typeOf(v[1], in: b)
                return b.emit(.binary(op, v[0], v[1]), type)
            }
        case .mask(let a, let predicate, let fill):
            let out = addTensor(node)
            elementwise(node, out, operands: [a], what: "where", unitPoints: false) { b, v, origin in
                b.emit(
                    .mask(v[0], rowOffset: origin.row, columnOffset: origin.column, predicate, fill: fill),
                    Self.typeOf(v[0], in: b))
            }
        case .matmul(let a, let c, let ta, let tb):
            let out = addTensor(node)
            try matmul(node, out, a, c, transposeA: ta, transposeB: tb)
        case .reduce(let op, let a, let axis, let keepDims):
            let out = addTensor(node)
            try reduce(node, out, op, a, axis: axis, keepDims: keepDims)
        case .transpose(let a, let permutation):
            let out = addTensor(node)
            try transpose(node, out, a, permutation: permutation)
        case .cast(let a, let type):
            // Loads convert the operand to f32; the store converts to the result's type.
            let out = addTensor(node)
            elementwise(node, out, operands: [a], what: "cast_\(type)") { _, v, _ in v[0] }
        case .reshape(let a):
            guard case .tensor(let base, _) = source(a) else {
                throw GraphError("reshape of the constant '\(graph[a].name)' is not supported")
            }
            if graph[a].op == .input || outputSet.contains(node.id) {
                // The result needs storage of its own: copy through a view with the operand's shape.
                let out = addTensor(node)
                let viewNode = Node(
                    id: node.id, name: node.name + "_as_" + graph[a].name, shape: graph[a].shape, op: node.op)
                let view = TensorID(tensors.count)
                tensors.append(
                    GlobalTensor(
                        name: viewNode.name, shape: viewNode.shape, role: .temp, viewOf: out,
                        elementType: node.elementType))
                elementwise(viewNode, view, operands: [a], what: "copy") { _, v, _ in v[0] }
                sources[node.id.index] = .tensor(out, shape: node.shape)
            } else {
                _ = addTensor(node, viewOf: base)
            }
        }
    }

    /// `pos(x, axis)`: an elementwise kernel without operands whose block is an `index` op: the
    /// tiling's row or column offset along that block axis, or the grid point of a leading axis
    /// (every element the same).
    mutating func positions(_ node: Node, _ out: TensorID, axis: Int) throws(GraphError) {
        guard axis >= 0 && axis < node.shape.count else {
            throw GraphError("pos '\(node.name)': axis \(axis) is out of range for shape \(node.shape)")
        }
        let t = tiling(node.shape)
        var b = BodyBuilder()
        let type = BlockType(t.blockShape, t.blockShape.isEmpty ? .reg : .local)
        let value: ValueID
        switch t.access[axis] {
        case .point(let e):
            value = b.emit(.index(e, axis: nil), type)
        case .slice(let start, _):
            let blockAxis = t.access[..<axis].filter { if case .slice = $0 { true } else { false } }.count
            value = b.emit(.index(start, axis: blockAxis), type)
        }
        b.emit(.store(value, out, t.access))
        addKernel("pos", node, grid: t.grid, body: b.instructions)
    }

    static func typeOf(_ id: ValueID, in b: BodyBuilder) -> BlockType {
        for inst in b.instructions.reversed() {
            if let r = inst.results.first(where: { $0.id == id }) { return r.type }
        }
        return BlockType([], .reg)
    }

    // MARK: Grids over an output shape

    /// The grid of a kernel that produces one block of `shape` per instance: leading axes are
    /// points, the last two axes are blocked.
    struct OutputTiling {
        var grid: [GridAxis] = []
        /// Per output axis: the access used to read or write it.
        var access: [AxisAccess] = []
        /// The block shape (the sliced axes).
        var blockShape: [Int] = []
        /// Element offsets of the block's row and column in the last two axes.
        var row: IndexExpr = .constant(0)
        var column: IndexExpr = .constant(0)
    }

    /// `unitPoints`: axes of size 1 are addressed as the point 0 (the block drops them), so a
    /// `[M, 1]` statistic is a `[64]` block whether it is produced or broadcast.
    func tiling(_ shape: [Int], skipping skipped: Int? = nil, unitPoints: Bool = true) -> OutputTiling {
        var t = OutputTiling()
        let r = shape.count
        for (k, n) in shape.enumerated() where k != skipped {
            if n == 1 && (unitPoints || k < r - 2) {
                t.access.append(.point(.constant(0)))
            } else if k < r - 2 {
                let v = IndexVar("b\(k)")
                t.grid.append(GridAxis(v, n))
                t.access.append(.point(.variable(v)))
            } else {
                let isRow = k == r - 2
                let size = min(isRow ? options.rowBlock : options.columnBlock, n)
                let v = IndexVar(isRow ? "i" : "j")
                t.grid.append(GridAxis(v, (n + size - 1) / size))
                let start = IndexExpr.mul(.variable(v), size)
                t.access.append(.slice(start: start, size: size))
                t.blockShape.append(size)
                if isRow { t.row = start } else { t.column = start }
            }
        }
        return t
    }

    /// Loads an operand of an elementwise op, broadcast to the output block.
    func loadBroadcast(
        _ src: Source, into b: inout BodyBuilder, outShape: [Int], tiling t: OutputTiling
    ) -> ValueID {
        switch src {
        case .constant(let c):
            return b.emit(.fill(c), BlockType([], .reg))
        case .tensor(let id, let shape):
            let r = outShape.count
            var access: [AxisAccess] = []
            var keptRow = false
            var keptColumn = false
            var loaded: [Int] = []
            for (axis, n) in shape.enumerated() {
                let k = axis + (r - shape.count)
                if n == 1 && outShape[k] != 1 {
                    access.append(.point(.constant(0)))
                } else {
                    access.append(t.access[k])
                    if case .slice(_, let size) = t.access[k] {
                        loaded.append(size)
                        if k == r - 2 { keptRow = true } else { keptColumn = true }
                    }
                }
            }
            var v = b.emit(.load(id, access), BlockType(loaded, .local))
            if t.blockShape.count == 2 && loaded.count == 1 {
                // Repeat along the missing axis: a column vector spans the columns, a row vector the rows.
                let axis = keptRow ? 1 : 0
                v = b.emit(.broadcast(v, axis: axis), BlockType(t.blockShape, .local))
            }
            _ = keptColumn
            return v
        }
    }

    mutating func elementwise(
        _ node: Node, _ out: TensorID, operands: [NodeID], what: String, unitPoints: Bool = true,
        compute: (inout BodyBuilder, [ValueID], (row: IndexExpr, column: IndexExpr)) -> ValueID
    ) {
        let t = tiling(node.shape, unitPoints: unitPoints)
        var b = BodyBuilder()
        let values = operands.map { loadBroadcast(source($0), into: &b, outShape: node.shape, tiling: t) }
        var result = compute(&b, values, (t.row, t.column))
        if Self.typeOf(result, in: b).rank < t.blockShape.count {
            // Every operand was a broadcast scalar or vector: widen to the output block.
            result = widen(result, in: &b, to: t.blockShape)
        }
        b.emit(.store(result, out, t.access))
        addKernel(what, node, grid: t.grid, body: b.instructions)
    }

    func widen(_ v: ValueID, in b: inout BodyBuilder, to shape: [Int]) -> ValueID {
        var current = v
        var rank = Self.typeOf(v, in: b).rank
        if rank == 0 {
            current = b.emit(
                .binary(.add, current, b.emit(.fill(0), BlockType(shape, .local))), BlockType(shape, .local))
            return current
        }
        while rank < shape.count {
            current = b.emit(.broadcast(current, axis: 0), BlockType(Array(shape.suffix(rank + 1)), .local))
            rank += 1
        }
        return current
    }

    // MARK: Matmul

    mutating func matmul(
        _ node: Node, _ out: TensorID, _ a: NodeID, _ c: NodeID, transposeA: Bool, transposeB: Bool
    ) throws(GraphError) {
        guard case .tensor(let ta, let sa) = source(a), case .tensor(let tb, let sb) = source(c) else {
            throw GraphError("matmul of a constant is not supported")
        }
        let t = tiling(node.shape, unitPoints: false)
        let r = node.shape.count
        let kDim = transposeA ? sa[sa.count - 2] : sa[sa.count - 1]
        let bk = min(options.reductionBlock, kDim)
        let kv = IndexVar("k")
        let kSlice = AxisAccess.slice(start: .mul(.variable(kv), bk), size: bk)
        func batchAccess(_ s: [Int]) -> [AxisAccess] {
            (0..<(s.count - 2)).map { axis in
                let k = axis + (r - s.count)
                return s[axis] == 1 && node.shape[k] != 1 ? .point(.constant(0)) : t.access[k]
            }
        }
        let (bm, bn) = (t.blockShape[0], t.blockShape[1])
        let aAccess = batchAccess(sa) + (transposeA ? [kSlice, t.access[r - 2]] : [t.access[r - 2], kSlice])
        let bAccess = batchAccess(sb) + (transposeB ? [t.access[r - 1], kSlice] : [kSlice, t.access[r - 1]])
        let aShape = transposeA ? [bk, bm] : [bm, bk]
        let bShape = transposeB ? [bn, bk] : [bk, bn]
        let accType = BlockType([bm, bn], .local)
        var b = BodyBuilder()
        let zero = b.emit(.fill(0), accType)
        let result = b.loop(
            kv, from: .constant(0), to: .constant((kDim + bk - 1) / bk), carrying: [zero], types: [accType]
        ) { body, carried in
            let x = body.emit(.load(ta, aAccess), BlockType(aShape, .local))
            let y = body.emit(.load(tb, bAccess), BlockType(bShape, .local))
            let p = body.emit(.dot(x, y, transposeA: transposeA, transposeB: transposeB), accType)
            return [body.emit(.binary(.add, carried[0], p), accType)]
        }
        b.emit(.store(result[0], out, t.access))
        addKernel("matmul", node, grid: t.grid, body: b.instructions)
    }

    // MARK: Reductions

    mutating func reduce(
        _ node: Node, _ out: TensorID, _ op: ReduceOp, _ a: NodeID, axis: Int, keepDims: Bool
    ) throws(GraphError) {
        guard case .tensor(let input, let shape) = source(a) else {
            throw GraphError("reduction of a constant is not supported")
        }
        let r = shape.count
        let kv = IndexVar("k")
        // The grid tiles the input's shape without the reduced axis; the loop walks that axis.
        var t = tiling(shape, skipping: axis)
        if axis >= r - 2 {
            // The reduced axis is a blocked one: the loop visits its blocks and each block reduces.
            let n = shape[axis]
            let bk = min(options.reductionBlock, n)
            var inAccess: [AxisAccess] = []
            var accessIndex = 0
            for k in 0..<r {
                if k == axis {
                    inAccess.append(.slice(start: .mul(.variable(kv), bk), size: bk))
                } else {
                    inAccess.append(t.access[accessIndex])
                    accessIndex += 1
                }
            }
            // After skipping, the remaining blocked axis (if any) got a row/column name from its
            // new position; rename so the variable says which input axis it walks.
            let kept = t.blockShape
            let loaded: [Int] = inAccess.compactMap { if case .slice(_, let s) = $0 { return s } else { return nil } }
            let reduceAxis = axis == r - 1 ? loaded.count - 1 : 0
            let accType = BlockType(kept, kept.isEmpty ? .reg : .local)
            var b = BodyBuilder()
            let initial = b.emit(.fill(op.identity), accType)
            let result = b.loop(
                kv, from: .constant(0), to: .constant((n + bk - 1) / bk), carrying: [initial], types: [accType]
            ) { body, carried in
                let x = body.emit(.load(input, inAccess), BlockType(loaded, .local))
                let part = body.emit(.reduce(op, x, axis: reduceAxis), accType)
                return [body.emit(.binary(op.combiner, carried[0], part), accType)]
            }
            var outAccess = t.access
            if keepDims { outAccess.insert(.point(.constant(0)), at: axis) }
            b.emit(.store(result[0], out, outAccess))
            addKernel("reduce_\(op.rawValue)", node, grid: t.grid, body: b.instructions)
        } else {
            // A leading axis: the loop walks its points and combines whole blocks elementwise.
            t = tiling(shape)
            var inAccess = t.access
            inAccess[axis] = .point(.variable(kv))
            let grid = t.grid.filter { $0.variable != IndexVar("b\(axis)") }
            let accType = BlockType(t.blockShape, .local)
            var b = BodyBuilder()
            let initial = b.emit(.fill(op.identity), accType)
            let result = b.loop(
                kv, from: .constant(0), to: .constant(shape[axis]), carrying: [initial], types: [accType]
            ) { body, carried in
                let x = body.emit(.load(input, inAccess), accType)
                return [body.emit(.binary(op.combiner, carried[0], x), accType)]
            }
            var outAccess = t.access
            if keepDims { outAccess[axis] = .point(.constant(0)) } else { outAccess.remove(at: axis) }
            b.emit(.store(result[0], out, outAccess))
            addKernel("reduce_\(op.rawValue)", node, grid: grid, body: b.instructions)
        }
    }

    // MARK: Transpose

    mutating func transpose(_ node: Node, _ out: TensorID, _ a: NodeID, permutation: [Int]) throws(GraphError) {
        guard case .tensor(let input, let shape) = source(a) else {
            throw GraphError("transpose of a constant is not supported")
        }
        let t = tiling(node.shape)
        var inAccess = Array(repeating: AxisAccess.point(.constant(0)), count: shape.count)
        for (k, q) in permutation.enumerated() { inAccess[q] = t.access[k] }
        let r = node.shape.count
        var loaded: [Int] = []
        for acc in inAccess { if case .slice(_, let s) = acc { loaded.append(s) } }
        var b = BodyBuilder()
        var v = b.emit(.load(input, inAccess), BlockType(loaded, .local))
        if loaded.count == 2 && permutation[r - 2] > permutation[r - 1] {
            v = b.emit(.transpose(v), BlockType(t.blockShape, .local))
        }
        b.emit(.store(v, out, t.access))
        addKernel("transpose", node, grid: t.grid, body: b.instructions)
    }
}
