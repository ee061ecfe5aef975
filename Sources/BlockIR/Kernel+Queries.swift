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

    /// The block size `B` when `v` appears only as `v * B +: B` slice starts.
    public func blockSize(of v: IndexVar) -> Int? {
        var size: Int?
        var ok = true
        func check(_ access: [AxisAccess]) {
            for a in access {
                switch a {
                case .slice(.mul(.variable(let w), let b), let n) where w == v && b == n:
                    if size == nil { size = n } else if size != n { ok = false }
                case .slice(let s, _): if s.variables.contains(v) { ok = false }
                case .point(let e): if e.variables.contains(v) { ok = false }
                }
            }
        }
        func visit(_ body: [Instruction]) {
            for inst in body {
                switch inst.op {
                case .load(_, let a), .store(_, _, let a), .gather(_, let a, _, _): check(a)
                case .mask(_, let r, let c, _, _):
                    if r.variables.contains(v) || c.variables.contains(v) { ok = false }
                case .index(let e, _): if e.variables.contains(v) { ok = false }
                case .loop(let loop):
                    if loop.lower.variables.contains(v) || loop.upper.variables.contains(v) { ok = false }
                    // A guard addresses one element per block: its indices count blocks, so the
                    // block size along `v` is fixed by the tensor the guard reads.
                    if loop.elementReads.contains(where: { $0.indices.contains { $0.variables.contains(v) } }) {
                        ok = false
                    }
                    visit(loop.body)
                default: break
                }
            }
        }
        visit(self.body)
        return ok ? size : nil
    }
}

extension Kernel {
    /// The instruction that defines `value` (a result; for a loop, one of its results), at any depth.
    public func instruction(defining value: ValueID) -> Instruction? {
        var found: Instruction?
        walk { inst in
            if found == nil, inst.defines(value) { found = inst }
        }
        return found
    }
}

extension Kernel {
    /// The value of every `fill` at any depth (fills are constants wherever they are defined:
    /// hoisting moves them out of loops).
    public func fillConstants() -> [ValueID: Float] {
        var constants: [ValueID: Float] = [:]
        walk { inst in
            if case .fill(let c) = inst.op, let r = inst.result { constants[r.id] = c }
        }
        return constants
    }

    /// The instruction that defines each value (a loop for each of its results), at any depth.
    public func definitions() -> [ValueID: Instruction] {
        var definitions: [ValueID: Instruction] = [:]
        walk { inst in for r in inst.results { definitions[r.id] = inst } }
        return definitions
    }
}
