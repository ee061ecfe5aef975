import BlockIR

/// A block value at run time: its static shape, the number of valid elements along each axis
/// (its extent, at most the shape) and, when the machine computes data, its elements in
/// row-major order over the static shape. Elements past the extent are don't-care.
struct RuntimeBlock {
    /// The static shape (from the result type).
    var shape: [Int]
    /// The valid elements along each axis.
    var extent: [Int]
    /// Empty when only extents are tracked.
    var data: [Float]

    /// The number of valid elements.
    var validCount: Int { extent.reduce(1, &*) }
}

/// How many loop iterations a kernel's instances ran (`BlockInterpreter.runCountingIterations`).
public struct LoopIterations: Hashable, Sendable {
    /// Iterations whose body ran (with or without the element test).
    public var ran = 0
    /// Of those, the iterations that ran the body without the element test (their *full*
    /// element was 1: `Loop.bodyWhereTrue`).
    public var full = 0
    /// Iterations inside the loop's range that a guard element of 0 skipped (their body did not
    /// run). Iterations outside run-time bounds (`within`) are not iterations at all.
    public var skipped = 0

    /// No iterations.
    public init() {}
}

/// The shared walk over a block program: runs every kernel instance (grid indices in row-major
/// order) and loop iteration with concrete index values, propagating block extents, counting
/// global elements read and written and FLOPs, and, when `computesData` is set, computing the
/// elements (the interpreter). Without data it is the cost analysis.
///
/// With data, an out-of-range point index or a negative slice start is a `Diagnostic`; without
/// data such an access reads or writes nothing.
struct BlockMachine {
    /// The program being run.
    let program: Program
    /// Whether elements are computed (the interpreter) or only extents (the cost analysis).
    let computesData: Bool
    /// Per tensor: its shape.
    let shapes: [[Int]]
    /// Per tensor: its element strides in its storage (row-major, or the viewed tensor's for a
    /// window view).
    let strides: [[Int]]
    /// Per tensor: the element offset of its first element in its storage (non-zero for a
    /// window view).
    let offsets: [Int]
    /// Per tensor: the index of the tensor owning its storage (itself unless a view).
    let storage: [Int]
    /// Per tensor index: the buffer (only at storage tensors; empty without data).
    var memory: [[Float]]
    /// Valid elements read by loads (the counters accumulate over kernels until reset).
    var readElements = 0
    /// Bytes read by loads (valid elements times their tensor's element size).
    var readBytes = 0
    /// Valid elements written by stores.
    var writtenElements = 0
    /// Bytes written by stores.
    var writtenBytes = 0
    /// FLOPs over valid extents.
    var flops = 0
    /// Per kernel name: the loop iterations its instances ran, over all its loops (with data
    /// only: which iterations a guard or run-time bounds skip depends on the data).
    var iterations: [String: LoopIterations] = [:]
    /// The current kernel's values by slot.
    var values: [RuntimeBlock?] = []
    /// The current kernel (for messages).
    var kernel: CompiledKernel?

    /// Prepares the machine: resolves views to their storage and, with data, allocates every
    /// buffer filled with NaN (so reading unwritten memory shows up).
    init(program: Program, computesData: Bool) throws(Diagnostic) {
        self.program = program
        self.computesData = computesData
        let tensors = program.tensors
        var counts: [Int] = []
        for t in tensors {
            guard t.shape.allSatisfy({ $0 >= 0 }) else {
                throw Diagnostic("tensor '\(t.name)' has shape \(t.shape); dimensions must not be negative")
            }
            var count = 1
            for d in t.shape {
                let (p, overflow) = count.multipliedReportingOverflow(by: d)
                guard !overflow else { throw Diagnostic("tensor '\(t.name)' of shape \(t.shape) is too large") }
                count = p
            }
            counts.append(count)
        }
        var storage: [Int] = []
        for (k, t) in tensors.enumerated() {
            var current = k
            var steps = 0
            while let next = tensors[current].viewOf {
                guard next.index >= 0 && next.index < tensors.count else {
                    throw Diagnostic("tensor '\(t.name)' is a view of \(next), which does not exist")
                }
                guard steps < tensors.count else { throw Diagnostic("tensor '\(t.name)' is part of a cycle of views") }
                current = next.index
                steps += 1
            }
            if let window = t.window {
                let base = tensors[current].shape
                guard current != k, window.count == base.count, t.shape.count == base.count,
                    base.indices.allSatisfy({ window[$0] >= 0 && window[$0] <= base[$0] - t.shape[$0] })
                else {
                    throw Diagnostic(
                        "window view '\(t.name)' of shape \(t.shape) at \(window) does not lie inside "
                            + "'\(tensors[current].name)' of shape \(base)")
                }
            }
            guard counts[current] == counts[k] || t.window != nil else {
                throw Diagnostic(
                    "tensor '\(t.name)' of shape \(t.shape) views '\(tensors[current].name)' of shape "
                        + "\(tensors[current].shape); a view must have the same number of elements")
            }
            storage.append(current)
        }
        self.storage = storage
        self.shapes = tensors.map(\.shape)
        let placements = tensors.indices.map { program.placement(of: TensorID($0)) }
        self.strides = placements.map(\.strides)
        self.offsets = placements.map(\.offset)
        self.memory = tensors.indices.map { k in
            computesData && storage[k] == k ? [Float](repeating: .nan, count: counts[k]) : []
        }
    }

