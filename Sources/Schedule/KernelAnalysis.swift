import BlockIR

/// The facts the C emitter needs about one kernel before writing it: every value's layout and
/// static extents, which loads alias global memory, and which `dot`s accumulate in place.
package struct KernelAnalysis {
    package let program: Program
    package let kernel: Kernel
    /// The layout of every value, carried values and loop results included.
    package var layouts: [ValueID: BlockLayout] = [:]
    /// How often each value is read (operands, yields, loop initial values).
    package var useCounts: [ValueID: Int] = [:]
    /// `add` results that accumulate a `dot` in place, mapped to that dot's result.
    package var fusedDotOfAdd: [ValueID: ValueID] = [:]
    /// The `dot` results computed by the `add` that reads them.
    package var fusedDots: Set<ValueID> = []
    /// The dot instructions by result.
    package var dots: [ValueID: Op] = [:]
    /// The storage tensors the kernel stores to (loads from them are copied, never aliased).
    package var storedStorage: Set<TensorID> = []
    /// The storage tensors the kernel loads from.
    package var loadedStorage: Set<TensorID> = []
    /// The type of every value.
    package let types: [ValueID: BlockType]
    /// Whether a block of a bf16 tensor read only by bf16 dots may stay in global memory, where
    /// the product packs its bf16 elements directly (the C runtime's `blk_gemm_bf16` does; the
    /// CUDA one reads f32 buffers).
    package let readsBF16InPlace: Bool
    /// Values every reader of which is a bf16 `dot` (as either operand).
    private var readOnlyByBF16Dots: Set<ValueID> = []
    /// Loads of bf16 tensors kept in global memory (`readsBF16InPlace`): their pointers hold
    /// bf16 bit patterns (`uint16_t`), not floats.
    package private(set) var bf16Views: Set<ValueID> = []

    /// Loads of wide matrices copied into a dense buffer because several ops read them
    /// (`aliases`); a schedule that packs their tensor once per call reads them packed instead.
    package private(set) var copiedWideBlocks: Set<ValueID> = []
    /// Loads the schedule reads from a copy packed once per call: views, never copied.
    package let packedLoads: Set<ValueID>
    /// Scaled blocks (`mul(load, broadcast(vector))`) the schedule computes where it packs the
    /// block once per call (`KernelSchedule.Prepack.scale`): each reads its packed copy like a
    /// load, with the load's strides and extents, and computes nothing here.
    package let packedScaledBlocks: [ValueID: ValueID]

    /// Whether an f32 product packs a right operand whose rows lie far apart (a CPU's L1 sets; a
    /// GPU's product reads such a block where it is).
    package let packsRowsFarApart: Bool

    /// Whether a packed right operand's rows are padded (a GPU's shared memory: `packedRowStride`).
    package let padsPackedRows: Bool

    /// Analyses a kernel; `readsBF16InPlace` for targets whose bf16 product reads bf16 memory;
    /// `packedLoads`: loads whose blocks the schedule packs once per call; `packsRowsFarApart`
    /// (false for a GPU): see `needsPacking`; `padsPackedRows` (a GPU): see `packedRowStride`.
    package init(
        program: Program, kernel: Kernel, readsBF16InPlace: Bool = false, packedLoads: Set<ValueID> = [],
        packedScaledBlocks: [ValueID: ValueID] = [:], packsRowsFarApart: Bool = true, padsPackedRows: Bool = false
    ) {
        self.packedScaledBlocks = packedScaledBlocks
        self.packsRowsFarApart = packsRowsFarApart
        self.padsPackedRows = padsPackedRows
        self.program = program
        self.kernel = kernel
        self.types = kernel.valueTypes()
        self.readsBF16InPlace = readsBF16InPlace
        self.packedLoads = packedLoads
        var otherReaders: Set<ValueID> = []
        kernel.walk { inst in
            for v in inst.op.operands { useCounts[v, default: 0] += 1 }
            if case .dot(let a, let b, _, _, .bf16) = inst.op {
                readOnlyByBF16Dots.formUnion([a, b])
            } else {
                otherReaders.formUnion(inst.op.operands)
            }
            switch inst.op {
            case .store(_, let t, _): storedStorage.insert(program.storage(of: t))
            case .load(let t, _), .gather(let t, _, _, _): loadedStorage.insert(program.storage(of: t))
            case .dot: if let r = inst.result { dots[r.id] = inst.op }
            case .fill, .index, .unary, .binary, .select, .broadcast, .reduce, .scan, .transpose, .concat, .mask, .loop,
                .yield:
                break
            }
        }
        readOnlyByBF16Dots.subtract(otherReaders)
        findFusedDots(kernel.body)
        var env: [IndexVar: IndexRange] = [:]
        for axis in kernel.grid { env[axis.variable] = IndexRange(lower: 0, upper: axis.extent - 1) }
        analyse(kernel.body, env: env)
    }

    /// Finds `add(x, dot(a, b))` where the dot has no other reader and lives in the same body.
    private mutating func findFusedDots(_ body: [Instruction]) {
        var definedHere: Set<ValueID> = []
        for inst in body {
            if case .loop(let loop) = inst.op { findFusedDots(loop.body) }
            if case .binary(.add, let x, let y) = inst.op, let r = inst.result, r.type.rank == 2 {
                for (d, other) in [(y, x), (x, y)] where d != other {
                    guard definedHere.contains(d), dots[d] != nil, useCounts[d] == 1, !fusedDots.contains(d),
                        types[other]?.shape == r.type.shape
                    else { continue }
                    fusedDotOfAdd[r.id] = d
                    fusedDots.insert(d)
                    break
                }
            }
            for r in inst.results { definedHere.insert(r.id) }
        }
    }

    /// Whether a load reads its tensor in place (no copy): an f32 tensor (other element types
    /// are converted into a buffer, but for a bf16 block only bf16 dots read, with
    /// `readsBF16InPlace`), not a tensor the kernel writes, unit stride along the block's last
    /// axis, and not a `dot` operand that packing would not cover.
    private func aliases(_ id: ValueID, tensor: TensorID, strides: [Int]) -> Bool {
        guard !strides.isEmpty, strides.last == 1 else { return false }
        switch program[tensor].elementType {
        case .f32: break
        case .bf16:
            guard readsBF16InPlace, strides.count == 2, readOnlyByBF16Dots.contains(id) else { return false }
            return !storedStorage.contains(program.storage(of: tensor))
        case .f16, .i32, .bool: return false
        }
        // A block of a wide matrix read more than once is copied into a dense local buffer: its
        // rows, 2 KiB or more apart, would map to few L1 sets and evict each other on every pass.
        if Self.isWideBlockReadTwice(strides, useCounts[id] ?? 0) && !packedLoads.contains(id) { return false }
        return !storedStorage.contains(program.storage(of: tensor))
    }

    /// A block whose rows lie 2 KiB or more apart, read by two or more ops.
    private static func isWideBlockReadTwice(_ strides: [Int], _ uses: Int) -> Bool {
        strides.count == 2 && strides[0] >= 512 && uses >= 2
    }

    /// The element strides of a global tensor in its storage (row-major, or the viewed tensor's
    /// for a window view).
    package func tensorStrides(_ t: TensorID) -> [Int] { program.placement(of: t).strides }

    private mutating func analyse(_ body: [Instruction], env: [IndexVar: IndexRange]) {
        for inst in body {
            guard let result = inst.results.first else {
                // A loop without results still has a body to analyse.
                if case .loop(let loop) = inst.op { analyseLoop(inst, loop, env: env) }
                continue
            }
            let shape = result.type.shape
            let id = result.id
            if shape.isEmpty, inst.results.count == 1, !inst.op.isLoop {
                layouts[id] = BlockLayout(shape: [], base: .scalar(id), strides: [], staticExtents: [])
                continue
            }
            if Self.isElementwise(inst.op) && (inst.op.operands.allSatisfy(isSplat) || isFullOnes(inst.op, shape))
                || isReductionOfSplat(inst.op)
            {
                // Every operand repeats one element (fills, grid positions, scalars): so does the
                // result, computed once as a scalar instead of once per element.
                layouts[id] = BlockLayout(
                    shape: shape, base: .scalar(id), strides: shape.map { _ in 0 }, staticExtents: shape)
                continue
            }
            switch inst.op {
            case .load(let t, let access):
                let tStrides = tensorStrides(t)
                var strides: [Int] = []
                var extents: [Int?] = []
                for (axis, a) in access.enumerated() {
                    guard case .slice(let start, let size) = a else { continue }
                    strides.append(tStrides[axis])
                    let range = IndexRange.of(start, env)
                    extents.append(
                        IndexRange.staticExtent(dimension: program[t].shape[axis], start: range, size: size))
                }
                if program[t].elementType == .f32, Self.isWideBlockReadTwice(strides, useCounts[id] ?? 0),
                    !storedStorage.contains(program.storage(of: t))
                {
                    copiedWideBlocks.insert(id)
                }
                if aliases(id, tensor: t, strides: strides) {
                    layouts[id] = BlockLayout(shape: shape, base: .global(id), strides: strides, staticExtents: extents)
                    if program[t].elementType == .bf16 { bf16Views.insert(id) }
                } else {
                    layouts[id] = owned(id, shape, extents)
                }
            case .store, .yield:
                break
            case .fill, .index(_, axis: nil):
                layouts[id] = BlockLayout(
                    shape: shape, base: .scalar(id), strides: shape.map { _ in 0 }, staticExtents: shape)
            case .index(_, let axis?) where axis < shape.count:
                // Positions along one axis, repeated along the others: a buffer of one position per
                // element of that axis, read with zero strides elsewhere (filled without reading memory).
                layouts[id] = BlockLayout(
                    shape: shape, base: .buffer(id), strides: shape.indices.map { $0 == axis ? 1 : 0 },
                    staticExtents: shape)
            case .index:
                layouts[id] = owned(id, shape, shape)
            case .unary(_, let a):
                layouts[id] = owned(id, shape, extents(a, shape))
            case .mask(let a, _, _, _, _), .scan(_, let a, _, _, _):
                layouts[id] = owned(id, shape, extents(a, shape))
            case .select(let c, let a, let b):
                let e = [c, a, b].map { extents($0, shape) }
                layouts[id] = owned(id, shape, zip(zip(e[0], e[1]).map(Self.minExtent), e[2]).map(Self.minExtent))
            case .gather(let t, let access, let index, let axis):
                // Never in place: the rows it reads are not a box of the tensor.
                var others = program[t].shape
                if axis < others.count { others.remove(at: axis) }
                var ext: [Int?] = []
                for (k, a) in access.enumerated() {
                    if k == axis { ext += extents(index, layouts[index]?.shape ?? []) }
                    guard case .slice(let start, let size) = a, k < others.count else { continue }
                    ext.append(
                        IndexRange.staticExtent(dimension: others[k], start: IndexRange.of(start, env), size: size))
                }
                if axis >= access.count { ext += extents(index, layouts[index]?.shape ?? []) }
                layouts[id] = owned(id, shape, ext)
            case .binary(_, let a, let b):
                if let load = packedScaledBlocks[id], let l = layouts[load] {
                    layouts[id] = BlockLayout(
                        shape: shape, base: .global(id), strides: l.strides, staticExtents: l.staticExtents)
                } else if shape.isEmpty {
                    layouts[id] = BlockLayout(shape: [], base: .scalar(id), strides: [], staticExtents: [])
                } else {
                    let ea = extents(a, shape)
                    let eb = extents(b, shape)
                    layouts[id] = owned(id, shape, zip(ea, eb).map(Self.minExtent))
                }
            case .broadcast(let a, let axis):
                let la = layouts[a]!
                var strides = la.strides
                var ext = la.staticExtents
                strides.insert(0, at: Swift.min(axis, strides.count))
                ext.insert(shape[Swift.min(axis, shape.count - 1)], at: Swift.min(axis, ext.count))
                layouts[id] = BlockLayout(shape: shape, base: la.base, strides: strides, staticExtents: ext)
            case .reduce(_, let a, let axis):
                var ext = layouts[a]!.staticExtents
                if axis < ext.count { ext.remove(at: axis) }
                layouts[id] =
                    shape.isEmpty
                    ? BlockLayout(shape: [], base: .scalar(id), strides: [], staticExtents: [])
                    : owned(id, shape, ext)
            case .dot(let a, let b, let ta, let tb, _):
                let ea = layouts[a]!.staticExtents
                let eb = layouts[b]!.staticExtents
                let m = ea.count == 2 ? (ta ? ea[1] : ea[0]) : nil
                let n = eb.count == 2 ? (tb ? eb[0] : eb[1]) : nil
                layouts[id] = owned(id, shape, [m, n])
            case .concat(let a, let b, let axis):
                // The first operand is full along `axis`; the second's extent follows it.
                let ea = extents(a, shape)
                let eb = extents(b, shape)
                var ext = zip(ea, eb).map(Self.minExtent)
                if axis < ext.count, axis < eb.count, axis < shape.count {
                    ext[axis] = eb[axis].map { shape[axis] - (layouts[b]?.shape[axis] ?? 0) + $0 }
                }
                layouts[id] = owned(id, shape, ext)
            case .transpose(let a):
                let la = layouts[a]!
                layouts[id] = BlockLayout(
                    shape: shape, base: la.base, strides: la.strides.reversed(),
                    staticExtents: la.staticExtents.reversed())
            case .loop(let loop):
                analyseLoop(inst, loop, env: env)
            }
            if Self.isElementwise(inst.op), fusedDotOfAdd[id] == nil, layouts[id]?.base == .buffer(id) {
                // Operands that all repeat along an axis (positions along another axis, a row's
                // statistic, a head's slope) give a result that repeats along it: its buffer holds
                // one element per position of the other axes.
                let repeated = shape.indices.filter { k in
                    inst.op.operands.allSatisfy { v in
                        guard let l = layouts[v] else { return false }
                        return l.shape.isEmpty || (k < l.strides.count && l.strides[k] == 0)
                    }
                }
                if !repeated.isEmpty { layouts[id]!.strides = Self.compactStrides(shape, repeating: repeated) }
            }
            if let d = fusedDotOfAdd[id], let ld = layouts[d], var l = layouts[id] {
                l.staticExtents = zip(l.staticExtents, ld.staticExtents).map(Self.minExtent)
                layouts[id] = l
            }
        }
    }

    private mutating func analyseLoop(_ inst: Instruction, _ loop: Loop, env: [IndexVar: IndexRange]) {
        var inner = env
        let lo = IndexRange.of(loop.lower, env)
        let hi = IndexRange.of(loop.upper, env)
        inner[loop.variable] = IndexRange(lower: lo.lower, upper: Swift.max(lo.lower, hi.upper - 1))
        var carriedExtents = loop.initial.map { layouts[$0]?.staticExtents ?? [] }
        for _ in 0..<4 {
            for (k, c) in loop.carried.enumerated() {
                layouts[c.id] = carriedLayout(c, carriedExtents[k])
            }
            analyse(loop.body, env: inner)
            guard case .yield(let ys)? = loop.body.last?.op else { break }
            var changed = false
            for (k, y) in ys.enumerated() where k < carriedExtents.count {
                let ey = layouts[y]?.staticExtents ?? []
                let merged = zip(carriedExtents[k], ey).map { $0 == $1 ? $0 : nil }
                if merged != carriedExtents[k] {
                    carriedExtents[k] = merged
                    changed = true
                }
            }
            if !changed { break }
        }
        for (k, r) in inst.results.enumerated() where k < loop.carried.count {
            var l = carriedLayout(loop.carried[k], carriedExtents[k])
            l.shape = r.type.shape
            layouts[r.id] = l
        }
    }

    /// Whether the op is `one` of a block whose every element is valid (its static extents are
    /// its shape): 1 everywhere.
    private func isFullOnes(_ op: Op, _ shape: [Int]) -> Bool {
        guard case .unary(.one, let a) = op, let l = layouts[a] else { return false }
        return l.staticExtents == shape.map { Optional($0) }
    }

    /// Whether the op reduces a splat along an axis of known extent: `n·s` for a sum, `s` for a
    /// maximum or minimum.
    package func isReductionOfSplat(_ op: Op) -> Bool {
        guard case .reduce(_, let a, let axis) = op, isSplat(a), let l = layouts[a] else { return false }
        return axis < l.staticExtents.count && l.staticExtents[axis] != nil
    }

    /// Whether a value repeats one scalar over its block (a rank-0 value or a splat).
    package func isSplat(_ v: ValueID) -> Bool {
        guard let l = layouts[v], case .scalar = l.base else { return false }
        return l.strides.allSatisfy { $0 == 0 }
    }

    /// Row-major strides over the axes not in `repeating`, 0 along those.
    private static func compactStrides(_ shape: [Int], repeating: [Int]) -> [Int] {
        var strides = Array(repeating: 0, count: shape.count)
        var s = 1
        for k in shape.indices.reversed() where !repeating.contains(k) {
            strides[k] = s
            s *= shape[k]
        }
        return strides
    }

    private static func isElementwise(_ op: Op) -> Bool {
        switch op {
        case .unary, .binary, .select: return true
        case .load, .store, .fill, .index, .gather, .broadcast, .reduce, .scan, .dot, .transpose, .concat, .mask,
            .loop, .yield:
            return false
        }
    }

    private func carriedLayout(_ c: Value, _ extents: [Int?]) -> BlockLayout {
        let shape = c.type.shape
        if shape.isEmpty { return BlockLayout(shape: [], base: .scalar(c.id), strides: [], staticExtents: []) }
        return owned(c.id, shape, extents.count == shape.count ? extents : shape.map { _ in nil })
    }

    private func owned(_ id: ValueID, _ shape: [Int], _ extents: [Int?]) -> BlockLayout {
        BlockLayout(
            shape: shape, base: .buffer(id), strides: BlockLayout.rowMajor(shape),
            staticExtents: extents.count == shape.count ? extents : shape.map { _ in nil })
    }

    /// A value's static extents seen from a result of `shape` (a rank-0 operand spans it).
    private func extents(_ v: ValueID, _ shape: [Int]) -> [Int?] {
        guard let l = layouts[v], !l.shape.isEmpty else { return shape }
        return l.staticExtents
    }

    package static func minExtent(_ a: Int?, _ b: Int?) -> Int? {
        if a == 0 || b == 0 { return 0 }
        guard let a, let b else { return nil }
        return Swift.min(a, b)
    }
}

