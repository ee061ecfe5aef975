import BlockIR

/// How one kernel of a fused program runs on a target: the facts the emitters render and no
/// longer compute.
///
/// - `analysis`: every value's storage (a buffer of its own, a view of another value's buffer
///   or of global memory, a splat) and static extents, and which `dot`s accumulate into the
///   `add` that reads them;
/// - `buffers`: which physical buffer holds each value (in-place results, staging, packing);
/// - the parallel axes and how their instances are balanced over CPU threads;
/// - for GPU targets, the launch configuration (CUDA blocks, threads, shared memory);
/// - the micro-kernel of each `dot`.
package struct KernelSchedule: Sendable {
    /// How the instances of the grid are handed to CPU threads.
    package enum Balance: String, Hashable, Sendable {
        /// Equal chunks: every instance does the same work.
        case even
        /// One instance at a time: a loop bound reads a grid variable, so instances differ.
        case dynamic
    }

    /// The micro-kernel of one `dot`.
    package struct DotKernel: Hashable, Sendable {
        /// The dot's result.
        package var dot: ValueID
        /// The `add` the product accumulates into (`add(x, dot(a, b))`), if any.
        package var accumulatesInto: ValueID?
        /// Whether the right operand is first packed into a dense buffer.
        package var packsRight: Bool
        /// Whether the product prefetches the right operand's block of the enclosing loop's next
        /// iteration (CPU: a block read in place from global memory that moves with the loop).
        package var prefetchesNext: Bool
        /// The operands' precision: a bf16 product multiplies bf16 pairs (`vdpbf16ps`) where the
        /// C compiler's target has AVX512_BF16, and rounded f32 operands elsewhere.
        package var precision: DotPrecision
        /// The packed copy (`prepacks` index) the right operand is read from, if any.
        package var prepackedRight: Int?
        /// GPU targets: how the threads of a CUDA block compute the product; `nil` on a CPU.
        package var gpu: GPUProduct?
    }

    /// How a GPU computes one `dot` (`DotKernel.gpu`).
    package enum GPUProduct: Hashable, Sendable {
        /// `blk_gemm`/`blk_gemm_bf16` (4×4) or `blk_gemm_4x1`/`blk_gemm_bf16_4x1`: each thread a `tile` of outputs
        /// on the CUDA cores (`registerTile`); for a bf16 dot, why it does not use the tensor cores.
        case registerTiled(tile: RegisterTile, fallback: String?)
        /// `blk_gemm_mma_RxC`: bf16 `mma.sync.m16n8k16` on the tensor cores, each warp `rows × columns`
        /// outputs per tile (multiples of 16 and 8).
        case tensorCores(rows: Int, columns: Int)
        /// `blk_gemm_mma_tf32_RxC`: an f32 dot as TF32 `mma.sync.m16n8k8` on the tensor cores (the target's `tf32`
        /// option), each warp `rows × columns` outputs per tile.
        case tf32TensorCores(rows: Int, columns: Int)
    }

    /// The outputs one thread of a register-tiled GPU product computes: `rows × columns`, the tiles row-major over
    /// the output, consecutive threads on consecutive tiles.
    package struct RegisterTile: Hashable, Sendable, CustomStringConvertible {
        package var rows: Int
        package var columns: Int
        package init(rows: Int, columns: Int) { (self.rows, self.columns) = (rows, columns) }
        package var description: String { "\(rows)x\(columns)" }
    }

    /// The register tiles of the CUDA runtime, preferred first: 4×4 (`blk_gemm`), and 4×1 (`blk_gemm_4x1`) for
    /// outputs too small to give every thread a 4×4 tile.
    package static let registerTiles = [RegisterTile(rows: 4, columns: 4), RegisterTile(rows: 4, columns: 1)]

    /// How well a register-tiled `m × n` product on `threads` threads keeps them busy with `tile`:
    /// - `use`, the share of the threads with a tile in each round (`⌈m/r⌉·⌈n/c⌉` tiles over rounds of `threads`);
    /// - `sharedMemory`, the share of the SM's FMA rate its shared-memory loads allow: per `k`, a warp (32
    ///   consecutive tiles, over `C = min(32, ⌈n/c⌉)` tile columns and `R = min(⌈m/r⌉, ⌈32/C⌉)` tile rows) loads
    ///   `4·R·r` distinct bytes of A and `4·C·c` of B (equal addresses in a warp are one broadcast read), at
    ///   `sharedBytesPerClock` per SM, for `32·r·c` FMAs at `fmaPerClock` per SM: `min(1, FMA clocks / load clocks)`.
    /// A 4×4 tile of a 64-wide product loads 288 bytes per `k` for 512 FMAs (compute-bound on both targets); a 4×1
    /// tile 144 bytes for 128 FMAs (0.89 of sm_90's 128 FMAs per clock, 1.0 of sm_80's 64).
    package static func registerTileEfficiency(
        m: Int, n: Int, threads: Int, tile: RegisterTile, fmaPerClock: Int, sharedBytesPerClock: Int
    ) -> (use: Double, sharedMemory: Double) {
        let tileColumns = (n + tile.columns - 1) / tile.columns
        let tiles = ((m + tile.rows - 1) / tile.rows) * tileColumns
        let rounds = (tiles + threads - 1) / threads
        let use = Double(tiles) / Double(max(1, rounds * threads))
        let warpColumns = min(32, tileColumns)
        let warpRows = min((m + tile.rows - 1) / tile.rows, (32 + warpColumns - 1) / warpColumns)
        let bytes = 4 * (warpRows * tile.rows + warpColumns * tile.columns)
        let loadClocks = Double(bytes) / Double(sharedBytesPerClock)
        let fmaClocks = Double(32 * tile.rows * tile.columns) / Double(fmaPerClock)
        return (use, min(1, fmaClocks / loadClocks))
    }

    /// The register tile of an `m × n` product on `threads` threads: the one whose use times shared-memory share
    /// (`registerTileEfficiency`) is highest, the first of `registerTiles` on a tie (4×4 wherever the output gives
    /// every thread one). Targets without `resources` take 4×4.
    package static func registerTile(m: Int, n: Int, threads: Int, target: TargetDescription) -> RegisterTile {
        guard let r = target.resources else { return registerTiles[0] }
        var best = registerTiles[0]
        var bestScore = -1.0
        for tile in registerTiles {
            let e = registerTileEfficiency(
                m: m, n: n, threads: threads, tile: tile, fmaPerClock: r.fmaPerClock,
                sharedBytesPerClock: r.sharedBytesPerClock)
            if e.use * e.sharedMemory > bestScore + 1e-9 { (best, bestScore) = (tile, e.use * e.sharedMemory) }
        }
        return best
    }

    /// The warp tiles of the tensor-core product, largest first (the runtime's `blk_gemm_mma_RxC`).
    package static let warpTiles: [(rows: Int, columns: Int)] = [(32, 32), (32, 16), (16, 16), (16, 8)]

    /// How a GPU target computes a dot of precision `precision` with an `m × n` output (static sizes): a bf16
    /// dot (or, with the target's `tf32` option, an f32 dot as TF32) on tensor cores where the target has them,
    /// the block is whole warps and the output spans at least 8 along both axes (an mma computes 16 × 8); the
    /// warp tile is the largest that still gives every warp a tile (else the smallest), so small products keep
    /// all warps busy. An f32 dot without the option stays register-tiled (exact f32 products).
    package static func gpuProduct(
        precision: DotPrecision, m: Int, n: Int, threads: Int, target: TargetDescription
    ) -> GPUProduct {
        let tile = registerTile(m: m, n: n, threads: threads, target: target)
        guard precision == .bf16 || target.tf32 else { return .registerTiled(tile: tile, fallback: nil) }
        let kind = precision == .bf16 ? "bf16" : "tf32"
        guard target.bf16TensorCores else {
            return .registerTiled(tile: tile, fallback: "\(target.name) has no \(kind) tensor cores")
        }
        guard threads % 32 == 0 else {
            return .registerTiled(tile: tile, fallback: "\(threads) threads are not whole warps")
        }
        guard m >= 8, n >= 8 else {
            return .registerTiled(
                tile: tile, fallback: "its \(m)x\(n) output is under 8 along an axis (an mma computes 16x8)")
        }
        let warps = threads / 32
        let warpTile =
            warpTiles.first { ((m + $0.rows - 1) / $0.rows) * ((n + $0.columns - 1) / $0.columns) >= warps }
            ?? warpTiles[warpTiles.count - 1]
        return precision == .bf16
            ? .tensorCores(rows: warpTile.rows, columns: warpTile.columns)
            : .tf32TensorCores(rows: warpTile.rows, columns: warpTile.columns)
    }

    /// A tensor packed once per call, before the grid runs, into the layout its products read
    /// (CPU): bf16 pairs for bf16 products, unit stride along `j` for f32 ones (a transposed `K`,
    /// or rows far apart). Every instance then reads its blocks packed, instead of each instance
    /// packing the blocks it shares with the others.
    package struct Prepack: Hashable, Sendable {
        /// The tensor (a storage tensor, row-major).
        package var tensor: TensorID
        /// The products' precision: bf16 pairs (`uint32_t` words) or f32 elements.
        package var precision: DotPrecision
        /// f32: a vector along the contracted axis (a 1-D tensor, `k`-th element for `B(k, ·)`)
        /// that multiplies (or, `scaleDivides`, divides) each packed row: the products read
        /// `mul(block, broadcast(vector))` (R4a's column scale moved onto the right operand,
        /// LayerNorm's γ) from the copy, which computes it once per call.
        package var scale: TensorID? = nil
        package var scaleDivides = false
        /// Whether the products contract the tensor's rows (`B(k, j) = T[…, k, j]`), else its
        /// columns (`B(k, j) = T[…, j, k]`, a transposed operand such as `K` in `Q·Kᵀ`).
        package var kAlongRows: Bool
        /// The product of the leading axes' sizes, and the last two axes' sizes.
        package var leading: Int
        package var rows: Int
        package var columns: Int
        /// The width of a tile along `j`: the blocks' `j` size, or for f32 blocks wider than
        /// `panelWidth` (and a multiple of it), `panelWidth`. Each tile's packed rows are contiguous
        /// (`kRows × tile` words), so a block's rows lie `tile` words apart, not a whole row of the
        /// tensor apart (a power-of-two stride that would put them all in one L1 set); a wide block
        /// is `width / tile` consecutive tiles (panels), each streamed as one contiguous run.
        package var tile: Int
        /// The widest f32 tile: the AVX-512 micro-kernel's column strip. A product of a wider block
        /// walks its panels one by one (`blk_gemm_panels`), so each strip of `B` it reads is
        /// contiguous rather than `kRows` rows a whole block apart (a product of a `[64, 2048]`
        /// block of SwiGLU's down projection streamed its rows 8 KiB apart, 22 % slower).
        package static let panelWidth = 64
        /// The words between consecutive tiles (panels) of one leading index.
        package var tileWords: Int { kRows * tile }
        /// The packed rows along `k` (pairs for bf16: `⌈k-size / 2⌉`), the `j` size, and the tiles
        /// along it.
        package var kRows: Int {
            let k = kAlongRows ? rows : columns
            return precision == .bf16 ? (k + 1) / 2 : k
        }
        package var jSize: Int { kAlongRows ? columns : rows }
        package var tiles: Int { (jSize + tile - 1) / tile }
        /// The packed copy's 32-bit words: per leading index, `tiles` tiles of `kRows × tile`.
        package var words: Int { leading * tiles * kRows * tile }
    }

    /// The kernel's position in the program.
    package let index: Int
    /// The kernel.
    package var kernel: Kernel { analysis.kernel }
    /// Storage and extents of every value.
    package let analysis: KernelAnalysis
    /// The physical buffers.
    package let buffers: BufferPlan
    /// The grid axes run in parallel (all of them, collapsed).
    package let parallelAxes: [GridAxis]
    /// How the parallel instances are balanced over CPU threads.
    package let balance: Balance
    /// The grid axes a CPU runs from their last index down (with `dynamic` balance): those along
    /// which the instances' loops run more trips (a causal row block's keys), so the longest
    /// instances start first and the last ones handed out are the shortest, which leaves the
    /// threads less unequal work at the end.
    package let heaviestFirst: [IndexVar]
    /// Loads read in place from global memory whose next-iteration block is prefetched.
    package let prefetchedLoads: Set<ValueID>
    /// The micro-kernel of each `dot`, in program order.
    package let dots: [DotKernel]
    /// The launch configuration on a GPU target; `nil` on a CPU.
    package let launch: LaunchConfiguration?
    /// The tensors packed once per call (CPU), and the loads that read their packed copy.
    package let prepacks: [Prepack]
    package let prepackedLoads: [ValueID: Int]
    /// The work a CPU thread computes once per run of instances along the grid's last axis.
    package let hoisting: GridHoisting?
    /// The loops whose iterations skip the rows their mask removes entirely (CPU), by counter.
    package let rowRestrictions: [IndexVar: RowRestriction]
    /// The products that run several iterations of their loop's reduction per call (CPU), by
    /// `dot`, and the blocks they read in place that the storage analysis would copy.
    package let wholeReductions: [ValueID: WholeReduction]
    package let loadsReadInPlace: Set<ValueID>
    /// The runs of row-local ops computed in one pass over the rows (CPU), by their first value.
    package let rowPasses: [ValueID: RowPass]
    /// The accumulators' rescales computed by the product that accumulates onto them (CPU), by
    /// the rescale's value.
    package let rowScaledAccumulations: [ValueID: RowScaledAccumulation]
    /// The products that skip the elements an index mask removes, tile by tile (CPU), by `dot`.
    package let maskedProducts: [ValueID: MaskedProduct]

    /// Schedules one kernel of `program` for `target`.
    package init(program: Program, index: Int, target: TargetDescription) {
        let kernel = program.kernels[index]
        self.index = index
        let (analysis, prepacks, prepackedLoads, buffers) = Self.storage(program, kernel, target: target)
        self.analysis = analysis
        (self.prepacks, self.prepackedLoads) = (prepacks, prepackedLoads)
        self.buffers = buffers
        hoisting = GridHoisting.plan(program, kernel, analysis, buffers, target: target)
        rowRestrictions = RowRestriction.plan(kernel, analysis, target: target)
        (wholeReductions, loadsReadInPlace) = WholeReduction.plan(
            program, kernel, analysis, buffers, prepacks: prepacks, prepackedLoads: prepackedLoads, target: target)
        let panelProducts = Self.panelProducts(kernel, analysis, prepacks, prepackedLoads)
        rowScaledAccumulations = RowScaledAccumulation.plan(
            kernel, analysis, buffers, wholeReductions: Set(wholeReductions.keys), panelProducts: panelProducts,
            target: target)
        maskedProducts = MaskedProduct.plan(
            kernel, analysis, wholeReductions: Set(wholeReductions.keys), panelProducts: panelProducts, target: target)
        rowPasses = RowPass.plan(
            kernel, analysis, buffers, rowRestrictions: rowRestrictions,
            computedElsewhere: Set(rowScaledAccumulations.keys), target: target)
        parallelAxes = kernel.grid
        balance = Self.gridInLoopBounds(kernel) ? .dynamic : .even
        heaviestFirst = balance == .dynamic && !target.isGPU ? Self.axesOfGrowingWork(kernel) : []
        // A block read from a packed copy is not prefetched: the copy is dense and the packing done.
        let prefetched = target.isGPU ? [] : Self.prefetchableLoads(kernel, analysis).subtracting(prepackedLoads.keys)
        prefetchedLoads = prefetched
        var dots: [DotKernel] = []
        kernel.walk { inst in
            guard case .dot(_, let b, _, _, let precision) = inst.op, let r = inst.result else { return }
            let into = analysis.fusedDotOfAdd.first { $0.value == r.id }?.key
            let shape = r.type.shape
            let gpu = target.threadsPerBlock.map { threads in
                Self.gpuProduct(
                    precision: precision, m: shape.first ?? 1, n: shape.last ?? 1, threads: threads, target: target)
            }
            dots.append(
                DotKernel(
                    dot: r.id, accumulatesInto: into, packsRight: analysis.needsPacking(r.id),
                    prefetchesNext: prefetched.contains(b), precision: precision, prepackedRight: prepackedLoads[b],
                    gpu: gpu))
        }
        self.dots = dots
        launch = target.threadsPerBlock.map { threads in
            LaunchConfiguration(
                kernel: kernel, plan: buffers, threads: threads, sharedLimitBytes: target.localCapacityBytes)
        }
    }

    /// The f32 products whose right operand, packed once per call, is wider than a tile: they walk its
    /// panels (`blk_gemm_panels`).
    package static func panelProducts(
        _ kernel: Kernel, _ analysis: KernelAnalysis, _ prepacks: [Prepack], _ prepackedLoads: [ValueID: Int]
    ) -> Set<ValueID> {
        var out: Set<ValueID> = []
        kernel.walk { inst in
            guard case .dot(_, let b, _, _, .f32) = inst.op, let r = inst.result, let k = prepackedLoads[b],
                r.type.shape.count == 2, r.type.shape[1] > prepacks[k].tile
            else { return }
            out.insert(r.id)
        }
        return out
    }

    /// The f32 dots of a kernel scheduled for a CPU whose right operand is read from a copy packed
    /// once per call: they need no pack buffer of their own (`LocalStorage` counts without it).
    /// The f32 products whose right operand a CPU packs once per call (no pack buffer of their own).
    package static func packedOnceDots(program: Program, kernel: Kernel, analysis: KernelAnalysis) -> Set<ValueID> {
        packedOnceDots(kernel, prepacks(program, kernel, analysis).1)
    }

    /// The scaled blocks a CPU computes where it packs their tensor once per call, each with the
    /// load it scales (`KernelAnalysis.packedScaledBlocks`).
    package static func packedScaledBlocks(program: Program, kernel: Kernel, analysis: KernelAnalysis) -> [ValueID:
        ValueID]
    {
        prepacks(program, kernel, analysis).2
    }

    /// A kernel's storage on `target`: its analysis, the tensors a CPU packs once per call and the
    /// loads that read them, and the buffer plan. A wide block several ops read is read from its
    /// packed copy (dense tiles), not copied; an f32 product whose right operand is packed once
    /// has no pack buffer. `LocalStorage` counts the same buffers.
    package static func storage(_ program: Program, _ kernel: Kernel, target: TargetDescription) -> (
        KernelAnalysis, [Prepack], [ValueID: Int], BufferPlan
    ) {
        var analysis = KernelAnalysis(
            program: program, kernel: kernel, readsBF16InPlace: !target.isGPU, packsRowsFarApart: !target.isGPU,
            padsPackedRows: target.isGPU)
        guard !target.isGPU else { return (analysis, [], [:], BufferPlan(analysis)) }
        let (prepacks, prepackedLoads, scaledBlocks) = Self.prepacks(program, kernel, analysis)
        let packedWide = analysis.copiedWideBlocks.intersection(prepackedLoads.keys)
        if !packedWide.isEmpty || !scaledBlocks.isEmpty {
            analysis = KernelAnalysis(
                program: program, kernel: kernel, readsBF16InPlace: true, packedLoads: packedWide,
                packedScaledBlocks: scaledBlocks)
        }
        let buffers = BufferPlan(analysis, packedOnce: packedOnceDots(kernel, prepackedLoads))
        return (analysis, prepacks, prepackedLoads, buffers)
    }

    private static func packedOnceDots(_ kernel: Kernel, _ prepackedLoads: [ValueID: Int]) -> Set<ValueID> {
        var out: Set<ValueID> = []
        kernel.walk { inst in
            if case .dot(_, let b, _, _, .f32) = inst.op, let r = inst.result, prepackedLoads[b] != nil {
                out.insert(r.id)
            }
        }
        return out
    }

    /// The bf16 blocks worth packing once per call: a block of a bf16 tensor kept in global memory
    /// (`KernelAnalysis.bf16Views`) that is only ever the right operand of bf16 dots, all with the
    /// same orientation; sliced along the tensor's last two axes (points elsewhere) at an even
    /// offset along the contracted axis and a multiple of the block along the other; of a
    /// row-major storage tensor or a reshape view of one, which the kernel does not write; and read alike by the
    /// instances of a grid axis (of 2 or more) its access does not name, which would otherwise
    /// each pack it.
    private static func prepacks(
        _ program: Program, _ kernel: Kernel, _ analysis: KernelAnalysis
    ) -> ([Prepack], [ValueID: Int], [ValueID: ValueID]) {
        var orientation: [ValueID: Bool] = [:]  // load -> transposeB of its dots
        var excluded: Set<ValueID> = []
        var loads: [(ValueID, TensorID, [AxisAccess])] = []
        var otherReaders: Set<ValueID> = []
        var defs: [ValueID: Instruction] = [:]
        kernel.walk { inst in for r in inst.results { defs[r.id] = inst } }
        // `mul(L, broadcast(S))` (or `div`) of a 2-D f32 load L by a 1-D f32 tensor S the kernel
        // does not write: packed from L's tensor, each row scaled as it is packed.
        var scaled: [ValueID: (load: ValueID, scale: ValueID, divides: Bool, axis: Int)] = [:]
        func scaledBlock(_ inst: Instruction) -> (load: ValueID, scale: ValueID, divides: Bool, axis: Int)? {
            guard case .binary(let op, let a, let b) = inst.op, op == .mul || op == .div,
                let ad = defs[a], case .load(let lt, _) = ad.op, program[lt].elementType == .f32,
                let bd = defs[b], case .broadcast(let s, let axis) = bd.op,
                let sd = defs[s], case .load(let st, _) = sd.op, program[st].shape.count == 1,
                program[st].viewOf == nil, program[st].elementType == .f32,
                !analysis.storedStorage.contains(program.storage(of: st))
            else { return nil }
            return (a, s, op == .div, axis)
        }
        kernel.walk { inst in
            if let r = inst.result, let found = scaledBlock(inst) {
                scaled[r.id] = found
                if case .load(let t, let access) = defs[found.load]!.op { loads.append((r.id, t, access)) }
                return
            }
            switch inst.op {
            case .dot(let a, let b, _, let tb, let precision):
                excluded.insert(a)
                if let o = orientation[b], o != tb { excluded.insert(b) }
                orientation[b] = tb
                // An f32 block is packed once only where each f32 product would pack it; a bf16
                // product packs pairs only of a bf16 tensor's block.
                if let r = inst.result, precision == .f32, !analysis.needsPacking(r.id),
                    !analysis.copiedWideBlocks.contains(b), scaled[b] == nil
                {
                    excluded.insert(b)
                }
                if precision == .bf16, !analysis.bf16Views.contains(b) { excluded.insert(b) }
            case .load(let t, let access):
                guard let r = inst.result, let layout = analysis.layouts[r.id], layout.strides.count == 2 else { break }
                if case .buffer = layout.base, !analysis.copiedWideBlocks.contains(r.id) { break }
                if analysis.bf16Views.contains(r.id) || program[t].elementType == .f32 {
                    loads.append((r.id, t, access))
                }
            default:
                otherReaders.formUnion(inst.op.operands)
            }
        }
        excluded.formUnion(otherReaders)
        /// Whether the expression is a multiple of `q` for every value of its variables.
        func multiple(_ e: IndexExpr, of q: Int) -> Bool {
            switch e {
            case .constant(let c): return c % q == 0
            case .mul(let x, let c): return c % q == 0 || multiple(x, of: q)
            case .add(let x, let y): return multiple(x, of: q) && multiple(y, of: q)
            default: return false
            }
        }
        var out: [Prepack] = []
        var byLoad: [ValueID: Int] = [:]
        for (r, t, access) in loads {
            guard !excluded.contains(r), let tb = orientation[r], program.isRowMajorStorage(t),
                !analysis.storedStorage.contains(program.storage(of: t))
            else { continue }
            let shape = program[t].shape
            guard shape.count >= 2, access.count == shape.count,
                access.dropLast(2).allSatisfy({ if case .point = $0 { true } else { false } }),
                case .slice(let rowStart, let rowSize) = access[shape.count - 2],
                case .slice(let columnStart, let columnSize) = access[shape.count - 1],
                program[t].elementType == .f32 || multiple(tb ? columnStart : rowStart, of: 2),
                multiple(tb ? rowStart : columnStart, of: tb ? rowSize : columnSize)
            else { continue }
            let named = Set(access.flatMap(\.variables))
            guard kernel.grid.contains(where: { $0.extent >= 2 && !named.contains($0.variable) }) else { continue }
            let precision: DotPrecision = program[t].elementType == .f32 ? .f32 : .bf16
            let width = tb ? rowSize : columnSize
            let panels = precision == .f32 && width > Prepack.panelWidth && width % Prepack.panelWidth == 0
            var p = Prepack(
                tensor: t, precision: precision, kAlongRows: !tb,
                leading: shape.dropLast(2).reduce(1, *), rows: shape[shape.count - 2],
                columns: shape[shape.count - 1], tile: panels ? Prepack.panelWidth : width)
            if let s = scaled[r] {
                // The vector runs along the contracted axis, at the block's offset there.
                guard precision == .f32, s.axis == (tb ? 0 : 1),
                    case .load(let st, let sAccess) = defs[s.scale]!.op,
                    program[st].shape[0] == (tb ? shape[shape.count - 1] : shape[shape.count - 2]),
                    case .slice(let sStart, let sSize)? = sAccess.first,
                    sStart == (tb ? columnStart : rowStart), sSize == (tb ? columnSize : rowSize)
                else { continue }
                p.scale = st
                p.scaleDivides = s.divides
            }
            if let k = out.firstIndex(of: p) {
                byLoad[r] = k
            } else {
                byLoad[r] = out.count
                out.append(p)
            }
        }
        var scaledBlocks: [ValueID: ValueID] = [:]
        for (r, s) in scaled where byLoad[r] != nil { scaledBlocks[r] = s.load }
        return (out, byLoad, scaledBlocks)
    }

    /// Whether a loop bound reads a grid variable (instances then do unequal work).
    private static func gridInLoopBounds(_ kernel: Kernel) -> Bool {
        var found = false
        let grid = Set(kernel.gridVariables)
        kernel.walk { inst in
            if case .loop(let l) = inst.op, (l.lower.variables + l.upper.variables).contains(where: grid.contains) {
                found = true
            }
        }
        return found
    }

    /// The grid axes along which the kernel's loops run more trips at the axis's last index
    /// than at its first (the other grid variables at 0).
    private static func axesOfGrowingWork(_ kernel: Kernel) -> [IndexVar] {
        func trips(_ env: [IndexVar: Int]) -> Int {
            var total = 0
            kernel.walk { inst in
                if case .loop(let l) = inst.op { total += max(0, l.upper.evaluate(env) - l.lower.evaluate(env)) }
            }
            return total
        }
        return kernel.grid.filter { axis in
            axis.extent > 1 && trips([axis.variable: axis.extent - 1]) > trips([axis.variable: 0])
        }.map(\.variable)
    }

    /// 2-D loads read in place from global memory inside a loop whose access moves with the
    /// innermost enclosing loop: the next iteration's block is known while this one computes.
    private static func prefetchableLoads(_ kernel: Kernel, _ analysis: KernelAnalysis) -> Set<ValueID> {
        var out: Set<ValueID> = []
        func visit(_ body: [Instruction], innermost: IndexVar?) {
            for inst in body {
                switch inst.op {
                case .loop(let loop):
                    visit(loop.body, innermost: loop.variable)
                case .load(_, let access):
                    guard let v = innermost, let r = inst.result, let l = analysis.layouts[r.id],
                        case .global = l.base, l.strides.count == 2,
                        access.contains(where: { $0.variables.contains(v) })
                    else { continue }
                    out.insert(r.id)
                default: continue
                }
            }
        }
        visit(kernel.body, innermost: nil)
        return out
    }
}
