/// A target description: the capacities of the memory tiers and the default block sizes.
public struct TargetDescription: Hashable, Sendable {
    /// The name (`cpu`, `sm_80`, `sm_90`).
    public var name: String
    /// Bytes of the local tier available to one kernel instance.
    public var localCapacityBytes: Int
    /// Bytes of the register tier available to one kernel instance.
    public var registerCapacityBytes: Int
    /// fp32 SIMD lanes (CPU) or threads per warp (GPU).
    public var vectorLanes: Int
    /// Default block size along rows (second-to-last axis).
    public var rowBlock: Int
    /// Default block size along columns (last axis) and reduction axes.
    public var columnBlock: Int
    /// The largest row block row coarsening may widen a kernel to.
    public var maxRowBlock: Int
    /// GPU targets: threads of one CUDA block (the launch configuration); `nil` for CPUs.
    public var threadsPerBlock: Int?
    /// GPU targets: the multiprocessors a grid should fill; `nil` for CPUs (the machine's cores).
    public var cores: Int?
    /// GPU targets: whether the tensor cores multiply bf16 (`mma.sync … m16n8k16 … .bf16`, sm_80 and later; the
    /// same generation multiplies TF32, `mma.sync … m16n8k8 … .tf32`).
    public var bf16TensorCores: Bool
    /// An option, not a property of the hardware (`--tf32`): f32 dots may run on the tensor cores as TF32
    /// (`mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32`, operands rounded to TF32's 10-bit mantissa as
    /// `cvt.rna.tf32.f32` does, products summed in f32). Off by default: f32 dots are exact f32 products.
    public var tf32: Bool = false
    /// GPU targets: what one streaming multiprocessor holds and what the whole GPU delivers, for the plan's GPU cost
    /// model (`GPUCostModel`); `nil` for CPUs.
    public var resources: GPUResources?

    /// Makes a target.
    public init(
        name: String, localCapacityBytes: Int, registerCapacityBytes: Int, vectorLanes: Int, rowBlock: Int,
        columnBlock: Int, maxRowBlock: Int? = nil, threadsPerBlock: Int? = nil, cores: Int? = nil,
        bf16TensorCores: Bool = false, resources: GPUResources? = nil
    ) {
        self.name = name
        self.localCapacityBytes = localCapacityBytes
        self.registerCapacityBytes = registerCapacityBytes
        self.vectorLanes = vectorLanes
        self.rowBlock = rowBlock
        self.columnBlock = columnBlock
        self.maxRowBlock = maxRowBlock ?? rowBlock
        self.threadsPerBlock = threadsPerBlock
        self.cores = cores
        self.bf16TensorCores = bf16TensorCores
        self.resources = resources
    }

    /// Whether the target is a GPU (its local tier is a CUDA block's shared memory).
    public var isGPU: Bool { threadsPerBlock != nil }

    /// This project's CPU: Zen 4, 1 MiB L2 per core (the local tier), AVX-512. Kernels that
    /// stream more than the local tier per instance may be coarsened to 128-row blocks.
    public static let cpu = TargetDescription(
        name: "cpu", localCapacityBytes: 1 << 20, registerCapacityBytes: 32 * 64, vectorLanes: 16, rowBlock: 64,
        columnBlock: 64, maxRowBlock: 128)
    /// NVIDIA Ampere: 163 KiB (166,912 B) shared memory per block, the opt-in limit
    /// `cudaFuncSetAttribute` accepts on sm_80 (the SM has 164 KiB; 1 KiB is reserved), 255
    /// registers per thread.
    public static let sm80 = TargetDescription(
        name: "sm_80", localCapacityBytes: 163 * 1024, registerCapacityBytes: 255 * 4 * 256, vectorLanes: 32,
        rowBlock: 64, columnBlock: 64, threadsPerBlock: 256, cores: 108, bf16TensorCores: true,
        resources: GPUResources(
            sharedBytesPerSM: 164 * 1024, registersPerSM: 65536, threadsPerSM: 2048, dramBytesPerSecond: 2.039e12,
            fp32FlopsPerSecond: 19.5e12, l2BytesPerSecond: 4.0e12, fmaPerClock: 64))
    /// NVIDIA Hopper: 227 KiB (232,448 B) shared memory per block, the opt-in limit, 255 registers per thread.
    public static let sm90 = TargetDescription(
        name: "sm_90", localCapacityBytes: 227 * 1024, registerCapacityBytes: 255 * 4 * 256, vectorLanes: 32,
        rowBlock: 64, columnBlock: 64, threadsPerBlock: 256, cores: 132, bf16TensorCores: true,
        resources: GPUResources(
            sharedBytesPerSM: 228 * 1024, registersPerSM: 65536, threadsPerSM: 2048, dramBytesPerSecond: 3.35e12,
            fp32FlopsPerSecond: 67e12, l2BytesPerSecond: 5.5e12, fmaPerClock: 128))

    /// The known targets by name.
    public static let all: [TargetDescription] = [.cpu, .sm80, .sm90]
}

/// The resources of a GPU the plan's cost model counts with (the vendor's figures): per streaming multiprocessor
/// (SM), the shared memory, registers and threads its resident blocks share; for the whole GPU, the DRAM bandwidth
/// and the fp32 peak of its CUDA cores (2 FLOPs per FMA). sm_80: A100 SXM 80 GB; sm_90: H100 SXM.
public struct GPUResources: Hashable, Sendable {
    /// Shared memory of one SM (all its resident blocks together; CUDA reserves 1 KiB of it per block).
    public var sharedBytesPerSM: Int
    /// 32-bit registers of one SM.
    public var registersPerSM: Int
    /// The most threads resident on one SM.
    public var threadsPerSM: Int
    /// DRAM bandwidth, bytes per second.
    public var dramBytesPerSecond: Double
    /// fp32 peak of the CUDA cores, FLOPs per second.
    public var fp32FlopsPerSecond: Double
    /// L2 bandwidth, bytes per second: what re-reads of a block by other CUDA blocks cost.
    public var l2BytesPerSecond: Double
    /// fp32 FMAs one SM issues per clock (its CUDA cores), and the bytes its shared memory delivers per clock.
    public var fmaPerClock: Int
    public var sharedBytesPerClock: Int

    /// Makes a description.
    public init(
        sharedBytesPerSM: Int, registersPerSM: Int, threadsPerSM: Int, dramBytesPerSecond: Double,
        fp32FlopsPerSecond: Double, l2BytesPerSecond: Double, fmaPerClock: Int, sharedBytesPerClock: Int = 128
    ) {
        self.l2BytesPerSecond = l2BytesPerSecond
        self.fmaPerClock = fmaPerClock
        self.sharedBytesPerClock = sharedBytesPerClock
        self.sharedBytesPerSM = sharedBytesPerSM
        self.registersPerSM = registersPerSM
        self.threadsPerSM = threadsPerSM
        self.dramBytesPerSecond = dramBytesPerSecond
        self.fp32FlopsPerSecond = fp32FlopsPerSecond
    }
}
