import BlockIR
import BlockParser
import XCTest

final class VerifierTests: XCTestCase {
    private let header = """
        program p

        tensor X: f32[64,64] @global input
        tensor Y: f32[64,64] @global temp

        """

    /// Parses a program whose single kernel `k` has `body` (indented by two spaces); `Y` is a
    /// temporary unless `output` (then every element of it must be stored once).
    private func program(
        _ body: String, grid: String = "i < 1", tensors: String = "", output: Bool = false
    ) throws -> Program {
        let head = output ? header.replacingOccurrences(of: "@global temp", with: "@global output") : header
        return try BlockParser.parse(head + tensors + "\nkernel k grid(\(grid)) {\n" + body + "\n}\n")
    }

    /// Asserts that verification reports exactly one error, in kernel `kernel`, mentioning every fragment.
    private func assertOneError(
        _ program: Program, kernel: String? = "k", _ fragments: String..., file: StaticString = #filePath,
        line: UInt = #line
    ) {
        let errors = Verifier.verify(program, target: .cpu)
        guard errors.count == 1 else {
            return XCTFail("expected one error, got \(errors)", file: file, line: line)
        }
        XCTAssertEqual(errors[0].kernel, kernel, file: file, line: line)
        for f in fragments {
            XCTAssertTrue(errors[0].message.contains(f), "'\(errors[0])' lacks '\(f)'", file: file, line: line)
        }
    }

    private let load = "  %0 = load X[0 +: 64, 0 +: 64] : f32[64,64] @local\n"

    func testSamplesVerify() throws {
        for text in BlockSamples.all {
            XCTAssertEqual(Verifier.verify(try BlockParser.parse(text), target: .cpu), [])
        }
        XCTAssertEqual(Verifier.verify(try program(load + "  store %0 -> Y[0 +: 64, 0 +: 64]"), target: .sm80), [])
    }

    func testErrorDescription() {
        XCTAssertEqual(VerificationError(kernel: "k0", message: "bad").description, "kernel k0: bad")
        XCTAssertEqual(VerificationError(kernel: nil, message: "bad").description, "bad")
    }

    // MARK: Program level

    func testDuplicateNames() throws {
        var p = try program("")
        p.tensors.append(GlobalTensor(name: "X", shape: [1], role: .temp))
        assertOneError(p, kernel: nil, "tensor name 'X' is declared twice")
        var q = try program("")
        q.kernels.append(q.kernels[0])
        assertOneError(q, kernel: nil, "kernel name 'k' is used twice")
    }

    func testViews() throws {
        assertOneError(
            try program("", tensors: "tensor V: f32[64,63] @global temp view X\n"), kernel: nil,
            "view 'V' has 4032 elements but 'X' has 4096")
        assertOneError(
            try program(
                "", tensors: "tensor V: f32[4096] @global temp view X\ntensor W: f32[4096] @global temp view V\n"),
            kernel: nil, "'W' is a view of 'V', which is itself a view")
        var p = try program("")
        p.tensors[0].viewOf = TensorID(1)
        assertOneError(p, kernel: nil, "'X' is a view of T1, which is not a tensor declared before it")
    }

    /// A loop guard (`for k in … if T[…]`) reads one element of a bool or i32 tensor per axis.
    func testLoopCondition() throws {
        func loop(_ condition: String) -> String {
            "  %0 = fill 0.0 : f32[] @reg\n  %1 = for k in 0 ..< 4 if \(condition) iter(%2 = %0) : f32[] @reg {\n"
                + "    yield %2\n  }"
        }
        let b = "tensor B: bool[4] @global input\n"
        XCTAssertEqual(Verifier.verify(try program(loop("B[k]"), tensors: b), target: .cpu), [])
        assertOneError(try program(loop("X[k, 0]")), "reads 'X' of type f32", "a condition reads a bool or i32 tensor")
        assertOneError(try program(loop("B[k, 0]"), tensors: b), "gives 2 indices for tensor 'B' of rank 1")
        XCTAssertThrowsError(try program(loop("B[k +: 2]"), tensors: b)) { error in
            XCTAssertTrue("\(error)".contains("give a point index per axis, not a slice"), "\(error)")
        }
    }

