/// What a global tensor is for.
public enum TensorRole: String, Hashable, Sendable {
    /// Supplied by the caller.
    case input
    /// Returned to the caller.
    case output
    /// An intermediate in global memory, written and read by kernels.
    case temp
}

/// A tensor in global memory.
public struct GlobalTensor: Hashable, Sendable {
    /// The name (unique in the program).
    public var name: String
    /// The shape (row-major).
    public var shape: [Int]
    /// How each element is stored (loads convert to f32, stores convert back).
    public var elementType: ElementType
    /// Input, output or temporary.
    public var role: TensorRole
    /// When set, the tensor is a view of another tensor's storage: reads and writes go to that
    /// tensor's memory. Without a `window` the view has the same element count, in row-major
    /// order (a reshape).
    public var viewOf: TensorID?
    /// For a view, when set: the view is the box of the viewed tensor that starts at these
    /// element offsets (one per axis of the viewed tensor, which has the view's rank) and has the
    /// view's shape — a slice, or one part of a concatenation. Element `x` of the view is element
    /// `x + window` of the viewed tensor.
    public var window: [Int]?
    /// For an `i32` input of segment offsets (cu_seqlens: `same_segment(i, j, offsets)`), the
    /// number of positions they split: at run time its elements must be non-decreasing and lie
    /// in `0 ... offsetsInto` (`SegmentOffsets.problem`), which the interpreter and the C harness
    /// check before running.
    public var offsetsInto: Int?
    /// For segment offsets, when set: the most positions one segment may hold (`same_segment`'s
    /// `max_len`), checked at run time with the offsets (`SegmentOffsets.problem`). Fusion may
    /// rely on it: two positions of one segment are less than `max_len` apart.
    public var segmentMaxLength: Int?

    /// Makes a global tensor.
    public init(
        name: String, shape: [Int], role: TensorRole, viewOf: TensorID? = nil, window: [Int]? = nil,
        elementType: ElementType = .f32
    ) {
        self.name = name
        self.shape = shape
        self.elementType = elementType
        self.role = role
        self.viewOf = viewOf
        self.window = window
        self.offsetsInto = nil
        self.segmentMaxLength = nil
    }

    /// The number of elements.
    public var elementCount: Int { shape.reduce(1, *) }

    /// The element strides of a row-major array of `shape`.
    public static func rowMajorStrides(_ shape: [Int]) -> [Int] {
        var strides = Array(repeating: 1, count: shape.count)
        var s = 1
        for k in shape.indices.reversed() {
            strides[k] = s
            s *= shape[k]
        }
        return strides
    }
    /// The bytes of its storage.
    public var byteCount: Int { elementCount * elementType.byteSize }
}

/// A parallel axis of a kernel's grid: `variable` runs over `0 ..< extent`, independently.
public struct GridAxis: Hashable, Sendable {
    /// The block index variable.
    public var variable: IndexVar
    /// The number of blocks.
    public var extent: Int

    /// Makes a grid axis.
    public init(_ variable: IndexVar, _ extent: Int) {
        self.variable = variable
        self.extent = extent
    }
}

/// A kernel: a parallel grid of independent instances of one body.
public struct Kernel: Hashable, Sendable {
    /// The name (unique in the program).
    public var name: String
    /// The grid; every combination of grid indices runs the body once, in any order.
    public var grid: [GridAxis]
    /// The body.
    public var body: [Instruction]

    /// Makes a kernel.
    public init(name: String, grid: [GridAxis], body: [Instruction]) {
        self.name = name
        self.grid = grid
        self.body = body
    }
}

/// A block program: global tensors and the kernels that run in order over them.
public struct Program: Hashable, Sendable {
    /// The name, also the C entry point's name.
    public var name: String
    /// The global tensors: inputs, outputs, temporaries and views.
    public var tensors: [GlobalTensor]
    /// The kernels, run one after the other.
    public var kernels: [Kernel]

    /// Makes a program.
    public init(name: String, tensors: [GlobalTensor], kernels: [Kernel]) {
        self.name = name
        self.tensors = tensors
        self.kernels = kernels
    }

    /// The tensor with an ID.
    public subscript(_ id: TensorID) -> GlobalTensor { tensors[id.index] }

