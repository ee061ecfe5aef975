import BlockIR
import BlockParser
import BlockTestSupport
import Codegen
import Foundation
import Interpreter
import Schedule
import XCTest

/// A `select` is planned in place over the operand it keeps where that operand dies at it, so in
/// a block the loop knows to be full (`full F[k] true(%5)`: the condition holds everywhere) it
/// emits no code; where the operand lives on, the select has its own buffer and copies.
final class SelectInPlaceTests: XCTestCase {
    /// A column sum of `X` where `M` keeps its elements, over 4-row blocks; `rereads` adds a second
    /// use of the block `%4` after the select (the sum of its squares), which keeps it alive.
    /// Random inputs make every element of `M` and `F` non-zero (a standard normal is never 0), so
    /// the full blocks the loop takes are full.
    private func program(rereads: Bool) throws -> Program {
        let reread =
            rereads
            ? """
                %9 = mul %12, %4 : f32[4,8] @local
                %10 = reduce_sum %9 axis 0 : f32[8] @local
                %11 = add %7, %10 : f32[8] @local
            """ : "    %11 = add %7, %0 : f32[8] @local"
        return try BlockParser.parse(
            """
            program select_in_place

            tensor X: f32[2,20,16] @global input
            tensor M: bool[1,20,16] @global input
            tensor F: bool[5] @global input
            tensor C: f32[2,16] @global output

            kernel k grid(b < 2, j < 2) {
              %0 = fill 0.0 : f32[8] @local
              %1 = fill 0.0 : f32[] @reg
              %2 = for k in 0 ..< 5 if F[k] full F[k] true(%5) iter(%3 = %0) : f32[8] @local {
                %4 = load X[b, k * 4 +: 4, j * 8 +: 8] : f32[4,8] @local
                %5 = load M[0, k * 4 +: 4, j * 8 +: 8] : f32[4,8] @local
                %12 = mul %4, %4 : f32[4,8] @local
                %6 = select %5, %12, %1 : f32[4,8] @local
                %7 = reduce_sum %6 axis 0 : f32[8] @local
            \(reread)
                %8 = add %3, %11 : f32[8] @local
                yield %8
              }
              store %2 -> C[b, j * 8 +: 8]
            }

            """)
    }

    /// Without the second use the select is written over `%4` and the full block's C has no loop
    /// for it; with it the select owns a buffer and the full block copies `%4` into it. Both match
    /// the interpreter at 1 and 3 threads (skipping the copy where the select is not in place
    /// leaves its buffer unwritten: errors of the order of the sums).
    func testInPlaceOnlyWhereTheOperandDies() throws {
        for rereads in [false, true] {
            let p = try program(rereads: rereads)
            let kernel = Scheduler.scheduleKeepingBlocks(p, target: .cpu).kernels[0]
            XCTAssertEqual(kernel.buffers.inPlace.contains(ValueID(6)), !rereads, "rereads: \(rereads)")
            let source = CEmitter.emit(p).source
            let full = source.components(separatedBy: "if (blk_g_F[k] != 0) {").dropFirst().first ?? ""
            let fast = full.components(separatedBy: "} else {").first ?? ""
            XCTAssertFalse(fast.isEmpty, "the full block's branch")
            let writes = fast.range(of: #"v6\[[^\]]*\] = "#, options: .regularExpression) != nil
            XCTAssertEqual(writes, rereads, "rereads: \(rereads)\n\(fast)")
            // `verify` runs the C against the interpreter; M and F all true (every block full).
            let dir = CodegenHarness.scratch("select-in-place")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            try BlockPrinter.print(p).write(toFile: dir + "/p.block", atomically: true, encoding: .utf8)
            try NPY.writeFile(
                NDArray(shape: [1, 20, 16], data: Array(repeating: 1, count: 320), elementType: .bool),
                to: dir + "/M.npy")
            try NPY.writeFile(
                NDArray(shape: [5], data: Array(repeating: 1, count: 5), elementType: .bool), to: dir + "/F.npy")
            for threads in ["1", "3"] {
                let result = CLI.blockc(
                    [
                        "verify", dir + "/p.block", "--seed", "4", "--input", "M=\(dir)/M.npy", "--input",
                        "F=\(dir)/F.npy",
                    ],
                    environment: ["OMP_NUM_THREADS": threads])
                XCTAssertEqual(result.status, 0, "rereads: \(rereads)\n" + result.stdout + result.stderr)
                XCTAssertTrue(result.stdout.contains("C: max abs error"), result.stdout)
            }
        }
    }
}
