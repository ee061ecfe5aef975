import BlockIR
import BlockTestSupport
import Codegen
import Foundation
import Fusion
import Graph
import Interpreter
import XCTest

/// Comparisons producing `bool`, `where(cond, a, b)` (select) and `gather`: the graph text's
/// round trip, values against hand computation in both interpreters (NaN and inf through
/// select, out-of-range indices as errors), the generated C at odd shapes, and the C convention
/// for indices out of range (the element reads 0, nothing outside the table is touched).
final class GatherSelectTests: XCTestCase {
    static let selectGraph = """
        graph sel
        input X: [5, 7]
        input Y: [5, 7]
        input b: [7]
        C = X > Y
        D = where(C, X, b)
        E = where(X != X, 0, Y)
        F = logical_not(C) && Y <= 0.5
        G = where(F, D, E)
        K = logical_or(X == Y, X >= 1)
        output G, C, K

        """

    static let gatherGraph = """
        graph emb
        input tok: i32[9]
        input E: [7, 5]
        x = gather(E, tok, axis=0)
        output x

        """

    func parse(_ text: String) throws -> Graph { try GraphParser.parse(text, defaultName: "t") }

    /// The printed graph parses back to the same graph, and printing is idempotent.
    func testGraphRoundTrip() throws {
        for text in [Self.selectGraph, Self.gatherGraph] {
            let g = try parse(text)
            let printed = GraphPrinter.print(g)
            let again = try parse(printed)
            XCTAssertEqual(GraphPrinter.print(again), printed)
            XCTAssertEqual(again.nodes.map(\.op), g.nodes.map(\.op), printed)
            XCTAssertEqual(again.nodes.map(\.elementType), g.nodes.map(\.elementType))
        }
        let g = try parse(Self.selectGraph)
        XCTAssertEqual(g.node(named: "C")?.elementType, .bool)
        XCTAssertEqual(g.node(named: "D")?.elementType, .f32)
        XCTAssertTrue(GraphPrinter.print(g).contains("C = gt(X, Y)"), GraphPrinter.print(g))
        XCTAssertTrue(GraphPrinter.print(g).contains("D = where(C, X, b)"), GraphPrinter.print(g))
        // Predicates on i and j only keep their mask meaning.
        let m = try parse("input S: [4, 4]\nM = where(i >= j, S, -inf)\noutput M")
        guard case .mask = m.node(named: "M")!.op else { return XCTFail("where on i, j is a mask") }
    }

    /// Select is a choice: NaN and inf in the branch not taken never reach the result; a NaN
    /// condition value cannot occur (bool), and comparisons with NaN are false (except !=).
    func testSelectValuesWithNaNAndInf() throws {
        let g = try parse(
            """
            input X: [6]
            input Y: [6]
            C = X < Y
            S = where(C, X, Y)
            Z = where(X != X, 0, X)
            output S, C, Z
            """)
        let nan = Float.nan
        let inf = Float.infinity
        let x = NDArray(shape: [6], data: [1, nan, -inf, 3, inf, 2])
        let y = NDArray(shape: [6], data: [2, 0, 5, nan, nan, -inf])
        let out = try GraphInterpreter.run(g, inputs: ["X": x, "Y": y])
        XCTAssertEqual(out["C"]!.data, [1, 0, 1, 0, 0, 0])
        XCTAssertEqual(out["C"]!.elementType, .bool)
        let s = out["S"]!.data
        XCTAssertEqual(s[0], 1)
        XCTAssertEqual(s[1], 0)
        XCTAssertEqual(s[2], -inf)
        XCTAssertTrue(s[3].isNaN && s[4].isNaN)
        XCTAssertEqual(s[5], -inf)
        XCTAssertEqual(out["Z"]!.data, [1, 0, -inf, 3, inf, 2])
        // The block program (naive and fused) gives the same elements.
        for fused in [false, true] {
            var program = try Lowering.lower(g)
            if fused { program = Fusion.fuse(program, options: FusionOptions(cores: CLI.pinnedCores)).program }
            let b = try BlockInterpreter.run(program, inputs: ["X": x, "Y": y])
            for name in ["S", "C", "Z"] {
                XCTAssertEqual(
                    b[name]!.data.map { $0.isNaN ? 12345 : $0 }, out[name]!.data.map { $0.isNaN ? 12345 : $0 },
                    "\(name) fused=\(fused)")
            }
        }
    }

