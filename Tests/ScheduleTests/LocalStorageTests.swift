import BlockIR
import BlockParser
import Schedule
import XCTest

/// The local-tier capacity check reads the emitters' storage model (`KernelAnalysis`,
/// `BufferPlan`): the bytes a kernel needs are the physical buffers its generated code allocates.
final class LocalStorageTests: XCTestCase {
    private let header = """
        program p

        tensor X: f32[64,64] @global input
        tensor Y: f32[64,64] @global output

        """

    private func program(_ body: String, grid: String = "i < 1", tensors: String = "") throws -> Program {
        try BlockParser.parse(header + tensors + "\nkernel k grid(\(grid)) {\n" + body + "\n}\n")
    }

    private func bytes(_ p: Program) -> Int { LocalStorage.bytes(p.kernels[0], in: p) }

    /// Over capacity: one error naming the bytes, the target and the largest buffers with the
    /// values they hold; `Verifier.verify` alone (structure) has nothing to say.
    func testCapacityViolation() throws {
        let text = """
              %0 = load A[0 +: 512, 0 +: 512] : f32[512,512] @local
              %1 = load A[0 +: 128, 0 +: 512] : f32[128,512] @local
              %2 = fill 0.0 : f32[] @reg
              %3 = exp %0 : f32[512,512] @local
              store %3 -> B[0 +: 512, 0 +: 512]
              store %1 -> D[0 +: 128, 0 +: 512]
              store %0 -> C[0 +: 512, 0 +: 512]
            """
        let p = try BlockParser.parse(
            """
            program p

            tensor A: f32[512,512] @global input
            tensor B: f32[512,512] @global output
            tensor C: f32[512,512] @global output
            tensor D: f32[128,512] @global output

            kernel k grid(i < 1) {
            \(text)
            }

            """)
        // %0 is read twice from a matrix with 2 KiB rows: copied (1 MiB); %1 is read once: a view
        // of A; %3 cannot overwrite %0, stored after it: 1 MiB more.
        XCTAssertEqual(bytes(p), 2 * 1_048_576)
        XCTAssertEqual(Verifier.verify(p, target: .cpu), [])
        let errors = LocalStorage.verify(p, target: .cpu)
        XCTAssertEqual(errors.count, 1, "\(errors)")
        XCTAssertEqual(errors.first?.kernel, "k")
        XCTAssertEqual(
            errors.first?.message,
            "local tier needs 2097152 bytes but cpu has 1048576; largest buffers: B0 1048576 bytes (%0 f32[512,512] @local), "
                + "B1 1048576 bytes (%3 f32[512,512] @local)")
        XCTAssertEqual(LocalStorage.verify(p, target: .sm90).count, 1)
        // `fits` agrees with the plan's bytes where its cheap bound does not decide.
        XCTAssertFalse(LocalStorage.fits(p.kernels[0], in: p, capacity: 1_048_576))
        XCTAssertTrue(LocalStorage.fits(p.kernels[0], in: p, capacity: 2 * 1_048_576))
        XCTAssertFalse(LocalStorage.fits(p.kernels[0], in: p, capacity: 2 * 1_048_576 - 1))
    }

    /// The storage rules: in-place results, accumulated dots, views, splats and loops.
    func testStorageRules() throws {
        // Matmul: the loads read A and B in place, the dot accumulates into its add, which
        // overwrites the carried accumulator: one 64x64 block.
        let matmul = try BlockParser.parse(
            """
            program matmul

            tensor A: f32[256,512] @global input
            tensor B: f32[512,384] @global input
            tensor C: f32[256,384] @global output

            kernel k0_matmul_C grid(i < 4, j < 6) {
              %0 = fill 0.0 : f32[64,64] @local
              %1 = for k in 0 ..< 8 iter(%2 = %0) : f32[64,64] @local {
                %3 = load A[i * 64 +: 64, k * 64 +: 64] : f32[64,64] @local
                %4 = load B[k * 64 +: 64, j * 64 +: 64] : f32[64,64] @local
                %5 = dot %3, %4 : f32[64,64] @local
                %6 = add %2, %5 : f32[64,64] @local
                yield %6
              }
              store %1 -> C[i * 64 +: 64, j * 64 +: 64]
            }

            """)
        XCTAssertEqual(bytes(matmul), 16384)
        // %0 reads the input X in place (no buffer); %2 overwrites %1, which dies at it: one block.
        // (A loop without results: its body is analysed too.)
        let loop = """
              %0 = load X[0 +: 64, 0 +: 64] : f32[64,64] @local
              for k in 0 ..< 2 {
                %1 = exp %0 : f32[64,64] @local
                %2 = exp %1 : f32[64,64] @local
                yield
              }
            """
        XCTAssertEqual(bytes(try program(loop)), 16384)
        // A dot read twice has storage of its own; one read only by an add accumulates into it.
        let twice = """
              %0 = load X[0 +: 64, 0 +: 64] : f32[64,64] @local
              %1 = load X[0 +: 64, 0 +: 64] : f32[64,64] @local
              %2 = dot %1, %1 : f32[64,64] @local
              %3 = add %0, %2 : f32[64,64] @local
              store %2 -> Y[0 +: 64, 0 +: 64]
              store %3 -> Y[0 +: 64, 0 +: 64]
            """
        XCTAssertEqual(bytes(try program(twice)), 2 * 16384)
        let once = """
              %0 = load X[0 +: 64, 0 +: 64] : f32[64,64] @local
              %1 = load X[0 +: 64, 0 +: 64] : f32[64,64] @local
              %2 = dot %1, %1 : f32[64,64] @local
              %3 = add %0, %2 : f32[64,64] @local
              store %3 -> Y[0 +: 64, 0 +: 64]
            """
        XCTAssertEqual(bytes(try program(once)), 16384)
        let empty = Program(name: "e", tensors: [], kernels: [Kernel(name: "empty", grid: [], body: [])])
        XCTAssertEqual(LocalStorage.bytes(empty.kernels[0], in: empty), 0)
    }
}
