import BlockIR

/// The identity of a node of a graph (an index into `Graph.nodes`).
public struct NodeID: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The index into `Graph.nodes`.
    public var index: Int

    /// Makes an ID.
    public init(_ index: Int) { self.index = index }

    public var description: String { "n\(index)" }
    public static func < (a: NodeID, b: NodeID) -> Bool { a.index < b.index }
}

/// A tensor operation of the graph level. Shapes are static; every tensor has an element type
/// (`f32` unless declared otherwise), and types never mix implicitly: `cast` converts.
public enum GraphOp: Hashable, Sendable {
    /// A tensor supplied by the caller.
    case input
    /// A scalar (rank-0) constant.
    case constant(Float)
    /// Positions: every element is its own index along `axis` (non-negative), in f32; the
    /// node's shape is the shape, and nothing is read (`pos(x, axis=-1)`).
    case position(axis: Int)
    /// Elementwise function of one tensor.
    case unary(UnaryOp, NodeID)
    /// Elementwise function of two tensors with NumPy broadcasting.
    case binary(BinaryOp, NodeID, NodeID)
    /// Batched matrix product over the last two axes, with optional transposes; leading (batch)
    /// axes broadcast.
    case matmul(NodeID, NodeID, transposeA: Bool, transposeB: Bool)
    /// Reduction over one axis (non-negative); the axis is kept with size 1 when `keepDims`.
    case reduce(ReduceOp, NodeID, axis: Int, keepDims: Bool)
    /// Axis permutation: output axis `k` is input axis `permutation[k]`.
    case transpose(NodeID, permutation: [Int])
    /// Same elements in row-major order, the node's shape.
    case reshape(NodeID)
    /// Keeps the elements of the last two axes `(i, j)` where the predicate holds and replaces
    /// the others by `fill` (`where(pred, x, fill)`).
    case mask(NodeID, Predicate, fill: Float)
    /// The same tensor stored as another element type (rounded to nearest even to f16/bf16,
    /// truncated toward zero and saturated to i32, non-zero to bool).
    case cast(NodeID, ElementType)
    /// The elements `start ..< start + n` of one axis (non-negative), `n` the node's size on it:
    /// a view of the operand, never a copy.
    case slice(NodeID, axis: Int, start: Int)
    /// The operands joined along one axis (non-negative); their other axes agree.
    case concat([NodeID], axis: Int)
    /// Elementwise choice with broadcasting: `a` where the `bool` condition holds, else `b`
    /// (`where(cond, a, b)`); never arithmetic, so NaN or inf in the branch not taken is harmless.
    case select(NodeID, NodeID, NodeID)
    /// Rows of `table` by an `i32` index tensor along `axis` (non-negative): the node's shape is
    /// `table[..<axis] + index + table[axis+1...]`, element `[..., r, ...]` is
    /// `table[..., index[r], ...]` (`gather(E, tokens, axis=0)`).
    case gather(NodeID, index: NodeID, axis: Int)
    /// Cumulative sums along one axis (non-negative), same shape: element `e` sums the elements
    /// up to it (before it when `exclusive`), from the axis's end when `reverse`.
    case cumsum(NodeID, axis: Int, reverse: Bool, exclusive: Bool)
    /// Each element of the operand repeated over a block: `blocks` gives one block size per
    /// trailing axis, and element `[…, i, j]` is the operand's `[…, i / blocks[0], j / blocks[1]]`
    /// (`block_broadcast(B, [128, 128])`: a block mask `bool[1, N/128, N/128]` as an element mask
    /// `bool[1, N, N]`). The node's shape is the operand's with those axes multiplied.
    case blockBroadcast(NodeID, blocks: [Int])

    /// The nodes the op reads.
    public var operands: [NodeID] {
        switch self {
        case .input, .constant, .position: return []
        case .unary(_, let a), .reduce(_, let a, _, _), .transpose(let a, _), .reshape(let a), .mask(let a, _, _),
            .cast(let a, _):
            return [a]
        case .binary(_, let a, let b), .matmul(let a, let b, _, _): return [a, b]
        case .slice(let a, _, _): return [a]
        case .concat(let parts, _): return parts
        case .select(let c, let a, let b): return [c, a, b]
        case .gather(let t, let index, _): return [t, index]
        case .cumsum(let a, _, _, _): return [a]
        case .blockBroadcast(let a, _): return [a]
        }
    }
}