    /// Gather picks rows; an index out of range is an error naming it and both tensors.
    func testGatherValuesAndOutOfRange() throws {
        let g = try parse(Self.gatherGraph)
        let table = NDArray(shape: [7, 5], data: (0..<35).map(Float.init))
        var tok = NDArray(shape: [9], data: [0, 6, 3, 3, 1, 5, 2, 4, 0])
        tok.elementType = .i32
        let out = try GraphInterpreter.run(g, inputs: ["tok": tok, "E": table])
        let want = tok.data.flatMap { r in (0..<5).map { Float(Int(r) * 5 + $0) } }
        XCTAssertEqual(out["x"]!.data, want)
        let block = try BlockInterpreter.run(try Lowering.lower(g), inputs: ["tok": tok, "E": table])
        XCTAssertEqual(block["x"]!.data, want)
        for bad: Float in [7, -1] {
            tok.data[4] = bad
            XCTAssertThrowsError(try GraphInterpreter.run(g, inputs: ["tok": tok, "E": table])) { error in
                let message = (error as? Diagnostic)?.message ?? "\(error)"
                XCTAssertTrue(message.contains("index \(formatFloat(bad)) at [4] of 'tok'"), message)
                XCTAssertTrue(message.contains("'E' (size 7)"), message)
            }
            XCTAssertThrowsError(try BlockInterpreter.run(try Lowering.lower(g), inputs: ["tok": tok, "E": table])) {
                error in
                let message = (error as? Diagnostic)?.message ?? "\(error)"
                XCTAssertTrue(message.contains("gather index \(formatFloat(bad))"), message)
                XCTAssertTrue(message.contains("'E' (size 7)"), message)
            }
        }
        // Gather along a middle axis (paged KV: pages [P, page, d] by a page table [B, n]).
        let paged = try parse(
            """
            input pages: [4, 3, 2]
            input table: i32[2, 2]
            G = gather(pages, table, axis=0)
            H = gather(pages, table, axis=1)
            output G, H
            """)
        let p = NDArray(shape: [4, 3, 2], data: (0..<24).map(Float.init))
        var t = NDArray(shape: [2, 2], data: [2, 0, 1, 2])
        t.elementType = .i32
        let po = try GraphInterpreter.run(paged, inputs: ["pages": p, "table": t])
        XCTAssertEqual(po["G"]!.shape, [2, 2, 3, 2])
        XCTAssertEqual(Array(po["G"]!.data[0..<6]), (12..<18).map(Float.init))
        XCTAssertEqual(po["H"]!.shape, [4, 2, 2, 2])
        // H[0, 0, 1, :] = pages[0, table[0, 1] = 0, :]; H[0, 1, 1, :] = pages[0, 2, :].
        XCTAssertEqual(Array(po["H"]!.data[2..<4]), [0, 1])
        XCTAssertEqual(Array(po["H"]!.data[6..<8]), [4, 5])
        for fused in [false, true] {
            var program = try Lowering.lower(paged)
            if fused { program = Fusion.fuse(program, options: FusionOptions(cores: CLI.pinnedCores)).program }
            let b = try BlockInterpreter.run(program, inputs: ["pages": p, "table": t])
            XCTAssertEqual(b["G"]!.data, po["G"]!.data)
            XCTAssertEqual(b["H"]!.data, po["H"]!.data)
        }
    }

    /// Random inputs respect the tables: an i32 input a gather reads (directly or through a view)
    /// gets uniform integers below the smallest axis it indexes, the same for the same seed.
    func testRandomIndicesLieInTheTable() throws {
        let g = try parse(
            """
            input pages: [13, 5, 3]
            input table: i32[3, 4]
            input other: i32[6]
            K = gather(pages, table, axis=0)
            L = gather(pages, reshape(table, [12]), axis=1)
            M = other + 1
            output K, L, M
            """)
        XCTAssertEqual(g.gatherIndexBounds(), ["table": 5])
        XCTAssertEqual(try Lowering.lower(g).gatherIndexBounds(), ["table": 5])
        let a = RandomInputs.values(shape: [3, 400], type: .i32, seed: 4, stream: 1, bound: 5)
        XCTAssertEqual(a.elementType, .i32)
        XCTAssertEqual(Set(a.data), [0, 1, 2, 3, 4])
        XCTAssertEqual(a.data, RandomInputs.values(shape: [3, 400], type: .i32, seed: 4, stream: 1, bound: 5).data)
        XCTAssertTrue(RandomInputs.values(shape: [400], type: .i32, seed: 4, stream: 1).data.contains { $0 < 0 })
    }