extension Op {
    /// Whether the op is a loop.
    package var isLoop: Bool {
        if case .loop = self { return true }
        return false
    }
}

extension KernelAnalysis {
    /// The strides of `op(b)` of a dot along its `k` and `j` axes.
    package func rightStrides(_ b: ValueID, transposed: Bool) -> (k: Int, j: Int) {
        let s = layouts[b]!.strides
        return transposed ? (s[1], s[0]) : (s[0], s[1])
    }

    /// Whether a dot's right operand is packed first: to unit stride along `j`, or, on a CPU,
    /// into a dense block when its rows lie far apart (a block of a wide global matrix: rows 2 KiB
    /// or more apart map to few L1 sets and evict each other during the product; a GPU's product
    /// reads them where they are). A bf16 dot always packs (into bf16 pairs on a CPU with
    /// AVX512_BF16, rounded elsewhere).
    /// A product of at most `registerTileRows` rows (one register tile of the C runtime's
    /// micro-kernel: a decode step's matrix-vector product) reads each row of its right operand
    /// once, streaming it: packing would only copy it.
    package func needsPacking(_ dot: ValueID) -> Bool {
        guard case .dot(_, let b, _, let tb, let precision)? = dots[dot] else { return false }
        if precision == .bf16 { return true }
        let (k, j) = rightStrides(b, transposed: tb)
        let rows = types[dot]?.shape.first ?? Int.max
        return j != 1 || (packsRowsFarApart && k >= 512 && rows > Self.registerTileRows)
    }

