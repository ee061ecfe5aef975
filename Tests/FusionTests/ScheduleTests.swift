import BlockIR
import BlockParser
import BlockTestSupport
import Foundation
import Fusion
import Graph
import Interpreter
import Schedule
import XCTest

/// The schedule stage: its block-size policy (row coarsening) keeps the program's meaning, and
/// what it computes per kernel agrees with the target.
final class ScheduleTests: XCTestCase {
    /// Row coarsening, on a small target where RMSNorm+SwiGLU streams more weight bytes per
    /// instance than the local tier holds: 16-row blocks become 32-row blocks, with a partial
    /// last block (300 rows); the scheduled program matches the unfused one in the interpreter
    /// (within `1e-4 · max(1, max |reference|)`) and verifies.
    func testRowCoarseningKeepsMeaning() throws {
        let small = TargetDescription(
            name: "small", localCapacityBytes: 32 * 1024, registerCapacityBytes: 2048, vectorLanes: 16, rowBlock: 16,
            columnBlock: 16, maxRowBlock: 32)
        let program = try DifferentialTests.example(
            "rmsnorm_swiglu", dims: ["M": 300, "d": 48, "h": 80], blocks: [("i", 16), ("j", 16), ("k", 16)])
        let fused = Fusion.fuse(program, options: FusionOptions(target: small, cores: CLI.pinnedCores)).program
        XCTAssertEqual(fused.kernels.map { $0.grid.map(\.extent) }, [[19]], "fusion leaves block sizes alone")
        let schedule = Scheduler.schedule(fused, target: small)
        XCTAssertEqual(schedule.program.kernels.map { $0.grid.map(\.extent) }, [[10]], schedule.decisions.joined())
        // Then the sum of squares moves out of the loop over hidden blocks (InvariantFission).
        XCTAssertEqual(schedule.decisions.count, 2)
        XCTAssertTrue(schedule.decisions[0].hasPrefix("coarsen k11_matmul_Y to 32-row blocks"), schedule.decisions[0])
        XCTAssertTrue(schedule.decisions[1].hasPrefix("moved 5 instructions out of loop k"), schedule.decisions[1])
        XCTAssertEqual(Verifier.verify(schedule.program, target: small), [])
        let inputs = DifferentialTests.inputs(program, seed: 12)
        let reference = try BlockInterpreter.run(program, inputs: inputs)
        let scheduled = try BlockInterpreter.run(schedule.program, inputs: inputs)
        let (err, scale) = DifferentialTests.maxError(reference, scheduled)
        XCTAssertLessThanOrEqual(err, 1e-4 * scale)
        // On the CPU target the same program streams less than 1 MiB per instance: no coarsening.
        let cpu = Scheduler.schedule(
            Fusion.fuse(program, options: FusionOptions(cores: CLI.pinnedCores)).program, target: .cpu)
        XCTAssertFalse(cpu.decisions.contains { $0.hasPrefix("coarsen") }, "\(cpu.decisions)")
    }

    /// A kernel whose row block cannot double (its local tier holds exactly the 16-row kernel)
    /// keeps its blocks, and the schedule says why.
    func testCoarseningRespectsCapacity() throws {
        let small = TargetDescription(
            name: "small", localCapacityBytes: 32 * 1024, registerCapacityBytes: 2048, vectorLanes: 16, rowBlock: 16,
            columnBlock: 16, maxRowBlock: 32)
        let program = try DifferentialTests.example(
            "rmsnorm_swiglu", dims: ["M": 300, "d": 48, "h": 80], blocks: [("i", 16), ("j", 16), ("k", 16)])
        let fused = Fusion.fuse(program, options: FusionOptions(target: small, cores: CLI.pinnedCores)).program
        var tight = small
        tight.name = "tight"
        tight.localCapacityBytes = LocalStorage.bytes(fused.kernels[0], in: fused)
        let schedule = Scheduler.schedule(fused, target: tight)
        XCTAssertEqual(schedule.program.kernels.map(\.grid), fused.kernels.map(\.grid))
        XCTAssertEqual(
            schedule.decisions.first, "keep k11_matmul_Y at 16-row blocks: 32 rows do not fit tight's local tier")
        // What the schedule moved out of loops still fits the tier.
        XCTAssertLessThanOrEqual(
            LocalStorage.bytes(schedule.program.kernels[0], in: schedule.program), tight.localCapacityBytes)
        XCTAssertEqual(Verifier.verify(schedule.program, target: tight), [])
    }

