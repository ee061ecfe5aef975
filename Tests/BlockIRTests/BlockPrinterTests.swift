import BlockIR
import BlockParser
import XCTest

final class BlockPrinterTests: XCTestCase {
    private let local64 = BlockType([64, 64], .local)

    func testMatmulKernel() throws {
        var b = BodyBuilder()
        let zero = b.emit(.fill(0), local64)
        let results = b.loop(
            IndexVar("k"), from: .constant(0), to: .constant(4), carrying: [zero], types: [local64]
        ) { inner, carried in
            let a = inner.emit(
                .load(
                    TensorID(0),
                    [
                        .point(.v("b")), .slice(start: .mul(.v("i"), 64), size: 64),
                        .slice(start: .mul(.v("k"), 64), size: 64),
                    ]), local64)
            let c = inner.emit(
                .load(
                    TensorID(1),
                    [
                        .point(.v("b")), .slice(start: .mul(.v("j"), 64), size: 64),
                        .slice(start: .mul(.v("k"), 64), size: 64),
                    ]), local64)
            let d = inner.emit(.dot(a, c, transposeA: false, transposeB: true), local64)
            return [inner.emit(.binary(.add, carried[0], d), local64)]
        }
        b.emit(
            .store(
                results[0], TensorID(2),
                [
                    .point(.v("b")), .slice(start: .mul(.v("i"), 64), size: 64),
                    .slice(start: .mul(.v("j"), 64), size: 64),
                ]))
        let program = Program(
            name: "attention",
            tensors: [
                GlobalTensor(name: "Q", shape: [8, 256, 64], role: .input),
                GlobalTensor(name: "K", shape: [8, 256, 64], role: .input),
                GlobalTensor(name: "S", shape: [8, 256, 256], role: .temp),
                GlobalTensor(name: "S2", shape: [2048, 256], role: .temp, viewOf: TensorID(2)),
            ],
            kernels: [
                Kernel(
                    name: "k0_matmul_S",
                    grid: [
                        GridAxis(IndexVar("b"), 8), GridAxis(IndexVar("i"), 4),
                        GridAxis(IndexVar("j"), 4),
                    ], body: b.instructions)
            ])
        let expected = """
            program attention

            tensor Q: f32[8,256,64] @global input
            tensor K: f32[8,256,64] @global input
            tensor S: f32[8,256,256] @global temp
            tensor S2: f32[2048,256] @global temp view S

            kernel k0_matmul_S grid(b < 8, i < 4, j < 4) {
              %0 = fill 0.0 : f32[64,64] @local
              %1 = for k in 0 ..< 4 iter(%2 = %0) : f32[64,64] @local {
                %3 = load Q[b, i * 64 +: 64, k * 64 +: 64] : f32[64,64] @local
                %4 = load K[b, j * 64 +: 64, k * 64 +: 64] : f32[64,64] @local
                %5 = dot %3, %4 transpose_b : f32[64,64] @local
                %6 = add %2, %5 : f32[64,64] @local
                yield %6
              }
              store %1 -> S[b, i * 64 +: 64, j * 64 +: 64]
            }

            """
        XCTAssertEqual(BlockPrinter.print(program), expected)
        XCTAssertEqual(try BlockParser.parse(expected), program)
        XCTAssertEqual(Verifier.verify(program, target: .cpu), [])
    }

