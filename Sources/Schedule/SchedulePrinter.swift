import BlockIR

/// Prints a schedule as text, one paragraph per kernel: what `--print-after=schedule` and
/// `blockc schedule` show.
///
/// ```
/// schedule for cpu: 1 kernel(s)
///
/// kernel k7_matmul_O (#0): grid(b < 8, i < 16), 128 instance(s)
///   parallel: b, i (collapsed), balance even
///   blocks: i 64 rows
///   local: 886016 bytes in 6 buffer(s): B0 65536, B1 …
///   %3 f32[64,64] @local: view of global memory
///   %5 f32[64,64] @local: B0
///   dot %9: accumulates into %10, packs its right operand, prefetches the next block
/// ```
///
/// A loop that skips fully masked rows (`RowRestriction`) adds a line such as
/// `loop k2: each iteration computes rows max(0, k2 * 64 + i * -128) ..< 128 of its 128-row block, …`.
public enum SchedulePrinter {
    /// The text of a schedule.
    public static func print(_ schedule: ProgramSchedule) -> String {
        var lines = ["schedule for \(schedule.target.name): \(schedule.kernels.count) kernel(s)"]
        for d in schedule.decisions { lines.append("decision: " + d) }
        for k in schedule.kernels {
            lines.append("")
            lines += kernelLines(k)
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func kernelLines(_ k: KernelSchedule) -> [String] {
        let kernel = k.kernel
        let grid = kernel.grid.map { "\($0.variable.name) < \($0.extent)" }.joined(separator: ", ")
        var lines = ["kernel \(kernel.name) (#\(k.index)): grid(\(grid)), \(kernel.instanceCount) instance(s)"]
        if k.parallelAxes.isEmpty {
            lines.append("  parallel: none (one instance)")
        } else {
            let axes = k.parallelAxes.map(\.variable.name).joined(separator: ", ")
            let descending = k.heaviestFirst.map { "\($0.name) descending" }.joined(separator: ", ")
            lines.append(
                "  parallel: \(axes)\(k.parallelAxes.count > 1 ? " (collapsed)" : ""), balance \(k.balance)"
                    + (descending.isEmpty ? "" : ", heaviest first (\(descending))"))
        }
        let sizes = BlockSizes.of(kernel)
        if !sizes.isEmpty {
            lines.append(
                "  blocks: " + sizes.map { "\($0.variable.name) \($0.size)" }.joined(separator: ", "))
        }
        let caps = k.buffers.capacities.enumerated().map { "B\($0.offset) \($0.element * 4)" }
        lines.append(
            "  local: \(k.buffers.totalBytes) bytes in \(caps.count) buffer(s)"
                + (caps.isEmpty ? "" : ": " + caps.joined(separator: ", ")))
        if let t = k.hoisting?.table {
            let hoisted = t.part.runs.flatMap { run in run.flatMap { kernel.body[$0].results.map { "\($0.id)" } } }
            lines.append(
                "  tabled along \(t.part.axis.name), computed once per call before the grid for each "
                    + "\(t.index.name): " + hoisted.joined(separator: ", "))
            let kept = t.part.kept.map {
                $0.floats == 0 ? "\($0.owner) (a scalar)" : "\($0.owner)'s storage (\($0.floats * 4) bytes)"
            }
            lines.append(
                "  table: " + kept.joined(separator: ", ") + " per \(t.index.name), \(t.stride * t.extent * 4) bytes")
        }
        if let h = k.hoisting, !h.runs.isEmpty {
            let others = kernel.grid.dropLast().map(\.variable.name)
            let when = others.isEmpty ? "once per thread" : "when \(others.joined(separator: ", ")) change(s)"
            let hoisted = h.runs.flatMap { run in run.flatMap { kernel.body[$0].results.map { "\($0.id)" } } }
            lines.append(
                "  hoisted along \(h.axis.name), computed \(when): " + hoisted.joined(separator: ", "))
            let kept = h.kept.map {
                $0.floats == 0 ? "\($0.owner) (a scalar)" : "\($0.owner)'s storage (\($0.floats * 4) bytes)"
            }
            lines.append("  kept between instances: " + (kept.isEmpty ? "nothing" : kept.joined(separator: ", ")))
        }
        for (variable, r) in k.rowRestrictions.sorted(by: { $0.key.name < $1.key.name }) {
            let range =
                "\(r.first.map { "max(0, \($0))" } ?? "0") ..< \(r.end.map { "min(\(r.rows), \($0))" } ?? "\(r.rows)")"
            lines.append(
                "  loop \(variable.name): each iteration computes rows \(range) of its \(r.rows)-row block, "
                    + "the others fully masked (\(r.aligned.count) values row by row)")
        }
        for pass in k.rowPasses.values.sorted(by: { $0.values[0].number < $1.values[0].number }) {
            lines.append(
                "  one pass over the \(pass.rows) rows: " + pass.values.map(\.description).joined(separator: ", "))
        }
        for fold in k.rowScaledAccumulations.values.sorted(by: { $0.scaled.number < $1.scaled.number }) {
            lines.append(
                "  \(fold.scaled) = \(fold.block)·\(fold.scale) computed by the product of \(fold.add) "
                    + "(each row of the accumulator scaled as its tiles load it)")
        }
        for p in k.maskedProducts.values.sorted(by: { $0.dot.number < $1.dot.number }) {
            let constant = p.constant == 0 ? "" : p.constant > 0 ? " + \(p.constant)" : " − \(-p.constant)"
            let bound = "j ≤ \(p.slope == 1 ? "" : "\(p.slope)·")i\(constant)"
            switch p.limit {
            case .columns:
                lines.append(
                    "  dot \(p.dot): computes only the columns its mask \(p.mask) keeps (\(bound)), tile by tile")
            case .reduction:
                lines.append(
                    "  dot \(p.dot): reduces only over the columns mask \(p.mask) keeps (\(bound)), tile by tile; "
                        + "its left operand is 0 at the others")
            }
        }
        var values: [(ValueID, BlockType)] = k.analysis.types.map { ($0.key, $0.value) }
        values.sort { $0.0.number < $1.0.number }
        for (v, type) in values {
            guard let layout = k.analysis.layouts[v] else { continue }
            lines.append("  \(v) \(type): " + storage(v, layout, k))
        }
        for (n, p) in k.prepacks.enumerated() {
            let t = k.analysis.program[p.tensor]
            lines.append(
                "  P\(n): \(t.name) packed once per call into "
                    + (p.precision == .bf16 ? "bf16 pairs along its " : "f32 tiles \(p.tile) wide, k along its ")
                    + "\(p.kAlongRows ? "rows" : "columns") (\(p.words * 4) bytes)"
                    + (p.scale.map {
                        ", each k \(p.scaleDivides ? "divided" : "multiplied") by \(k.analysis.program[$0].name)[k]"
                    } ?? "")
                    + ", before the grid")
        }
        for d in k.dots {
            var facts: [String] = []
            if d.precision == .bf16 { facts.append("multiplies bf16 operands") }
            if let a = d.accumulatesInto { facts.append("accumulates into \(a)") }
            if let p = d.prepackedRight {
                facts.append("reads its right operand from P\(p), packed once per call")
            } else if d.packsRight {
                facts.append("packs its right operand into B\(k.buffers.packBufferOf[d.dot] ?? -1)")
            }
            if d.prefetchesNext { facts.append("prefetches the next block") }
            if let whole = k.wholeReductions[d.dot] {
                facts.append(
                    "runs \(whole.group) iterations of loop \(whole.variable.name) in one call (\(whole.group * whole.size) "
                        + "deep, of \(whole.depth))")
            }
            switch d.gpu {
            case .registerTiled(let tile, let fallback)?:
                facts.append(
                    "register-tiled (\(tile) outputs per thread)" + (fallback.map { ", not tensor cores: " + $0 } ?? "")
                )
            case .tensorCores(let rows, let columns)?:
                facts.append("tensor cores (mma.sync m16n8k16 bf16, \(rows)x\(columns) outputs per warp)")
            case .tf32TensorCores(let rows, let columns)?:
                facts.append("tensor cores (mma.sync m16n8k8 tf32, \(rows)x\(columns) outputs per warp)")
            case nil:
                break
            }
            lines.append("  dot \(d.dot): " + (facts.isEmpty ? "plain" : facts.joined(separator: ", ")))
        }
        if let l = k.launch {
            let memory =
                l.usesGlobalScratch
                ? "blocks in global scratch (\(l.blockFloats * 4) bytes per block)"
                : "\(l.sharedBytes) bytes of shared memory"
            lines.append("  launch: \(l.blocks) block(s) x \(l.threads) threads, \(memory)")
        }
        return lines
    }

    private static func storage(_ v: ValueID, _ layout: BlockLayout, _ k: KernelSchedule) -> String {
        switch layout.base {
        case .scalar(let s):
            return layout.shape.isEmpty ? "scalar" : (s == v ? "splat" : "splat of \(s)")
        case .global(let load):
            if let p = k.prepackedLoads[load] { return "block of P\(p) (packed once per call)" }
            return k.analysis.bf16Views.contains(load)
                ? "view of global memory (bf16, read by bf16 dots)" : "view of global memory"
        case .buffer(let owner):
            if owner != v { return "in the storage of \(owner)" + stridesNote(layout) }
            if k.analysis.fusedDots.contains(v) { return "accumulated by its add" }
            guard let b = k.buffers.bufferOf[v] else { return "no buffer" }
            return "B\(b)" + (k.buffers.inPlace.contains(v) ? " (in place)" : "")
        }
    }

    private static func stridesNote(_ layout: BlockLayout) -> String {
        layout.strides == BlockLayout.rowMajor(layout.shape) ? "" : " (strides \(layout.strides))"
    }
}

/// The block size each grid variable steps through: `v * B +: B` slices give `B`.
struct BlockSizes {
    /// The grid variables' block sizes, in grid order (those that slice some tensor).
    static func of(_ kernel: Kernel) -> [(variable: IndexVar, size: Int)] {
        var sizes: [IndexVar: Int] = [:]
        kernel.walk { inst in
            let access: [AxisAccess]
            switch inst.op {
            case .load(_, let a), .store(_, _, let a), .gather(_, let a, _, _): access = a
            default: return
            }
            for a in access {
                if case .slice(.mul(.variable(let w), let b), let size) = a, b == size, sizes[w] == nil {
                    sizes[w] = size
                }
            }
        }
        return kernel.grid.compactMap { g in sizes[g.variable].map { (g.variable, $0) } }
    }
}
