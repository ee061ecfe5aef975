/// The operation of one instruction of a block program.
///
/// Values are blocks (rank 0, 1 or 2) in the `local` or `reg` tier; only `load` and `store`
/// touch global memory. Shapes of results are given by the instruction's result types.
public indirect enum Op: Hashable, Sendable {
    /// Reads a block of a global tensor; one `AxisAccess` per tensor axis. The block's axes are
    /// the sliced axes, in tensor order.
    case load(TensorID, [AxisAccess])
    /// Writes a block to a global tensor (only the elements inside the tensor and the block's
    /// extent). No result.
    case store(ValueID, TensorID, [AxisAccess])
    /// A block whose every element is the constant.
    case fill(Float)
    /// A block of positions (no memory read): element `(…, e_axis, …)` is `expr + e_axis`
    /// converted to f32; with `axis` nil every element is `expr` (a grid point such as a head index).
    case index(IndexExpr, axis: Int?)
    /// Elementwise function of one block.
    case unary(UnaryOp, ValueID)
    /// Elementwise function of two blocks of the same shape, or of a block and a scalar (rank 0).
    case binary(BinaryOp, ValueID, ValueID)
    /// Inserts a new axis at `axis` (0 or 1), repeating the operand along it; the result type
    /// gives the new axis's size.
    case broadcast(ValueID, axis: Int)
    /// Reduces a block along `axis`, dropping that axis.
    case reduce(ReduceOp, ValueID, axis: Int)
    /// The prefix combinations of a block along `axis` (same shape): element `e` combines the
    /// elements before it (`exclusive`) or up to it along the axis, counted from the end of the
    /// valid extent when `reverse`. `scan_sum` is the block's cumulative sum.
    case scan(ReduceOp, ValueID, axis: Int, reverse: Bool, exclusive: Bool)
    /// Block matrix product `op(a) · op(b)`, where `op` transposes when asked, with operands of
    /// `precision` (f32, or rounded to bf16) and products accumulated in f32.
    case dot(ValueID, ValueID, transposeA: Bool, transposeB: Bool, precision: DotPrecision = .f32)
    /// Swaps the two axes of a rank-2 block.
    case transpose(ValueID)
    /// Joins two blocks along `axis`: the first block's elements, then the second's (the other
    /// axes agree). The result's extent along `axis` is the first block's size plus the second's
    /// extent (the first is full along `axis`).
    case concat(ValueID, ValueID, axis: Int)
    /// Replaces the elements of a rank-2 block where the predicate is false by `fill`. Element
    /// `(r, c)` of the block is at row `rowOffset + r`, column `columnOffset + c` of the tensor's
    /// last two axes.
    case mask(ValueID, rowOffset: IndexExpr, columnOffset: IndexExpr, Predicate, fill: Float)
    /// Elementwise choice: `a` where `condition` is non-zero, else `b` (never arithmetic, so a
    /// NaN or infinity in the branch not taken does not reach the result). Operands of the same
    /// shape, or rank-0 scalars that repeat.
    case select(ValueID, ValueID, ValueID)
    /// An indirect load: reads a block of a global tensor whose position along tensor axis
    /// `axis` is given per element by the `index` block (integers as f32); `accesses` address the
    /// other axes, one per axis in order, as a load's do. The block's axes are the sliced axes
    /// before `axis`, the index block's axes, then the sliced axes after it. An index outside
    /// `0 ..< size` is an error in the interpreter and reads 0 in generated code.
    case gather(TensorID, [AxisAccess], index: ValueID, axis: Int)
    /// A sequential loop with loop-carried values; the instruction's results are the carried
    /// values after the last iteration.
    case loop(Loop)
    /// Ends a loop body, giving the carried values of the next iteration.
    case yield([ValueID])

    /// The SSA operands read directly by the op (not those inside a loop body).
    public var operands: [ValueID] {
        switch self {
        case .load, .fill, .index: return []
        case .store(let v, _, _): return [v]
        case .unary(_, let a), .broadcast(let a, _), .reduce(_, let a, _), .transpose(let a):
            return [a]
        case .binary(_, let a, let b), .dot(let a, let b, _, _, _), .concat(let a, let b, _): return [a, b]
        case .mask(let a, _, _, _, _): return [a]
        case .select(let c, let a, let b): return [c, a, b]
        case .gather(_, _, let index, _): return [index]
        case .scan(_, let a, _, _, _): return [a]
        case .loop(let l): return l.initial
        case .yield(let vs): return vs
        }
    }

    /// The op with every operand (not inside a loop body) renamed.
    public func mappingOperands(_ f: (ValueID) -> ValueID) -> Op {
        switch self {
        case .load, .fill, .index: return self
        case .store(let v, let t, let a): return .store(f(v), t, a)
        case .unary(let o, let a): return .unary(o, f(a))
        case .binary(let o, let a, let b): return .binary(o, f(a), f(b))
        case .broadcast(let a, let axis): return .broadcast(f(a), axis: axis)
        case .reduce(let o, let a, let axis): return .reduce(o, f(a), axis: axis)
        case .dot(let a, let b, let ta, let tb, let p):
            return .dot(f(a), f(b), transposeA: ta, transposeB: tb, precision: p)
        case .transpose(let a): return .transpose(f(a))
        case .concat(let a, let b, let axis): return .concat(f(a), f(b), axis: axis)
        case .mask(let a, let r, let c, let p, let fill):
            return .mask(f(a), rowOffset: r, columnOffset: c, p, fill: fill)
        case .select(let c, let a, let b): return .select(f(c), f(a), f(b))
        case .gather(let t, let access, let index, let axis): return .gather(t, access, index: f(index), axis: axis)
        case .scan(let o, let a, let axis, let reverse, let exclusive):
            return .scan(o, f(a), axis: axis, reverse: reverse, exclusive: exclusive)
        case .loop(var l):
            l.initial = l.initial.map(f)
            return .loop(l)
        case .yield(let vs): return .yield(vs.map(f))
        }
    }

    /// The op's keyword in the text form.
    public var mnemonic: String {
        switch self {
        case .load: return "load"
        case .store: return "store"
        case .fill: return "fill"
        case .index: return "index"
        case .unary(let o, _): return o.rawValue
        case .binary(let o, _, _): return o.rawValue
        case .broadcast: return "broadcast"
        case .reduce(let o, _, _): return "reduce_" + o.rawValue
        case .dot: return "dot"
        case .transpose: return "transpose"
        case .concat: return "concat"
        case .mask: return "mask"
        case .select: return "select"
        case .gather: return "gather"
        case .scan(let o, _, _, _, _): return "scan_" + o.rawValue
        case .loop: return "for"
        case .yield: return "yield"
        }
    }
}