    /// On a GPU target every kernel gets a launch whose shared memory is the kernel's buffers
    /// (within the target's capacity) and whose blocks are the grid's instances; on a CPU none.
    func testLaunchesFollowTheTarget() throws {
        let program = try DifferentialTests.example("transformer_layer", dims: [:])
        for target in [TargetDescription.sm80, .sm90] {
            let fused = Fusion.fuse(program, options: FusionOptions(target: target, cores: CLI.pinnedCores)).program
            let schedule = Scheduler.schedule(fused, target: target)
            XCTAssertEqual(schedule.localBytes.count, schedule.program.kernels.count)
            let text = SchedulePrinter.print(schedule)
            for (kernel, bytes) in zip(schedule.program.kernels, schedule.localBytes) {
                XCTAssertLessThanOrEqual(bytes, target.localCapacityBytes, kernel.name)
                XCTAssertTrue(
                    text.contains("launch: \(max(1, kernel.instanceCount)) block(s) x 256 threads, \(bytes) bytes"),
                    "\(kernel.name) on \(target.name)")
            }
        }
        let cpu = SchedulePrinter.print(
            Scheduler.schedule(
                Fusion.fuse(program, options: FusionOptions(cores: CLI.pinnedCores)).program, target: .cpu))
        XCTAssertFalse(cpu.contains("launch:"))
        XCTAssertTrue(cpu.contains("prefetches the next block"), "the CPU GEMMs prefetch streamed weight blocks")
    }
    /// Operands every instance of a grid axis would pack alike are packed once per call on a CPU:
    /// f32 attention's transposed K (f32 tiles), bf16 attention's K and V (bf16 pairs), the
    /// SwiGLU weights; never on a GPU, never a block some instances do not share (one query
    /// block: no grid axis the K block's access leaves out), and never an f32 block a bf16
    /// product reads (it packs pairs only from bf16 tensors). The programs verify in C
    /// (`GoldenTests`, `VerifyTests`); here, what is packed.
    func testSharedOperandsArePackedOncePerCall() throws {
        func prepacked(_ example: String, _ dims: [String: Int] = [:], target: TargetDescription = .cpu) throws
            -> [String]
        {
            let program = try DifferentialTests.example(example, dims: dims)
            let fused = Fusion.fuse(program, options: FusionOptions(target: target, cores: CLI.pinnedCores)).program
            let schedule = Scheduler.schedule(fused, target: target)
            return schedule.kernels.flatMap { k in
                k.prepacks.map {
                    "\(fused[$0.tensor].name) \($0.precision) \($0.kAlongRows ? "rows" : "columns")"
                        + ($0.scale.map { " times \(fused[$0].name)" } ?? "")
                }
            }
        }
        XCTAssertEqual(try prepacked("attention", ["N": 256]), ["K f32 columns"])
        XCTAssertEqual(try prepacked("attention_bf16", ["N": 256]), ["K bf16 columns", "V bf16 rows"])
        XCTAssertEqual(
            try prepacked("rmsnorm_swiglu_bf16", ["M": 256, "d": 128, "h": 256]),
            ["W1 bf16 rows", "W3 bf16 rows", "W2 bf16 rows"])
        XCTAssertEqual(try prepacked("attention_bf16", ["N": 256], target: .sm90), [])
        // W's 64×64 blocks, rows 4 KiB apart, read by three products (x·(γ∘W), γ·W, β·W): packed
        // once as they are and once with each row scaled by γ (R4a's column scale), and read in
        // place from the packed tiles, not copied into a buffer (nor scaled) by every instance.
        XCTAssertEqual(try prepacked("layernorm_matmul"), ["W f32 rows", "W f32 rows times gamma"])
        XCTAssertEqual(
            try prepacked("rmsnorm_swiglu", ["M": 256, "d": 128, "h": 256]),
            ["W1 f32 rows times g", "W3 f32 rows times g"])
        let ln = Scheduler.schedule(
            Fusion.fuse(
                try DifferentialTests.example("layernorm_matmul", dims: [:]),
                options: FusionOptions(cores: CLI.pinnedCores)
            )
            .program, target: .cpu)
        for (load, _) in ln.kernels[0].prepackedLoads {
            guard case .global = ln.kernels[0].analysis.layouts[load]?.base else {
                return XCTFail(
                    "the packed block of W is copied: \(String(describing: ln.kernels[0].analysis.layouts[load]))")
            }
        }
        XCTAssertEqual(try prepacked("attention", ["N": 64]), [], "one query block: every K block is read once")
        // f32 tensors multiplied by bf16 dots (B shared by the two row blocks i): not packed.
        let mixed = Scheduler.schedule(try BlockParser.parse(DotPrecisionTests.program), target: .cpu)
        XCTAssertEqual(mixed.kernels.map(\.prepacks.count), [0, 0])
    }

