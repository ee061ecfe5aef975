import BlockIR

/// The GPU spellings of a dialect: how threads, warps, barriers and shared memory are written.
///
/// `Dialect.cuda` holds one; the emitter's walk asks `ThreadMapping` what each instruction's work
/// becomes on threads and writes it with these spellings.
public struct GPUSpellings: Hashable, Sendable {
    /// Threads of one block (a multiple of the warp size).
    public var threadsPerBlock: Int
    /// Threads of one warp.
    public var warpSize: Int
    /// Declares a kernel: `__global__ void __launch_bounds__(%THREADS%)`.
    public var kernelQualifier: String
    /// This thread's index in its block (`threadIdx.x`).
    public var threadIndex: String
    /// The threads of a block (`blockDim.x`).
    public var threadCount: String
    /// This block's index in the flattened grid (`blockIdx.x`).
    public var blockIndex: String
    /// A barrier of the block's threads (`__syncthreads();`).
    public var barrier: String
    /// Declares the block's dynamic shared memory, named `blk_smem`.
    public var sharedArena: String
    /// Runs a statement on one thread only (`if (threadIdx.x == 0) `).
    public var singleThread: String
    /// The lane of this thread in its warp.
    public var laneIndex: String
    /// The warp of this thread in its block.
    public var warpIndex: String
    /// The warps of a block.
    public var warpCount: String
    /// Combines one value over the warp's lanes, every lane getting the result.
    public var warpReduceTemplates: [ReduceOp: String]
    /// The most shared memory one block may use (bytes); a kernel whose local blocks need more
    /// keeps them in a global scratch slice per CUDA block instead.
    public var sharedLimitBytes: Int

    /// Makes GPU spellings.
    public init(
        threadsPerBlock: Int, warpSize: Int, kernelQualifier: String, threadIndex: String, threadCount: String,
        blockIndex: String, barrier: String, sharedArena: String, singleThread: String, laneIndex: String,
        warpIndex: String, warpCount: String, warpReduceTemplates: [ReduceOp: String],
        sharedLimitBytes: Int
    ) {
        self.threadsPerBlock = threadsPerBlock
        self.warpSize = warpSize
        self.kernelQualifier = kernelQualifier
        self.threadIndex = threadIndex
        self.threadCount = threadCount
        self.blockIndex = blockIndex
        self.barrier = barrier
        self.sharedArena = sharedArena
        self.singleThread = singleThread
        self.laneIndex = laneIndex
        self.warpIndex = warpIndex
        self.warpCount = warpCount
        self.warpReduceTemplates = warpReduceTemplates
        self.sharedLimitBytes = sharedLimitBytes
    }
}

/// How one kernel's work maps onto GPU threads: the lowering step between a block program's
/// kernel and its CUDA text.
///
/// - The grid becomes CUDA blocks: `blockIdx.x` walks the flattened grid (last axis fastest), and
///   each grid variable is recovered from it by division and remainder.
/// - The `local` tier becomes shared memory: every buffer of the kernel's `BufferPlan` is a slice
///   of one dynamic `__shared__` arena, so the launch passes `sharedBytes`. A kernel whose blocks
///   exceed `GPUSpellings.sharedLimitBytes` keeps them in global memory instead: one slice of a
///   scratch allocation per CUDA block (`scratchFloats` in all), passed as `blk_scratch`. Rank-0 values and
///   extents are thread-private (registers): every thread computes them, identically.
/// - Elementwise work, loads, stores, masks and copies are cooperative: the threads stride over
///   the block's flattened elements.
/// - Row reductions give each warp a row (lanes stride over it, a shuffle butterfly combines);
///   reductions to a scalar run in every warp, so every thread holds the result without a
///   barrier; column reductions give each thread a column.
/// - `dot` is a tiled loop over threads: each thread computes output elements over the shared
///   (or global) operand tiles.
/// - A barrier follows every instruction that writes or reads a shared block (`barrierAfter`),
///   so a block written is complete before it is read and read before its buffer is reused.
struct ThreadMapping {
    /// CUDA blocks of one launch (the grid's instances; 1 for an empty grid).
    let blocks: Int
    /// Threads of one CUDA block.
    let threads: Int
    /// Bytes of dynamic shared memory per CUDA block (all local blocks, or 0 in global scratch).
    let sharedBytes: Int
    /// Floats of the global scratch allocation of the launch (0 when the blocks are shared).
    let scratchFloats: Int
    /// Floats of the local blocks of one CUDA block.
    let blockFloats: Int
    /// Each grid variable from the flat block index: `(variable, expression)`.
    let gridVariables: [(variable: IndexVar, expression: String)]

    /// Maps a kernel whose local blocks are planned by `plan`.
    init(kernel: Kernel, plan: BufferPlan, gpu: GPUSpellings) {
        blocks = Swift.max(1, kernel.instanceCount)
        threads = gpu.threadsPerBlock
        blockFloats = plan.capacities.reduce(0, +)
        let global = plan.totalBytes > gpu.sharedLimitBytes
        sharedBytes = global ? 0 : plan.totalBytes
        scratchFloats = global ? blocks * blockFloats : 0
        var out: [(IndexVar, String)] = []
        var inner = 1
        for (k, axis) in kernel.grid.enumerated().reversed() {
            var e = inner == 1 ? "(long)\(gpu.blockIndex)" : "((long)\(gpu.blockIndex) / \(inner))"
            if k > 0 { e = "\(e) % \(axis.extent)" }
            out.append((axis.variable, e))
            inner *= axis.extent
        }
        gridVariables = out.reversed()
    }

    /// Whether the threads must meet at a barrier after an instruction: it writes a shared
    /// block (cooperatively) or reads one (a later instruction may overwrite that buffer).
    static func barrierAfter(_ inst: Instruction, _ analysis: KernelAnalysis) -> Bool {
        switch inst.op {
        case .load:
            guard let r = inst.result, let l = analysis.layouts[r.id] else { return false }
            if case .buffer = l.base { return true }
            return false
        case .store(let v, _, _):
            guard let l = analysis.layouts[v] else { return true }
            if case .buffer = l.base { return true }
            return !l.shape.isEmpty
        case .unary, .binary, .mask, .reduce:
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

    /// The header of a loop in which the threads stride over `count` elements with counter `f_`.
    static func cooperativeLoop(_ count: String, gpu: GPUSpellings, indexType: String) -> String {
        "for (\(indexType) f_ = \(gpu.threadIndex); f_ < \(count); f_ += \(gpu.threadCount))"
    }
}
