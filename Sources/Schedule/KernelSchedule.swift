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
    /// Loads read in place from global memory whose next-iteration block is prefetched.
    package let prefetchedLoads: Set<ValueID>
    /// The micro-kernel of each `dot`, in program order.
    package let dots: [DotKernel]
    /// The launch configuration on a GPU target; `nil` on a CPU.
    package let launch: LaunchConfiguration?

    /// Schedules one kernel of `program` for `target`.
    package init(program: Program, index: Int, target: TargetDescription) {
        let kernel = program.kernels[index]
        self.index = index
        let analysis = KernelAnalysis(program: program, kernel: kernel, readsBF16InPlace: !target.isGPU)
        self.analysis = analysis
        let buffers = BufferPlan(analysis)
        self.buffers = buffers
        parallelAxes = kernel.grid
        balance = Self.gridInLoopBounds(kernel) ? .dynamic : .even
        let prefetched = target.isGPU ? [] : Self.prefetchableLoads(kernel, analysis)
        prefetchedLoads = prefetched
        var dots: [DotKernel] = []
        kernel.walk { inst in
            guard case .dot(_, let b, _, _, let precision) = inst.op, let r = inst.result else { return }
            let into = analysis.fusedDotOfAdd.first { $0.value == r.id }?.key
            dots.append(
                DotKernel(
                    dot: r.id, accumulatesInto: into, packsRight: analysis.needsPacking(r.id),
                    prefetchesNext: prefetched.contains(b), precision: precision))
        }
        self.dots = dots
        launch = target.threadsPerBlock.map { threads in
            LaunchConfiguration(
                kernel: kernel, plan: buffers, threads: threads, sharedLimitBytes: target.localCapacityBytes)
        }
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
