import BlockIR

/// How one kernel's work maps onto GPU threads: the launch configuration the schedule chooses
/// for a GPU target.
///
/// - The grid becomes CUDA blocks: the flat block index walks the grid (last axis fastest), and
///   each grid variable is recovered from it by division and remainder (`gridIndices`).
/// - The `local` tier becomes shared memory: every buffer of the kernel's `BufferPlan` is a slice
///   of one dynamic shared arena, so the launch passes `sharedBytes`. A kernel whose blocks
///   exceed the target's shared memory (`TargetDescription.localCapacityBytes`) keeps them in
///   global memory instead: one slice of a scratch allocation per CUDA block (`scratchFloats` in
///   all). Rank-0 values and extents are thread-private (registers): every thread computes them.
/// - Elementwise work, loads, stores, masks and copies are cooperative: the threads stride over
///   the block's flattened elements. Row reductions give each warp a row; reductions to a scalar
///   run in every warp; column reductions give each thread a column. `dot` is a tiled loop over
///   threads.
/// - A barrier follows every instruction that writes or reads a shared block (`barrierAfter`),
///   so a block written is complete before it is read and read before its buffer is reused.
package struct LaunchConfiguration: Hashable, Sendable {
    /// A grid variable recovered from the flat block index: `(index / divisor) % modulus`.
    package struct GridIndex: Hashable, Sendable {
        /// The grid variable.
        package var variable: IndexVar
        /// The product of the extents of the axes after it.
        package var divisor: Int
        /// Its extent, or `nil` for the first axis (no remainder needed).
        package var modulus: Int?
    }

    /// CUDA blocks of one launch (the grid's instances; 1 for an empty grid).
    package let blocks: Int
    /// Threads of one CUDA block.
    package let threads: Int
    /// Bytes of dynamic shared memory per CUDA block (all local blocks, or 0 in global scratch).
    package let sharedBytes: Int
    /// Floats of the global scratch allocation of the launch (0 when the blocks are shared).
    package let scratchFloats: Int
    /// Floats of the local blocks of one CUDA block.
    package let blockFloats: Int
    /// Each grid variable from the flat block index, in grid order.
    package let gridIndices: [GridIndex]

    /// Maps a kernel whose local blocks are planned by `plan` onto a GPU target.
    package init(kernel: Kernel, plan: BufferPlan, threads: Int, sharedLimitBytes: Int) {
        blocks = Swift.max(1, kernel.instanceCount)
        self.threads = threads
        blockFloats = plan.capacities.reduce(0, +)
        let global = plan.totalBytes > sharedLimitBytes
        sharedBytes = global ? 0 : plan.totalBytes
        scratchFloats = global ? blocks * blockFloats : 0
        var out: [GridIndex] = []
        var inner = 1
        for (k, axis) in kernel.grid.enumerated().reversed() {
            out.append(GridIndex(variable: axis.variable, divisor: inner, modulus: k > 0 ? axis.extent : nil))
            inner *= axis.extent
        }
        gridIndices = out.reversed()
    }

    /// Whether the local blocks live in global scratch rather than shared memory.
    package var usesGlobalScratch: Bool { scratchFloats > 0 }

    /// Whether the threads must meet at a barrier after an instruction: it writes a shared
    /// block (cooperatively) or reads one (a later instruction may overwrite that buffer).
    package static func barrierAfter(_ inst: Instruction, _ analysis: KernelAnalysis) -> Bool {
        switch inst.op {
        case .load:
            guard let r = inst.result, let l = analysis.layouts[r.id] else { return false }
            if case .buffer = l.base { return true }
            return false
        case .store(let v, _, _):
            guard let l = analysis.layouts[v] else { return true }
            if case .buffer = l.base { return true }
            return !l.shape.isEmpty
        case .unary, .binary, .select, .gather, .mask, .reduce, .scan, .index, .concat:
            return readsOrWritesBlocks(inst, analysis)
        case .dot, .loop, .yield:
            return true
        case .fill, .broadcast, .transpose:
            return false
        }
    }

    private static func readsOrWritesBlocks(_ inst: Instruction, _ analysis: KernelAnalysis) -> Bool {
        for v in inst.op.operands + inst.results.map(\.id) {
            guard let l = analysis.layouts[v] else { continue }
            switch l.base {
            case .buffer, .global: return true
            case .scalar: continue
            }
        }
        return false
    }
}
