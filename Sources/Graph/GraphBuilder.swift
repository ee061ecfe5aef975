import BlockIR

/// Builds a `Graph` op by op, checking shapes as it goes. This is the Swift API of the graph
/// level; the `.graph` parser is a client of it.
///
/// ```swift
/// var b = GraphBuilder(name: "attention")
/// let q = try b.input("Q", [8, 1024, 64])
/// let k = try b.input("K", [8, 1024, 64])
/// let v = try b.input("V", [8, 1024, 64])
/// let s = try b.mul(b.matmul(q, k, transposeB: true), b.constant(0.125))
/// let o = try b.matmul(b.softmax(s, axis: -1), v)
/// try b.output(o, name: "O")
/// let graph = try b.build()
/// ```
///
/// Ops whose operands are all scalar constants fold to a constant.
public struct GraphBuilder: Sendable {
    private var name: String
    private var dims: [DimBinding]
    private var nodes: [Node] = []
    private var outputs: [NodeID] = []
    private var userNamed: Set<NodeID> = []
    private var offsetInputs: [String: Int] = [:]
    private var segmentMaxLengths: [String: Int] = [:]
    /// The positions each input marked with a most per segment was marked for, in order.
    private var boundedSegmentLengths: [(name: String, length: Int)] = []

    /// Starts a graph.
    public init(name: String, dims: [DimBinding] = []) {
        self.name = name
        self.dims = dims
    }

    /// The shape of a node built so far.
    public func shape(of node: NodeID) -> [Int] { nodes[node.index].shape }

    /// The name of a node built so far.
    public func name(of node: NodeID) -> String { nodes[node.index].name }

    /// The constant value of a node, if it is a scalar constant.
    public func constantValue(of node: NodeID) -> Float? {
        if case .constant(let c) = nodes[node.index].op { return c }
        return nil
    }

    /// Whether the node carries a name the user gave (an input, or `setName`).
    public func hasUserName(_ node: NodeID) -> Bool { userNamed.contains(node) }

    /// Records a named dimension (for printing and reports).
    public mutating func addDim(_ name: String, _ value: Int) {
        dims.append(DimBinding(name: name, value: value))
    }

    private mutating func add(_ op: GraphOp, _ shape: [Int], _ type: ElementType, name: String? = nil) -> NodeID {
        let id = NodeID(nodes.count)
        nodes.append(Node(id: id, name: name ?? "t\(id.index)", shape: shape, op: op, elementType: type))
        return id
    }

    /// The element type of a node built so far.
    public func elementType(of node: NodeID) -> ElementType { nodes[node.index].elementType }

    /// The element type of an op's operands taken together: scalar constants adopt the other
    /// operand's type; otherwise the types must be equal (no implicit conversion).
    private func commonType(_ operands: [NodeID], op: String) throws(GraphError) -> ElementType {
        let typed = operands.filter { constantValue(of: $0) == nil }
        guard let first = typed.first else { return .f32 }
        let type = elementType(of: first)
        for other in typed.dropFirst() where elementType(of: other) != type {
            throw GraphError(
                "\(op): '\(name(of: first))' is \(type) but '\(name(of: other))' is \(elementType(of: other)); "
                    + "types never mix implicitly: convert one with cast(\(name(of: other)), \(type))")
        }
        return type
    }

    /// Checks that an op that computes in floating point gets floating-point operands.
    private func requireFloat(_ type: ElementType, _ node: NodeID, op: String) throws(GraphError) {
        guard type.isFloat else {
            throw GraphError(
                "\(op) is not defined on \(type) ('\(name(of: node))' is \(type)); "
                    + (type == .bool ? "there is no arithmetic on bool; " : "")
                    + "convert with cast(\(name(of: node)), f32)")
        }
    }

    private func check(_ node: NodeID) throws(GraphError) {
        guard node.index >= 0 && node.index < nodes.count else {
            throw GraphError("node \(node) does not belong to this graph")
        }
    }

    /// Declares an input tensor.
    public mutating func input(_ name: String, _ shape: [Int], _ type: ElementType = .f32) throws(GraphError) -> NodeID
    {
        try checkFreshName(name)
        guard shape.allSatisfy({ $0 > 0 }) else {
            throw GraphError("input '\(name)' has shape \(shape); every dimension must be positive")
        }
        guard shape.count <= 6 else {
            throw GraphError("input '\(name)' has rank \(shape.count); at most 6 is supported")
        }
        let id = add(.input, shape, type, name: name)
        userNamed.insert(id)
        return id
    }