    func testStoreToInput() throws {
        assertOneError(try program(load + "  store %0 -> X[0 +: 64, 0 +: 64]"), "input tensor 'X'")
        assertOneError(
            try program(
                load + "  store %0 -> V[0 +: 64, 0 +: 64]", tensors: "tensor V: f32[64,64] @global temp view X\n"),
            "input tensor 'V'")
    }

    // MARK: Grid, loops and index variables

    func testGrid() throws {
        assertOneError(try program("", grid: "i < 0"), "grid axis 'i' has extent 0")
        assertOneError(try program("", grid: "i < 2, i < 3"), "grid variable 'i' is declared twice")
    }

    func testLoopVariableShadowing() throws {
        assertOneError(try program("  for i in 0 ..< 2 {\n    yield\n  }"), "loop variable 'i' shadows")
        // Sibling loops may reuse a name.
        let siblings = "  for k in 0 ..< 2 {\n    yield\n  }\n  for k in 0 ..< 2 {\n    yield\n  }"
        XCTAssertEqual(Verifier.verify(try program(siblings), target: .cpu), [])
    }

    func testIndexVariableOutOfScope() throws {
        var p = try program(load + "  store %0 -> Y[0 +: 64, 0 +: 64]")
        p.kernels[0].body[1].op = .store(
            ValueID(0), TensorID(1), [.slice(start: .v("k"), size: 64), .slice(start: .constant(0), size: 64)])
        assertOneError(p, "index variable 'k' is not in scope (in scope: i)")
        p.kernels[0].body[1].op = .store(
            ValueID(0), TensorID(1),
            [.slice(start: .floorDiv(.v("i"), 0), size: 64), .slice(start: .constant(0), size: 64)])
        assertOneError(p, "divides by zero")
    }

    // MARK: SSA

    func testUseBeforeDefinition() throws {
        var p = try program(load + "  %1 = exp %0 : f32[64,64] @local")
        p.kernels[0].body.swapAt(0, 1)
        assertOneError(p, "'%1 = exp': value %0 is used before it is defined")
        p.kernels[0].body[0].op = .unary(.exp, ValueID(42))
        assertOneError(p, "value %42 is never defined")
    }

    func testDefinedTwice() throws {
        var p = try program(load + "  %1 = exp %0 : f32[64,64] @local")
        p.kernels[0].body[1].results[0].id = ValueID(0)
        assertOneError(p, "value %0 is defined twice")
    }

    func testUseOutsideDefiningLoop() throws {
        var p = try program("  for k in 0 ..< 2 {\n    %0 = fill 0.0 : f32[] @reg\n    yield\n  }")
        p.kernels[0].body.append(Instruction([Value(ValueID(1), BlockType([], .reg))], .unary(.exp, ValueID(0))))
        assertOneError(p, "value %0 is used outside the loop that defines it")
    }

    // MARK: Loops

    private let loopText = """
          %0 = fill 0.0 : f32[64] @local
          %1 = for k in 0 ..< 2 iter(%2 = %0) : f32[64] @local {
            %3 = exp %2 : f32[64] @local
            yield %3
          }
        """

    func testLoopCounts() throws {
        var p = try program(loopText)
        guard case .loop(var loop) = p.kernels[0].body[1].op else { return XCTFail() }
        loop.initial.append(ValueID(0))
        p.kernels[0].body[1].op = .loop(loop)
        assertOneError(p, "1 results, 1 carried values and 2 initial values")
    }

    func testLoopTypes() throws {
        var p = try program(loopText)
        p.kernels[0].body[0].results[0].type = BlockType([32], .local)
        assertOneError(p, "carried value %2 has type f32[64] @local but its initial value %0 has type f32[32] @local")
        var q = try program(loopText)
        q.kernels[0].body[1].results[0].type = BlockType([64], .reg)
        assertOneError(q, "result %1 has type f32[64] @reg but carried value %2 has type f32[64] @local")
        let r = try program(
            loopText.replacingOccurrences(of: "%3 = exp %2 : f32[64] @local", with: "%3 = exp %2 : f32[64] @reg"))
        assertOneError(r, "yielded value %3 has type f32[64] @reg but carried value %2 has type f32[64] @local")
    }