    /// The ID of the tensor with a name.
    public func tensorID(named name: String) -> TensorID? {
        tensors.firstIndex { $0.name == name }.map(TensorID.init)
    }

    /// Where a tensor's elements lie in its storage: the storage tensor, the element offset of
    /// element `0…0`, and one element stride per axis. A tensor or a reshape view is row-major
    /// from offset 0; a window view has the viewed tensor's strides, from the window's offset.
    public func placement(of id: TensorID) -> (storage: TensorID, offset: Int, strides: [Int]) {
        let tensor = tensors[id.index]
        let own = GlobalTensor.rowMajorStrides(tensor.shape)
        guard let base = tensor.viewOf, let window = tensor.window, base.index >= 0, base.index < tensors.count,
            tensors[base.index].shape.count == window.count
        else { return (storage(of: id), 0, own) }
        let strides = GlobalTensor.rowMajorStrides(tensors[base.index].shape)
        let offset = zip(window, strides).map { $0 * $1 }.reduce(0, +)
        return (storage(of: id), offset, strides)
    }

    /// The elements a tensor covers in its storage, one range per storage axis: a storage tensor
    /// covers all of itself, a window view its box; `nil` for a reshape view (no box of the storage).
    public func box(of id: TensorID) -> [Range<Int>]? {
        let tensor = tensors[id.index]
        guard let base = tensor.viewOf else { return tensor.shape.map { 0..<$0 } }
        guard let window = tensor.window, tensors[base.index].viewOf == nil, window.count == tensor.shape.count
        else { return nil }
        return zip(window, tensor.shape).map { $0..<($0 + $1) }
    }

    /// Whether two tensors of one storage share no element (both are boxes that miss each other
    /// along some axis). Tensors of different storages never overlap.
    public func areDisjoint(_ a: TensorID, _ b: TensorID) -> Bool {
        guard storage(of: a) == storage(of: b) else { return true }
        guard let x = box(of: a), let y = box(of: b), x.count == y.count else { return false }
        return zip(x, y).contains { !$0.overlaps($1) }
    }

    /// The tensor whose storage a tensor uses (itself unless it is a view).
    public func storage(of id: TensorID) -> TensorID {
        var current = id
        var steps = 0
        while let next = tensors[current.index].viewOf, steps < tensors.count {
            current = next
            steps += 1
        }
        return current
    }

    /// Whether a tensor's elements are its storage's, in the same row-major order from offset 0:
    /// a storage tensor, or a reshape view of one (every view on the way has no window).
    public func isRowMajorStorage(_ id: TensorID) -> Bool {
        var current = id
        var steps = 0
        while let next = tensors[current.index].viewOf, steps < tensors.count {
            guard tensors[current.index].window == nil else { return false }
            current = next
            steps += 1
        }
        return tensors[current.index].viewOf == nil
    }

    /// The IDs of the inputs, in declaration order.
    public var inputs: [TensorID] { ids(of: .input) }
    /// The IDs of the outputs, in declaration order.
    public var outputs: [TensorID] { ids(of: .output) }

    private func ids(of role: TensorRole) -> [TensorID] {
        tensors.indices.filter { tensors[$0].role == role }.map(TensorID.init)
    }
}

extension Program {
    /// Whether a rule may use a stored value in place of a load of what was stored into
    /// `tensor`: always for floating-point storage (`f32`, and `f16`/`bf16`, whose rounding is
    /// a storage format: a fused kernel keeps such intermediates in f32, as Docs/IR.md says);
    /// for `bool` storage only when `definition` yields a truth value (a comparison or a
    /// connective, or a load of a `bool` tensor: exactly 0 or 1); never for `i32` storage, whose store truncates. `definition`
    /// is the op that computes the stored value, when known.
    public func storeKeepsValue(_ definition: Op?, into tensor: TensorID) -> Bool {
        switch self[tensor].elementType {
        case .f32, .f16, .bf16: return true
        case .bool:
            if case .binary(let op, _, _)? = definition { return op.yieldsTruth }
            // A load of a bool tensor is 0 or 1 already (callers look through broadcasts).
            if case .load(let t, _)? = definition { return self[t].elementType == .bool }
            return false
        case .i32: return false
        }
    }
}
