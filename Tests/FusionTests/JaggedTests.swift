import BlockIR
import BlockTestSupport
import Foundation
import Fusion
import Graph
import Interpreter
import Schedule
import XCTest

/// Jagged batches (Examples/attention_jagged.graph): sequences of different lengths stored back to
/// back (`[H, T, d]`, offsets `[B + 1]`), each attending to its own tokens, every length at most
/// `max_len`. The fused program equals the unfused one after every step and a per-sequence
/// reference on structured offsets; lengths above `max_len` are a run-time error; and the
/// attention kernel visits exactly the key blocks of its query block's sequences, a count
/// proportional to `Σ L_b²`.
final class JaggedTests: XCTestCase {
    static let t = 150
    static let maxLength = 64
    static let blocks: [(key: String, value: Int)] = [("i", 16), ("j", 16), ("k", 16)]

    /// Structured offsets into 150 positions, lengths at most 64: equal lengths (30, not a
    /// multiple of the 16-blocks), one sequence of max_len and many short ones, empty sequences
    /// (L_b = 0, at the start, inside and at the end), lengths that cross the blocks, and lengths
    /// that are multiples of the block (boundaries on block edges).
    static let cases: [(String, [Int])] = [
        ("equal lengths", [0, 30, 60, 90, 120, 150]),
        ("one long, many short", [0, 64, 76, 88, 100, 112, 124, 137, 150]),
        ("empty sequences", [0, 0, 40, 40, 100, 150, 150]),
        ("lengths off the blocks", [0, 7, 23, 71, 100, 150]),
        ("lengths on the blocks", [0, 16, 64, 96, 144, 150]),
    ]

    static func program(segments: Int, t: Int = t, maxLength: Int = maxLength, d: Int = 16, heads: Int = 2)
        throws -> Program
    {
        try DifferentialTests.example(
            "attention_jagged", dims: ["H": heads, "T": t, "d": d, "B": segments, "max_len": maxLength],
            blocks: blocks)
    }

    static func offsets(_ o: [Int]) -> NDArray {
        NDArray(shape: [o.count], data: o.map(Float.init), elementType: .i32)
    }

    /// Attention computed sequence by sequence in Double (no mask, no padding): the meaning of a
    /// jagged batch, independent of how the graph writes it.
    static func reference(_ inputs: [String: NDArray], offsets: [Int], heads: Int, t: Int, d: Int) -> [Float] {
        let (q, k, v) = (inputs["Q"]!.data, inputs["K"]!.data, inputs["V"]!.data)
        var out = [Float](repeating: .nan, count: heads * t * d)
        let scale = 1 / Double(d).squareRoot()
        for h in 0..<heads {
            for b in 0..<(offsets.count - 1) {
                let range = offsets[b]..<offsets[b + 1]
                for i in range {
                    let scores = range.map { j in
                        (0..<d).reduce(0.0) { $0 + Double(q[(h * t + i) * d + $1]) * Double(k[(h * t + j) * d + $1]) }
                            * scale
                    }
                    let m = scores.max()!
                    let weights = scores.map { Foundation.exp($0 - m) }
                    let sum = weights.reduce(0, +)
                    for e in 0..<d {
                        var acc = 0.0
                        for (n, j) in range.enumerated() { acc += weights[n] * Double(v[(h * t + j) * d + e]) }
                        out[(h * t + i) * d + e] = Float(acc / sum)
                    }
                }
            }
        }
        return out
    }