    /// A block wider than 64 columns of a tensor packed once per call (SwiGLU's down projection
    /// reads `W2[k·64 +: 64, 0 +: d]`, rows 2 KiB or more apart) is packed in 64-column panels, each contiguous, and its
    /// product walks them (`blk_gemm_panels`); the compiled C matches the interpreter.
    func testWideBlocksArePackedInPanels() throws {
        let program = try DifferentialTests.example("rmsnorm_swiglu", dims: ["M": 200, "d": 576, "h": 200])
        let fused = Fusion.fuse(program, options: FusionOptions(cores: CLI.pinnedCores)).program
        let packs = Scheduler.schedule(fused, target: .cpu).kernels.flatMap(\.prepacks)
        let w2 = try XCTUnwrap(packs.first { fused[$0.tensor].name == "W2" }, "W2 is not packed once: \(packs)")
        XCTAssertEqual(w2.tile, KernelSchedule.Prepack.panelWidth)
        XCTAssertEqual(w2.tiles, 9, "576 columns in nine 64-column panels")
        XCTAssertEqual(w2.tileWords, 200 * 64)
        let dir = CLI.temporaryDirectory("panels")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let emitted = CLI.blockc([
            "emit-c", "Examples/rmsnorm_swiglu.graph", "--dim", "M=200,d=576,h=200", "-o", dir + "/s.c",
        ])
        XCTAssertEqual(emitted.status, 0, emitted.stderr)
        let c = try String(contentsOfFile: dir + "/s.c", encoding: .utf8)
        let calls = c.split(separator: "\n").filter { $0.contains("blk_gemm_panels(") && !$0.contains("static") }
        XCTAssertEqual(calls.count, 1, "the down projection's product walks the panels: \(calls)")
        for dims in ["M=200,d=576,h=200", "M=77,d=512,h=130"] {
            let run = CLI.blockc(["verify", "Examples/rmsnorm_swiglu.graph", "--dim", dims, "--seed", "7"])
            XCTAssertEqual(run.status, 0, "\(dims): \(run.stdout)\(run.stderr)")
            XCTAssertTrue(run.stdout.contains("max abs error"), run.stdout)
        }
    }

    /// The micro-kernel of each GPU dot: a bf16 dot goes to the tensor cores with the largest warp tile that still
    /// gives every warp a tile, and falls back to the register-tiled product, saying why, on a GPU without bf16
    /// tensor cores, for threads that are not whole warps and for an output under 8 along an axis; f32 dots stay
    /// register-tiled. The bf16 examples' dots all use the tensor cores on sm_80 and sm_90.
    /// A product of at most one register tile of rows (a decode step's matrix-vector products)
    /// reads its right operand where it is, each row once, instead of packing it first; wider
    /// products of the same weights still pack (their rows would evict each other from L1).
    func testFewRowsReadTheirRightOperandInPlace() throws {
        let program = try DifferentialTests.example(
            "llama_layer_decode", dims: ["D": 512, "H": 4, "Hkv": 2, "N": 301, "F": 200])
        let fused = Fusion.fuse(program, options: FusionOptions(cores: CLI.pinnedCores)).program
        var few = 0
        for k in Scheduler.schedule(fused, target: .cpu).kernels {
            for d in k.dots where d.precision == .f32 {
                guard let rows = k.analysis.types[d.dot]?.shape.first, rows <= KernelAnalysis.registerTileRows,
                    case .dot(_, let b, _, let tb, _)? = k.analysis.dots[d.dot],
                    k.analysis.rightStrides(b, transposed: tb).j == 1
                else { continue }
                few += 1
                XCTAssertFalse(d.packsRight, "\(k.kernel.name): a \(rows)-row product packs its right operand")
            }
        }
        XCTAssertGreaterThan(few, 3, "the decode step's projections are products of one row")
        let ln = try DifferentialTests.example("layernorm_matmul", dims: ["M": 256, "K": 256, "N": 1024])
        let lnSchedule = Scheduler.schedule(
            Fusion.fuse(ln, options: FusionOptions(cores: CLI.pinnedCores)).program, target: .cpu)
        XCTAssert(lnSchedule.kernels.flatMap(\.dots).contains { $0.packsRight }, "64-row products of W pack")
    }