    /// The quoted one-line form of an instruction, for messages.
    static func label(_ inst: Instruction, _ program: Program) -> String {
        "'" + BlockPrinter.line(inst, in: program) + "'"
    }

    /// A run-time error at a step of the current kernel instance.
    func failure(_ step: Step, _ env: UnsafeMutablePointer<Int>, _ message: String) -> Diagnostic {
        guard let kernel else { return Diagnostic(message) }
        let where_ = kernel.gridNames.enumerated().map { "\($1) = \(env[$0])" }.joined(separator: ", ")
        return Diagnostic(
            "kernel '\(kernel.name)' (instance \(where_.isEmpty ? "0" : where_)), "
                + "\(Self.label(step.source, program)): \(message)")
    }

    // MARK: Kernels and loops

    /// Runs every instance of a kernel.
    mutating func run(_ kernel: CompiledKernel) throws(Diagnostic) {
        self.kernel = kernel
        defer {
            self.kernel = nil
            values = []
        }
        values = Array(repeating: nil, count: kernel.valueSlots)
        let env = UnsafeMutablePointer<Int>.allocate(capacity: Swift.max(1, kernel.indexSlots))
        env.initialize(repeating: 0, count: Swift.max(1, kernel.indexSlots))
        defer { env.deallocate() }
        let extents = kernel.gridExtents
        guard extents.allSatisfy({ $0 > 0 }) else { return }
        while true {
            try execute(kernel.body, env)
            var axis = extents.count - 1
            while axis >= 0 {
                env[axis] += 1
                if env[axis] < extents[axis] { break }
                env[axis] = 0
                axis -= 1
            }
            if axis < 0 { return }
        }
    }

    /// The value in a slot (an error if it was never computed).
    func value(_ slot: Int, _ step: Step, _ env: UnsafeMutablePointer<Int>) throws(Diagnostic) -> RuntimeBlock {
        guard let v = values[slot] else { throw failure(step, env, "reads a value that has not been computed") }
        return v
    }

    /// Executes a body in the current instance.
    mutating func execute(_ steps: [Step], _ env: UnsafeMutablePointer<Int>) throws(Diagnostic) {
        for step in steps {
            let result: RuntimeBlock
            switch step.op {
            case .load(let t, let access):
                result = try load(t, access, step, env)
            case .store(let v, let t, let access):
                try store(try value(v, step, env), t, access, step, env)
                continue
            case .fill(let c):
                let shape = step.shapes[0]
                result = RuntimeBlock(
                    shape: shape, extent: shape,
                    data: computesData ? [Float](repeating: c, count: NDArray.elementCount(of: shape)) : [])
            case .index(let e, let axis):
                result = positions(from: e.evaluate(env), axis: axis, shape: step.shapes[0])
            case .unary(let op, let a):
                result = unary(op, try value(a, step, env))
            case .binary(let op, let a, let b):
                result = try binary(op, try value(a, step, env), try value(b, step, env), step, env)
            case .select(let c, let a, let b):
                result = try select(
                    try value(c, step, env), try value(a, step, env), try value(b, step, env), step, env)
            case .selectTrue(let a, let b):
                let one = RuntimeBlock(shape: [], extent: [], data: computesData ? [1] : [])
                result = try select(one, try value(a, step, env), try value(b, step, env), step, env)
            case .gather(let t, let access, let index, let axis):
                result = try gather(t, access, try value(index, step, env), axis: axis, step, env)
            case .broadcast(let a, let axis):
                result = try broadcast(try value(a, step, env), axis: axis, step, env)
            case .reduce(let op, let a, let axis):
                result = try reduce(op, try value(a, step, env), axis: axis, step, env)
            case .scan(let op, let a, let axis, let reverse, let exclusive):
                result = try scan(
                    op, try value(a, step, env), axis: axis, reverse: reverse, exclusive: exclusive, step, env)
            case .dot(let a, let b, let ta, let tb, let precision):
                result = try dot(try value(a, step, env), try value(b, step, env), ta, tb, precision, step, env)
            case .transpose(let a):
                result = try transpose(try value(a, step, env), step, env)
            case .concat(let a, let b, let axis):
                result = try concat(try value(a, step, env), try value(b, step, env), axis: axis, step, env)
            case .mask(let a, let row, let column, let predicate, let fill):
                result = try mask(
                    try value(a, step, env), row: row.evaluate(env), column: column.evaluate(env), predicate,
                    fill: fill, step, env)
            case .loop(let loop):
                try run(loop, step, env)
                continue
            }
            guard result.shape == step.shapes[0] else {
                throw failure(
                    step, env, "the op gives shape \(result.shape) but the result type says \(step.shapes[0])")
            }
            values[step.results[0]] = result
        }
    }

