import BlockIR
import Foundation
import Schedule

/// The plan's GPU cost model: an estimate of how long a fused program's kernels take on a GPU target, from what
/// limits a kernel of this emitter there (Docs/CUDA.md, "A GPU cost model"): its shared memory per CUDA block (the
/// buffer plan's), its registers per thread, the blocks one SM then holds, the waves its grid takes to run, how many
/// threads its products keep busy, the DRAM bytes it moves and its FLOPs. The plan compares candidate row blocks by
/// it (`Fusion.fuseChoosingRowBlock`); nothing is timed.
///
/// Per kernel, with `R` = the target's `GPUResources`, `T` threads per block and `B` = blocks per SM:
/// - `B = min(R.threadsPerSM / T, R.registersPerSM / (registers · T), R.sharedBytesPerSM / (shared + 1 KiB))`, the
///   1 KiB CUDA reserves per block; `registers` is 72 per thread for a kernel with a product and 32 without (ptxas
///   gives this emitter's kernels 55 to 87 registers with a product and 12 to 25 without, every example on both
///   targets; `__launch_bounds__(256, 1)` lets it use them).
/// - `fill` = `min(1, n / SMs) · n / (waves · min(n, SMs · B))` for `n` instances, `waves = ⌈n / (SMs · B)⌉`: the
///   share of the SMs the grid keeps busy, and of the last wave.
/// - `use` = per product, the share of the block's threads (register tiles of 4×4 outputs) or warps (tensor-core warp
///   tiles) with work in each round of tiles, averaged over the kernel's FLOPs weighted by each product's (other
///   FLOPs count 1).
/// - time = `max(DRAM bytes / bandwidth, FLOPs / (fp32 peak · fill · use))` + 2 µs (the gap between two kernels on a
///   stream); the DRAM bytes are every tensor the kernel loads or stores, once (the caches serve re-reads of a
///   block by other instances); tensor-core products are counted at the fp32 peak too (they are bound by building
///   their fragments with scalar loads, not by the tensor cores).
public enum GPUCostModel {
    /// One kernel's estimate.
    public struct KernelCost: Hashable, Sendable {
        /// The kernel's name.
        public var name: String
        /// Grid instances (CUDA blocks).
        public var instances: Int
        /// Dynamic shared memory per block (0 when its blocks live in global scratch).
        public var sharedBytes: Int
        /// Registers per thread (the model's estimate).
        public var registers: Int
        /// Blocks resident on one SM.
        public var blocksPerSM: Int
        /// Waves of the grid over the SMs.
        public var waves: Int
        /// The share of the SMs' block slots the grid keeps busy (see the type's documentation).
        public var fill: Double
        /// The FLOP-weighted share of threads the products keep busy.
        public var use: Double
        /// FLOPs and DRAM bytes.
        public var flops: Int
        public var dramBytes: Int
        /// The bytes every instance loads from global memory, summed over the grid (re-reads included): L2 traffic.
        public var loadedBytes: Int
        /// The estimated time.
        public var seconds: Double
    }

    /// A program's estimate: its kernels', in order, and their sum.
    public struct ProgramCost: Hashable, Sendable {
        public var kernels: [KernelCost]
        public var seconds: Double { kernels.reduce(0) { $0 + $1.seconds } }
        /// Bytes of temporaries the kernels store to global memory (intermediates between kernels).
        public var temporaryBytes: Int
    }

    /// Registers per thread the model assumes for a kernel with a product and without one.
    public static let registersWithProduct = 72
    public static let registersWithoutProduct = 32
    /// The gap between two kernels on one stream.
    public static let launchSeconds = 2e-6
    /// Shared memory CUDA reserves per block.
    public static let reservedSharedBytes = 1024

    /// The estimate of a fused program on a GPU `target` (nil for a CPU target or one without `resources`).
    public static func estimate(_ program: Program, target: TargetDescription) -> ProgramCost? {
        guard let threads = target.threadsPerBlock, let resources = target.resources, let sms = target.cores else {
            return nil
        }
        let schedule = Scheduler.schedule(program, target: target)
        var kernels: [KernelCost] = []
        var temporaries: Set<TensorID> = []
        for k in schedule.kernels {
            let kernel = k.kernel
            let instances = max(1, kernel.instanceCount)
            let shared = k.launch.map { $0.usesGlobalScratch ? 0 : $0.sharedBytes } ?? 0
            let registers = k.dots.isEmpty ? registersWithoutProduct : registersWithProduct
            let blocks = blocksPerSM(
                threads: threads, registers: registers, sharedBytes: shared, resources: resources)
            let (waves, fill) = occupancy(instances: instances, sms: sms, blocksPerSM: blocks)
            let flops = kernel.estimatedFlops
            let use = productUse(kernel, schedule: k, threads: threads, flops: flops, resources: resources)
            var bytes = 0
            for t in kernel.body.loadedTensors.map({ program.storage(of: $0) }).uniqued() {
                bytes += program[t].byteCount
            }
            for t in kernel.body.storedTensors.map({ program.storage(of: $0) }).uniqued() {
                bytes += program[t].byteCount
                if program[t].role == .temp { temporaries.insert(t) }
            }
            let traffic = loadedBytes(kernel, program: program)
            let compute = Double(flops) / (resources.fp32FlopsPerSecond * fill * use)
            let memory = max(
                Double(bytes) / resources.dramBytesPerSecond, Double(traffic) / resources.l2BytesPerSecond)
            kernels.append(
                KernelCost(
                    name: kernel.name, instances: instances, sharedBytes: shared, registers: registers,
                    blocksPerSM: blocks, waves: waves, fill: fill, use: use, flops: flops, dramBytes: bytes,
                    loadedBytes: traffic,
                    seconds: max(compute, memory) + launchSeconds))
        }
        return ProgramCost(kernels: kernels, temporaryBytes: temporaries.reduce(0) { $0 + program[$1].byteCount })
    }