    /// A scalar constant.
    public mutating func constant(_ value: Float) -> NodeID {
        add(.constant(value), [], .f32)
    }

    /// Gives a node a user-visible name (used for outputs and `.npy` files).
    public mutating func setName(_ node: NodeID, _ name: String) throws(GraphError) {
        try check(node)
        try checkFreshName(name)
        nodes[node.index].name = name
        userNamed.insert(node)
    }

    private func checkFreshName(_ name: String) throws(GraphError) {
        if let other = nodes.first(where: { $0.name == name }), userNamed.contains(other.id) {
            throw GraphError("the name '\(name)' is already used; choose another name")
        }
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }),
            !(name.first!.isNumber)
        else {
            throw GraphError(
                "'\(name)' is not a valid tensor name (letters, digits and '_', not starting with a digit)")
        }
    }

    /// Elementwise function of one tensor.
    public mutating func unary(_ op: UnaryOp, _ x: NodeID) throws(GraphError) -> NodeID {
        try check(x)
        if let c = constantValue(of: x) { return constant(op.apply(c)) }
        let type = elementType(of: x)
        try requireFloat(type, x, op: op.rawValue)
        return add(.unary(op, x), shape(of: x), type)
    }

    /// Elementwise function of two tensors, broadcasting as NumPy does.
    public mutating func binary(_ op: BinaryOp, _ a: NodeID, _ b: NodeID) throws(GraphError) -> NodeID {
        try check(a)
        try check(b)
        if let x = constantValue(of: a), let y = constantValue(of: b) { return constant(op.apply(x, y)) }
        let shape = try Self.broadcastShape(shape(of: a), shape(of: b), op: op.rawValue)
        if op.yieldsTruth && !op.isComparison {
            for x in [a, b] where constantValue(of: x) == nil { try checkTruthOperands(op, elementType(of: x), x) }
        } else if !op.yieldsTruth {
            // No arithmetic on bool, whatever the other operand is.
            for x in [a, b] where elementType(of: x) == .bool { try requireFloat(.bool, x, op: op.rawValue) }
        }
        let type = try commonType([a, b], op: op.rawValue)
        let typed = constantValue(of: a) == nil ? a : b
        if op.yieldsTruth {
            try checkTruthOperands(op, type, typed)
            return add(.binary(op, a, b), shape, .bool)
        }
        if type == .i32 {
            // Integers add, subtract, multiply and compare exactly; other functions are floating point.
            guard [.add, .sub, .mul, .max, .min].contains(op) else {
                throw GraphError.notOnIntegers(op.rawValue, name(of: typed))
            }
        } else {
            try requireFloat(type, typed, op: op.rawValue)
        }
        return add(.binary(op, a, b), shape, type)
    }

    /// Comparisons take numbers of one type (`bool` only under `eq` and `ne`); the logical
    /// connectives take `bool`.
    private func checkTruthOperands(_ op: BinaryOp, _ type: ElementType, _ typed: NodeID) throws(GraphError) {
        if op.isComparison {
            guard type != .bool || op == .eq || op == .ne else {
                throw GraphError(
                    "\(op.rawValue) orders numbers, but '\(name(of: typed))' is bool; compare bools with == or != "
                        + "(eq, ne), combine them with logical_and / logical_or, or convert with cast(\(name(of: typed)), f32)"
                )
            }
        } else {
            guard type == .bool else {
                throw GraphError(
                    "\(op.rawValue) combines bool tensors, but '\(name(of: typed))' is \(type); "
                        + "make a bool first with a comparison, e.g. \(name(of: typed)) > 0")
            }
        }
    }

    /// `not x` for a `bool` tensor (`x == 0`).
    public mutating func logicalNot(_ x: NodeID) throws(GraphError) -> NodeID {
        try check(x)
        guard elementType(of: x) == .bool, constantValue(of: x) == nil else {
            throw GraphError(
                "logical_not negates a bool tensor, but '\(name(of: x))' is \(elementType(of: x)); "
                    + "compare first, e.g. \(name(of: x)) > 0")
        }
        return try binary(.eq, x, constant(0))
    }

    /// `where(cond, a, b)`: `a` where the `bool` tensor `cond` holds, else `b`, broadcasting the
    /// three as NumPy does; `a` and `b` have one element type (numbers adopt it).
    public mutating func select(_ cond: NodeID, _ a: NodeID, _ b: NodeID) throws(GraphError) -> NodeID {
        try check(a)
        try check(b)
        try checkCondition(cond)
        let type = try commonType([a, b], op: "where")
        let pair = try Self.broadcastShape(shape(of: cond), shape(of: a), op: "where")
        let all = try Self.broadcastShape(pair, shape(of: b), op: "where")
        return add(.select(cond, a, b), all, type)
    }

    /// Checks that `cond` can be the condition of `where(cond, a, b)`: a `bool` tensor.
    public func checkCondition(_ cond: NodeID) throws(GraphError) {
        try check(cond)
        guard constantValue(of: cond) == nil, elementType(of: cond) == .bool else {
            let what =
                constantValue(of: cond) == nil ? "'\(name(of: cond))' is \(elementType(of: cond))" : "it is a number"
            throw GraphError(
                "where(cond, a, b) needs a bool tensor as its condition, but \(what); "
                    + "write a comparison such as x > 0, or a mask predicate on i and j with a number as fill")
        }
    }

    /// `gather(table, index, axis)`: the slices of `table` along `axis` at the positions an `i32`
    /// tensor lists; the result's shape is `table[..<axis] + index + table[axis+1...]`.
    public mutating func gather(_ table: NodeID, _ index: NodeID, axis: Int = 0) throws(GraphError) -> NodeID {
        try check(table)
        try check(index)
        guard constantValue(of: table) == nil else {
            throw GraphError("gather reads rows of a tensor, not of a number; give a tensor as its first argument")
        }
        guard constantValue(of: index) == nil, elementType(of: index) == .i32 else {
            let what =
                constantValue(of: index) == nil
                ? "'\(name(of: index))' is \(elementType(of: index))" : "it is a number"
            throw GraphError(
                "gather takes its positions from an i32 tensor, but \(what); "
                    + (constantValue(of: index) == nil
                        ? "convert with cast(\(name(of: index)), i32)" : "declare an i32 input"))
        }
        let t = shape(of: table)
        let a = try normalizedAxis(axis, rank: t.count, op: "gather")
        let result = Array(t[..<a]) + shape(of: index) + Array(t[(a + 1)...])
        guard result.count <= 6 else {
            throw GraphError("gather gives rank \(result.count), more than 6; gather with a flatter index or table")
        }
        return add(.gather(table, index: index, axis: a), result, elementType(of: table))
    }

    /// `a + b`
    public mutating func add(_ a: NodeID, _ b: NodeID) throws(GraphError) -> NodeID { try binary(.add, a, b) }
    /// `a - b`
    public mutating func sub(_ a: NodeID, _ b: NodeID) throws(GraphError) -> NodeID { try binary(.sub, a, b) }
    /// `a * b`
    public mutating func mul(_ a: NodeID, _ b: NodeID) throws(GraphError) -> NodeID { try binary(.mul, a, b) }
    /// `a / b`
    public mutating func div(_ a: NodeID, _ b: NodeID) throws(GraphError) -> NodeID { try binary(.div, a, b) }

    /// NumPy broadcasting of two shapes.
    public static func broadcastShape(_ a: [Int], _ b: [Int], op: String) throws(GraphError) -> [Int] {
        let rank = max(a.count, b.count)
        var out: [Int] = []
        for k in 0..<rank {
            let x = k < rank - a.count ? 1 : a[k - (rank - a.count)]
            let y = k < rank - b.count ? 1 : b[k - (rank - b.count)]
            if x == y || y == 1 {
                out.append(x)
            } else if x == 1 {
                out.append(y)
            } else {
                throw GraphError("\(op): shapes \(a) and \(b) do not broadcast (axis \(k): \(x) vs \(y))")
            }
        }
        return out
    }

    /// Batched matrix product over the last two axes; leading axes broadcast.
    public mutating func matmul(
        _ a: NodeID, _ b: NodeID, transposeA: Bool = false, transposeB: Bool = false
    ) throws(GraphError) -> NodeID {
        try check(a)
        try check(b)
        let sa = shape(of: a)
        let sb = shape(of: b)
        guard sa.count >= 2, sb.count >= 2 else {
            throw GraphError("matmul needs operands of rank 2 or more, got \(sa) and \(sb)")
        }
        let (m, ka) = transposeA ? (sa[sa.count - 1], sa[sa.count - 2]) : (sa[sa.count - 2], sa[sa.count - 1])
        let (kb, n) = transposeB ? (sb[sb.count - 1], sb[sb.count - 2]) : (sb[sb.count - 2], sb[sb.count - 1])
        guard ka == kb else {
            throw GraphError(
                "matmul: inner dimensions differ (\(sa)\(transposeA ? "ᵀ" : "") · \(sb)\(transposeB ? "ᵀ" : ""): \(ka) vs \(kb))"
            )
        }
        let batch = try Self.broadcastShape(Array(sa.dropLast(2)), Array(sb.dropLast(2)), op: "matmul batch")
        let type = try commonType([a, b], op: "matmul")
        try requireFloat(type, a, op: "matmul")
        return add(.matmul(a, b, transposeA: transposeA, transposeB: transposeB), batch + [m, n], type)
    }

    private func normalizedAxis(_ axis: Int, rank: Int, op: String) throws(GraphError) -> Int {
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0 && a < rank else {
            throw GraphError("\(op): axis \(axis) is out of range for rank \(rank)")
        }
        return a
    }

    /// Cumulative sums along one axis (negative axes count from the end): element `e` sums the
    /// elements up to `e` (before `e` when `exclusive`), counted from the axis's end when `reverse`.
    public mutating func cumsum(
        _ x: NodeID, axis: Int = -1, reverse: Bool = false, exclusive: Bool = false
    ) throws(GraphError) -> NodeID {
        try check(x)
        let s = shape(of: x)
        let a = try normalizedAxis(axis, rank: s.count, op: "cumsum")
        let type = elementType(of: x)
        try requireFloat(type, x, op: "cumsum")
        return add(.cumsum(x, axis: a, reverse: reverse, exclusive: exclusive), s, type)
    }

    /// Each element of `x` repeated over a block of the result: `blocks` gives the block size of
    /// each of the trailing axes (one to all of them), and the result's size on such an axis is
    /// the operand's times the block size (element `[…, i, j]` is `x[…, i / blocks[0], j / blocks[1]]`).
    public mutating func blockBroadcast(_ x: NodeID, blocks: [Int]) throws(GraphError) -> NodeID {
        try check(x)
        let s = shape(of: x)
        guard !blocks.isEmpty, blocks.count <= s.count else {
            throw GraphError(
                "block_broadcast: give one block size per trailing axis (1 to \(s.count) of them), got \(blocks.count)")
        }
        guard blocks.allSatisfy({ $0 >= 1 && $0 <= 1 << 20 }) else {
            throw GraphError("block_broadcast: block sizes \(blocks) must be between 1 and 2^20")
        }
        var out = s
        for (k, n) in blocks.enumerated() {
            let axis = s.count - blocks.count + k
            let (size, overflow) = s[axis].multipliedReportingOverflow(by: n)
            guard !overflow, size <= 1 << 40 else { throw GraphError("block_broadcast: the result is too large") }
            out[axis] = size
        }
        return add(.blockBroadcast(x, blocks: blocks), out, elementType(of: x))
    }

    /// Reduction over one axis (negative axes count from the end).
    public mutating func reduce(
        _ op: ReduceOp, _ x: NodeID, axis: Int, keepDims: Bool = false
    ) throws(GraphError) -> NodeID {
        try check(x)
        let s = shape(of: x)
        let a = try normalizedAxis(axis, rank: s.count, op: "reduce_\(op.rawValue)")
        var out = s
        if keepDims { out[a] = 1 } else { out.remove(at: a) }
        let type = elementType(of: x)
        try requireFloat(type, x, op: "reduce_\(op.rawValue)")
        return add(.reduce(op, x, axis: a, keepDims: keepDims), out, type)
    }

    /// Mean over one axis: a sum times `1/n`.
    public mutating func mean(_ x: NodeID, axis: Int, keepDims: Bool = false) throws(GraphError) -> NodeID {
        try check(x)
        let s = shape(of: x)
        let a = try normalizedAxis(axis, rank: s.count, op: "reduce_mean")
        let sum = try reduce(.sum, x, axis: a, keepDims: keepDims)
        return try mul(sum, constant(1 / Float(s[a])))
    }

    /// Axis permutation.
    public mutating func transpose(_ x: NodeID, permutation: [Int]) throws(GraphError) -> NodeID {
        try check(x)
        let s = shape(of: x)
        guard permutation.count == s.count, permutation.sorted() == Array(0..<s.count) else {
            throw GraphError("transpose: \(permutation) is not a permutation of the \(s.count) axes of \(s)")
        }
        if permutation == Array(0..<s.count) { return x }
        return add(.transpose(x, permutation: permutation), permutation.map { s[$0] }, elementType(of: x))
    }

    /// Swaps the last two axes.
    public mutating func transposeLast(_ x: NodeID) throws(GraphError) -> NodeID {
        let r = shape(of: x).count
        guard r >= 2 else { throw GraphError("transpose needs rank 2 or more, got \(shape(of: x))") }
        return try transpose(x, permutation: Array(0..<(r - 2)) + [r - 1, r - 2])
    }

    /// The same tensor stored as another element type (the only conversion between types).
    public mutating func cast(_ x: NodeID, to type: ElementType) throws(GraphError) -> NodeID {
        try check(x)
        if let c = constantValue(of: x) { return constant(type.stored(c)) }
        if elementType(of: x) == type { return x }
        return add(.cast(x, type), shape(of: x), type)
    }

    /// Same elements, another shape with the same element count.
    public mutating func reshape(_ x: NodeID, _ newShape: [Int]) throws(GraphError) -> NodeID {
        try check(x)
        let s = shape(of: x)
        guard newShape.allSatisfy({ $0 > 0 }), newShape.reduce(1, *) == s.reduce(1, *) else {
            throw GraphError("reshape: \(s) has \(s.reduce(1, *)) elements, \(newShape) has \(newShape.reduce(1, *))")
        }
        if newShape == s { return x }
        return add(.reshape(x), newShape, elementType(of: x))
    }

    /// Elements `start ..< end` of `axis` (negative axes and bounds count from the end, as in
    /// NumPy; a step is not supported): a view, never a copy.
    public mutating func slice(_ x: NodeID, axis: Int, start: Int, end: Int) throws(GraphError) -> NodeID {
        try check(x)
        guard constantValue(of: x) == nil else {
            throw GraphError("slice needs a tensor, got a number")
        }
        var s = shape(of: x)
        let a = try normalizedAxis(axis, rank: s.count, op: "slice")
        let n = s[a]
        let lower = start < 0 ? start + n : start
        let upper = end < 0 ? end + n : end
        guard lower >= 0, upper <= n, lower < upper else {
            throw GraphError(
                "slice: \(start):\(end) on axis \(a) of shape \(s) is empty or out of range; "
                    + "use bounds with 0 <= start < end <= \(n)")
        }
        if lower == 0 && upper == n { return x }
        s[a] = upper - lower
        return add(.slice(x, axis: a, start: lower), s, elementType(of: x))
    }

    /// The tensors joined along `axis` (negative counts from the end); every other axis agrees,
    /// and so do the element types.
    public mutating func concat(_ parts: [NodeID], axis: Int) throws(GraphError) -> NodeID {
        guard let first = parts.first else { throw GraphError("concat needs at least one tensor") }
        for p in parts {
            try check(p)
            guard constantValue(of: p) == nil else { throw GraphError("concat needs tensors, got a number") }
        }
        var s = shape(of: first)
        let a = try normalizedAxis(axis, rank: s.count, op: "concat")
        let type = elementType(of: first)
        var total = 0
        for p in parts {
            var other = shape(of: p)
            guard other.count == s.count else {
                throw GraphError("concat: shapes \(s) and \(other) have different ranks; reshape one of them")
            }
            guard elementType(of: p) == type else {
                throw GraphError(
                    "concat: \(type) and \(elementType(of: p)) tensors do not mix; convert with cast(x, \(type))")
            }
            total += other[a]
            other[a] = s[a]
            guard other == s else {
                throw GraphError("concat along axis \(a): shapes \(s) and \(shape(of: p)) differ on another axis")
            }
        }
        if parts.count == 1 { return first }
        s[a] = total
        return add(.concat(parts, axis: a), s, type)
    }

    /// Positions along an axis of a shape (negative axes count from the end): every element is
    /// its own index along `axis`, in f32 (exact up to 2^24). Reads nothing.
    public mutating func position(shape: [Int], axis: Int) throws(GraphError) -> NodeID {
        let a = try normalizedAxis(axis, rank: shape.count, op: "pos")
        guard shape.allSatisfy({ $0 > 0 }) else { throw GraphError("pos: the shape \(shape) has an empty axis") }
        guard shape[a] <= 1 << 24 else {
            throw GraphError("pos: axis \(axis) has \(shape[a]) positions; f32 holds positions exactly only up to 2^24")
        }
        return add(.position(axis: a), shape, .f32)
    }

    /// Positions along an axis of `x`'s shape (`pos(x, axis)`); `x` itself is not read.
    public mutating func position(of x: NodeID, axis: Int) throws(GraphError) -> NodeID {
        try check(x)
        return try position(shape: shape(of: x), axis: axis)
    }

    /// `where(pred(i, j), x, fill)` over the last two axes.
    public mutating func mask(_ x: NodeID, _ predicate: Predicate, fill: Float) throws(GraphError) -> NodeID {
        try check(x)
        guard shape(of: x).count >= 2 else {
            throw GraphError("where: masks apply to the last two axes; the tensor has shape \(shape(of: x))")
        }
        let type = elementType(of: x)
        try requireFloat(type, x, op: "where")
        return add(.mask(x, predicate, fill: fill), shape(of: x), type)
    }

    /// `exp(x - max(x)) / sum(exp(x - max(x)))` along an axis.
    public mutating func softmax(_ x: NodeID, axis: Int = -1) throws(GraphError) -> NodeID {
        let m = try reduce(.max, x, axis: axis, keepDims: true)
        let e = try unary(.exp, sub(x, m))
        let l = try reduce(.sum, e, axis: axis, keepDims: true)
        return try div(e, l)
    }

    /// `(x - mean) * rsqrt(var + eps) * gamma + beta` over the last axis.
    public mutating func layerNorm(
        _ x: NodeID, gamma: NodeID?, beta: NodeID?, epsilon: Float = 1e-5
    ) throws(GraphError) -> NodeID {
        let mu = try mean(x, axis: -1, keepDims: true)
        let centered = try sub(x, mu)
        let variance = try mean(unary(.square, centered), axis: -1, keepDims: true)
        let rstd = try unary(.rsqrt, add(variance, constant(epsilon)))
        var y = try mul(centered, rstd)
        if let gamma { y = try mul(y, gamma) }
        if let beta { y = try add(y, beta) }
        return y
    }

    /// `x * rsqrt(mean(x²) + eps) * gamma` over the last axis.
    public mutating func rmsNorm(_ x: NodeID, gamma: NodeID?, epsilon: Float = 1e-6) throws(GraphError) -> NodeID {
        let ms = try mean(unary(.square, x), axis: -1, keepDims: true)
        let r = try unary(.rsqrt, add(ms, constant(epsilon)))
        var y = try mul(x, r)
        if let gamma { y = try mul(y, gamma) }
        return y
    }

    /// Marks a node as an output, optionally naming it.
    public mutating func output(_ node: NodeID, name: String? = nil) throws(GraphError) {
        try check(node)
        if let name, nodes[node.index].name != name { try setName(node, name) }
        if case .constant = nodes[node.index].op {
            throw GraphError("output '\(nodes[node.index].name)' is a constant; outputs must be computed from inputs")
        }
        if nodes[node.index].op == .input {
            throw GraphError("output '\(nodes[node.index].name)' is an input; outputs must be computed from inputs")
        }
        guard !outputs.contains(node) else {
            throw GraphError("'\(nodes[node.index].name)' is already an output")
        }
        outputs.append(node)
    }

    /// Marks an input as segment offsets into `length` positions, each segment holding at most
    /// `maxLength` when given (checked at run time); an input marked twice keeps the smaller
    /// length and the smaller most. Other nodes are not marked.
    public mutating func markSegmentOffsets(_ node: NodeID, length: Int, maxLength: Int? = nil) {
        guard nodes[node.index].op == .input else { return }
        let name = nodes[node.index].name
        offsetInputs[name] = Swift.min(offsetInputs[name] ?? length, length)
        if let m = maxLength {
            segmentMaxLengths[name] = Swift.min(segmentMaxLengths[name] ?? m, m)
            boundedSegmentLengths.append((name, length))
        }
    }

    /// Finishes the graph: drops nodes that no output needs, and checks there is an output.
    public func build() throws(GraphError) -> Graph {
        guard !outputs.isEmpty else { throw GraphError("the graph has no output; mark one with 'output NAME'") }
        // A most per segment is checked over the positions the offsets are marked for (the
        // smallest of their uses); the band it implies holds only where that is the mask's length.
        for (name, length) in boundedSegmentLengths where offsetInputs[name] != length {
            throw GraphError(
                "the offsets '\(name)' split \(length) positions where max_len bounds their segments and "
                    + "\(offsetInputs[name] ?? 0) elsewhere; use offsets with max_len in masks of one length only, "
                    + "or give each length its own offsets")
        }
        var live = Array(repeating: false, count: nodes.count)
        for o in outputs { live[o.index] = true }
        for node in nodes.reversed() where live[node.id.index] {
            for operand in node.op.operands { live[operand.index] = true }
        }
        // Inputs stay even when unused: they are part of the signature.
        for node in nodes where node.op == .input { live[node.id.index] = true }
        var remap: [Int] = Array(repeating: -1, count: nodes.count)
        var kept: [Node] = []
        // Generated names avoid the user's (a user may name a tensor `t3`).
        let userNames = Set(nodes.filter { userNamed.contains($0.id) }.map(\.name))
        for node in nodes where live[node.id.index] {
            remap[node.id.index] = kept.count
            var n = node
            n.id = NodeID(kept.count)
            n.op = Self.remapOperands(n.op) { NodeID(remap[$0.index]) }
            if !userNamed.contains(node.id) {
                n.name = "t\(kept.count)"
                while userNames.contains(n.name) { n.name = "_" + n.name }
            }
            kept.append(n)
        }
        return Graph(
            name: name, dims: dims, nodes: kept, outputs: outputs.map { NodeID(remap[$0.index]) },
            offsetInputs: offsetInputs, segmentMaxLengths: segmentMaxLengths)
    }

    static func remapOperands(_ op: GraphOp, _ f: (NodeID) -> NodeID) -> GraphOp {
        switch op {
        case .input, .constant, .position: return op
        case .unary(let o, let a): return .unary(o, f(a))
        case .binary(let o, let a, let b): return .binary(o, f(a), f(b))
        case .matmul(let a, let b, let ta, let tb): return .matmul(f(a), f(b), transposeA: ta, transposeB: tb)
        case .reduce(let o, let a, let axis, let k): return .reduce(o, f(a), axis: axis, keepDims: k)
        case .transpose(let a, let p): return .transpose(f(a), permutation: p)
        case .reshape(let a): return .reshape(f(a))
        case .slice(let a, let axis, let start): return .slice(f(a), axis: axis, start: start)
        case .concat(let parts, let axis): return .concat(parts.map(f), axis: axis)
        case .cumsum(let a, let axis, let r, let e): return .cumsum(f(a), axis: axis, reverse: r, exclusive: e)
        case .blockBroadcast(let a, let blocks): return .blockBroadcast(f(a), blocks: blocks)
        case .cast(let a, let t): return .cast(f(a), t)
        case .mask(let a, let p, let fill): return .mask(f(a), p, fill: fill)
        case .select(let c, let a, let b): return .select(f(c), f(a), f(b))
        case .gather(let t, let index, let axis): return .gather(f(t), index: f(index), axis: axis)
        }
    }
}

extension GraphError {
    static func notOnIntegers(_ op: String, _ name: String) -> GraphError {
        GraphError("\(op) is not defined on i32 ('\(name)' is i32); convert with cast(\(name), f32)")
    }
}
