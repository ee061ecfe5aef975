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

    /// Output reshapes whose operand's kernel writes straight into the output's storage: operand
    /// node → the reshape node. The output tensor is declared when the operand is lowered, and
    /// the operand's tensor is a view of it.
    let storedThroughView: [NodeID: NodeID]
    /// Parts of a concatenation that their kernel stores straight into the concatenation's
    /// storage: part node → (the concat node, the part's window offsets in it).
    let storedIntoConcat: [NodeID: (concat: NodeID, window: [Int])]

    init(graph: Graph, options: LoweringOptions) {
        self.graph = graph
        self.options = options
        self.sources = Array(repeating: nil, count: graph.nodes.count)
        self.outputSet = Set(graph.outputs)
        var through: [NodeID: NodeID] = [:]
        for node in graph.nodes where outputSet.contains(node.id) {
            // An output that reshapes a computed temporary (not an input, constant, output or
            // other reshape) takes that temporary's place: no copy kernel.
            guard case .reshape(let a) = node.op, through[a] == nil, !outputSet.contains(a) else { continue }
            switch graph[a].op {
            case .input, .constant, .reshape, .slice, .concat: continue
            default: through[a] = node.id
            }
        }
        self.storedThroughView = through
        // A part that is computed here (not an input, a constant or a view), not an output and
        // not claimed already has its kernel store into a window of the concatenation.
        var into: [NodeID: (concat: NodeID, window: [Int])] = [:]
        for node in graph.nodes {
            guard case .concat(let parts, let axis) = node.op else { continue }
            var offset = 0
            for p in parts {
                defer { offset += graph[p].shape[axis] }
                guard into[p] == nil, through[p] == nil, !outputSet.contains(p), parts.filter({ $0 == p }).count == 1
                else { continue }
                switch graph[p].op {
                case .input, .constant, .reshape, .slice, .concat: continue
                default:
                    var window = Array(repeating: 0, count: node.shape.count)
                    window[axis] = offset
                    into[p] = (node.id, window)
                }
            }
        }
        self.storedIntoConcat = into
    }

    mutating func addTensor(_ node: Node, viewOf: TensorID? = nil) -> TensorID {
        if viewOf == nil, let reshape = storedThroughView[node.id] {
            let output = addTensor(graph[reshape])
            return addTensor(node, viewOf: output)
        }
        if viewOf == nil, let (concat, window) = storedIntoConcat[node.id] {
            if sources[concat.index] == nil { _ = addTensor(graph[concat]) }
            guard case .tensor(let whole, _) = source(concat) else { return addTensor(node, viewOf: nil) }
            let id = TensorID(tensors.count)
            tensors.append(
                GlobalTensor(
                    name: node.name, shape: node.shape, role: .temp, viewOf: whole, window: window,
                    elementType: node.elementType))
            sources[node.id.index] = .tensor(id, shape: node.shape)
            return id
        }
        let role: TensorRole = node.op == .input ? .input : (outputSet.contains(node.id) ? .output : .temp)
        let id = TensorID(tensors.count)
        var tensor = GlobalTensor(
            name: node.name, shape: node.shape, role: role, viewOf: viewOf, elementType: node.elementType)
        if node.op == .input {
            tensor.offsetsInto = graph.offsetInputs[node.name]
            if tensor.offsetsInto != nil { tensor.segmentMaxLength = graph.segmentMaxLengths[node.name] }
        }
        tensors.append(tensor)
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
            let unit = unitAxes(node.shape)
            elementwise(node, out, operands: [a], what: "where") { b, v, origin in
                // A mask sees rows and columns: a size-1 axis becomes a unit axis of the block.
                Self.withUnitAxes(unit, v[0], in: &b) { b, x in
                    b.emit(
                        .mask(x, rowOffset: origin.row, columnOffset: origin.column, predicate, fill: fill),
                        Self.typeOf(x, in: b))
                }
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
        case .slice(let a, let axis, let start):
            try slice(node, a, axis: axis, start: start)
        case .concat(let parts, let axis):
            try concat(node, parts, axis: axis)
        case .select(let c, let a, let d):
            let out = addTensor(node)
            elementwise(node, out, operands: [c, a, d], what: "select") { b, v, _ in
                let type = v.map { Self.typeOf($0, in: b) }.max { $0.rank < $1.rank }!
                return b.emit(.select(v[0], v[1], v[2]), type)
            }
        case .gather(let table, let index, let axis):
            try gather(node, table, index, axis: axis)
        case .blockBroadcast(let a, let blocks):
            let out = addTensor(node)
            try blockBroadcast(node, out, a, blocks: blocks)
        case .cumsum(let a, let axis, let reverse, let exclusive):
            let out = addTensor(node)
            try cumsum(node, out, a, axis: axis, reverse: reverse, exclusive: exclusive)
        case .reshape(let a):
            guard case .tensor(let base, _) = source(a) else {
                throw GraphError("reshape of the constant '\(graph[a].name)' is not supported")
            }
            if sources[node.id.index] != nil {
                // An output whose operand was stored into it through a view (`storedThroughView`).
                return
            }
            var root = storageRoot(base)
            if tensors[base.index].window != nil && !outputSet.contains(node.id) {
                // A reshape of a window is not a view of the storage: copy the window first.
                root = materialize(a)
            }
            if outputSet.contains(node.id) {
                // The result needs storage of its own (the caller's buffer), and the operand is an
                // input, an output or a view: copy through a view with the operand's shape.
                let out = addTensor(node)
                let viewNode = Node(
                    id: node.id, name: freshName(node.name + "_as_" + graph[a].name), shape: graph[a].shape,
                    op: node.op)
                let view = TensorID(tensors.count)
                tensors.append(
                    GlobalTensor(
                        name: viewNode.name, shape: viewNode.shape, role: .temp, viewOf: out,
                        elementType: node.elementType))
                elementwise(viewNode, view, operands: [a], what: "copy") { _, v, _ in v[0] }
                sources[node.id.index] = .tensor(out, shape: node.shape)
            } else {
                // A view of the operand's storage (an input's included): loads go through it.
                _ = addTensor(node, viewOf: root)
            }
        }
    }

    /// Lowers `slice`: a window view of the operand's storage; an output slice copies the window
    /// into the caller's buffer.
    mutating func slice(_ node: Node, _ a: NodeID, axis: Int, start: Int) throws(GraphError) {
        guard case .tensor(let base, _) = source(a) else {
            throw GraphError("slice of the constant '\(graph[a].name)' is not supported")
        }
        var offsets = Array(repeating: 0, count: node.shape.count)
        offsets[axis] = start
        var root = base
        if let viewed = tensors[base.index].viewOf {
            if let outer = tensors[base.index].window {
                // A window of a window: offsets add up.
                offsets = zip(offsets, outer).map { $0 + $1 }
                root = viewed
            } else {
                // A window of a reshape view is not a box of the storage: copy the operand first.
                root = materialize(a)
            }
        }
        let view = TensorID(tensors.count)
        tensors.append(
            GlobalTensor(
                name: outputSet.contains(node.id) ? freshName(node.name + "_window") : node.name, shape: node.shape,
                role: .temp, viewOf: root, window: offsets, elementType: node.elementType))
        sources[node.id.index] = .tensor(view, shape: node.shape)
        if outputSet.contains(node.id) {
            let out = addTensor(node)
            sources[node.id.index] = .tensor(view, shape: node.shape)
            elementwise(node, out, operands: [node.id], what: "copy") { _, v, _ in v[0] }
            sources[node.id.index] = .tensor(out, shape: node.shape)
        }
    }

    /// Lowers `concat`: parts computed here were stored into windows of its storage by their
    /// own kernels (`storedIntoConcat`); each other part (an input, a view, an output) is copied
    /// into its window.
    mutating func concat(_ node: Node, _ parts: [NodeID], axis: Int) throws(GraphError) {
        if sources[node.id.index] == nil { _ = addTensor(node) }
        guard case .tensor(let whole, _) = source(node.id) else { return }
        var offset = 0
        for (k, p) in parts.enumerated() {
            defer { offset += graph[p].shape[axis] }
            if let claim = storedIntoConcat[p], claim.concat == node.id { continue }
            guard case .tensor = source(p) else {
                throw GraphError("concat of the constant '\(graph[p].name)' is not supported")
            }
            var window = Array(repeating: 0, count: node.shape.count)
            window[axis] = offset
            let part = Node(id: p, name: freshName("\(node.name)_part\(k)"), shape: graph[p].shape, op: graph[p].op)
            let view = TensorID(tensors.count)
            tensors.append(
                GlobalTensor(
                    name: part.name, shape: part.shape, role: .temp, viewOf: whole, window: window,
                    elementType: node.elementType))
            elementwise(part, view, operands: [p], what: "copy") { _, v, _ in v[0] }
        }
    }

    /// Lowers `gather`: an elementwise kernel over the result whose block loads the index block
    /// (the result's axes `axis ..< axis + rank(index)` address the index tensor) and gathers
    /// the table's rows at it; the table's other axes are the result's.
    mutating func gather(_ node: Node, _ table: NodeID, _ index: NodeID, axis: Int) throws(GraphError) {
        guard case .tensor(let tt, let tableShape) = source(table), case .tensor(let it, let indexShape) = source(index)
        else {
            throw GraphError("gather '\(node.name)': the table and the index must be tensors, not constants")
        }
        let out = addTensor(node)
        let t = tiling(node.shape)
        let indexRank = indexShape.count
        guard tableShape.count + indexRank - 1 == node.shape.count, axis >= 0, axis < tableShape.count else {
            throw GraphError("gather '\(node.name)': axis \(axis) does not fit the shapes")
        }
        var b = BodyBuilder()
        let indexAccess = Array(t.access[axis..<(axis + indexRank)])
        let indexBlock = indexAccess.compactMap { if case .slice(_, let n) = $0 { n } else { nil } }
        let idx = b.emit(.load(it, indexAccess), BlockType(indexBlock, indexBlock.isEmpty ? .reg : .local))
        let tableAccess = Array(t.access[..<axis]) + Array(t.access[(axis + indexRank)...])
        let value = b.emit(
            .gather(tt, tableAccess, index: idx, axis: axis),
            BlockType(t.blockShape, t.blockShape.isEmpty ? .reg : .local))
        b.emit(.store(value, out, t.access))
        addKernel("gather", node, grid: t.grid, body: b.instructions)
    }

    /// Lowers `block_broadcast` as an elementwise kernel at the default blocks. On a blocked axis
    /// repeated `f` times whose block size divides `f`, each block lies inside one element of the
    /// operand: a point `start / f`, broadcast over the block (with a 128 x 128 block mask and
    /// 64 x 64 blocks, fusion inlines it into the reader as one element load per block). Where
    /// the block size does not divide `f` (mask blocks of 24, 96 or 32 at 64), the block reads the
    /// operand's elements it overlaps (a slice of `m = (size - 1) / f + 2` from `start / f`) and
    /// repeats each over its `f` positions by a product with a 0/1 expansion matrix,
    /// `E[r, c] = (q·f <= start + r < q·f + f)` with `q = start / f + c` (one 1 per row: exact),
    /// then `ne 0` (a truth value, so the stored bool is kept by fusion). A `bool` operand only,
    /// with both trailing axes blocked; otherwise blocks that divide the repetitions.
    mutating func blockBroadcast(_ node: Node, _ out: TensorID, _ a: NodeID, blocks: [Int]) throws(GraphError) {
        guard case .tensor(let operand, let operandShape) = source(a) else {
            throw GraphError("block_broadcast '\(node.name)': the operand must be a tensor, not a constant")
        }
        let r = node.shape.count
        guard blocks.count <= r, operandShape.count == r else {
            throw GraphError("block_broadcast '\(node.name)': \(blocks.count) block sizes for shape \(operandShape)")
        }
        let factors = Array(repeating: 1, count: r - blocks.count) + blocks
        let natural = tiling(node.shape)
        var aligned = true
        for (k, a) in natural.access.enumerated() {
            if case .slice(_, let size) = a, factors[k] % size != 0 { aligned = false }
        }
        if !aligned && graph[a].elementType == .bool && natural.blockShape.count == 2 {
            expandBlocks(node, out, operand, operandShape, factors, natural)
            return
        }
        func fitting(_ preferred: Int, _ n: Int, _ f: Int) -> Int {
            var size = max(1, min(preferred, n, f))
            while f % size != 0 { size -= 1 }
            return f == 1 ? min(preferred, n) : size
        }
        let t =
            aligned
            ? natural
            : tiling(
                node.shape, rowBlock: r >= 2 ? fitting(options.rowBlock, node.shape[r - 2], factors[r - 2]) : nil,
                columnBlock: fitting(options.columnBlock, node.shape[r - 1], factors[r - 1]))
        var access: [AxisAccess] = []
        var loaded: [Int] = []
        var kept: [Bool] = []  // per block axis: read as a slice (no repetition) or a point
        for k in 0..<r {
            switch t.access[k] {
            case .point(let e):
                access.append(.point(factors[k] == 1 ? e : IndexExpr.floorDiv(e, factors[k]).simplified()))
            case .slice(let start, let size):
                if factors[k] == 1 {
                    access.append(.slice(start: start, size: size))
                    loaded.append(size)
                    kept.append(true)
                } else {
                    access.append(.point(IndexExpr.floorDiv(start, factors[k]).simplified()))
                    kept.append(false)
                }
            }
        }
        var b = BodyBuilder()
        var v = b.emit(.load(operand, access), BlockType(loaded, loaded.isEmpty ? .reg : .local))
        var shape = loaded
        for (axis, isKept) in kept.enumerated() where !isKept {
            shape.insert(t.blockShape[axis], at: axis)
            v = b.emit(.broadcast(v, axis: axis), BlockType(shape, .local))
        }
        b.emit(.store(v, out, t.access))
        addKernel("block_broadcast", node, grid: t.grid, body: b.instructions)
    }

    /// `block_broadcast` of a bool tensor at blocks that do not divide the repetition (see
    /// `blockBroadcast`): per blocked axis a slice of the operand's elements the block overlaps,
    /// repeated by a product with a 0/1 expansion matrix; points on the other axes.
    private mutating func expandBlocks(
        _ node: Node, _ out: TensorID, _ operand: TensorID, _ operandShape: [Int], _ factors: [Int],
        _ t: OutputTiling
    ) {
        enum Read {
            case kept, point
            case expand(start: IndexExpr, size: Int, factor: Int, count: Int)
        }
        var access: [AxisAccess] = []
        var reads: [Read] = []  // per block axis
        var loaded: [Int] = []
        for (k, a) in t.access.enumerated() {
            let f = factors[k]
            switch a {
            case .point(let e):
                access.append(.point(f == 1 ? e : IndexExpr.floorDiv(e, f).simplified()))
            case .slice(let start, let size):
                if f == 1 {
                    access.append(.slice(start: start, size: size))
                    reads.append(.kept)
                    loaded.append(size)
                } else if f % size == 0 {
                    access.append(.point(IndexExpr.floorDiv(start, f).simplified()))
                    reads.append(.point)
                } else {
                    let m = min(operandShape[k], (size - 1) / f + 2)
                    access.append(.slice(start: IndexExpr.floorDiv(start, f).simplified(), size: m))
                    reads.append(.expand(start: start, size: size, factor: f, count: m))
                    loaded.append(m)
                }
            }
        }
        var b = BodyBuilder()
        var x = b.emit(.load(operand, access), BlockType(loaded, loaded.isEmpty ? .reg : .local))
        // Points become whole rows or columns of the block (broadcast), giving a 2-D block.
        var shape = loaded
        for (axis, read) in reads.enumerated() {
            guard case .point = read else { continue }
            shape.insert(t.blockShape[axis], at: axis)
            x = b.emit(.broadcast(x, axis: axis), BlockType(shape, .local))
        }
        let f32 = { (s: [Int]) in BlockType(s, .local) }
        /// E [size, m]: row r has its 1 at the operand element holding position start + r.
        func expansion(_ start: IndexExpr, _ size: Int, _ f: Int, _ m: Int, _ b: inout BodyBuilder) -> ValueID {
            let type = f32([size, m])
            let p = b.emit(.index(start, axis: 0), type)
            let q = b.emit(.index(IndexExpr.floorDiv(start, f).simplified(), axis: 1), type)
            let factor = b.emit(.fill(Float(f)), BlockType([], .reg))
            let low = b.emit(.binary(.mul, q, factor), type)
            let high = b.emit(.binary(.add, low, factor), type)
            let above = b.emit(.binary(.ge, p, low), type)
            let below = b.emit(.binary(.lt, p, high), type)
            return b.emit(.binary(.logicalAnd, above, below), type)
        }
        if case .expand(let start, let size, let f, let m) = reads[0] {
            let e = expansion(start, size, f, m, &b)
            shape[0] = size
            x = b.emit(.dot(e, x, transposeA: false, transposeB: false), f32(shape))
        }
        if case .expand(let start, let size, let f, let m) = reads[1] {
            let e = expansion(start, size, f, m, &b)
            shape[1] = size
            x = b.emit(.dot(x, e, transposeA: false, transposeB: true), f32(shape))
        }
        let zero = b.emit(.fill(0), BlockType([], .reg))
        x = b.emit(.binary(.ne, x, zero), f32(shape))
        b.emit(.store(x, out, t.access))
        addKernel("block_broadcast", node, grid: t.grid, body: b.instructions)
    }

    /// A fresh temporary holding a copy of `a` (read through its current source), for views
    /// that cannot be expressed over `a`'s storage.
    mutating func materialize(_ a: NodeID) -> TensorID {
        let copy = Node(
            id: a, name: freshName(graph[a].name + "_copy"), shape: graph[a].shape, op: graph[a].op,
            elementType: graph[a].elementType)
        let id = TensorID(tensors.count)
        tensors.append(
            GlobalTensor(name: copy.name, shape: copy.shape, role: .temp, elementType: copy.elementType))
        elementwise(copy, id, operands: [a], what: "copy") { _, v, _ in v[0] }
        return id
    }

    /// `base`, or `base` with `_` prepended until no graph node or tensor has the name.
    func freshName(_ base: String) -> String {
        var name = base
        while graph.node(named: name) != nil || tensors.contains(where: { $0.name == name }) { name = "_" + name }
        return name
    }

    /// The tensor that owns `id`'s storage.
    func storageRoot(_ id: TensorID) -> TensorID {
        var current = id
        while let next = tensors[current.index].viewOf { current = next }
        return current
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

    /// Axes of size 1 are addressed as the point 0 (the block drops them) in every kernel, so a
    /// `[M, 1]` statistic is a `[64]` block whether it is produced or broadcast, and a single
    /// query row (`[BH, 1, d]`, decode) is a `[d]` block in the matmul that produces it as in the
    /// softmax that reads it.
    func tiling(
        _ shape: [Int], skipping skipped: Int? = nil, rowBlock: Int? = nil, columnBlock: Int? = nil
    ) -> OutputTiling {
        var t = OutputTiling()
        let r = shape.count
        for (k, n) in shape.enumerated() where k != skipped {
            if n == 1 {
                t.access.append(.point(.constant(0)))
            } else if k < r - 2 {
                let v = IndexVar("b\(k)")
                t.grid.append(GridAxis(v, n))
                t.access.append(.point(.variable(v)))
            } else {
                let isRow = k == r - 2
                let size = min(isRow ? rowBlock ?? options.rowBlock : columnBlock ?? options.columnBlock, n)
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

    /// Which of the last two axes of `shape` (rows, columns) have size 1: the tiling makes them
    /// points, and ops that need both axes (`dot`, `mask`) see them as unit axes of the block.
    func unitAxes(_ shape: [Int]) -> (row: Bool, column: Bool) {
        let r = shape.count
        return (r >= 2 && shape[r - 2] == 1, r >= 1 && shape[r - 1] == 1)
    }

    /// Runs `body` on `v` with the unit axes `unit` inserted (a broadcast to size 1), and drops
    /// them from the result again (a sum over one element), so rank-2 ops apply to blocks whose
    /// size-1 axes the tiling dropped.
    static func withUnitAxes(
        _ unit: (row: Bool, column: Bool), _ v: ValueID, in b: inout BodyBuilder,
        _ body: (inout BodyBuilder, ValueID) -> ValueID
    ) -> ValueID {
        guard unit.row || unit.column else { return body(&b, v) }
        let lifted = insertUnitAxes(unit, v, in: &b)
        return squeezeUnitAxes(unit, body(&b, lifted), in: &b)
    }

    /// `v` with size-1 axes inserted where `unit` says (rows first).
    static func insertUnitAxes(_ unit: (row: Bool, column: Bool), _ v: ValueID, in b: inout BodyBuilder) -> ValueID {
        var x = v
        var shape = typeOf(v, in: b).shape
        if unit.row {
            shape.insert(1, at: 0)
            x = b.emit(.broadcast(x, axis: 0), BlockType(shape, .local))
        }
        if unit.column {
            shape.append(1)
            x = b.emit(.broadcast(x, axis: shape.count - 1), BlockType(shape, .local))
        }
        return x
    }

    /// `v` (rank 2) with its size-1 axes dropped where `unit` says.
    static func squeezeUnitAxes(_ unit: (row: Bool, column: Bool), _ v: ValueID, in b: inout BodyBuilder) -> ValueID {
        var x = v
        var shape = typeOf(v, in: b).shape
        if unit.row {
            shape.removeFirst()
            x = b.emit(.reduce(.sum, x, axis: 0), BlockType(shape, shape.isEmpty ? .reg : .local))
        }
        if unit.column {
            shape.removeLast()
            x = b.emit(.reduce(.sum, x, axis: shape.count), BlockType(shape, shape.isEmpty ? .reg : .local))
        }
        return x
    }

    mutating func elementwise(
        _ node: Node, _ out: TensorID, operands: [NodeID], what: String,
        compute: (inout BodyBuilder, [ValueID], (row: IndexExpr, column: IndexExpr)) -> ValueID
    ) {
        let t = tiling(node.shape)
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
        let t = tiling(node.shape)
        let r = node.shape.count
        let unit = unitAxes(node.shape)
        // A product of two bf16 tensors multiplies bf16 operands (exact: they are bf16 already);
        // the precision stays with the dot when fusion feeds it values computed in f32.
        let precision: DotPrecision =
            graph[a].elementType == .bf16 && graph[c].elementType == .bf16 ? .bf16 : .f32
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
        // A size-1 row or column axis is a point of the tiling: the operand block lacks it, and a
        // unit axis is inserted for the dot (and dropped from the accumulator before the store).
        let bm = unit.row ? 1 : t.blockShape[0]
        let bn = unit.column ? 1 : t.blockShape[t.blockShape.count - 1]
        let aAccess = batchAccess(sa) + (transposeA ? [kSlice, t.access[r - 2]] : [t.access[r - 2], kSlice])
        let bAccess = batchAccess(sb) + (transposeB ? [t.access[r - 1], kSlice] : [kSlice, t.access[r - 1]])
        let aShape = unit.row ? [bk] : (transposeA ? [bk, bm] : [bm, bk])
        let bShape = unit.column ? [bk] : (transposeB ? [bn, bk] : [bk, bn])
        let accType = BlockType([bm, bn], .local)
        var b = BodyBuilder()
        let zero = b.emit(.fill(0), accType)
        let result = b.loop(
            kv, from: .constant(0), to: .constant((kDim + bk - 1) / bk), carrying: [zero], types: [accType]
        ) { body, carried in
            var x = body.emit(.load(ta, aAccess), BlockType(aShape, .local))
            if unit.row {
                x = body.emit(
                    .broadcast(x, axis: transposeA ? 1 : 0), BlockType(transposeA ? [bk, 1] : [1, bk], .local))
            }
            var y = body.emit(.load(tb, bAccess), BlockType(bShape, .local))
            if unit.column {
                y = body.emit(
                    .broadcast(y, axis: transposeB ? 0 : 1), BlockType(transposeB ? [1, bk] : [bk, 1], .local))
            }
            let p = body.emit(
                .dot(x, y, transposeA: transposeA, transposeB: transposeB, precision: precision), accType)
            return [body.emit(.binary(.add, carried[0], p), accType)]
        }
        let stored = Self.squeezeUnitAxes(unit, result[0], in: &b)
        b.emit(.store(stored, out, t.access))
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

    // MARK: Scans

    /// `cumsum` along a blocked axis: a grid over the other axes and a loop over the axis's blocks
    /// in the scan's direction (block `n - 1 - k` at step `k` when `reverse`), carrying the running
    /// total; each block stores `scan(block) + total` and adds its sum to the total. Along a
    /// leading (or size-1) axis the loop walks points and the scan is elementwise.
    mutating func cumsum(
        _ node: Node, _ out: TensorID, _ a: NodeID, axis: Int, reverse: Bool, exclusive: Bool
    ) throws(GraphError) {
        guard case .tensor(let input, let shape) = source(a) else {
            throw GraphError("cumsum of a constant is not supported")
        }
        guard axis >= 0 && axis < shape.count else {
            throw GraphError("cumsum '\(node.name)': axis \(axis) is out of range for shape \(shape)")
        }
        let r = shape.count
        let n = shape[axis]
        let kv = IndexVar("k")
        var b = BodyBuilder()
        if axis >= r - 2 && n > 1 {
            let t = tiling(shape, skipping: axis)
            let bk = min(axis == r - 2 ? options.rowBlock : options.columnBlock, n)
            let blocks = (n + bk - 1) / bk
            let step: IndexExpr =
                reverse && blocks > 1 ? .add(.mul(.variable(kv), -1), .constant(blocks - 1)) : .variable(kv)
            var access = t.access
            access.insert(.slice(start: .mul(step, bk), size: bk), at: axis)
            let loaded: [Int] = access.compactMap { if case .slice(_, let s) = $0 { return s } else { return nil } }
            let scanAxis = axis == r - 1 ? loaded.count - 1 : 0
            let totalType = BlockType(t.blockShape, t.blockShape.isEmpty ? .reg : .local)
            let blockType = BlockType(loaded, .local)
            let initial = b.emit(.fill(0), totalType)
            _ = b.loop(kv, from: .constant(0), to: .constant(blocks), carrying: [initial], types: [totalType]) {
                body, carried in
                let x = body.emit(.load(input, access), blockType)
                let prefix = body.emit(
                    .scan(.sum, x, axis: scanAxis, reverse: reverse, exclusive: exclusive), blockType)
                var total = carried[0]
                if totalType.rank > 0 { total = body.emit(.broadcast(total, axis: scanAxis), blockType) }
                body.emit(.store(body.emit(.binary(.add, prefix, total), blockType), out, access))
                let sum = body.emit(.reduce(.sum, x, axis: scanAxis), totalType)
                return [body.emit(.binary(.add, carried[0], sum), totalType)]
            }
            addKernel("cumsum", node, grid: t.grid, body: b.instructions)
        } else {
            let t = tiling(shape)
            var access = t.access
            access[axis] = .point(reverse && n > 1 ? .add(.mul(.variable(kv), -1), .constant(n - 1)) : .variable(kv))
            let grid = t.grid.filter { $0.variable != IndexVar("b\(axis)") }
            let type = BlockType(t.blockShape, t.blockShape.isEmpty ? .reg : .local)
            let initial = b.emit(.fill(0), type)
            _ = b.loop(kv, from: .constant(0), to: .constant(n), carrying: [initial], types: [type]) { body, carried in
                let x = body.emit(.load(input, access), type)
                let next = body.emit(.binary(.add, carried[0], x), type)
                body.emit(.store(exclusive ? carried[0] : next, out, access))
                return [next]
            }
            addKernel("cumsum", node, grid: grid, body: b.instructions)
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
