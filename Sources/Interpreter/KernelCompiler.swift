import BlockIR

/// An index expression whose variables are resolved to slots of an environment array.
indirect enum SlotExpr: Sendable {
    /// A literal.
    case constant(Int)
    /// The value of an index variable, by environment slot.
    case slot(Int)
    /// `a + b`
    case add(SlotExpr, SlotExpr)
    /// `a * c`
    case mul(SlotExpr, Int)
    /// `a / c`, rounding toward minus infinity.
    case floorDiv(SlotExpr, Int)
    /// `min(a, b)`
    case min(SlotExpr, SlotExpr)
    /// `max(a, b)`
    case max(SlotExpr, SlotExpr)

    /// Evaluates the expression with wrapping arithmetic (out-of-range results then fail the
    /// range checks instead of trapping); division by 0 gives 0, as `IndexExpr.evaluate` does.
    func evaluate(_ env: UnsafeMutablePointer<Int>) -> Int {
        switch self {
        case .constant(let c): return c
        case .slot(let s): return env[s]
        case .add(let a, let b): return a.evaluate(env) &+ b.evaluate(env)
        case .mul(let a, let c): return a.evaluate(env) &* c
        case .floorDiv(let a, let c):
            let x = a.evaluate(env)
            guard c != 0 else { return 0 }
            let (q, overflow) = x.dividedReportingOverflow(by: c)
            guard !overflow else { return q }
            return (x % c != 0 && ((x < 0) != (c < 0))) ? q - 1 : q
        case .min(let a, let b): return Swift.min(a.evaluate(env), b.evaluate(env))
        case .max(let a, let b): return Swift.max(a.evaluate(env), b.evaluate(env))
        }
    }
}

/// One axis of a compiled load or store.
enum SlotAccess: Sendable {
    /// One element index (the axis is dropped).
    case point(SlotExpr)
    /// `size` elements from a start offset.
    case slice(SlotExpr, size: Int)
}

/// A compiled loop: slots instead of value IDs and index variables.
struct CompiledLoop: Sendable {
    /// The environment slot of the loop counter.
    var indexSlot: Int
    /// The first iteration.
    var lower: SlotExpr
    /// The end of the range (exclusive).
    var upper: SlotExpr
    /// The slots of the initial values.
    var initial: [Int]
    /// The slots of the carried values as the body sees them.
    var carried: [Int]
    /// The body without its final `yield`.
    var body: [Step]
    /// The yielded value slots.
    var yielded: [Int]
    /// The guard: the tensor (by index) and one point per axis; an iteration whose element is 0
    /// is skipped.
    var condition: (tensor: Int, access: [SlotAccess])?
    /// The *full* element and the body an iteration runs where it is non-zero (`Loop.bodyWhereTrue`).
    var full: (tensor: Int, access: [SlotAccess], body: [Step], yielded: [Int])?
    /// The run-time bounds: two elements read before the iterations.
    var bounds: (tensor: Int, lower: [SlotAccess], upper: [SlotAccess])?
    /// The links of a compacted traversal: the next iteration's element (naming the counter)
    /// and the mode element read before the iterations.
    var links: (next: Int, nextAccess: [SlotAccess], mode: Int, modeAccess: [SlotAccess])?
}

/// The op of a compiled instruction; value operands are slots.
enum StepOp: Sendable {
    /// `load` from a tensor (by index).
    case load(tensor: Int, [SlotAccess])
    /// `store` of a value to a tensor.
    case store(Int, tensor: Int, [SlotAccess])
    /// `fill`
    case fill(Float)
    /// `index`: the expression plus the element's coordinate along `axis`.
    case index(SlotExpr, axis: Int?)
    /// Elementwise unary op.
    case unary(UnaryOp, Int)
    /// Elementwise binary op.
    case binary(BinaryOp, Int, Int)
    /// `select`: condition, then, else.
    case select(Int, Int, Int)
    /// A `select` whose condition is known non-zero (`Loop.bodyWhereTrue`): then, else.
    case selectTrue(Int, Int)
    /// `gather`: the access list has a point 0 at the gathered `axis`; the index block's values
    /// give the position along it.
    case gather(tensor: Int, [SlotAccess], index: Int, axis: Int)
    /// `broadcast`
    case broadcast(Int, axis: Int)
    /// `reduce_sum` / `reduce_max`
    case reduce(ReduceOp, Int, axis: Int)
    /// `scan_sum` / `scan_max`
    case scan(ReduceOp, Int, axis: Int, reverse: Bool, exclusive: Bool)
    /// `dot`
    case dot(Int, Int, transposeA: Bool, transposeB: Bool, precision: DotPrecision)
    /// `transpose`
    case transpose(Int)
    /// `concat` along an axis.
    case concat(Int, Int, axis: Int)
    /// `mask` with its row and column offsets.
    case mask(Int, row: SlotExpr, column: SlotExpr, Predicate, fill: Float)
    /// A sequential loop.
    case loop(CompiledLoop)
}