    /// The rows of the C runtime's register tile (`blk_gemm`: 6×64 with AVX-512, 6×16 with AVX2).
    package static let registerTileRows = 6

    /// The elements of the packed right operand of a dot (`k` rows of `packedRowStride` of its static shape).
    package func packedCount(_ dot: ValueID) -> Int {
        guard case .dot(_, let b, _, let tb, _)? = dots[dot], let shape = types[b]?.shape, shape.count == 2 else {
            return 0
        }
        return (tb ? shape[1] : shape[0]) * packedRowStride(dot)
    }

    /// The row stride (elements) of a dot's packed right operand: its `n` columns, padded by 4 on a GPU
    /// (`padsPackedRows`) when `n` is a multiple of 32. Rows a multiple of 32 floats apart put a column's elements of
    /// every row in one shared-memory bank: the tensor cores' B fragment reads rows `2t` (bf16) or `t` (tf32) of
    /// column `g` in one load, 4 rows per bank (4-way conflicts); 4 more floats per row move each row 4 banks on,
    /// so the 32 lanes read 32 different banks. A padded row of 16-byte-aligned floats stays 16-byte aligned (the
    /// register-tiled product's `float4` reads).
    package func packedRowStride(_ dot: ValueID) -> Int {
        guard case .dot(_, let b, _, let tb, _)? = dots[dot], let shape = types[b]?.shape, shape.count == 2 else {
            return 0
        }
        let n = tb ? shape[0] : shape[1]
        return padsPackedRows && n % 32 == 0 ? n + 4 : n
    }
}