extension Op {
    /// The block shape a `gather` gives: the sizes of the slices before `axis`, the index
    /// block's shape, then the sizes of the slices after it (`access` omits the gathered axis).
    public static func gatherShape(_ access: [AxisAccess], axis: Int, indexShape: [Int]) -> [Int] {
        func sizes(_ part: ArraySlice<AxisAccess>) -> [Int] {
            part.compactMap { if case .slice(_, let n) = $0 { n } else { nil } }
        }
        let split = Swift.max(0, Swift.min(axis, access.count))
        return sizes(access[..<split]) + indexShape + sizes(access[split...])
    }
}

/// A sequential loop `for v in lower ..< upper` with carried values.
public struct Loop: Hashable, Sendable {
    /// The loop counter (a block index).
    public var variable: IndexVar
    /// The first iteration (inclusive).
    public var lower: IndexExpr
    /// The end of the range (exclusive).
    public var upper: IndexExpr
    /// The initial carried values, defined before the loop.
    public var initial: [ValueID]
    /// The carried values as seen by the body (block arguments), one per initial value.
    public var carried: [Value]
    /// The body; it ends with a `yield` of one value per carried value.
    public var body: [Instruction]
    /// A run-time guard (`for k in 0 ..< 16 if T[b, i, k]`): iteration `v` runs its body only
    /// when the element of `T` at the indices (evaluated with the counter at `v`) is non-zero;
    /// otherwise the carried values pass to the next iteration unchanged. Fusion adds one only
    /// where a skipped iteration provably changes nothing (R16), so dropping it never changes a
    /// result.
    public var condition: LoopCondition?
    /// With a guard, the blocks where more is known (R16): where `full`'s element is non-zero,
    /// every listed condition value is non-zero at each of its valid elements, so the iteration
    /// runs the body with every `select` on one of them taking its `then` operand and without
    /// the instructions only those conditions read (`bodyWhereTrue`).
    public var full: LoopFullBlocks?
    /// With a guard, run-time bounds (R16): iterations outside `[lower element, upper element)`
    /// of an `i32` tensor are skipped as a guard's 0 skips them (never read outside `lower ..< upper`).
    public var bounds: LoopBounds?
    /// With bounds, the links of a compacted traversal (R16): where the mode element (read once,
    /// before the iterations) is non-zero, iteration `v` is followed by iteration
    /// `max(v + 1, next element at v)` instead of `v + 1`. Fusion writes in the next element the
    /// following iteration whose guard is set, so the iterations jumped over are ones the guard
    /// skips: the loop visits only the kept blocks (a compacted list of them, as links).
    public var links: LoopLinks?

    /// Makes a loop.
    public init(
        variable: IndexVar, lower: IndexExpr, upper: IndexExpr, initial: [ValueID], carried: [Value],
        body: [Instruction]
    ) {
        self.variable = variable
        self.lower = lower
        self.upper = upper
        self.initial = initial
        self.carried = carried
        self.body = body
        self.condition = nil
        self.full = nil
        self.bounds = nil
        self.links = nil
    }