/// A compiled instruction: its op, result slots and declared result shapes, and the source
/// instruction (for messages).
struct Step: Sendable {
    /// The op.
    var op: StepOp
    /// The result slots.
    var results: [Int]
    /// The declared result shapes.
    var shapes: [[Int]]
    /// The instruction it was compiled from.
    var source: Instruction
}

/// A kernel ready to execute: grid extents, slot counts and the compiled body.
struct CompiledKernel: Sendable {
    /// The kernel's name.
    var name: String
    /// The grid variables' names (slots `0..<grid.count`).
    var gridNames: [String]
    /// The grid extents.
    var gridExtents: [Int]
    /// The number of value slots.
    var valueSlots: Int
    /// The number of index-variable slots (grid variables, then one per loop depth).
    var indexSlots: Int
    /// The compiled body.
    var body: [Step]
}

/// Resolves a kernel's value IDs and index variables to dense slots, checking what the
/// executor relies on for memory safety (values defined before use, variables in scope, tensors
/// that exist, block ranks of at most 2 with positive sizes, loop arities).
struct KernelCompiler {
    /// The program the kernel belongs to.
    let program: Program
    /// The kernel being compiled.
    let kernel: Kernel
    /// The next free value slot.
    var nextValue = 0
    /// The index slots used so far.
    var indexSlots = 0
    /// The selects that take their `then` operand in the body being compiled.
    var chosenSelects: Set<ValueID> = []

    /// Compiles a kernel of `program`.
    static func compile(_ kernel: Kernel, in program: Program) throws(Diagnostic) -> CompiledKernel {
        var compiler = KernelCompiler(program: program, kernel: kernel)
        var indices: [IndexVar: Int] = [:]
        for (k, axis) in kernel.grid.enumerated() { indices[axis.variable] = k }
        compiler.indexSlots = kernel.grid.count
        var values: [ValueID: Int] = [:]
        let (body, yielded) = try compiler.body(
            kernel.body, values: &values, indices: indices, depth: kernel.grid.count, inLoop: false)
        assert(yielded == nil)
        return CompiledKernel(
            name: kernel.name, gridNames: kernel.grid.map(\.variable.name), gridExtents: kernel.grid.map(\.extent),
            valueSlots: compiler.nextValue, indexSlots: compiler.indexSlots, body: body)
    }

    /// A compile-time problem at an instruction.
    func error(_ inst: Instruction, _ message: String) -> Diagnostic {
        Diagnostic("kernel '\(kernel.name)', \(BlockMachine.label(inst, program)): \(message)")
    }