    /// Runs a loop: the carried values start as the initial values and become the yielded
    /// ones after every iteration; the loop's results are the last carried values.
    mutating func run(_ loop: CompiledLoop, _ step: Step, _ env: UnsafeMutablePointer<Int>) throws(Diagnostic) {
        var lower = loop.lower.evaluate(env)
        var upper = loop.upper.evaluate(env)
        if let (t, l, u) = loop.bounds, computesData {
            // Run-time bounds narrow the range, never widen it.
            lower = Swift.max(lower, Int(try load(t, l, step, env).data[0]))
            upper = Swift.min(upper, Int(try load(t, u, step, env).data[0]))
        }
        // Links (a compacted traversal): after iteration v, the next element's iteration when the
        // mode element is set (never backwards). Without data every iteration counts.
        var follow = false
        if let l = loop.links, computesData, lower < upper {
            follow = try load(l.mode, l.modeAccess, step, env).data[0] != 0
        }
        func advance(_ v: Int, _ machine: inout BlockMachine) throws(Diagnostic) -> Int {
            guard follow, let l = loop.links else { return v + 1 }
            let next = try machine.load(l.next, l.nextAccess, step, env).data[0]
            return next.isFinite && next > Float(v + 1) ? Int(Swift.min(next, Float(Int32.max))) : v + 1
        }
        var current: [RuntimeBlock] = []
        for slot in loop.initial { current.append(try value(slot, step, env)) }
        var v = lower
        while v < upper {
            env[loop.indexSlot] = v
            // A guarded iteration whose element is 0 changes nothing. Without data (the cost
            // report) every iteration counts, an upper bound.
            if let (t, access) = loop.condition {
                let element = try load(t, access, step, env)
                if computesData && element.data.first == 0 {
                    if let name = kernel?.name { iterations[name, default: LoopIterations()].skipped += 1 }
                    v = try advance(v, &self)
                    continue
                }
            }
            for (k, slot) in loop.carried.enumerated() { values[slot] = current[k] }
            var body = loop.body
            var yielded = loop.yielded
            var whole = false
            if let full = loop.full, computesData, try load(full.tensor, full.access, step, env).data.first != 0 {
                (body, yielded) = (full.body, full.yielded)
                whole = true
            }
            if computesData, let name = kernel?.name {
                iterations[name, default: LoopIterations()].ran += 1
                if whole { iterations[name, default: LoopIterations()].full += 1 }
            }
            try execute(body, env)
            for (k, slot) in yielded.enumerated() { current[k] = try value(slot, step, env) }
            env[loop.indexSlot] = v
            v = try advance(v, &self)
        }
        for (k, slot) in step.results.enumerated() { values[slot] = current[k] }
    }

    // MARK: Global memory

    /// Where an access lands: the element offset of its first element, the block shape, the
    /// valid extent (within the tensor) and the tensor strides of the block's axes. An
    /// out-of-range access throws with data and is empty (extent 0) without.
    func locate(
        _ t: Int, _ access: [SlotAccess], _ step: Step, _ env: UnsafeMutablePointer<Int>
    ) throws(Diagnostic) -> (base: Int, shape: [Int], extent: [Int], strides: [Int]) {
        let shape = shapes[t]
        let tensorStrides = strides[t]
        var base = offsets[t]
        var blockShape: [Int] = []
        var extent: [Int] = []
        var blockStrides: [Int] = []
        var empty = false
        for (axis, a) in access.enumerated() {
            switch a {
            case .point(let e):
                let i = e.evaluate(env)
                if i < 0 || i >= shape[axis] {
                    if computesData {
                        throw failure(
                            step, env,
                            "index \(i) on axis \(axis) of '\(program.tensors[t].name)' (size \(shape[axis])) is out "
                                + "of range")
                    }
                    empty = true
                } else {
                    base += i * tensorStrides[axis]
                }
            case .slice(let e, let n):
                let start = e.evaluate(env)
                var valid = 0
                if start < 0 {
                    if computesData {
                        throw failure(
                            step, env,
                            "slice start \(start) on axis \(axis) of '\(program.tensors[t].name)' is negative")
                    }
                    empty = true
                } else if start < shape[axis] {
                    valid = Swift.min(n, shape[axis] - start)
                    base += start * tensorStrides[axis]
                }
                blockShape.append(n)
                extent.append(valid)
                blockStrides.append(tensorStrides[axis])
            }
        }
        if empty { extent = extent.map { _ in 0 } }
        return (base, blockShape, extent, blockStrides)
    }

