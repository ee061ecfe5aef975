import BlockIR
import Foundation
import XCTest

@testable import Interpreter

/// The data-movement report on hand-countable programs.
final class CostReportTests: XCTestCase {
    /// The tiled matmul at M=70, K=50, N=33 with 32-blocks (grid 3×2, k loop of 2).
    ///
    /// Over all instances the A blocks cover A once per column block j (2 × 70·50 elements),
    /// the B blocks cover B once per row block i (3 × 50·33), the stores cover C once (70·33).
    /// The dots perform 2·70·33·50 FLOPs over valid extents; the accumulating add runs on the
    /// valid 70·33 outputs in each of the 2 k iterations.
    func testTiledMatmulByHand() {
        let program = TestPrograms.tiledMatmul(m: 70, k: 50, n: 33, tile: 32)
        let report = CostReport.analyze(program) { _ in 0 }
        let expected = KernelCost(
            name: "mm", globalReadBytes: 4 * (2 * 70 * 50 + 3 * 50 * 33), globalWriteBytes: 4 * 70 * 33,
            flops: 2 * 70 * 33 * 50 + 2 * 70 * 33, localPeakBytes: 0)
        XCTAssertEqual(report.kernels, [expected])
        XCTAssertEqual(expected.globalReadBytes, 47_800)
        XCTAssertEqual(expected.globalWriteBytes, 9_240)
        XCTAssertEqual(expected.flops, 235_620)
        XCTAssertEqual(report.total.name, "total")
        XCTAssertEqual(report.total.flops, 235_620)
        XCTAssertEqual(
            report.json,
            """
            {"kernels": [{"name": "mm", "global_read_bytes": 47800, "global_write_bytes": 9240, "flops": 235620, \
            "local_peak_bytes": 0}], "total": {"global_read_bytes": 47800, "global_write_bytes": 9240, \
            "flops": 235620, "local_peak_bytes": 0}}

            """)
    }

    func testTotalsJSONAndText() throws {
        var program = TestPrograms.tiledMatmul(m: 64, k: 64, n: 64, tile: 32)
        var second = program.kernels[0]
        second.name = "mm \"again\"\\"
        program.kernels.append(second)
        let report = CostReport.analyze(program) { k in k.name == "mm" ? 12_288 : 4096 }
        XCTAssertEqual(report.kernels.count, 2)
        XCTAssertEqual(report.total.globalReadBytes, 2 * report.kernels[0].globalReadBytes)
        XCTAssertEqual(report.total.flops, 2 * (2 * 64 * 64 * 64 + 2 * 64 * 64))
        XCTAssertEqual(report.total.localPeakBytes, 12_288)
        let object = try JSONSerialization.jsonObject(with: Data(report.json.utf8)) as! [String: Any]
        let kernels = object["kernels"] as! [[String: Any]]
        XCTAssertEqual(kernels[1]["name"] as? String, "mm \"again\"\\")
        XCTAssertEqual((object["total"] as! [String: Any])["local_peak_bytes"] as? Int, 12_288)
        let lines = report.text.split(separator: "\n")
        XCTAssertTrue(lines[0].hasPrefix("kernel"), report.text)
        XCTAssertTrue(report.text.contains("(12.0 KiB)"), report.text)
        XCTAssertTrue(lines.last!.hasPrefix("total"), report.text)
        // Aligned: every row has the same width.
        XCTAssertEqual(Set(lines.map(\.count)).count, 1, report.text)
    }

    /// The report counts what the interpreter executes: loop trip counts from index
    /// expressions, masks and reductions over valid extents, and nothing for an empty loop.
    func testExtentsOfOtherOps() {
        func local(_ shape: [Int]) -> BlockType { BlockType(shape, .local) }
        let i = IndexExpr.v("i")
        var b = BodyBuilder()
        let zero = b.emit(.fill(0), local([16]))
        // Triangular trip count: k in 0 ..< i + 1 over i in 0 ..< 3 → 1 + 2 + 3 = 6 iterations.
        let acc = b.loop(
            IndexVar("k"), from: .constant(0), to: .add(i, .constant(1)), carrying: [zero], types: [local([16])]
        ) {
            body, carried in
            let x = body.emit(
                .load(TensorID(0), [.slice(start: .mul(i, 16), size: 16), .slice(start: .mul(.v("k"), 16), size: 16)]),
                local([16, 16]))
            let m = body.emit(
                .mask(x, rowOffset: .mul(i, 16), columnOffset: .mul(.v("k"), 16), Predicate([]), fill: 0),
                local([16, 16]))
            let s = body.emit(.reduce(.sum, m, axis: 1), local([16]))
            return [body.emit(.binary(.add, carried[0], s), local([16]))]
        }
        let none = b.loop(IndexVar("e"), from: .constant(1), to: .constant(1), carrying: [zero], types: [local([16])]) {
            body, c in
            [body.emit(.unary(.exp, c[0]), local([16]))]
        }
        let sum = b.emit(.binary(.add, acc[0], none[0]), local([16]))
        b.emit(.store(sum, TensorID(1), [.slice(start: .mul(i, 16), size: 16)]))
        let program = Program(
            name: "tri",
            tensors: [
                GlobalTensor(name: "X", shape: [40, 40], role: .input),
                GlobalTensor(name: "R", shape: [40], role: .output),
            ],
            kernels: [Kernel(name: "tri", grid: [GridAxis(IndexVar("i"), 3)], body: b.instructions)])
        let report = CostReport.analyze(program) { _ in 0 }
        // Row blocks have 16, 16, 8 valid rows; column blocks 16, 16, 8 valid columns.
        // Loads: i=0: 16·16; i=1: 16·16 + 16·16; i=2: 8·16 + 8·16 + 8·8.
        let loaded = 256 + 512 + (128 + 128 + 64)
        XCTAssertEqual(report.kernels[0].globalReadBytes, 4 * loaded)
        XCTAssertEqual(report.kernels[0].globalWriteBytes, 4 * 40)
        // Per iteration: mask + reduce over the valid block (2 × loaded), add over the valid rows;
        // then the final add over the valid rows of each instance.
        let adds = (16 * 1 + 16 * 2 + 8 * 3) + 40
        XCTAssertEqual(report.kernels[0].flops, 2 * loaded + adds)
    }

    /// An out-of-range access, fatal for the interpreter, counts nothing in the report.
    func testOutOfRangeCountsNothing() {
        var b = BodyBuilder()
        let x = b.emit(
            .load(TensorID(0), [.point(.v("i")), .slice(start: .constant(0), size: 4)]), BlockType([4], .local))
        b.emit(.store(x, TensorID(1), [.point(.v("i")), .slice(start: .constant(0), size: 4)]))
        let program = Program(
            name: "oob",
            tensors: [
                GlobalTensor(name: "X", shape: [2, 4], role: .input),
                GlobalTensor(name: "Y", shape: [2, 4], role: .output),
            ],
            kernels: [Kernel(name: "rows", grid: [GridAxis(IndexVar("i"), 3)], body: b.instructions)])
        let report = CostReport.analyze(program) { _ in 0 }
        XCTAssertEqual(report.kernels[0].globalReadBytes, 4 * 8)
        XCTAssertEqual(report.kernels[0].globalWriteBytes, 4 * 8)
    }
}