    /// On a GPU a product reads a wide matrix's block where it is (no pack buffer in shared
    /// memory), so with 32-row blocks SwiGLU's hidden layer stays on chip on sm_90: no kernel
    /// stores an [M, h] tensor, and the fused program matches the unfused one.
    func testGPUKeepsTheSwiGLUHiddenLayerOnChip() throws {
        let dims = ["M": 128, "d": 1024, "h": 256]
        let program = try DifferentialTests.example("rmsnorm_swiglu", dims: dims, blocks: [("i", 32)])
        let fused = Fusion.fuse(program, options: FusionOptions(target: .sm90, cores: CLI.pinnedCores)).program
        var stored: [String] = []
        for k in fused.kernels {
            k.walk { inst in
                if case .store(_, let t, _) = inst.op { stored.append("\(fused[t].name)\(fused[t].shape)") }
            }
        }
        XCTAssertFalse(
            stored.contains { $0.hasSuffix("[128, 256]") }, "the hidden layer goes through memory: \(stored)")
        XCTAssertEqual(LocalStorage.verify(fused, target: .sm90).map(\.description), [])
        let inputs = DifferentialTests.inputs(program, seed: 3)
        let (err, scale) = DifferentialTests.maxError(
            try BlockInterpreter.run(program, inputs: inputs), try BlockInterpreter.run(fused, inputs: inputs))
        XCTAssertLessThanOrEqual(err, 1e-4 * scale)
    }

    /// The GPU cost model's parts: blocks per SM limited by threads, registers or shared memory (with the 1 KiB
    /// CUDA reserves per block), the waves and fill of a grid, and the share of threads a product keeps busy.
    func testGPUCostModelParts() throws {
        typealias M = GPUCostModel
        let h100 = try XCTUnwrap(TargetDescription.sm90.resources)
        XCTAssertEqual(M.blocksPerSM(threads: 256, registers: 32, sharedBytes: 16384, resources: h100), 8)
        XCTAssertEqual(M.blocksPerSM(threads: 256, registers: 72, sharedBytes: 16384, resources: h100), 3)
        XCTAssertEqual(M.blocksPerSM(threads: 256, registers: 32, sharedBytes: 100_000, resources: h100), 2)
        XCTAssertEqual(M.blocksPerSM(threads: 256, registers: 32, sharedBytes: 115_712, resources: h100), 2)
        XCTAssertEqual(M.blocksPerSM(threads: 256, registers: 32, sharedBytes: 115_713, resources: h100), 1)
        XCTAssertEqual(M.blocksPerSM(threads: 256, registers: 72, sharedBytes: 164_096, resources: h100), 1)
        XCTAssertEqual(M.blocksPerSM(threads: 1024, registers: 32, sharedBytes: 0, resources: h100), 2)
        let (waves, fill) = M.occupancy(instances: 192, sms: 132, blocksPerSM: 1)
        XCTAssertEqual(waves, 2)
        XCTAssertEqual(fill, 192.0 / 264, accuracy: 1e-12)
        XCTAssertEqual(M.occupancy(instances: 64, sms: 132, blocksPerSM: 3).fill, 64.0 / 132, accuracy: 1e-12)
        XCTAssertEqual(M.occupancy(instances: 1408, sms: 132, blocksPerSM: 3).waves, 4)
        XCTAssertEqual(M.occupancy(instances: 1408, sms: 132, blocksPerSM: 3).fill, 1408.0 / 1584, accuracy: 1e-12)
        XCTAssertEqual(M.occupancy(instances: 396, sms: 132, blocksPerSM: 3).fill, 1, accuracy: 1e-12)
        // A 64x64 product (256 register tiles of 4x4) on 256 threads keeps all of them busy; a 32x64 one would keep
        // half of them busy with 4x4 tiles, and takes 4x1 tiles (512): all busy, at 1/1.125 of sm_90's FMA rate
        // (shared-memory loads, KernelSchedule.registerTileEfficiency).
        for (rows, use) in [(32, 1 / 1.125), (64, 1.0)] {
            let program = try BlockParser.parse(
                """
                program p

                tensor A: f32[\(rows),64] @global input
                tensor B: f32[64,64] @global input
                tensor C: f32[\(rows),64] @global output

                kernel k grid() {
                  %0 = load A[0 +: \(rows), 0 +: 64] : f32[\(rows),64] @local
                  %1 = load B[0 +: 64, 0 +: 64] : f32[64,64] @local
                  %2 = dot %0, %1 : f32[\(rows),64] @local
                  store %2 -> C[0 +: \(rows), 0 +: 64]
                }
                """)
            let cost = try XCTUnwrap(GPUCostModel.estimate(program, target: .sm90))
            XCTAssertEqual(cost.kernels[0].use, use, accuracy: 1e-12)
            XCTAssertEqual(cost.kernels.map(\.loadedBytes), [(rows * 64 + 64 * 64) * 4])
            XCTAssertEqual(cost.kernels.map(\.registers), [GPUCostModel.registersWithProduct])
            XCTAssertEqual(cost.kernels.map(\.dramBytes), [(2 * rows * 64 + 64 * 64) * 4])
        }
        XCTAssertNil(GPUCostModel.estimate(try DifferentialTests.example("layernorm_matmul", dims: [:]), target: .cpu))
    }