    /// `load`: the valid region of the block is read from the tensor, the rest is 0.
    mutating func load(
        _ t: Int, _ access: [SlotAccess], _ step: Step, _ env: UnsafeMutablePointer<Int>
    ) throws(Diagnostic) -> RuntimeBlock {
        let (base, shape, extent, blockStrides) = try locate(t, access, step, env)
        let valid = extent.reduce(1, &*)
        readElements &+= valid
        readBytes &+= valid &* program.tensors[t].elementType.byteSize
        guard computesData else { return RuntimeBlock(shape: shape, extent: extent, data: []) }
        var data = [Float](repeating: 0, count: NDArray.elementCount(of: shape))
        if valid > 0 {
            memory[storage[t]].withUnsafeBufferPointer { source in
                data.withUnsafeMutableBufferPointer { target in
                    guard let src = source.baseAddress, let dst = target.baseAddress else { return }
                    Self.copy(
                        from: src + base, strides: blockStrides, to: dst, blockShape: shape, extent: extent,
                        toTensor: false)
                }
            }
        }
        return RuntimeBlock(shape: shape, extent: extent, data: data)
    }

    /// `store`: writes the elements valid in both the block and the tensor.
    mutating func store(
        _ block: RuntimeBlock, _ t: Int, _ access: [SlotAccess], _ step: Step, _ env: UnsafeMutablePointer<Int>
    ) throws(Diagnostic) {
        let (base, shape, inside, blockStrides) = try locate(t, access, step, env)
        guard shape == block.shape else {
            throw failure(step, env, "the stored block has shape \(block.shape) but the slice sizes are \(shape)")
        }
        let extent = zip(inside, block.extent).map { Swift.min($0, $1) }
        let valid = extent.reduce(1, &*)
        writtenElements &+= valid
        writtenBytes &+= valid &* program.tensors[t].elementType.byteSize
        guard computesData, valid > 0 else { return }
        // Storage in a narrower type rounds on every store (the block computes in f32).
        let type = program.tensors[t].elementType
        let data = type == .f32 ? block.data : block.data.map(type.stored)
        data.withUnsafeBufferPointer { source in
            memory[storage[t]].withUnsafeMutableBufferPointer { target in
                guard let src = source.baseAddress, let dst = target.baseAddress else { return }
                Self.copy(
                    from: src, strides: blockStrides, to: dst + base,
                    blockShape: shape, extent: extent, toTensor: true)
            }
        }
    }

    /// Copies the valid region of a block (rank 0 to 2) between a tensor (at `strides`) and the
    /// block's row-major buffer; `toTensor` gives the direction (`from` is then the block).
    static func copy(
        from: UnsafePointer<Float>, strides: [Int], to: UnsafeMutablePointer<Float>, blockShape: [Int],
        extent: [Int], toTensor: Bool
    ) {
        switch extent.count {
        case 0:
            to.pointee = from.pointee
        case 1:
            let s = strides[0]
            var r = 0
            while r < extent[0] {
                if toTensor { to[r * s] = from[r] } else { to[r] = from[r * s] }
                r += 1
            }
        default:
            let (s0, s1) = (strides[0], strides[1])
            let columns = blockShape[1]
            var r = 0
            while r < extent[0] {
                if s1 == 1 {
                    if toTensor {
                        (to + r * s0).update(from: from + r * columns, count: extent[1])
                    } else {
                        (to + r * columns).update(from: from + r * s0, count: extent[1])
                    }
                } else {
                    var c = 0
                    while c < extent[1] {
                        if toTensor {
                            to[r * s0 + c * s1] = from[r * columns + c]
                        } else {
                            to[r * columns + c] = from[r * s0 + c * s1]
                        }
                        c += 1
                    }
                }
                r += 1
            }
        }
    }

    // MARK: Block ops

