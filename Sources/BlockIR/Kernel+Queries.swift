extension Kernel {
    /// Calls `visit` on every instruction, loop bodies included, in program order (a loop
    /// instruction before its body).
    public func walk(_ visit: (Instruction) -> Void) {
        func walkBody(_ body: [Instruction]) {
            for inst in body {
                visit(inst)
                if case .loop(let loop) = inst.op { walkBody(loop.body) }
            }
        }
        walkBody(body)
    }

    /// The type of every value defined in the kernel, loop-carried block arguments included.
    public func valueTypes() -> [ValueID: BlockType] {
        var types: [ValueID: BlockType] = [:]
        walk { inst in
            for r in inst.results { types[r.id] = r.type }
            if case .loop(let loop) = inst.op {
                for c in loop.carried { types[c.id] = c.type }
            }
        }
        return types
    }

    /// One more than the largest value number in the kernel (the next free number).
    public var nextValueNumber: Int {
        var next = 0
        walk { inst in
            for r in inst.results { next = Swift.max(next, r.id.number + 1) }
            if case .loop(let loop) = inst.op {
                for c in loop.carried { next = Swift.max(next, c.id.number + 1) }
            }
        }
        return next
    }

    /// The grid index variables, in grid order.
    public var gridVariables: [IndexVar] { grid.map(\.variable) }

    /// The number of kernel instances (the product of the grid extents).
    public var instanceCount: Int { grid.reduce(1) { $0 * $1.extent } }
}