    /// The GPU plan's row block: where re-blocking was refused for shared memory at the default 64 rows
    /// (RMSNorm+SwiGLU, the transformer layer, on sm_80 and sm_90), it fuses at 64, 32 and 16 rows and keeps the
    /// candidate the cost model estimates fastest by more than the margin (recomputed here from each candidate's
    /// fused program); the chosen program matches the unfused one. A CPU target, or a GPU plan without such a
    /// refusal (attention), fuses the default only.
    func testGPURowBlockChoice() throws {
        let cases: [(String, [String: Int])] = [
            ("rmsnorm_swiglu", ["M": 128, "d": 1024, "h": 512]), ("transformer_layer", ["S": 128, "F": 512]),
        ]
        for (name, dims) in cases {
            for target in [TargetDescription.sm80, .sm90] {
                let options = FusionOptions(target: target, cores: CLI.pinnedCores)
                var lowered: [Int: Program] = [:]
                let choice = try XCTUnwrap(
                    Fusion.fuseChoosingRowBlock(defaultRowBlock: 64, options: options) { rows in
                        let p = try? DifferentialTests.example(name, dims: dims, blocks: [("i", rows)])
                        lowered[rows] = p
                        return p
                    })
                XCTAssertEqual(lowered.keys.sorted(), [16, 32, 64], "\(name) \(target.name)")
                XCTAssertEqual(choice.notes.count, 4, "\(name) \(target.name): \(choice.notes)")
                var best = 64
                var bestCost = Double.infinity
                for rows in [64, 32, 16] {
                    let fused = Fusion.fuse(try XCTUnwrap(lowered[rows]), options: options).program
                    let cost = try XCTUnwrap(GPUCostModel.estimate(fused, target: target)).seconds
                    if cost < (1 - Fusion.rowBlockMargin) * bestCost { (best, bestCost) = (rows, cost) }
                }
                XCTAssertEqual(choice.rowBlock, best, "\(name) \(target.name): \(choice.notes)")
                XCTAssertTrue(choice.result.decisions.suffix(4).elementsEqual(choice.notes))
                XCTAssertEqual(LocalStorage.verify(choice.result.program, target: target).map(\.description), [])
                // The transformer layer's attention at D = 1024 with standard-normal weights (scores in the
                // hundreds) amplifies reassociation past any f32 tolerance; its fused programs are checked at
                // smaller sizes elsewhere (DifferentialTests).
                guard name == "rmsnorm_swiglu" else { continue }
                let program = choice.lowered
                let inputs = DifferentialTests.inputs(program, seed: 5)
                let (err, scale) = DifferentialTests.maxError(
                    try BlockInterpreter.run(program, inputs: inputs),
                    try BlockInterpreter.run(choice.result.program, inputs: inputs))
                XCTAssertLessThanOrEqual(err, 1e-4 * scale, "\(name) \(target.name)")
            }
        }
        // RMSNorm+SwiGLU at its full size on sm_90, with the TF32 option too (its 132 SMs to fill): at 16 rows the
        // products keep every thread (4x1 tiles) or warp (tensor-core tiles) busy and the hidden layer G stays on
        // chip, but each of the 128 row blocks re-reads all three weight matrices (35 MB) through L2: the fused
        // kernel is bound by that traffic, above its compute time, and the 64-row plan, which stores G
        // ([2048, 2816]) in global memory, stays the model's choice.
        for tf32 in [false, true] {
            var target = TargetDescription.sm90
            target.tf32 = tf32
            // The cores a GPU plan fills by default: the target's SMs (R15 splits the fused kernel's reduction for them).
            let options = FusionOptions(target: target, cores: target.cores)
            var fusedAt: [Int: Program] = [:]
            let choice = try XCTUnwrap(
                Fusion.fuseChoosingRowBlock(defaultRowBlock: 64, options: options) { rows in
                    guard let p = try? DifferentialTests.example("rmsnorm_swiglu", dims: [:], blocks: [("i", rows)])
                    else { return nil }
                    fusedAt[rows] = Fusion.fuse(p, options: options).program
                    return p
                })
            var best = 64
            var bestCost = Double.infinity
            for rows in [64, 32, 16] {
                let cost = try XCTUnwrap(GPUCostModel.estimate(try XCTUnwrap(fusedAt[rows]), target: target)).seconds
                if cost < (1 - Fusion.rowBlockMargin) * bestCost { (best, bestCost) = (rows, cost) }
            }
            XCTAssertEqual(choice.rowBlock, best, choice.notes.joined(separator: "\n"))
            func storesHidden(_ p: Program) -> Bool {
                var found = false
                for k in p.kernels {
                    k.walk { inst in
                        if case .store(_, let t, _) = inst.op, p[t].shape == [2048, 2816] { found = true }
                    }
                }
                return found
            }
            let at16 = try XCTUnwrap(fusedAt[16])
            XCTAssertTrue(storesHidden(try XCTUnwrap(fusedAt[64])))
            XCTAssertFalse(storesHidden(at16))
            let cost16 = try XCTUnwrap(GPUCostModel.estimate(at16, target: target))
            let fused16 = try XCTUnwrap(cost16.kernels.max { $0.seconds < $1.seconds })
            let r = try XCTUnwrap(target.resources)
            XCTAssertGreaterThan(fused16.use, 0.9, "\(tf32)")
            XCTAssertGreaterThan(
                Double(fused16.loadedBytes) / r.l2BytesPerSecond,
                Double(fused16.flops) / (r.fp32FlopsPerSecond * fused16.fill * fused16.use), "\(tf32)")
            XCTAssertGreaterThan(fused16.loadedBytes, 100 * 35 * 1024 * 1024, "the weights, re-read per row block")
            XCTAssertEqual(choice.rowBlock, 64, choice.notes.joined(separator: "\n"))
            XCTAssertTrue(storesHidden(choice.result.program))
        }
        for (name, target) in [("rmsnorm_swiglu", TargetDescription.cpu), ("attention", .sm90)] {
            var tried: [Int] = []
            let choice = try XCTUnwrap(
                Fusion.fuseChoosingRowBlock(
                    defaultRowBlock: 64, options: FusionOptions(target: target, cores: CLI.pinnedCores)
                ) { rows in
                    tried.append(rows)
                    return try? DifferentialTests.example(name, dims: [:], blocks: [("i", rows)])
                })
            XCTAssertEqual(tried, [64], name)
            XCTAssertEqual(choice.notes, [], name)
        }
    }