    /// Generated C reads 0 for an index out of range (negative, past the table, huge) and
    /// touches nothing outside the table (under the address sanitizer).
    func testGeneratedCReadsZeroOutOfRange() throws {
        let g = try parse(Self.gatherGraph)
        let program = try Lowering.lower(g)
        let dir = CodegenHarness.scratch("gather")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let table = NDArray(shape: [7, 5], data: (0..<35).map { Float($0) + 0.5 })
        var tok = NDArray(shape: [9], data: [0, 6, -1, 7, 3, 100_000, -2_147_483_648, 2, 2_147_483_520])
        tok.elementType = .i32
        try NPY.writeFile(tok, to: dir + "/tok.npy")
        try NPY.writeFile(table, to: dir + "/E.npy")
        let exe = try CCompiler.buildHarness(
            program: program, source: CEmitter.emit(program), directory: dir,
            extraFlags: ["-fsanitize=address", "-fno-omit-frame-pointer"])
        let run = try CCompiler.run(exe, [dir], environment: ["OMP_NUM_THREADS": "2"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let got = try NPY.readFile(dir + "/x.npy")
        let want = tok.data.flatMap { r -> [Float] in
            guard r >= 0 && r < 7 else { return [0, 0, 0, 0, 0] }
            return (0..<5).map { Float(Int(r) * 5 + $0) + 0.5 }
        }
        XCTAssertEqual(got.data, want)
    }

    /// `blockc verify` (generated C against the interpreter) at odd shapes, fused and unfused and
    /// with small blocks; random gather indices lie in the table.
    func testGeneratedCAtOddShapes() throws {
        let dir = CLI.temporaryDirectory("gathersel")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let graphs = [
            (
                "sel",
                Self.selectGraph.replacingOccurrences(of: "[5, 7]", with: "[37, 45]")
                    .replacingOccurrences(of: "[7]", with: "[45]")
            ),
            (
                "emb",
                Self.gatherGraph.replacingOccurrences(of: "[9]", with: "[77]").replacingOccurrences(
                    of: "[7, 5]", with: "[101, 96]")
            ),
            (
                "paged",
                """
                graph paged
                input pages: [13, 5, 3]
                input table: i32[3, 4]
                K = gather(pages, table, axis=0)
                Kf = reshape(K, [3, 20, 3])
                L = gather(pages, table, axis=1)
                output Kf, L

                """
            ),
        ]
        for (name, text) in graphs {
            let path = "\(dir)/\(name).graph"
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            for extra in [[], ["--no-fusion"], ["--block", "i=16,j=8,k=8"]] {
                let result = CLI.blockc(["verify", path, "--seed", "3"] + extra)
                XCTAssertEqual(result.status, 0, "\(name) \(extra): \(result.stdout)\(result.stderr)")
                XCTAssertFalse(result.stdout.contains("FAIL"), result.stdout)
            }
        }
    }

    /// Misuse is reported at its position with what to write instead.
    func testDiagnosticsAreLocated() throws {
        let dir = CLI.temporaryDirectory("gatherdiag")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cases: [(String, String, String)] = [
            ("input E: [5, 4]\ninput t: [3]\nx = gather(E, t)\noutput x", "4:5", "i32 tensor, but 't' is f32"),
            ("input E: [5, 4]\nx = gather(E, 2)\noutput x", "3:5", "i32 tensor, but it is a number"),
            ("input X: [4]\ninput Y: [4]\nZ = where(X, X, Y)\noutput Z", "4:11", "needs a bool tensor"),
            (
                "input X: [4, 4]\nZ = where(X > 0 && i / 2 == j / 2, X, 0)\noutput Z", "3:22",
                "'/' and '%' on i or j are mask predicates"
            ),
            ("input M: bool[4]\ninput N: bool[4]\nZ = M < N\noutput Z", "4:7", "lt orders numbers, but 'M' is bool"),
            ("input M: bool[4]\nZ = M + 1\noutput Z", "3:7", "there is no arithmetic on bool"),
            ("input X: [4]\nZ = logical_and(X, X > 0)\noutput Z", "3:5", "logical_and combines bool tensors"),
            ("input X: [4]\nZ = logical_not(X)\noutput Z", "3:5", "logical_not negates a bool tensor"),
            ("input X: bf16[4]\ninput Y: [4]\nZ = X < Y\noutput Z", "4:7", "'X' is bf16 but 'Y' is f32"),
            ("input E: [5, 4]\ninput t: i32[3]\nx = gather(E, t, axis=2)\noutput x", "4:5", "axis 2 is out of range"),
        ]
        for (k, (body, position, fragment)) in cases.enumerated() {
            let path = "\(dir)/d\(k).graph"
            try ("graph d\n" + body + "\n").write(toFile: path, atomically: true, encoding: .utf8)
            let result = CLI.blockc(["check", path])
            XCTAssertEqual(result.status, 1, body)
            XCTAssertTrue(result.stderr.contains("\(path):\(position)"), "\(body): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(fragment), "\(body): \(result.stderr)")
        }
    }
}
