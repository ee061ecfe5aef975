import BlockIR
import Codegen
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