    /// Every element the loop reads before its iterations (guard, full bit, bounds), in text order.
    public var elementReads: [LoopCondition] {
        (bounds.map { [$0.lower, $0.upper] } ?? []) + (links.map { [$0.next, $0.mode] } ?? [])
            + (condition.map { [$0] } ?? []) + (full.map { [$0.element] } ?? [])
    }

    /// The loop with `f` applied to each element it reads before its iterations.
    public func mappingElementReads(_ f: (LoopCondition) -> LoopCondition) -> Loop {
        var out = self
        out.condition = condition.map(f)
        if let full { out.full = LoopFullBlocks(element: f(full.element), trueValues: full.trueValues) }
        if let b = bounds { out.bounds = LoopBounds(lower: f(b.lower), upper: f(b.upper)) }
        if let l = links { out.links = LoopLinks(next: f(l.next), mode: f(l.mode)) }
        return out
    }
}

/// Where a loop's iteration is known to pass its element test everywhere (R16's *all* bit): one
/// element of a `bool` tensor and the condition values (defined in the loop body) it vouches for.
public struct LoopFullBlocks: Hashable, Sendable {
    /// The element read per iteration (the counter among its indices' variables).
    public var element: LoopCondition
    /// The body's values that are non-zero at every valid element where the element is non-zero.
    public var trueValues: [ValueID]

    /// Makes the record.
    public init(element: LoopCondition, trueValues: [ValueID]) {
        self.element = element
        self.trueValues = trueValues
    }
}

/// A loop's run-time bounds: two elements of an `i32` tensor, read once before the iterations
/// (their indices do not name the counter); the loop runs `max(lower, l) ..< min(upper, u)`.
public struct LoopBounds: Hashable, Sendable {
    /// The element holding the first iteration to run.
    public var lower: LoopCondition
    /// The element holding the end of the iterations to run (exclusive).
    public var upper: LoopCondition

    /// Makes the bounds.
    public init(lower: LoopCondition, upper: LoopCondition) {
        self.lower = lower
        self.upper = upper
    }
}

/// A loop's compacted traversal (`next T[i, k] when R[i, 2]`): two elements of `i32` tensors,
/// the next iteration to run after the current one (its indices name the counter) and whether
/// to follow the links at all (read once before the iterations; its indices do not name the
/// counter). A link never goes backwards: the loop continues at `max(v + 1, next)`.
public struct LoopLinks: Hashable, Sendable {
    /// The element holding the iteration that follows the current one.
    public var next: LoopCondition
    /// The element saying whether the links are followed (non-zero) or every iteration of the
    /// range is visited (0).
    public var mode: LoopCondition

    /// Makes the links.
    public init(next: LoopCondition, mode: LoopCondition) {
        self.next = next
        self.mode = mode
    }
}

/// The guard of a loop iteration: one element of a global tensor (`bool` or `i32`), addressed
/// by one index expression per axis (the loop counter among their variables).
public struct LoopCondition: Hashable, Sendable {
    /// The tensor read.
    public var tensor: TensorID
    /// One element index per tensor axis.
    public var indices: [IndexExpr]

    /// Makes a loop condition.
    public init(tensor: TensorID, indices: [IndexExpr]) {
        self.tensor = tensor
        self.indices = indices
    }
}

/// One instruction: an op and the values it defines.
public struct Instruction: Hashable, Sendable {
    /// The values defined (none for `store` and `yield`, one per carried value for a loop).
    public var results: [Value]
    /// The operation.
    public var op: Op

    /// Makes an instruction.
    public init(_ results: [Value], _ op: Op) {
        self.results = results
        self.op = op
    }

    /// The single result (the first result).
    public var result: Value? { results.first }

    /// Whether the instruction defines `value`.
    public func defines(_ value: ValueID) -> Bool { results.contains { $0.id == value } }
}

/// The precision of a `dot`'s operands: the product of each pair is exact in f32 either way and
/// accumulates in f32.
public enum DotPrecision: String, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    /// The operands as they are (f32).
    case f32
    /// Each operand element rounded to the nearest bf16 (ties to even) first: what a matrix
    /// product of bf16 tensors reads, and what `vdpbf16ps` and tensor cores multiply. Lowering
    /// gives it to a `matmul` of two bf16 tensors, whose operands are bf16 already; a fused
    /// kernel that feeds it values computed in f32 rounds them as the unfused program's stores did.
    case bf16

    /// Written after the operands in the text form (`dot %1, %2 transpose_b bf16`); f32 is the default.
    public var description: String { rawValue }

    /// An operand element as the product reads it.
    @inline(__always)
    public func operand(_ x: Float) -> Float {
        switch self {
        case .f32: return x
        case .bf16: return ElementType.bf16.stored(x)
        }
    }
}