    /// A GPU schedule pads the packed right operand's rows of a product (64 → 68 floats, counted in the buffer
    /// plan); a CPU schedule does not. With 68-float rows a bf16 mma's B fragment load (lane `(g, t)` reads row
    /// `2t + 8r + h`, column `g`, h = 0 or 1) touches 32 different banks, with 64-float rows 8 (4-way conflicts).
    func testGPUPadsPackedRows() throws {
        let naive = try DifferentialTests.example("attention_bf16", dims: [:])
        for (target, stride) in [(TargetDescription.sm90, 68), (.sm80, 68), (.cpu, 64)] {
            let fused = Fusion.fuse(naive, options: FusionOptions(target: target, cores: CLI.pinnedCores)).program
            let schedule = Scheduler.schedule(fused, target: target)
            var packed = 0
            for k in schedule.kernels {
                for d in k.dots where d.packsRight {
                    packed += 1
                    XCTAssertEqual(k.analysis.packedRowStride(d.dot), stride, target.name)
                    XCTAssertEqual(k.analysis.packedCount(d.dot), 64 * stride, target.name)
                }
            }
            XCTAssertGreaterThan(packed, 0, target.name)
        }
        func banks(rowStride: Int) -> Set<Int> {
            var out: Set<Int> = []
            for lane in 0..<32 {
                let (g, t) = (lane / 4, lane % 4)
                out.insert(((2 * t) * rowStride + g) % 32)
            }
            return out
        }
        XCTAssertEqual(banks(rowStride: 68).count, 32)
        XCTAssertEqual(banks(rowStride: 64).count, 8)
    }