    /// On every structured case: after every fusion step the interpreter matches the unfused
    /// program (tolerance `1e-4·max(1, max|ref|)`), and the unfused and fused programs match the
    /// per-sequence reference within 1e-4 (outputs are averages of V rows). The fused program is
    /// the summary and one attention kernel (each position's segment computed from the offsets
    /// where it is read), with no T×T tensor.
    func testFusedEqualsUnfusedAndTheReference() throws {
        for (label, o) in Self.cases {
            let program = try Self.program(segments: o.count - 1)
            let given = ["offsets": Self.offsets(o)]
            let result = try DifferentialTests.checkEveryStep(
                program, seed: 11, label: "attention_jagged, \(label)", given: given)
            XCTAssertTrue(result.trace.contains { $0.ruleID == "R16" }, "\(label): R16 did not apply")
            XCTAssertEqual(
                result.program.kernels.count, 2, "\(label): summary (bits, range and links), attention")
            let temps = result.program.tensors.filter { $0.role == .temp && $0.viewOf == nil }
            let blockCount = (Self.t + 15) / 16
            XCTAssertTrue(
                temps.allSatisfy { $0.elementCount <= max(Self.t, blockCount * blockCount) },
                "\(label): \(temps.map(\.shape))")
            let inputs = DifferentialTests.inputs(program, seed: 11).merging(given) { _, g in g }
            let expected = Self.reference(inputs, offsets: o, heads: 2, t: Self.t, d: 16)
            for (stage, p) in [("unfused", program), ("fused", result.program)] {
                let got = try BlockInterpreter.run(p, inputs: inputs)["O"]!.data
                let worst = zip(got, expected).map { abs($0 - $1) }.max()!
                XCTAssertLessThanOrEqual(worst, 1e-4, "\(label), \(stage)")
                XCTAssertFalse(got.contains { $0.isNaN }, "\(label), \(stage)")
            }
        }
    }

    /// `max_len` is the band `|i − j| < max_len`: R9 bounds the attention kernel's key loop by it
    /// (a trip count that depends on max_len and the blocks, not on T), and R16's summary loop
    /// runs over the same bounds (one loop computing the bits, the range and the links); the offsets input carries the bound for the run-time check.
    func testMaxLenBoundsTheKeyLoops() throws {
        let t = 1000
        let program = try Self.program(segments: 16, t: t, maxLength: 100)
        let offsets = try XCTUnwrap(program.tensors.first { $0.name == "offsets" })
        XCTAssertEqual(offsets.offsetsInto, t)
        XCTAssertEqual(offsets.segmentMaxLength, 100)
        let fused = Fusion.fuse(program).program
        var loops: [(kernel: Kernel, loop: Loop)] = []
        for kernel in fused.kernels {
            for inst in kernel.body { if case .loop(let loop) = inst.op { loops.append((kernel, loop)) } }
        }
        XCTAssertEqual(loops.count, 2, "the summary kernel's loop (bits, range and links) and the attention kernel's")
        for (kernel, loop) in loops {
            var ranges: [IndexVar: IndexRange] = [:]
            for axis in kernel.grid { ranges[axis.variable] = IndexRange(lower: 0, upper: axis.extent - 1) }
            // The widest trip count over the grid: rows i·16 ..< i·16 + 16 reach keys within 99.
            var widest = 0
            for i in 0..<((t + 15) / 16) {
                var at = ranges
                at[kernel.grid.first { $0.variable.name == "i" }!.variable] = IndexRange(lower: i, upper: i)
                widest = max(widest, IndexRange.of(loop.upper, at).upper - IndexRange.of(loop.lower, at).lower)
            }
            XCTAssertLessThanOrEqual(widest, (16 + 2 * 100 - 3) / 16 + 2, kernel.name)
            XCTAssertLessThan(widest, (t + 15) / 16, kernel.name)
        }
    }

    /// The exact key blocks a query block needs: those from the block of the first position of
    /// its first sequence to the block of the last position of its last sequence (sequences as
    /// `same_segment` counts them), summed over the query blocks.
    static func neededBlocks(_ o: [Int], t: Int, block: Int) -> Int {
        let segments = o.count - 1
        // Segment s spans first[s] ..< end[s] (the first from 0, the last to t).
        func start(_ s: Int) -> Int { s == 0 ? 0 : o[s] }
        func end(_ s: Int) -> Int { s == segments - 1 ? t : o[s + 1] }
        func segment(_ p: Int) -> Int { (1..<max(1, segments)).filter { p >= o[$0] }.count }
        var total = 0
        for q in stride(from: 0, to: t, by: block) {
            let rows = q..<min(t, q + block)
            let first = start(segment(rows.first!))
            let last = end(segment(rows.last!)) - 1
            total += last / block - first / block + 1
        }
        return total
    }