    /// Elementwise unary op; the extent is kept.
    mutating func unary(_ op: UnaryOp, _ x: RuntimeBlock) -> RuntimeBlock {
        flops &+= x.validCount
        guard computesData else { return RuntimeBlock(shape: x.shape, extent: x.extent, data: []) }
        var data = [Float](repeating: 0, count: x.data.count)
        x.data.withUnsafeBufferPointer { source in
            data.withUnsafeMutableBufferPointer { target in
                guard let src = source.baseAddress, let dst = target.baseAddress else { return }
                Dense.apply(op, src, dst, count: source.count)
            }
        }
        return RuntimeBlock(shape: x.shape, extent: x.extent, data: data)
    }

    /// Elementwise binary op on equal shapes (extent: the elementwise minimum) or with a scalar.
    mutating func binary(
        _ op: BinaryOp, _ x: RuntimeBlock, _ y: RuntimeBlock, _ step: Step, _ env: UnsafeMutablePointer<Int>
    ) throws(Diagnostic) -> RuntimeBlock {
        let shape: [Int]
        let extent: [Int]
        if x.shape == y.shape {
            shape = x.shape
            extent = zip(x.extent, y.extent).map { Swift.min($0, $1) }
        } else if x.shape.isEmpty {
            shape = y.shape
            extent = y.extent
        } else if y.shape.isEmpty {
            shape = x.shape
            extent = x.extent
        } else {
            throw failure(step, env, "operand shapes \(x.shape) and \(y.shape) differ")
        }
        let result = RuntimeBlock(shape: shape, extent: extent, data: [])
        flops &+= result.validCount
        guard computesData else { return result }
        let count = NDArray.elementCount(of: shape)
        var data = [Float](repeating: 0, count: count)
        x.data.withUnsafeBufferPointer { a in
            y.data.withUnsafeBufferPointer { b in
                data.withUnsafeMutableBufferPointer { target in
                    guard let pa = a.baseAddress, let pb = b.baseAddress, let dst = target.baseAddress else { return }
                    Dense.apply(
                        op, pa, aStride: x.shape.isEmpty ? 0 : 1, pb, bStride: y.shape.isEmpty ? 0 : 1, dst,
                        count: count)
                }
            }
        }
        return RuntimeBlock(shape: shape, extent: extent, data: data)
    }

    /// `select`: `a` where the condition is non-zero, else `b` (a choice, so the branch not
    /// taken never reaches the result); operands of one shape or scalars, extent the minimum.
    mutating func select(
        _ c: RuntimeBlock, _ a: RuntimeBlock, _ b: RuntimeBlock, _ step: Step, _ env: UnsafeMutablePointer<Int>
    ) throws(Diagnostic) -> RuntimeBlock {
        let blocks = [c, a, b].filter { !$0.shape.isEmpty }
        let shape = blocks.first?.shape ?? []
        guard blocks.allSatisfy({ $0.shape == shape }) else {
            throw failure(step, env, "operand shapes \(c.shape), \(a.shape) and \(b.shape) differ")
        }
        var extent = shape
        for x in blocks { extent = zip(extent, x.extent).map { Swift.min($0, $1) } }
        let result = RuntimeBlock(shape: shape, extent: extent, data: [])
        flops &+= result.validCount
        guard computesData else { return result }
        let count = NDArray.elementCount(of: shape)
        func at(_ x: RuntimeBlock, _ k: Int) -> Float { x.shape.isEmpty ? x.data[0] : x.data[k] }
        var data = [Float](repeating: 0, count: count)
        for k in 0..<count { data[k] = at(c, k) != 0 ? at(a, k) : at(b, k) }
        return RuntimeBlock(shape: shape, extent: extent, data: data)
    }