    func testYieldPlacement() throws {
        var p = try program(loopText)
        guard case .loop(var loop) = p.kernels[0].body[1].op else { return XCTFail() }
        let yield = loop.body.removeLast()
        p.kernels[0].body[1].op = .loop(loop)
        assertOneError(p, "does not end with 'yield'")
        loop.body.insert(yield, at: 0)
        p.kernels[0].body[1].op = .loop(loop)
        let errors = Verifier.verify(p, target: .cpu).map(\.message)
        XCTAssertTrue(errors.contains { $0.contains("'yield' must be the last instruction") }, "\(errors)")
        XCTAssertTrue(errors.contains { $0.contains("does not end with 'yield'") }, "\(errors)")
        var q = try program("")
        q.kernels[0].body = [Instruction([], .yield([]))]
        assertOneError(q, "'yield' outside a loop")
        var r = try program(loopText)
        guard case .loop(var loop2) = r.kernels[0].body[1].op else { return XCTFail() }
        loop2.body[1] = Instruction([], .yield([]))
        r.kernels[0].body[1].op = .loop(loop2)
        assertOneError(r, "yields 0 values but the loop carries 1")
    }

    // MARK: Op typing

    func testLoadTyping() throws {
        assertOneError(try program("  %0 = load X[0 +: 64] : f32[64] @local"), "1 indices for tensor 'X' of rank 2")
        assertOneError(
            try program("  %0 = load X[0 +: 64, 0 +: 32] : f32[64,64] @local"),
            "result shape [64, 64] does not match the loaded slice sizes [64, 32]")
        let zero = Verifier.verify(try program("  %0 = load X[0 +: 0, 0] : f32[0] @local"), target: .cpu)
        XCTAssertEqual(
            zero.map(\.message),
            [
                "'%0 = load': slice size 0 of 'X' must be positive",
                "'%0 = load': value %0 has shape [0]; block sizes must be positive",
            ])
        assertOneError(try program("  %0 = load X[0 +: 64, 0 +: 64] : f32[64,64] @global"), "value %0 has tier global")
    }

    func testStoreTyping() throws {
        assertOneError(
            try program(load + "  store %0 -> Y[0 +: 64, 0]"),
            "stored value %0 has shape [64, 64] but the slice sizes of 'Y' are [64]")
    }

    func testFillRank() throws {
        assertOneError(try program("  %0 = fill 0.0 : f32[2,2,2] @local"), "value %0 has rank 3")
    }

    func testIndexTyping() throws {
        assertOneError(
            try program("  %0 = index i * 64 axis 2 : f32[64,64] @local"), "index axis 2 is out of range",
            "use an axis below 2")
        assertOneError(try program("  %0 = index i axis 0 : f32[] @reg"), "index axis 0 is out of range")
        XCTAssertEqual(Verifier.verify(try program("  %0 = index i * 64 axis 1 : f32[64,64] @local"), target: .cpu), [])
    }

    func testElementwiseTyping() throws {
        assertOneError(
            try program(load + "  %1 = exp %0 : f32[64] @local"),
            "result shape [64] differs from the operand's shape [64, 64]")
        assertOneError(
            try program(load + "  %1 = fill 1.0 : f32[64] @local\n  %2 = add %0, %1 : f32[64,64] @local"),
            "operand shapes [64, 64] and [64] differ")
        assertOneError(
            try program(load + "  %1 = fill 1.0 : f32[] @reg\n  %2 = add %1, %0 : f32[64] @local"),
            "result shape [64] should be [64, 64]")
        XCTAssertEqual(
            Verifier.verify(
                try program(load + "  %1 = fill 1.0 : f32[] @reg\n  %2 = add %1, %0 : f32[64,64] @local"),
                target: .cpu), [])
    }

    func testBroadcastAndReduceTyping() throws {
        let row = "  %0 = fill 0.0 : f32[64] @local\n"
        assertOneError(
            try program(row + "  %1 = broadcast %0 axis 2 : f32[64,64] @local"), "broadcast axis 2 is out of range")
        assertOneError(
            try program(row + "  %1 = broadcast %0 axis 0 : f32[32,32] @local"),
            "broadcasting shape [64] along axis 0 cannot give shape [32, 32]")
        assertOneError(
            try program(load + "  %1 = reduce_sum %0 axis 2 : f32[64] @local"), "reduce axis 2 is out of range")
        assertOneError(
            try program(load + "  %1 = reduce_max %0 axis 1 : f32[] @reg"),
            "reducing shape [64, 64] along axis 1 gives [64], not []")
    }