    /// Blocks one SM holds: the least of what its threads, registers and shared memory allow (at least 1: a block
    /// that fits the opt-in limit always runs).
    public static func blocksPerSM(threads: Int, registers: Int, sharedBytes: Int, resources: GPUResources) -> Int {
        let byThreads = resources.threadsPerSM / max(1, threads)
        let byRegisters = resources.registersPerSM / max(1, registers * threads)
        let byShared =
            sharedBytes == 0 ? byThreads : resources.sharedBytesPerSM / (sharedBytes + reservedSharedBytes)
        return max(1, min(byThreads, byRegisters, byShared))
    }

    /// The waves a grid of `instances` blocks takes over `sms` SMs of `blocksPerSM` slots, and its fill.
    public static func occupancy(instances: Int, sms: Int, blocksPerSM: Int) -> (waves: Int, fill: Double) {
        let slots = sms * blocksPerSM
        let waves = (instances + slots - 1) / slots
        let spread = min(1, Double(instances) / Double(sms))
        return (waves, spread * Double(instances) / Double(waves * min(instances, slots)))
    }

    /// The FLOP-weighted share of the block's threads the kernel's products keep busy (1 without products).
    static func productUse(
        _ kernel: Kernel, schedule: KernelSchedule, threads: Int, flops: Int, resources: GPUResources
    ) -> Double {
        var dotFlops = 0.0
        var weighted = 0.0
        var types: [ValueID: BlockType] = [:]
        func visit(_ body: [Instruction], trips: Int) {
            for inst in body {
                for r in inst.results { types[r.id] = r.type }
                switch inst.op {
                case .loop(let loop):
                    for c in loop.carried { types[c.id] = c.type }
                    visit(loop.body, trips: trips * max(0, loop.upper.evaluate([:]) - loop.lower.evaluate([:])))
                case .dot(let a, _, let ta, _, _):
                    guard let r = inst.result else { continue }
                    let m = r.type.shape.first ?? 1
                    let n = r.type.shape.last ?? 1
                    let k = types[a].map { ta ? $0.shape.first ?? 1 : $0.shape.last ?? 1 } ?? 1
                    let f = Double(2 * m * n * k * trips * max(1, kernel.instanceCount))
                    let workers: (tiles: Int, workers: Int)
                    switch schedule.dots.first(where: { $0.dot == r.id })?.gpu {
                    case .tensorCores(let rows, let columns)?, .tf32TensorCores(let rows, let columns)?:
                        workers = (((m + rows - 1) / rows) * ((n + columns - 1) / columns), max(1, threads / 32))
                    case .registerTiled(let tile, _)?:
                        let e = KernelSchedule.registerTileEfficiency(
                            m: m, n: n, threads: threads, tile: tile, fmaPerClock: resources.fmaPerClock,
                            sharedBytesPerClock: resources.sharedBytesPerClock)
                        dotFlops += f
                        weighted += f * e.use * e.sharedMemory
                        continue
                    case nil:
                        workers = (((m + 3) / 4) * ((n + 3) / 4), threads)
                    }
                    let rounds = (workers.tiles + workers.workers - 1) / workers.workers
                    dotFlops += f
                    weighted += f * Double(workers.tiles) / Double(max(1, rounds * workers.workers))
                default: continue
                }
            }
        }
        visit(kernel.body, trips: 1)
        let total = max(Double(flops), dotFlops)
        guard total > 0 else { return 1 }
        return (weighted + (total - dotFlops)) / total
    }