    /// The attention kernel's visited key blocks, counted by the interpreter, are exactly the key
    /// blocks of each query block's own sequences (a query block straddling two sequences visits
    /// both, and only them; none is skipped by its bit inside that range), and at most
    /// `Σ_b (⌈L_b/16⌉ + 1)²` per head (proportional to `Σ L_b²`; `B·⌈max_len/16⌉²` for the padded
    /// batch and `⌈T/16⌉²` dense). Also at 16 seeded random lengths up to 256 with 64-blocks.
    func testVisitedKeyBlocksAreProportionalToTheSquaredLengths() throws {
        var checked: [(String, [Int], Int, Int, Int)] = Self.cases.map { ($0.0, $0.1, Self.t, Self.maxLength, 16) }
        var generator = SplitMix64(seed: 2024)
        let lengths = (0..<16).map { _ in Int(generator.next() % 257) }
        var o = [0]
        for l in lengths { o.append(o.last! + l) }
        checked.append(("16 random lengths up to 256", o, o.last!, 256, 64))
        for (label, o, t, maxLength, block) in checked {
            let program = try DifferentialTests.example(
                "attention_jagged", dims: ["H": 2, "T": t, "d": 8, "B": o.count - 1, "max_len": maxLength],
                blocks: [("i", block), ("j", block), ("k", block)])
            let fused = Fusion.fuse(program).program
            let attention = try XCTUnwrap(fused.kernels.last)
            let summary = fused.kernels[fused.kernels.count - 2]
            let inputs = DifferentialTests.inputs(program, seed: 3).merging(["offsets": Self.offsets(o)]) { _, g in g }
            let (_, iterations) = try BlockInterpreter.runCountingIterations(fused, inputs: inputs)
            let visited = try XCTUnwrap(iterations[attention.name])
            let needed = Self.neededBlocks(o, t: t, block: block)
            XCTAssertEqual(visited.ran, 2 * needed, "\(label): visited key blocks (2 heads)")
            XCTAssertEqual(visited.skipped, 0, "\(label): blocks inside the range are all needed")
            let lengths = zip(o.dropFirst(), o).map { $0 - $1 }.filter { $0 > 0 }
            let proportional = lengths.map { (($0 + block - 1) / block + 1) * (($0 + block - 1) / block + 1) }
                .reduce(0, +)
            let blocks = (t + block - 1) / block
            XCTAssertLessThanOrEqual(needed, proportional, label)
            // The summary visits the band only: at most (block + 2·max_len − 3)/block + 2 key blocks per row block.
            let band = blocks * ((block + 2 * maxLength - 3) / block + 2)
            let summaryIterations = try XCTUnwrap(iterations[summary.name]).ran
            XCTAssertLessThanOrEqual(summaryIterations, min(band, blocks * blocks), label)
            print(
                "\(label): T = \(t), blocks of \(block): visited \(needed) key blocks per head; "
                    + "Σ(⌈L/b⌉+1)² = \(proportional), padded B·⌈max_len/b⌉² = "
                    + "\((o.count - 1) * ((maxLength + block - 1) / block) * ((maxLength + block - 1) / block)), "
                    + "dense ⌈T/b⌉² = \(blocks * blocks); summary \(summaryIterations) block pairs")
            if label.hasPrefix("16 random") {
                // The workload the benchmark measures, scaled down: well below dense and padded.
                XCTAssertLessThan(2 * needed, blocks * blocks, label)
            }
        }
    }