    /// Register tiles of f32 products on a GPU: 4x4 wherever every thread gets one, 4x1 for narrower outputs (all
    /// threads busy), by the use and shared-memory shares `registerTileEfficiency` computes.
    func testRegisterTileChoice() throws {
        typealias S = KernelSchedule
        let (wide, narrow) = (S.RegisterTile(rows: 4, columns: 4), S.RegisterTile(rows: 4, columns: 1))
        for target in [TargetDescription.sm80, .sm90] {
            XCTAssertEqual(S.registerTile(m: 64, n: 64, threads: 256, target: target), wide)
            XCTAssertEqual(S.registerTile(m: 128, n: 64, threads: 256, target: target), wide)
            XCTAssertEqual(S.registerTile(m: 16, n: 64, threads: 256, target: target), narrow)
            XCTAssertEqual(S.registerTile(m: 32, n: 64, threads: 256, target: target), narrow)
            XCTAssertEqual(S.registerTile(m: 1, n: 64, threads: 256, target: target), narrow)
        }
        XCTAssertEqual(S.registerTile(m: 16, n: 64, threads: 256, target: .cpu), wide)
        let r90 = try XCTUnwrap(TargetDescription.sm90.resources)
        func efficiency(_ m: Int, _ n: Int, _ tile: S.RegisterTile, _ r: GPUResources) -> (Double, Double) {
            let e = S.registerTileEfficiency(
                m: m, n: n, threads: 256, tile: tile, fmaPerClock: r.fmaPerClock,
                sharedBytesPerClock: r.sharedBytesPerClock)
            return (e.use, e.sharedMemory)
        }
        // 64x64 in 4x4 tiles: 256 tiles; a warp reads 2 tile rows of A (32 bytes) and 16 tile columns of B (256
        // bytes) per k for 512 FMAs: compute-bound.
        XCTAssertEqual(efficiency(64, 64, wide, r90).0, 1)
        XCTAssertEqual(efficiency(64, 64, wide, r90).1, 1)
        // 16x64 in 4x4 tiles leaves three threads in four idle; in 4x1 tiles every thread works, and a warp's 144
        // bytes per k (16 of A, 128 of B) for 128 FMAs take 1.125 clocks against sm_90's 1 clock of FMAs.
        XCTAssertEqual(efficiency(16, 64, wide, r90).0, 0.25)
        XCTAssertEqual(efficiency(16, 64, narrow, r90).0, 1)
        XCTAssertEqual(efficiency(16, 64, narrow, r90).1, 1 / 1.125, accuracy: 1e-12)
        // sm_80 issues 64 FMAs per clock per SM: the same loads keep up.
        XCTAssertEqual(efficiency(16, 64, narrow, try XCTUnwrap(TargetDescription.sm80.resources)).1, 1)
        // The schedule records the tile (CudaTests.testNarrowRegisterTilesOnTheEmulator runs it).
        let program = try DifferentialTests.example(
            "rmsnorm_swiglu", dims: ["M": 40, "d": 200, "h": 72], blocks: [("i", 16)])
        let fused = Fusion.fuse(program, options: FusionOptions(target: .sm90, cores: CLI.pinnedCores)).program
        let tiles = Scheduler.schedule(fused, target: .sm90).kernels.flatMap(\.dots).compactMap { d -> String? in
            if case .registerTiled(let tile, _)? = d.gpu { return tile.description }
            return nil
        }
        XCTAssertTrue(tiles.contains("4x1"), "\(tiles)")
    }

