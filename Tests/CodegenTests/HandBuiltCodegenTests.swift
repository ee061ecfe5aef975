import BlockIR
import Codegen
import Schedule
import XCTest

/// Programs built by hand for paths lowering does not produce: a loop whose yields swap
/// carried values, a carried scalar, an empty grid, and blocks too big for the stack.
final class HandBuiltCodegenTests: XCTestCase {
    func testSwapLoopScalarCarryAndBigBlocks() throws {
        let tensors = [
            GlobalTensor(name: "X", shape: [64, 64], role: .input),
            GlobalTensor(name: "Y", shape: [64, 64], role: .output),
            GlobalTensor(name: "Z", shape: [1], role: .output),
            GlobalTensor(name: "U", shape: [1024, 256], role: .input),
            GlobalTensor(name: "W", shape: [1024, 256], role: .output),
        ]
        let full = AxisAccess.slice(start: .constant(0), size: 64)
        var b = BodyBuilder()
        let x = b.emit(.load(TensorID(0), [full, full]), BlockType([64, 64], .local))
        let one = b.emit(.fill(1), BlockType([64, 64], .local))
        let zero = b.emit(.fill(0), BlockType([], .reg))
        let types = [BlockType([64, 64], .local), BlockType([64, 64], .local), BlockType([], .reg)]
        let out = b.loop(IndexVar("t"), from: .constant(0), to: .constant(3), carrying: [x, one, zero], types: types) {
            body, c in
            let sum = body.emit(.binary(.add, c[0], c[1]), types[0])
            let rows = body.emit(.reduce(.sum, c[0], axis: 1), BlockType([64], .local))
            let total = body.emit(.reduce(.sum, rows, axis: 0), BlockType([], .reg))
            let s = body.emit(.binary(.add, c[2], total), types[2])
            return [c[1], sum, s]
        }
        b.emit(.store(out[1], TensorID(1), [full, full]))
        b.emit(.store(out[2], TensorID(2), [.point(.constant(0))]))
        let first = Kernel(name: "swap", grid: [], body: b.instructions)

        var big = BodyBuilder()
        let rows = AxisAccess.slice(start: .mul(.v("i"), 256), size: 256)
        let cols = AxisAccess.slice(start: .constant(0), size: 256)
        let u = big.emit(.load(TensorID(3), [rows, cols]), BlockType([256, 256], .local))
        let e = big.emit(.unary(.tanh, u), BlockType([256, 256], .local))
        let m = big.emit(.binary(.max, e, u), BlockType([256, 256], .local))
        let n = big.emit(.binary(.mul, m, e), BlockType([256, 256], .local))
        big.emit(.store(n, TensorID(4), [rows, cols]))
        let second = Kernel(name: "big", grid: [GridAxis(IndexVar("i"), 4)], body: big.instructions)

        let program = Program(name: "handbuilt", tensors: tensors, kernels: [first, second])
        let source = CEmitter.emit(program).source
        XCTAssert(source.contains("blk_arena"), "512 KiB of blocks should not live on the stack")
        _ = try CodegenHarness.check(program)
    }

    /// Values that repeat along an axis are stored once per position of the others: a head's
    /// slope from fills and a grid position is a scalar, positions along rows or columns and
    /// what elementwise ops make of them alone are one float per row or column. The C matches
    /// the interpreter, the partial last row block (150 = 2·64 + 22 rows) included.
    func testRepeatedValuesAreStoredOncePerPosition() throws {
        let tensors = [
            GlobalTensor(name: "X", shape: [150, 40], role: .input),
            GlobalTensor(name: "Y", shape: [150, 40], role: .output),
            GlobalTensor(name: "Z", shape: [150], role: .output),
        ]
        let rows = AxisAccess.slice(start: .mul(.v("i"), 64), size: 64)
        let cols = AxisAccess.slice(start: .constant(0), size: 40)
        let block = BlockType([64, 40], .local)
        var b = BodyBuilder()
        let x = b.emit(.load(TensorID(0), [rows, cols]), block)
        let head = b.emit(.index(.v("i"), axis: nil), block)
        let two = b.emit(.fill(2), block)
        let slope = b.emit(.binary(.pow, two, b.emit(.unary(.neg, head), block)), block)
        let rowPos = b.emit(.index(.mul(.v("i"), 64), axis: 0), block)
        let colPos = b.emit(.index(.constant(0), axis: 1), block)
        let scaledRows = b.emit(.binary(.mul, rowPos, slope), block)
        let decay = b.emit(.unary(.exp, b.emit(.binary(.mul, colPos, b.emit(.fill(-0.1), block)), block)), block)
        let bias = b.emit(.binary(.sub, scaledRows, decay), block)
        let y = b.emit(.binary(.add, b.emit(.binary(.mul, x, bias), block), scaledRows), block)
        let z = b.emit(.reduce(.sum, scaledRows, axis: 1), BlockType([64], .local))
        b.emit(.store(y, TensorID(1), [rows, cols]))
        b.emit(.store(z, TensorID(2), [rows]))
        let kernel = Kernel(name: "repeats", grid: [GridAxis(IndexVar("i"), 3)], body: b.instructions)
        let program = Program(name: "repeats", tensors: tensors, kernels: [kernel])

        let layouts = KernelAnalysis(program: program, kernel: kernel).layouts
        XCTAssertEqual(layouts[slope]?.base, .scalar(slope), "fills and a grid position make a scalar")
        XCTAssertEqual(layouts[slope]?.strides, [0, 0])
        XCTAssertEqual(layouts[rowPos]?.strides, [1, 0], "one position per row")
        XCTAssertEqual(layouts[colPos]?.strides, [0, 1], "one position per column")
        XCTAssertEqual(layouts[scaledRows]?.strides, [1, 0], "a row position times a scalar repeats along rows")
        XCTAssertEqual(layouts[decay]?.strides, [0, 1])
        XCTAssertEqual(layouts[bias]?.strides, [40, 1], "rows and columns together vary everywhere")
        let source = CEmitter.emit(program).source
        XCTAssert(source.contains("const float s\(slope.number) = powf("), "the slope is computed once:\n\(source)")
        _ = try CodegenHarness.check(program)
    }

    func testOutputIsDeterministic() throws {
        var b = BodyBuilder()
        let full = AxisAccess.slice(start: .constant(0), size: 8)
        let x = b.emit(.load(TensorID(0), [full]), BlockType([8], .local))
        b.emit(.store(b.emit(.unary(.exp, x), BlockType([8], .local)), TensorID(1), [full]))
        let program = Program(
            name: "det",
            tensors: [
                GlobalTensor(name: "A", shape: [8], role: .input), GlobalTensor(name: "B", shape: [8], role: .output),
            ],
            kernels: [Kernel(name: "k", grid: [GridAxis(IndexVar("i"), 1)], body: b.instructions)])
        XCTAssertEqual(CEmitter.emit(program), CEmitter.emit(program))
        XCTAssert(
            CEmitter.emit(program).header.contains(
                "void blk_u_det(const float *restrict blk_t_A, float *restrict blk_t_B);"))
    }
}