    func testDotTransposeMaskTyping() throws {
        let two = load + "  %1 = load X[0 +: 64, 0 +: 32] : f32[64,32] @local\n"
        assertOneError(
            try program(two + "  %2 = dot %1, %0 : f32[64,64] @local"), "inner sizes of dot differ (32 and 64)")
        assertOneError(
            try program(two + "  %2 = dot %0, %1 transpose_b : f32[64,32] @local"), "inner sizes of dot differ")
        XCTAssertEqual(
            Verifier.verify(try program(two + "  %2 = dot %1, %0 transpose_a : f32[32,64] @local"), target: .cpu), [])
        assertOneError(
            try program(two + "  %2 = dot %0, %1 : f32[64,64] @local"),
            "result shape [64, 64] of dot should be [64, 32]")
        assertOneError(
            try program("  %0 = fill 0.0 : f32[64] @local\n  %1 = dot %0, %0 : f32[] @reg"), "dot needs rank-2 operands"
        )
        assertOneError(
            try program(two + "  %2 = transpose %1 : f32[64,32] @local"), "transposing shape [64, 32] gives [32, 64]")
        assertOneError(
            try program("  %0 = fill 0.0 : f32[64] @local\n  %1 = transpose %0 : f32[64] @local"),
            "transpose needs a rank-2 operand")
        assertOneError(
            try program(
                "  %0 = fill 0.0 : f32[64] @local\n  %1 = mask %0 at (0, 0) if i - j >= 0 else 0.0 : f32[64] @local"),
            "mask needs a rank-2 operand")
        assertOneError(
            try program(two + "  %2 = mask %1 at (0, 0) if i - j >= 0 else 0.0 : f32[64,64] @local"),
            "result shape [64, 64] differs from the operand's shape [64, 32]")
    }

    func testGlobalTierValue() throws {
        assertOneError(try program("  %0 = fill 0.0 : f32[64] @global"), "value %0 has tier global")
    }

    func testResultCounts() throws {
        var p = try program(load + "  store %0 -> Y[0 +: 64, 0 +: 64]")
        p.kernels[0].body[1].results = [Value(ValueID(5), BlockType([], .reg))]
        assertOneError(p, "store defines no value but has 1 results")
        var q = try program(load)
        q.kernels[0].body[0].results.append(Value(ValueID(5), BlockType([64, 64], .local)))
        assertOneError(q, "load defines exactly one value but has 2 results")
    }

    func testErrorsComeInProgramOrder() throws {
        var p = try program(load + "  %1 = exp %0 : f32[64] @local\n  %2 = fill 0.0 : f32[3,3,3] @local")
        p.tensors.append(GlobalTensor(name: "Y", shape: [1], role: .temp))
        let messages = Verifier.verify(p, target: .cpu).map(\.description)
        XCTAssertEqual(messages.count, 3, "\(messages)")
        XCTAssertTrue(messages[0].hasPrefix("tensor name 'Y'"))
        XCTAssertTrue(messages[1].hasPrefix("kernel k: '%1 = exp'"))
        XCTAssertTrue(messages[2].hasPrefix("kernel k: '%2 = fill'"))
    }

    // MARK: Coverage, registers, trip counts, locations

    private let copy = "  %0 = load X[0 +: 64, 0 +: 64] : f32[64,64] @local\n"

