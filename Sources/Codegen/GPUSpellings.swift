import BlockIR

/// The GPU spellings of a dialect: how threads, warps, barriers and shared memory are written.
///
/// `Dialect.cuda` holds one; the emitter's walk asks the schedule's `LaunchConfiguration` what each instruction's work
/// becomes on threads and writes it with these spellings.
public struct GPUSpellings: Hashable, Sendable {
    /// Threads of one warp.
    public var warpSize: Int
    /// Declares a kernel: `__global__ void __launch_bounds__(%THREADS%, 1)`.
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

    /// Makes GPU spellings.
    public init(
        warpSize: Int, kernelQualifier: String, threadIndex: String, threadCount: String,
        blockIndex: String, barrier: String, sharedArena: String, singleThread: String, laneIndex: String,
        warpIndex: String, warpCount: String, warpReduceTemplates: [ReduceOp: String]
    ) {
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
    }
}

extension GPUSpellings {
    /// The header of a loop in which the threads stride over `count` elements with counter `f_`.
    func cooperativeLoop(_ count: String, indexType: String) -> String {
        "for (\(indexType) f_ = \(threadIndex); f_ < \(count); f_ += \(threadCount))"
    }
}