    /// `gather`: element `(pre, q, post)` is the tensor's element at position `index[q]` along
    /// `axis` (the access's point there is 0) and the access's positions on the other axes. With
    /// data, an index that is not an integer in `0 ..< size` is an error naming it and the tensor.
    mutating func gather(
        _ t: Int, _ access: [SlotAccess], _ index: RuntimeBlock, axis: Int, _ step: Step,
        _ env: UnsafeMutablePointer<Int>
    ) throws(Diagnostic) -> RuntimeBlock {
        let (base, sliced, slicedExtent, blockStrides) = try locate(t, access, step, env)
        let pre = access[..<axis].filter { if case .slice = $0 { true } else { false } }.count
        let shape = Array(sliced[..<pre]) + index.shape + Array(sliced[pre...])
        let extent = Array(slicedExtent[..<pre]) + index.extent + Array(slicedExtent[pre...])
        let elementStrides = Array(blockStrides[..<pre]) + index.shape.map { _ in 0 } + Array(blockStrides[pre...])
        guard shape == step.shapes[0] else {
            throw failure(step, env, "the gathered shape \(shape) differs from the result type's \(step.shapes[0])")
        }
        let result = RuntimeBlock(shape: shape, extent: extent, data: [])
        let valid = result.validCount
        readElements &+= valid
        readBytes &+= valid &* program.tensors[t].elementType.byteSize
        guard computesData else { return result }
        let size = shapes[t][axis]
        let rowStride = self.strides[t][axis]
        var data = [Float](repeating: 0, count: NDArray.elementCount(of: shape))
        let columns = shape.count == 2 ? shape[1] : 1
        let indexColumns = index.shape.count == 2 ? index.shape[1] : 1
        let rows = shape.count >= 1 ? extent[0] : 1
        let cols = shape.count == 2 ? extent[1] : 1
        for r in 0..<rows {
            for c in 0..<cols {
                let coords = shape.count == 2 ? [r, c] : (shape.count == 1 ? [r] : [])
                let q = Array(coords[pre..<(pre + index.shape.count)])
                let x = index.data[q.count == 2 ? q[0] * indexColumns + q[1] : (q.first ?? 0)]
                guard x >= 0, x < Float(size), x == x.rounded(.down) else {
                    throw failure(
                        step, env,
                        "gather index \(formatFloat(x)) at \(q) of the index block is out of range for axis \(axis) "
                            + "of '\(program.tensors[t].name)' (size \(size)); indices must be integers in 0 ..< \(size)"
                    )
                }
                var offset = base + Int(x) * rowStride
                for (k, s) in zip(coords, elementStrides) { offset += k * s }
                data[shape.count == 2 ? r * columns + c : r] = memory[storage[t]][offset]
            }
        }
        return RuntimeBlock(shape: shape, extent: extent, data: data)
    }

    /// `broadcast`: inserts an axis (size from the result type) that is fully valid.
    func broadcast(
        _ x: RuntimeBlock, axis: Int, _ step: Step, _ env: UnsafeMutablePointer<Int>
    ) throws(Diagnostic) -> RuntimeBlock {
        let shape = step.shapes[0]
        var reduced = shape
        if axis >= 0 && axis < shape.count { reduced.remove(at: axis) }
        guard shape.count == x.shape.count + 1, axis >= 0, axis <= x.shape.count, reduced == x.shape else {
            throw failure(step, env, "broadcasting shape \(x.shape) along axis \(axis) cannot give \(shape)")
        }
        var extent = x.extent
        extent.insert(shape[axis], at: axis)
        guard computesData else { return RuntimeBlock(shape: shape, extent: extent, data: []) }
        if x.shape.isEmpty {
            return RuntimeBlock(shape: shape, extent: extent, data: [Float](repeating: x.data[0], count: shape[0]))
        }
        let (rows, columns) = (shape[0], shape[1])
        var data = [Float](repeating: 0, count: rows * columns)
        x.data.withUnsafeBufferPointer { source in
            data.withUnsafeMutableBufferPointer { target in
                guard let src = source.baseAddress, let dst = target.baseAddress else { return }
                var r = 0
                while r < rows {
                    if axis == 0 {
                        (dst + r * columns).update(from: src, count: columns)
                    } else {
                        (dst + r * columns).update(repeating: src[r], count: columns)
                    }
                    r += 1
                }
            }
        }
        return RuntimeBlock(shape: shape, extent: extent, data: data)
    }

    /// `reduce`: folds the valid elements along the axis (the identity when none).
    mutating func reduce(
        _ op: ReduceOp, _ x: RuntimeBlock, axis: Int, _ step: Step, _ env: UnsafeMutablePointer<Int>
    ) throws(Diagnostic) -> RuntimeBlock {
        guard axis >= 0 && axis < x.shape.count else {
            throw failure(step, env, "reduce axis \(axis) is out of range for shape \(x.shape)")
        }
        flops &+= x.validCount
        var shape = x.shape
        shape.remove(at: axis)
        var extent = x.extent
        extent.remove(at: axis)
        guard computesData else { return RuntimeBlock(shape: shape, extent: extent, data: []) }
        let outer = NDArray.elementCount(of: Array(x.shape[..<axis]))
        let inner = NDArray.elementCount(of: Array(x.shape[(axis + 1)...]))
        var data = [Float](repeating: op.identity, count: outer * inner)
        x.data.withUnsafeBufferPointer { source in
            data.withUnsafeMutableBufferPointer { target in
                guard let src = source.baseAddress, let dst = target.baseAddress else { return }
                Dense.reduce(
                    op, src, outer: outer, length: x.shape[axis], inner: inner, validOuter: outer,
                    validLength: x.extent[axis], validInner: inner, into: dst)
            }
        }
        return RuntimeBlock(shape: shape, extent: extent, data: data)
    }