    func testOutputWrittenExactlyOnce() throws {
        // A store per 16-row block: all of Y once.
        let tiled = try program(
            "  %0 = load X[i * 16 +: 16, 0 +: 64] : f32[16,64] @local\n  store %0 -> Y[i * 16 +: 16, 0 +: 64]",
            grid: "i < 4", output: true)
        XCTAssertEqual(Verifier.verify(tiled, target: .cpu), [])
        // Past the edge: the last 8 rows of Y are never written.
        let shifted = try program(
            "  %0 = load X[i * 16 +: 16, 0 +: 64] : f32[16,64] @local\n  store %0 -> Y[i * 16 + 8 +: 16, 0 +: 64]",
            grid: "i < 4", output: true)
        assertOneError(shifted, kernel: nil, "no store writes Y[0 ..< 8, 0 ..< 64] of output 'Y'")
        // A store that misses the tensor entirely.
        let outside = try program(copy + "  store %0 -> Y[i * 5 + 100 +: 64, 0 +: 64]", output: true)
        assertOneError(outside, kernel: nil, "no store writes Y[0 ..< 64, 0 ..< 64]")
        // No store at all.
        assertOneError(try program(copy, output: true), kernel: nil, "output 'Y' is never written")
        // Twice: every instance writes the whole of Y.
        let twice = try program(copy + "  store %0 -> Y[0 +: 64, 0 +: 64]", grid: "i < 2", output: true)
        assertOneError(
            twice, "'store %0' writes Y[0 ..< 64, 0 ..< 64] of output 'Y' a second time (at i = 1)",
            "already written by k's store %0")
        // Stores inside a loop count once per iteration.
        let looped = try program(
            """
              for k in 0 ..< 4 {
                %0 = load X[k * 16 +: 16, 0 +: 64] : f32[16,64] @local
                store %0 -> Y[k * 16 +: 16, 0 +: 64]
                yield
              }
            """, output: true)
        XCTAssertEqual(Verifier.verify(looped, target: .cpu), [])
    }

    func testRegisterCapacity() throws {
        let big = try program(
            copy + "  %1 = fill 0.0 : f32[4096,4096] @reg\n  store %0 -> Y[0 +: 64, 0 +: 64]")
        assertOneError(big, "reg tier needs 67108864 bytes but cpu has 2048", "%1 f32[4096,4096] @reg")
        XCTAssertTrue(Verifier.verify(big, target: .sm90).contains { $0.message.contains("sm_90 has 261120") })
        // Scalars are fine.
        let scalar = try program(
            copy
                + "  %1 = fill 2.0 : f32[] @reg\n  %2 = mul %0, %1 : f32[64,64] @local\n  store %2 -> Y[0 +: 64, 0 +: 64]"
        )
        XCTAssertEqual(Verifier.verify(scalar, target: .cpu), [])
    }

    func testAbsurdTripCounts() throws {
        let grid = try program(copy + "  store %0 -> Y[0 +: 64, 0 +: 64]", grid: "i < 1000000, j < 1000000")
        assertOneError(grid, "the grid (i < 1000000, j < 1000000) has 1000000000000 instances")
        let axis = try program(copy + "  store %0 -> Y[0 +: 64, 0 +: 64]", grid: "i < 4294967296")
        assertOneError(axis, "grid axis 'i' has extent 4294967296")
        let loop = try program(
            """
              %0 = load X[0 +: 64, 0 +: 64] : f32[64,64] @local
              %1 = for k in 0 ..< 1000000 iter(%2 = %0) : f32[64,64] @local {
                %3 = for m in 0 ..< i * 1000 + 1000 iter(%4 = %2) : f32[64,64] @local {
                  yield %4
                }
                yield %3
              }
              store %1 -> Y[0 +: 64, 0 +: 64]
            """, grid: "i < 8")
        assertOneError(loop, "'for m': the kernel may run 64000000000 iterations")
    }

    func testErrorsOfAParsedProgramCarryLocations() throws {
        let text =
            header.replacingOccurrences(of: "temp", with: "output") + "\nkernel k grid(i < 1) {\n" + copy
            + "  %1 = fill 0.0 : f32[4096,4096] @reg\n"
            + "  %2 = exp %0 : f32[32,64] @local\n  store %0 -> Y[0 +: 64, 0 +: 64]\n}\n"
        let (p, map) = try BlockParser.parseWithSourceMap(text)
        let errors = Verifier.verify(p, target: .cpu, sourceMap: map)
        XCTAssertEqual(errors.map(\.location), [SourceLocation(line: 9, column: 3)], "\(errors)")
        XCTAssertEqual(map.kernel(0), SourceLocation(line: 6, column: 1))
        XCTAssertEqual(map.tensor(1), SourceLocation(line: 4, column: 8))
        // Without a map, no locations.
        XCTAssertEqual(Verifier.verify(p, target: .cpu).map(\.location), [nil])
    }
}