    /// Compiles a body; returns its steps and, for a loop body, the yielded slots.
    mutating func body(
        _ instructions: [Instruction], values: inout [ValueID: Int], indices: [IndexVar: Int], depth: Int,
        inLoop: Bool
    ) throws(Diagnostic) -> ([Step], [Int]?) {
        var steps: [Step] = []
        for (position, inst) in instructions.enumerated() {
            func use(_ v: ValueID) throws(Diagnostic) -> Int {
                guard let slot = values[v] else { throw error(inst, "value \(v) is not defined here") }
                return slot
            }
            func index(_ e: IndexExpr) throws(Diagnostic) -> SlotExpr {
                try compileIndex(e, indices, inst)
            }
            func access(_ list: [AxisAccess], _ t: TensorID) throws(Diagnostic) -> [SlotAccess] {
                guard t.index >= 0 && t.index < program.tensors.count else {
                    throw error(inst, "tensor \(t) does not exist")
                }
                guard list.count == program.tensors[t.index].shape.count else {
                    throw error(
                        inst,
                        "\(list.count) indices for tensor '\(program.tensors[t.index].name)' of rank "
                            + "\(program.tensors[t.index].shape.count)")
                }
                var out: [SlotAccess] = []
                for a in list {
                    switch a {
                    case .point(let e): out.append(.point(try index(e)))
                    case .slice(let e, let n):
                        guard n > 0 else { throw error(inst, "slice size \(n) must be positive") }
                        out.append(.slice(try index(e), size: n))
                    }
                }
                return out
            }
            for r in inst.results { try checkType(r, inst) }
            let op: StepOp
            switch inst.op {
            case .load(let t, let list):
                op = .load(tensor: t.index, try access(list, t))
                let sizes = list.compactMap { a -> Int? in
                    if case .slice(_, let n) = a { return n }
                    return nil
                }
                if let r = inst.results.first, r.type.shape != sizes {
                    throw error(inst, "the result type \(r.type) does not match the slice sizes \(sizes)")
                }
            case .store(let v, let t, let list): op = .store(try use(v), tensor: t.index, try access(list, t))
            case .fill(let c): op = .fill(c)
            case .index(let e, let axis):
                if let axis, axis < 0 || axis >= inst.results.first?.type.rank ?? 0 {
                    throw error(inst, "index axis \(axis) is out of range for the result type")
                }
                op = .index(try index(e), axis: axis)
            case .unary(let o, let a): op = .unary(o, try use(a))
            case .binary(let o, let a, let b): op = .binary(o, try use(a), try use(b))
            case .select(let c, let a, let b):
                if let r = inst.result, chosenSelects.contains(r.id) {
                    op = .selectTrue(try use(a), try use(b))
                } else {
                    op = .select(try use(c), try use(a), try use(b))
                }
            case .gather(let t, let list, let index, let axis):
                guard t.index >= 0 && t.index < program.tensors.count, axis >= 0,
                    axis < program.tensors[t.index].shape.count
                else { throw error(inst, "gather axis \(axis) is out of range for the tensor") }
                var full = list
                full.insert(.point(.constant(0)), at: Swift.min(axis, full.count))
                op = .gather(tensor: t.index, try access(full, t), index: try use(index), axis: axis)
            case .broadcast(let a, let axis): op = .broadcast(try use(a), axis: axis)
            case .reduce(let o, let a, let axis): op = .reduce(o, try use(a), axis: axis)
            case .scan(let o, let a, let axis, let reverse, let exclusive):
                op = .scan(o, try use(a), axis: axis, reverse: reverse, exclusive: exclusive)
            case .dot(let a, let b, let ta, let tb, let p):
                op = .dot(try use(a), try use(b), transposeA: ta, transposeB: tb, precision: p)
            case .transpose(let a): op = .transpose(try use(a))
            case .concat(let a, let b, let axis):
                if axis < 0 || axis >= inst.results.first?.type.rank ?? 0 {
                    throw error(inst, "concat axis \(axis) is out of range for the result type")
                }
                op = .concat(try use(a), try use(b), axis: axis)
            case .mask(let a, let row, let column, let predicate, let fill):
                op = .mask(try use(a), row: try index(row), column: try index(column), predicate, fill: fill)
            case .loop(let loop):
                op = .loop(try compileLoop(loop, inst, values: &values, indices: indices, depth: depth))
            case .yield(let vs):
                guard inLoop, position == instructions.count - 1 else {
                    throw error(inst, "'yield' must be the last instruction of a loop body")
                }
                var slots: [Int] = []
                for v in vs { slots.append(try use(v)) }
                return (steps, slots)
            }
            let needed: Int
            switch inst.op {
            case .store, .yield: needed = 0
            case .loop(let loop): needed = loop.carried.count
            case .load, .fill, .index, .unary, .binary, .select, .gather, .broadcast, .reduce, .scan, .dot, .transpose,
                .concat, .mask:
                needed = 1
            }
            guard inst.results.count == needed else {
                throw error(inst, "\(inst.op.mnemonic) defines \(needed) values but has \(inst.results.count) results")
            }
            var results: [Int] = []
            for r in inst.results {
                values[r.id] = nextValue
                results.append(nextValue)
                nextValue += 1
            }
            steps.append(Step(op: op, results: results, shapes: inst.results.map(\.type.shape), source: inst))
        }
        if inLoop { throw Diagnostic("kernel '\(kernel.name)': a loop body does not end with 'yield'") }
        return (steps, nil)
    }