    /// `scan`: prefix combinations along `axis` within the valid extent (a reverse scan starts at
    /// the last valid element); the extent is kept.
    mutating func scan(
        _ op: ReduceOp, _ x: RuntimeBlock, axis: Int, reverse: Bool, exclusive: Bool, _ step: Step,
        _ env: UnsafeMutablePointer<Int>
    ) throws(Diagnostic) -> RuntimeBlock {
        guard axis >= 0 && axis < x.shape.count else {
            throw failure(step, env, "scan axis \(axis) is out of range for shape \(x.shape)")
        }
        flops &+= x.validCount
        guard computesData else { return RuntimeBlock(shape: x.shape, extent: x.extent, data: []) }
        let outer = NDArray.elementCount(of: Array(x.shape[..<axis]))
        let inner = NDArray.elementCount(of: Array(x.shape[(axis + 1)...]))
        var data = [Float](repeating: op.identity, count: x.data.count)
        x.data.withUnsafeBufferPointer { source in
            data.withUnsafeMutableBufferPointer { target in
                guard let src = source.baseAddress, let dst = target.baseAddress else { return }
                Dense.scan(
                    op, src, outer: outer, length: x.shape[axis], inner: inner, validLength: x.extent[axis],
                    reverse: reverse, exclusive: exclusive, into: dst)
            }
        }
        return RuntimeBlock(shape: x.shape, extent: x.extent, data: data)
    }

    /// `dot`: contracts over the smaller of the two valid inner extents; the result is valid
    /// over the valid rows of `op(a)` and the valid columns of `op(b)`; bf16 `precision` rounds
    /// the operands first.
    mutating func dot(
        _ x: RuntimeBlock, _ y: RuntimeBlock, _ transposeA: Bool, _ transposeB: Bool, _ precision: DotPrecision,
        _ step: Step,
        _ env: UnsafeMutablePointer<Int>
    ) throws(Diagnostic) -> RuntimeBlock {
        guard x.shape.count == 2 && y.shape.count == 2 else {
            throw failure(step, env, "dot needs rank-2 operands, got shapes \(x.shape) and \(y.shape)")
        }
        // Shapes and extents of op(a) (m × k) and op(b) (k × n).
        let (m, k) = transposeA ? (x.shape[1], x.shape[0]) : (x.shape[0], x.shape[1])
        let (validM, validKA) = transposeA ? (x.extent[1], x.extent[0]) : (x.extent[0], x.extent[1])
        let (kb, n) = transposeB ? (y.shape[1], y.shape[0]) : (y.shape[0], y.shape[1])
        let (validKB, validN) = transposeB ? (y.extent[1], y.extent[0]) : (y.extent[0], y.extent[1])
        guard k == kb else {
            throw failure(step, env, "the inner sizes of dot differ (shapes \(x.shape) and \(y.shape))")
        }
        let validK = Swift.min(validKA, validKB)
        flops &+= 2 &* validM &* validN &* validK
        let shape = [m, n]
        let extent = [validM, validN]
        guard computesData else { return RuntimeBlock(shape: shape, extent: extent, data: []) }
        var data = [Float](repeating: 0, count: m * n)
        let (aRow, aColumn) = transposeA ? (1, x.shape[1]) : (x.shape[1], 1)
        let (bRow, bColumn) = transposeB ? (1, y.shape[1]) : (y.shape[1], 1)
        let (xs, ys) =
            precision == .f32 ? (x.data, y.data) : (x.data.map(precision.operand), y.data.map(precision.operand))
        xs.withUnsafeBufferPointer { a in
            ys.withUnsafeBufferPointer { b in
                data.withUnsafeMutableBufferPointer { c in
                    guard let pa = a.baseAddress, let pb = b.baseAddress, let pc = c.baseAddress else { return }
                    Dense.matmul(
                        m: validM, n: validN, k: validK, a: pa, aRow: aRow, aColumn: aColumn, b: pb, bRow: bRow,
                        bColumn: bColumn, c: pc, ldc: n)
                }
            }
        }
        return RuntimeBlock(shape: shape, extent: extent, data: data)
    }