    /// The bytes a kernel's instances load from global memory, every block load counted at each trip of its loops
    /// (bounds that depend on grid indices evaluated at index 0, as `Kernel.estimatedFlops`), in the tensor's
    /// element size; a load whose tensor lives in local memory is not counted.
    static func loadedBytes(_ kernel: Kernel, program: Program) -> Int {
        func visit(_ body: [Instruction], trips: Int) -> Int {
            var total = 0
            for inst in body {
                switch inst.op {
                case .load(let t, _), .gather(let t, _, _, _):
                    guard let r = inst.result else { continue }
                    total += trips * r.type.elementCount * program[program.storage(of: t)].elementType.byteSize
                case .loop(let loop):
                    let n = max(0, loop.upper.evaluate([:]) - loop.lower.evaluate([:]))
                    total += visit(loop.body, trips: trips * n)
                default: continue
                }
            }
            return total
        }
        return max(1, kernel.instanceCount) * visit(kernel.body, trips: 1)
    }

    /// One line per kernel: instances, shared bytes, registers, blocks per SM, waves, fill, use, and time.
    public static func describe(_ cost: ProgramCost) -> [String] {
        cost.kernels.map { k in
            "\(k.name): \(k.instances) blocks, \(k.sharedBytes) B shared, \(k.registers) registers → "
                + "\(k.blocksPerSM) per SM, \(k.waves) wave(s), fill \(format(k.fill)), use \(format(k.use)), "
                + "\(microseconds(k.seconds))"
        }
    }

    static func format(_ x: Double) -> String { String(format: "%.2f", x) }
    static func microseconds(_ s: Double) -> String { String(format: "%.0f µs", s * 1e6) }
}

extension Sequence where Element: Hashable {
    /// The elements in order, each once.
    fileprivate func uniqued() -> [Element] {
        var seen: Set<Element> = []
        return filter { seen.insert($0).inserted }
    }
}

extension Fusion {
    /// The row block a GPU plan fuses at, and why.
    public struct RowBlockChoice: Sendable {
        /// The chosen row block and the program lowered and fused at it.
        public var rowBlock: Int
        public var lowered: Program
        public var result: FusionResult
        /// One line per candidate tried (its estimate), then the choice; empty when only the default was fused.
        public var notes: [String]
    }

    /// A candidate replaces the best so far only when the model estimates it at least this much faster: the model
    /// is coarse, and the target's default blocks are kept on a near tie.
    public static let rowBlockMargin = 0.05

    /// Fuses a graph's naive program for a GPU target choosing its row block by the GPU cost model: `lower(r)` is the
    /// naive program at row block `r` (nil where it cannot be made or does not fit). The default row block is fused
    /// first; only when re-blocking was refused there because a wider block does not fit the target's shared memory
    /// (`FusionStatistics.capacityRefusals`: a smaller row block may let it fit, keeping an intermediate on chip)
    /// are the halved row blocks down to 16 (an mma's rows) lowered and fused too, and the one `GPUCostModel`
    /// estimates fastest is kept (by more than `rowBlockMargin`, else the larger). CPU targets fuse the default only.
    public static func fuseChoosingRowBlock(
        defaultRowBlock: Int, options: FusionOptions, lower: (Int) -> Program?
    ) -> RowBlockChoice? {
        guard let naive = lower(defaultRowBlock) else { return nil }
        let first = fuse(naive, options: options)
        guard options.target.isGPU, first.statistics.capacityRefusals > 0,
            let firstCost = GPUCostModel.estimate(first.program, target: options.target)
        else { return RowBlockChoice(rowBlock: defaultRowBlock, lowered: naive, result: first, notes: []) }
        var candidates = [(rowBlock: defaultRowBlock, lowered: naive, result: first, cost: firstCost)]
        var r = defaultRowBlock / 2
        while r >= 16 {
            if let p = lower(r) {
                let fused = fuse(p, options: options)
                if let cost = GPUCostModel.estimate(fused.program, target: options.target) {
                    candidates.append((r, p, fused, cost))
                }
            }
            r /= 2
        }
        var best = 0
        for (c, candidate) in candidates.enumerated()
        where candidate.cost.seconds < (1 - rowBlockMargin) * candidates[best].cost.seconds {
            best = c
        }
        let target = options.target.name
        var notes = candidates.map { c in
            "GPU cost model (\(target)), row block \(c.rowBlock): \(c.result.program.kernels.count) kernel(s), "
                + "\(c.cost.temporaryBytes) bytes of intermediates in global memory, estimated "
                + "\(GPUCostModel.microseconds(c.cost.seconds)) ("
                + GPUCostModel.describe(c.cost).joined(separator: "; ") + ")"
        }
        let chosen = candidates[best]
        notes.append(
            best == 0
                ? "keep \(defaultRowBlock)-row blocks on \(target): no smaller row block is estimated faster by more than "
                    + "\(Int(rowBlockMargin * 100))%"
                : "choose \(chosen.rowBlock)-row blocks on \(target): estimated "
                    + "\(GPUCostModel.microseconds(chosen.cost.seconds)) against "
                    + "\(GPUCostModel.microseconds(firstCost.seconds)) at \(defaultRowBlock)")
        var result = chosen.result
        result.decisions += notes
        return RowBlockChoice(rowBlock: chosen.rowBlock, lowered: chosen.lowered, result: result, notes: notes)
    }
}
