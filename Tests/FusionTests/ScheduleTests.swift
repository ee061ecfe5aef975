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
        XCTAssertEqual(schedule.decisions.count, 1)
        XCTAssertTrue(schedule.decisions[0].hasPrefix("coarsen k11_matmul_Y to 32-row blocks"), schedule.decisions[0])
        XCTAssertEqual(Verifier.verify(schedule.program, target: small), [])
        let inputs = DifferentialTests.inputs(program, seed: 12)
        let reference = try BlockInterpreter.run(program, inputs: inputs)
        let scheduled = try BlockInterpreter.run(schedule.program, inputs: inputs)
        let (err, scale) = DifferentialTests.maxError(reference, scheduled)
        XCTAssertLessThanOrEqual(err, 1e-4 * scale)
        // On the CPU target the same program streams less than 1 MiB per instance: no coarsening.
        let cpu = Scheduler.schedule(
            Fusion.fuse(program, options: FusionOptions(cores: CLI.pinnedCores)).program, target: .cpu)
        XCTAssertEqual(cpu.decisions, [])
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
        XCTAssertEqual(schedule.program, fused)
        XCTAssertEqual(
            schedule.decisions, ["keep k11_matmul_Y at 16-row blocks: 32 rows do not fit tight's local tier"])
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
                k.prepacks.map { "\(fused[$0.tensor].name) \($0.precision) \($0.kAlongRows ? "rows" : "columns")" }
            }
        }
        XCTAssertEqual(try prepacked("attention", ["N": 256]), ["K f32 columns"])
        XCTAssertEqual(try prepacked("attention_bf16", ["N": 256]), ["K bf16 columns", "V bf16 rows"])
        XCTAssertEqual(
            try prepacked("rmsnorm_swiglu_bf16", ["M": 256, "d": 128, "h": 256]),
            ["W1 bf16 rows", "W3 bf16 rows", "W2 bf16 rows"])
        XCTAssertEqual(try prepacked("attention_bf16", ["N": 256], target: .sm90), [])
        // W's 64×64 blocks, rows 4 KiB apart, read by three products (x·W, γ·W, β·W): packed once
        // and read in place from the packed tiles, not copied into a buffer by every instance.
        XCTAssertEqual(try prepacked("layernorm_matmul"), ["W f32 rows"])
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

    func testGPUProductChoice() throws {
        typealias S = KernelSchedule
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
            S.gpuProduct(precision: .f32, m: 64, n: 64, threads: 256, target: .sm90), .registerTiled(fallback: nil))
        var older = TargetDescription.sm80
        older.name = "sm_75"
        older.bf16TensorCores = false
        XCTAssertEqual(
            S.gpuProduct(precision: .bf16, m: 64, n: 64, threads: 256, target: older),
            .registerTiled(fallback: "sm_75 has no bf16 tensor cores"))
        XCTAssertEqual(
            S.gpuProduct(precision: .bf16, m: 64, n: 64, threads: 200, target: .sm90),
            .registerTiled(fallback: "200 threads are not whole warps"))
        XCTAssertEqual(
            S.gpuProduct(precision: .bf16, m: 1, n: 64, threads: 256, target: .sm90),
            .registerTiled(fallback: "its 1x64 output is under 8 along an axis (an mma computes 16x8)"))
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
            .registerTiled(fallback: "its 1x64 output is under 8 along an axis (an mma computes 16x8)"))
        older.tf32 = true
        XCTAssertEqual(
            S.gpuProduct(precision: .f32, m: 64, n: 64, threads: 256, target: older),
            .registerTiled(fallback: "sm_75 has no tf32 tensor cores"))
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