    /// `transpose` of a rank-2 block; the extents swap.
    /// `concat`: `x`'s elements, then `y`'s, along `axis`. The extent along `axis` is `x`'s size
    /// plus `y`'s extent when `x` is full there (else `x`'s extent: `y` is past the valid part);
    /// along the other axes the smaller of the two.
    func concat(
        _ x: RuntimeBlock, _ y: RuntimeBlock, axis: Int, _ step: Step, _ env: UnsafeMutablePointer<Int>
    ) throws(Diagnostic) -> RuntimeBlock {
        let rank = x.shape.count
        guard rank == y.shape.count, axis >= 0, axis < rank,
            (0..<rank).allSatisfy({ $0 == axis || x.shape[$0] == y.shape[$0] })
        else {
            throw failure(step, env, "concat of shapes \(x.shape) and \(y.shape) along axis \(axis)")
        }
        var shape = x.shape
        shape[axis] += y.shape[axis]
        var extent = zip(x.extent, y.extent).map { Swift.min($0, $1) }
        extent[axis] = x.extent[axis] == x.shape[axis] ? x.shape[axis] + y.extent[axis] : x.extent[axis]
        guard computesData else { return RuntimeBlock(shape: shape, extent: extent, data: []) }
        // Row-major: `outer` slabs, each `x`'s then `y`'s rows of `inner` elements.
        let inner = shape[(axis + 1)...].reduce(1, *)
        let outer = shape[..<axis].reduce(1, *)
        let (nx, ny) = (x.shape[axis] * inner, y.shape[axis] * inner)
        var data = [Float](repeating: 0, count: outer * (nx + ny))
        for o in 0..<outer {
            for e in 0..<nx { data[o * (nx + ny) + e] = x.data[o * nx + e] }
            for e in 0..<ny { data[o * (nx + ny) + nx + e] = y.data[o * ny + e] }
        }
        return RuntimeBlock(shape: shape, extent: extent, data: data)
    }

    func transpose(
        _ x: RuntimeBlock, _ step: Step, _ env: UnsafeMutablePointer<Int>
    ) throws(Diagnostic) -> RuntimeBlock {
        guard x.shape.count == 2 else {
            throw failure(step, env, "transpose needs a rank-2 operand, got shape \(x.shape)")
        }
        let (rows, columns) = (x.shape[0], x.shape[1])
        let shape = [columns, rows]
        let extent = [x.extent[1], x.extent[0]]
        guard computesData else { return RuntimeBlock(shape: shape, extent: extent, data: []) }
        var data = [Float](repeating: 0, count: rows * columns)
        x.data.withUnsafeBufferPointer { source in
            data.withUnsafeMutableBufferPointer { target in
                guard let src = source.baseAddress, let dst = target.baseAddress else { return }
                var r = 0
                while r < rows {
                    var c = 0
                    while c < columns {
                        dst[c * rows + r] = src[r * columns + c]
                        c += 1
                    }
                    r += 1
                }
            }
        }
        return RuntimeBlock(shape: shape, extent: extent, data: data)
    }

    /// `index`: every element is `start` plus its coordinate along `axis` (none: `start`), in f32.
    func positions(from start: Int, axis: Int?, shape: [Int]) -> RuntimeBlock {
        guard computesData else { return RuntimeBlock(shape: shape, extent: shape, data: []) }
        let count = NDArray.elementCount(of: shape)
        guard let axis, axis < shape.count else {
            return RuntimeBlock(shape: shape, extent: shape, data: [Float](repeating: Float(start), count: count))
        }
        // Row-major: the coordinate along `axis` of flat element `f` is `(f / inner) % size`.
        let inner = shape[(axis + 1)...].reduce(1, *)
        let size = shape[axis]
        var data = [Float](repeating: 0, count: count)
        for f in 0..<count { data[f] = Float(start &+ (f / inner) % size) }
        return RuntimeBlock(shape: shape, extent: shape, data: data)
    }

    /// `mask`: element `(r, c)` sits at `(row + r, column + c)`; the extent is kept.
    mutating func mask(
        _ x: RuntimeBlock, row: Int, column: Int, _ predicate: Predicate, fill: Float, _ step: Step,
        _ env: UnsafeMutablePointer<Int>
    ) throws(Diagnostic) -> RuntimeBlock {
        guard x.shape.count == 2 else {
            throw failure(step, env, "mask needs a rank-2 operand, got shape \(x.shape)")
        }
        flops &+= x.validCount
        guard computesData else { return RuntimeBlock(shape: x.shape, extent: x.extent, data: []) }
        var data = x.data
        data.withUnsafeMutableBufferPointer { target in
            guard let dst = target.baseAddress else { return }
            MaskRows.apply(
                predicate, fill: fill, to: dst, rows: x.shape[0], columns: x.shape[1], ld: x.shape[1],
                rowOffset: row, columnOffset: column)
        }
        return RuntimeBlock(shape: x.shape, extent: x.extent, data: data)
    }
}