/// One node: a named tensor and the op that computes it.
public struct Node: Hashable, Sendable {
    /// The identity.
    public var id: NodeID
    /// The tensor's name (unique in the graph; generated names start with `_`... or `t`).
    public var name: String
    /// The static shape.
    public var shape: [Int]
    /// The op.
    public var op: GraphOp
    /// How the tensor's elements are stored.
    public var elementType: ElementType

    /// Makes a node.
    public init(id: NodeID, name: String, shape: [Int], op: GraphOp, elementType: ElementType = .f32) {
        self.id = id
        self.name = name
        self.shape = shape
        self.op = op
        self.elementType = elementType
    }
}

/// A named dimension and the value it took.
public struct DimBinding: Hashable, Sendable {
    /// The name.
    public var name: String
    /// The value.
    public var value: Int

    /// Makes a binding.
    public init(name: String, value: Int) {
        self.name = name
        self.value = value
    }
}

/// A tensor program at the graph level: nodes in topological order and the outputs.
public struct Graph: Hashable, Sendable {
    /// The name; it becomes the block program's and the C entry point's name.
    public var name: String
    /// The named dimensions with the values used to build the graph.
    public var dims: [DimBinding]
    /// The nodes; every node's operands come before it.
    public var nodes: [Node]
    /// The output nodes, in declaration order.
    public var outputs: [NodeID]
    /// The `i32` inputs `same_segment(i, j, offsets)` takes its boundaries from, by name, with
    /// the positions they split (`GlobalTensor.offsetsInto`): checked at run time.
    public var offsetInputs: [String: Int]
    /// Of those inputs, the ones whose segments hold at most some number of positions
    /// (`same_segment(i, j, offsets, max_len=L)`; `GlobalTensor.segmentMaxLength`): checked at
    /// run time with the offsets.
    public var segmentMaxLengths: [String: Int]

    /// Makes a graph.
    public init(
        name: String, dims: [DimBinding], nodes: [Node], outputs: [NodeID], offsetInputs: [String: Int] = [:],
        segmentMaxLengths: [String: Int] = [:]
    ) {
        self.name = name
        self.dims = dims
        self.nodes = nodes
        self.outputs = outputs
        self.offsetInputs = offsetInputs
        self.segmentMaxLengths = segmentMaxLengths
    }

    /// The node with an ID.
    public subscript(_ id: NodeID) -> Node { nodes[id.index] }

    /// The input nodes, in declaration order.
    public var inputs: [NodeID] {
        nodes.filter { $0.op == .input }.map(\.id)
    }

    /// The node with a name.
    public func node(named name: String) -> Node? { nodes.first { $0.name == name } }

    /// The `i32` inputs that a `gather` takes its positions from (directly, or through reshapes
    /// and slices), by name, with the size of the smallest axis they index: random inputs for
    /// them lie in `0 ..< bound`.
    public func gatherIndexBounds() -> [String: Int] {
        var bounds: [String: Int] = [:]
        for node in nodes {
            guard case .gather(let table, var index, let axis) = node.op else { continue }
            while true {
                if case .reshape(let a) = self[index].op {
                    index = a
                } else if case .slice(let a, _, _) = self[index].op {
                    index = a
                } else {
                    break
                }
            }
            guard self[index].op == .input, self[index].elementType == .i32, axis < self[table].shape.count else {
                continue
            }
            let size = self[table].shape[axis]
            bounds[self[index].name] = Swift.min(bounds[self[index].name] ?? size, size)
        }
        return bounds
    }
}

/// An error in building a graph: a shape mismatch, a bad axis, a name used twice.
public struct GraphError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What is wrong and what to change.
    public var message: String

    /// Makes an error.
    public init(_ message: String) { self.message = message }

    public var description: String { message }
}