    /// A sequence longer than max_len is an error of both interpreters (graph, unfused and fused
    /// block programs) that names the segment, its positions and the bound; random inputs for
    /// the offsets respect the bound.
    func testLongerThanMaxLenIsARunTimeError() throws {
        let text = try String(contentsOfFile: CLI.packageRoot + "/Examples/attention_jagged.graph", encoding: .utf8)
        let dims = ["H": 2, "T": Self.t, "d": 16, "B": 4, "max_len": Self.maxLength]
        let graph = try GraphParser.parse(text, defaultName: "attention_jagged", dimOverrides: dims)
        XCTAssertEqual(graph.segmentMaxLengths, ["offsets": Self.maxLength])
        let program = try Self.program(segments: 4)
        var inputs = DifferentialTests.inputs(program, seed: 5)
        let random = inputs["offsets"]!.data.map { Int($0) }
        XCTAssertEqual(random.first, 0)
        XCTAssertEqual(random.last, Self.t)
        XCTAssertTrue(
            zip(random.dropFirst(), random).allSatisfy { $0 - $1 >= 0 && $0 - $1 <= Self.maxLength }, "\(random)")
        // Segment 1 holds 70; then the last segment, which runs to T: 64 positions (86 ..< 150,
        // offsets[4] = 140 < T) are allowed, 65 (85 ..< 150) are not.
        let cases: [([Int], String?)] = [
            ([0, 10, 80, 100, 150], "segment 1 (positions 10 ..< 80) holds 70"),
            ([0, 40, 80, 86, 140], nil),
            ([0, 40, 80, 85, 140], "segment 3 (positions 85 ..< 150) holds 65"),
        ]
        for (o, message) in cases {
            inputs["offsets"] = Self.offsets(o)
            guard let message else {
                XCTAssertNoThrow(try GraphInterpreter.run(graph, inputs: inputs), "\(o)")
                XCTAssertNoThrow(try BlockInterpreter.run(program, inputs: inputs), "\(o)")
                continue
            }
            XCTAssertThrowsError(try GraphInterpreter.run(graph, inputs: inputs)) { error in
                XCTAssertTrue("\(error)".contains(message) && "\(error)".contains("max_len"), "\(error)")
            }
            for p in [program, Fusion.fuse(program).program] {
                XCTAssertThrowsError(try BlockInterpreter.run(p, inputs: inputs)) { error in
                    XCTAssertTrue("\(error)".contains(message) && "\(error)".contains("at most 64"), "\(error)")
                }
            }
        }
    }

    /// `max_len` in the graph: a clear compile-time error where no offsets could satisfy it,
    /// where the mask is not square, and for an unknown keyword; `same_segment` without it
    /// still compiles (no band, no bound on the offsets).
    func testMaxLenErrors() throws {
        func parse(_ condition: String, rows: String = "T") throws -> Graph {
            try GraphParser.parse(
                """
                graph g
                dim T = 100
                dim B = 4
                input S: [\(rows), T]
                input offsets: i32[B + 1]
                P = where(\(condition), S, -inf)
                output P
                """, defaultName: "g")
        }
        XCTAssertThrowsError(try parse("same_segment(i, j, offsets, max_len=24)")) { error in
            XCTAssertTrue("\(error)".contains("4 segments of at most 24 positions cannot cover the 100"), "\(error)")
        }
        XCTAssertThrowsError(try parse("same_segment(i, j, offsets, max_len=50)", rows: "50")) { error in
            XCTAssertTrue("\(error)".contains("50 rows and 100 columns"), "\(error)")
        }
        XCTAssertThrowsError(try parse("same_segment(i, j, offsets, max_length=50)")) { error in
            XCTAssertTrue("\(error)".contains("one keyword argument, max_len"), "\(error)")
        }
        XCTAssertThrowsError(try parse("same_segment(i, j, offsets, max_len=0)")) { error in
            XCTAssertTrue("\(error)".contains("at least 1"), "\(error)")
        }
        // The same offsets bounded by max_len over 100 positions and used over 50 elsewhere: the
        // check would count the last segment to 50, not 100.
        XCTAssertThrowsError(
            try GraphParser.parse(
                """
                graph g
                dim T = 100
                input S: [T, T]
                input R: [50, 50]
                input offsets: i32[5]
                P = where(same_segment(i, j, offsets, max_len=40), S, -inf)
                Q = where(same_segment(i, j, offsets), R, -inf)
                output P
                output Q
                """, defaultName: "g")
        ) { error in
            XCTAssertTrue(
                "\(error)".contains("split 100 positions where max_len bounds their segments and 50"), "\(error)")
        }
        let plain = try parse("same_segment(i, j, offsets)")
        XCTAssertEqual(plain.segmentMaxLengths, [:])
        XCTAssertEqual(plain.offsetInputs, ["offsets": 100])
        let bounded = try parse("same_segment(i, j, offsets, max_len=25)")
        XCTAssertEqual(bounded.segmentMaxLengths, ["offsets": 25])
    }
}