    /// Compiles a loop: carried values get fresh slots, the counter the slot of its depth.
    mutating func compileLoop(
        _ loop: Loop, _ inst: Instruction, values: inout [ValueID: Int], indices: [IndexVar: Int], depth: Int
    ) throws(Diagnostic) -> CompiledLoop {
        guard loop.initial.count == loop.carried.count else {
            throw error(inst, "the loop has \(loop.carried.count) carried and \(loop.initial.count) initial values")
        }
        var initial: [Int] = []
        for v in loop.initial {
            guard let slot = values[v] else { throw error(inst, "value \(v) is not defined here") }
            initial.append(slot)
        }
        let lower = try compileIndex(loop.lower, indices, inst)
        let upper = try compileIndex(loop.upper, indices, inst)
        var inner = values
        var carried: [Int] = []
        for c in loop.carried {
            try checkType(c, inst)
            inner[c.id] = nextValue
            carried.append(nextValue)
            nextValue += 1
        }
        var innerIndices = indices
        innerIndices[loop.variable] = depth
        indexSlots = Swift.max(indexSlots, depth + 1)
        func element(_ c: LoopCondition, _ scope: [IndexVar: Int]) throws(Diagnostic) -> [SlotAccess] {
            guard c.tensor.index >= 0 && c.tensor.index < program.tensors.count else {
                throw error(inst, "the loop's condition reads tensor \(c.tensor), which does not exist")
            }
            let tensor = program.tensors[c.tensor.index]
            guard c.indices.count == tensor.shape.count else {
                throw error(
                    inst,
                    "the loop's condition gives \(c.indices.count) indices for tensor '\(tensor.name)' of rank "
                        + "\(tensor.shape.count)")
            }
            var access: [SlotAccess] = []
            for e in c.indices { access.append(.point(try compileIndex(e, scope, inst))) }
            return access
        }
        var condition: (tensor: Int, access: [SlotAccess])?
        if let c = loop.condition { condition = (c.tensor.index, try element(c, innerIndices)) }
        var bounds: (tensor: Int, lower: [SlotAccess], upper: [SlotAccess])?
        if let b = loop.bounds {
            guard b.lower.tensor == b.upper.tensor else {
                throw error(inst, "the loop's run-time bounds read two tensors; read both from one")
            }
            bounds = (b.lower.tensor.index, try element(b.lower, indices), try element(b.upper, indices))
        }
        var links: (next: Int, nextAccess: [SlotAccess], mode: Int, modeAccess: [SlotAccess])?
        if let l = loop.links {
            links = (
                l.next.tensor.index, try element(l.next, innerIndices), l.mode.tensor.index,
                try element(l.mode, indices)
            )
        }
        let outer = inner
        let (body, yielded) = try body(loop.body, values: &inner, indices: innerIndices, depth: depth + 1, inLoop: true)
        guard let yielded, yielded.count == carried.count else {
            throw error(
                inst, "the loop body yields \(yielded?.count ?? 0) values but the loop carries \(carried.count)")
        }
        var full: (tensor: Int, access: [SlotAccess], body: [Step], yielded: [Int])?
        if let f = loop.full {
            let (fast, chosen) = loop.bodyWhereTrue()
            var scope = outer
            let saved = chosenSelects
            chosenSelects = chosen
            let (steps, fastYielded) = try self.body(
                fast, values: &scope, indices: innerIndices, depth: depth + 1, inLoop: true)
            chosenSelects = saved
            guard let fastYielded, fastYielded.count == carried.count else {
                throw error(inst, "the loop body where its full element is set does not yield its carried values")
            }
            full = (f.element.tensor.index, try element(f.element, innerIndices), steps, fastYielded)
        }
        return CompiledLoop(
            indexSlot: depth, lower: lower, upper: upper, initial: initial, carried: carried, body: body,
            yielded: yielded, condition: condition, full: full, bounds: bounds, links: links)
    }

    /// The largest block the interpreter allocates (elements).
    static let maximumBlockElements = 1 << 26

    /// Checks that a value is a block the machine can hold: rank 0 to 2, positive sizes, at most
    /// `maximumBlockElements` elements.
    func checkType(_ value: Value, _ inst: Instruction) throws(Diagnostic) {
        var count = 1
        for d in value.type.shape {
            let (p, overflow) = count.multipliedReportingOverflow(by: d)
            guard d > 0, !overflow, p <= Self.maximumBlockElements else {
                throw error(
                    inst,
                    "value \(value.id) has type \(value.type); blocks have rank 0, 1 or 2, positive sizes and at most "
                        + "\(Self.maximumBlockElements) elements")
            }
            count = p
        }
        guard value.type.rank <= 2 else {
            throw error(inst, "value \(value.id) has type \(value.type); blocks have rank 0, 1 or 2")
        }
    }

    /// Resolves an index expression's variables to slots.
    func compileIndex(_ e: IndexExpr, _ indices: [IndexVar: Int], _ inst: Instruction) throws(Diagnostic) -> SlotExpr {
        switch e {
        case .constant(let c): return .constant(c)
        case .variable(let v):
            guard let slot = indices[v] else { throw error(inst, "index variable '\(v.name)' is not in scope") }
            return .slot(slot)
        case .add(let a, let b): return .add(try compileIndex(a, indices, inst), try compileIndex(b, indices, inst))
        case .mul(let a, let c): return .mul(try compileIndex(a, indices, inst), c)
        case .floorDiv(let a, let c): return .floorDiv(try compileIndex(a, indices, inst), c)
        case .min(let a, let b): return .min(try compileIndex(a, indices, inst), try compileIndex(b, indices, inst))
        case .max(let a, let b): return .max(try compileIndex(a, indices, inst), try compileIndex(b, indices, inst))
        }
    }
}