    func testEveryOpForm() throws {
        let v = BlockType([64], .local)
        let s = BlockType([], .reg)
        let body: [Instruction] = [
            Instruction([Value(ValueID(0), local64)], .fill(-.infinity)),
            Instruction([Value(ValueID(1), local64)], .unary(.rsqrt, ValueID(0))),
            Instruction([Value(ValueID(2), local64)], .binary(.pow, ValueID(1), ValueID(0))),
            Instruction([Value(ValueID(3), v)], .reduce(.max, ValueID(2), axis: 1)),
            Instruction([Value(ValueID(4), local64)], .broadcast(ValueID(3), axis: 0)),
            Instruction([Value(ValueID(5), local64)], .transpose(ValueID(4))),
            Instruction(
                [Value(ValueID(6), local64)], .dot(ValueID(5), ValueID(4), transposeA: true, transposeB: false)),
            Instruction(
                [Value(ValueID(7), local64)],
                .mask(
                    ValueID(6), rowOffset: .add(.v("i"), .constant(-1)), columnOffset: .floorDiv(.v("i"), -2),
                    Predicate([
                        .affineZero(rowCoefficient: 0, columnCoefficient: 0, constant: 0),
                        .affineNonNegative(rowCoefficient: -3, columnCoefficient: 1, constant: -1),
                    ]), fill: 1e-6)),
            Instruction([Value(ValueID(8), s)], .fill(0.125)),
            Instruction([Value(ValueID(9), s)], .fill(-3)),
            Instruction(
                [Value(ValueID(10), local64)],
                .mask(
                    ValueID(7), rowOffset: .constant(0), columnOffset: .constant(0),
                    Predicate([.sameSegment(boundaries: [300, 700])]), fill: 0)),
            Instruction(
                [],
                .store(
                    ValueID(10), TensorID(0),
                    [
                        .slice(start: .constant(0), size: 64),
                        .slice(start: .max(.constant(0), .mul(.v("i"), -64)), size: 64),
                    ])),
        ]
        let program = Program(
            name: "ops", tensors: [GlobalTensor(name: "T", shape: [64, 64], role: .output)],
            kernels: [Kernel(name: "k", grid: [GridAxis(IndexVar("i"), 1)], body: body)])
        let expected = """
            program ops

            tensor T: f32[64,64] @global output

            kernel k grid(i < 1) {
              %0 = fill -inf : f32[64,64] @local
              %1 = rsqrt %0 : f32[64,64] @local
              %2 = pow %1, %0 : f32[64,64] @local
              %3 = reduce_max %2 axis 1 : f32[64] @local
              %4 = broadcast %3 axis 0 : f32[64,64] @local
              %5 = transpose %4 : f32[64,64] @local
              %6 = dot %5, %4 transpose_a : f32[64,64] @local
              %7 = mask %6 at (i + (-1), i / (-2)) if 0 == 0 && -3*i + j - 1 >= 0 else 1e-06 : f32[64,64] @local
              %8 = fill 0.125 : f32[] @reg
              %9 = fill -3.0 : f32[] @reg
              %10 = mask %7 at (0, 0) if segments(300, 700) else 0.0 : f32[64,64] @local
              store %10 -> T[0 +: 64, max(0, i * (-64)) +: 64]
            }

            """
        XCTAssertEqual(BlockPrinter.print(program), expected)
        XCTAssertEqual(try BlockParser.parse(expected), program)
        XCTAssertEqual(Verifier.verify(program, target: .cpu), [])
    }

    func testEmptyProgramAndKernelWithoutGrid() throws {
        let empty = Program(name: "nothing", tensors: [], kernels: [])
        XCTAssertEqual(BlockPrinter.print(empty), "program nothing\n")
        XCTAssertEqual(try BlockParser.parse("program nothing\n"), empty)
        let bare = Program(name: "bare", tensors: [], kernels: [Kernel(name: "k", grid: [], body: [])])
        XCTAssertEqual(BlockPrinter.print(bare), "program bare\n\nkernel k grid() {\n}\n")
        XCTAssertEqual(try BlockParser.parse(BlockPrinter.print(bare)), bare)
    }

    func testMalformedProgramsPrintWithoutTrapping() {
        let body: [Instruction] = [
            Instruction([Value(ValueID(0), BlockType([4], .global))], .load(TensorID(9), [])),
            Instruction(
                [],
                .loop(
                    Loop(
                        variable: IndexVar("k"), lower: .constant(0), upper: .constant(1),
                        initial: [ValueID(0)], carried: [], body: []))),
        ]
        let program = Program(
            name: "bad", tensors: [GlobalTensor(name: "T", shape: [4], role: .temp, viewOf: TensorID(-1))],
            kernels: [Kernel(name: "k", grid: [], body: body)])
        let text = BlockPrinter.print(program)
        XCTAssertTrue(text.contains("load <invalid T9>[] : f32[4] @global"), text)
        XCTAssertTrue(text.contains("for k in 0 ..< 1 iter(%? = %0) {"), text)
        XCTAssertFalse(Verifier.verify(program, target: .cpu).isEmpty)
    }

    func testPrintingIsDeterministic() throws {
        for text in BlockSamples.all {
            let program = try BlockParser.parse(text)
            XCTAssertEqual(BlockPrinter.print(program), BlockPrinter.print(program))
        }
    }
}