    func testGPUProductChoice() throws {
        typealias S = KernelSchedule
        let narrow = S.RegisterTile(rows: 4, columns: 1)
        XCTAssertEqual(
            S.gpuProduct(precision: .bf16, m: 64, n: 64, threads: 256, target: .sm90),
            .tensorCores(rows: 32, columns: 16))
        XCTAssertEqual(
            S.gpuProduct(precision: .bf16, m: 128, n: 64, threads: 256, target: .sm80),
            .tensorCores(rows: 32, columns: 32))
        XCTAssertEqual(
            S.gpuProduct(precision: .bf16, m: 64, n: 40, threads: 256, target: .sm80),
            .tensorCores(rows: 16, columns: 16))
        XCTAssertEqual(
            S.gpuProduct(precision: .bf16, m: 16, n: 8, threads: 256, target: .sm90), .tensorCores(rows: 16, columns: 8)
        )
        XCTAssertEqual(
            S.gpuProduct(precision: .f32, m: 64, n: 64, threads: 256, target: .sm90),
            .registerTiled(tile: S.registerTiles[0], fallback: nil))
        var older = TargetDescription.sm80
        older.name = "sm_75"
        older.bf16TensorCores = false
        XCTAssertEqual(
            S.gpuProduct(precision: .bf16, m: 64, n: 64, threads: 256, target: older),
            .registerTiled(tile: S.registerTiles[0], fallback: "sm_75 has no bf16 tensor cores"))
        XCTAssertEqual(
            S.gpuProduct(precision: .bf16, m: 64, n: 64, threads: 200, target: .sm90),
            .registerTiled(tile: narrow, fallback: "200 threads are not whole warps"))
        XCTAssertEqual(
            S.gpuProduct(precision: .bf16, m: 1, n: 64, threads: 256, target: .sm90),
            .registerTiled(tile: narrow, fallback: "its 1x64 output is under 8 along an axis (an mma computes 16x8)"))
        // The TF32 option: f32 dots on the tensor cores where a bf16 dot would be; bf16 dots unchanged.
        var tf32 = TargetDescription.sm80
        tf32.tf32 = true
        XCTAssertEqual(
            S.gpuProduct(precision: .f32, m: 64, n: 64, threads: 256, target: tf32),
            .tf32TensorCores(rows: 32, columns: 16))
        XCTAssertEqual(
            S.gpuProduct(precision: .f32, m: 64, n: 40, threads: 256, target: tf32),
            .tf32TensorCores(rows: 16, columns: 16))
        XCTAssertEqual(
            S.gpuProduct(precision: .bf16, m: 64, n: 64, threads: 256, target: tf32),
            .tensorCores(rows: 32, columns: 16))
        XCTAssertEqual(
            S.gpuProduct(precision: .f32, m: 1, n: 64, threads: 256, target: tf32),
            .registerTiled(tile: narrow, fallback: "its 1x64 output is under 8 along an axis (an mma computes 16x8)"))
        older.tf32 = true
        XCTAssertEqual(
            S.gpuProduct(precision: .f32, m: 64, n: 64, threads: 256, target: older),
            .registerTiled(tile: S.registerTiles[0], fallback: "sm_75 has no tf32 tensor cores"))
        for example in ["attention_bf16", "rmsnorm_swiglu_bf16"] {
            for target in [TargetDescription.sm80, .sm90] {
                let program = try DifferentialTests.example(example, dims: [:], blocks: [])
                let fused = Fusion.fuse(program, options: FusionOptions(target: target, cores: CLI.pinnedCores)).program
                let schedule = Scheduler.schedule(fused, target: target)
                let dots = schedule.kernels.flatMap(\.dots)
                XCTAssertFalse(dots.isEmpty, example)
                for d in dots {
                    guard case .tensorCores? = d.gpu else {
                        return XCTFail("\(example) \(target.name): dot \(d.dot) is \(String(describing: d.gpu))")
                    }
                }
            }
        }
    }

}
