import BlockIR

/// The local-tier capacity of kernels, read off the storage model the emitters use
/// (`KernelAnalysis` and `BufferPlan`): a kernel fits when the physical buffers one instance
/// allocates fit the target's local tier.
///
/// The verifier (`Verifier.verify`) checks structure; `LocalStorage.verify` adds this check, and
/// it is what the driver runs after every stage and the tests after every rule application.
/// Fusion asks `bytes` before a rewrite that widens blocks (R11), the schedule before row
/// coarsening. It counts a bf16 block that only bf16 dots read as a buffer, as a GPU target
/// allocates it (a CPU schedule reads it in place: the count bounds the CPU's from above).
public enum LocalStorage {
    /// The bytes of local blocks one instance of `kernel` allocates (its physical buffers:
    /// splats, views of global memory or of other blocks and accumulated dots have none;
    /// in-place results share their operand's).
    ///
    /// With a CPU `target`, an f32 product whose right operand the schedule packs once per call
    /// (`KernelSchedule.packedOnceDots`) gets no pack buffer, as the CPU emitter allocates none;
    /// without a target (or for a GPU) every packing product counts its buffer.
    public static func bytes(_ kernel: Kernel, in program: Program, target: TargetDescription? = nil) -> Int {
        if let huge = oversized(kernel) { return huge.bytes }
        return plan(kernel, in: program, target: target).plan.totalBytes
    }

    /// The analysis and buffer plan of a kernel as scheduled for `target` (see `bytes`).
    private static func plan(_ kernel: Kernel, in program: Program, target: TargetDescription?) -> (
        analysis: KernelAnalysis, plan: BufferPlan
    ) {
        let gpu = target?.isGPU ?? false
        let analysis = KernelAnalysis(program: program, kernel: kernel, packsRowsFarApart: !gpu, padsPackedRows: gpu)
        guard let target, !target.isGPU else { return (analysis, BufferPlan(analysis)) }
        let packedOnce = KernelSchedule.packedOnceDots(program: program, kernel: kernel, analysis: analysis)
        // A block scaled where it is packed once per call (R4a's column scale) has no buffer.
        let scaled = KernelSchedule.packedScaledBlocks(program: program, kernel: kernel, analysis: analysis)
        guard !scaled.isEmpty else { return (analysis, BufferPlan(analysis, packedOnce: packedOnce)) }
        let views = KernelAnalysis(program: program, kernel: kernel, packedScaledBlocks: scaled)
        return (views, BufferPlan(views, packedOnce: packedOnce))
    }

    /// Whether a kernel's buffers fit `capacity` bytes. Cheap when twice the bytes of all its
    /// block values (an upper bound of the buffer plan: every buffer holds values of at most its
    /// size, packing and staging buffers are no larger than a value) fit; otherwise the plan's
    /// bytes decide.
    public static func fits(
        _ kernel: Kernel, in program: Program, capacity: Int, target: TargetDescription? = nil
    ) -> Bool {
        var bound = 0
        kernel.walk { inst in
            var values = inst.results
            if case .loop(let l) = inst.op { values += l.carried }
            for v in values where !v.type.shape.isEmpty {
                let floats = (Swift.min(Verifier.safeByteCount(v.type), 1 << 40) / 4 + 15) / 16 * 16
                bound = bound &+ 8 * floats
            }
        }
        return bound <= capacity || bytes(kernel, in: program, target: target) <= capacity
    }

    /// The first value too large for any buffer arithmetic (over 2^40 bytes, saturating): such a
    /// kernel fits no target, and the buffer plan is not computed for it.
    private static func oversized(_ kernel: Kernel) -> (value: Value, bytes: Int)? {
        var found: (Value, Int)?
        kernel.walk { inst in
            var values = inst.results
            if case .loop(let l) = inst.op { values += l.carried }
            for v in values where found == nil {
                let b = Verifier.safeByteCount(v.type)
                if b > 1 << 40 { found = (v, b) }
            }
        }
        return found
    }

    /// The capacity error of a kernel whose buffers exceed the target's local tier: the bytes,
    /// and the largest buffers with the values they hold.
    public static func capacityError(_ kernel: Kernel, in program: Program, target: TargetDescription) -> String? {
        if let (v, b) = oversized(kernel) {
            return "local tier needs at least \(b) bytes for \(v.id) \(v.type) but \(target.name) has "
                + "\(target.localCapacityBytes); use smaller blocks"
        }
        let (analysis, plan) = plan(kernel, in: program, target: target)
        guard plan.totalBytes > target.localCapacityBytes else { return nil }
        var holders: [Int: [ValueID]] = [:]
        for (v, b) in plan.bufferOf { holders[b, default: []].append(v) }
        let largest = plan.capacities.indices.sorted { (plan.capacities[$1], $0) < (plan.capacities[$0], $1) }
        let shown = largest.prefix(3).map { b -> String in
            let values = (holders[b] ?? []).sorted { $0.number < $1.number }.prefix(3)
            let named = values.map { "\($0) \(analysis.types[$0].map { "\($0)" } ?? "")" }
            return "B\(b) \(plan.capacities[b] * 4) bytes (" + named.joined(separator: ", ") + ")"
        }
        let more = largest.count > shown.count ? ", and \(largest.count - shown.count) more" : ""
        return "local tier needs \(plan.totalBytes) bytes but \(target.name) has \(target.localCapacityBytes); "
            + "largest buffers: " + shown.joined(separator: ", ") + more
    }

    /// The verifier's errors, then the capacity error of every structurally sound kernel. With
    /// the source map of the program's `.block` text, errors carry their `file:line:col`.
    public static func verify(
        _ program: Program, target: TargetDescription, sourceMap: BlockSourceMap? = nil
    ) -> [VerificationError] {
        let errors = Verifier.verify(program, target: target, sourceMap: sourceMap)
        let broken = Set(errors.compactMap(\.kernel))
        var out = errors
        for (index, kernel) in program.kernels.enumerated() where !broken.contains(kernel.name) {
            if let message = capacityError(kernel, in: program, target: target) {
                out.append(VerificationError(kernel: kernel.name, message: message, location: sourceMap?.kernel(index)))
            }
        }
        return out
    }
}
