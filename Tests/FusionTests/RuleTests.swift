import BlockIR
import BlockParser
import BlockTestSupport
import Foundation
import Fusion
import Interpreter
import XCTest

/// One test per fusion rule, MLIR style: IR text in, IR text out. Each rule `NAME` (row
/// coarsening is the schedule stage's policy, tested in `ScheduleTests`) has a folder `Tests/Golden/rules/NAME/` of hand-written
/// `.block` cases whose comment header says what they show:
///
/// - `CASE.block`, a program the rule applies to, with `CASE.expected.block` beside it: the
///   printed program after the rule alone ran to its fixed point (`Fusion.fuse` with
///   `FusionOptions(onlyRule:)`, what `blockc fuse FILE --only-rule NAME` prints; no other rule
///   runs; the driver still drops tensors no kernel
///   touches). `BLOCKC_BLESS=1` re-records it; a missing one is recorded and fails.
/// - `no_REASON.block`, a program where the rule's precondition fails: it comes out unchanged.
///
/// For an applying case the test checks that the rule fired (a non-empty trace of that rule only,
/// and a changed program), the golden, the verifier, that the golden parses back to itself, that
/// the rule changes nothing more on its own output (idempotence), and that the interpreter gives
/// the input program's outputs within `1e-4 · max(1, max|reference|)`, on three seeded
/// standard-normal inputs and on a ramp (each element a distinct function of its position,
/// increasing along rows: a wrong offset, bound or mask reads different values) plus any inputs
/// the case adds in `structuredInputs`. Adding a case is adding files; `testEveryRuleHasCases`
/// keeps one applying and one non-applying case per rule.
final class RuleTests: XCTestCase {
    static let folder = CLI.packageRoot + "/Tests/Golden/rules"

    /// Extra inputs per case (`rule/case`), for rules whose correctness hinges on special values.
    static let structuredInputs: [String: @Sendable (Program) -> [String: NDArray]] = [
        // Rows 0–3 start with a block of -inf: the running max is -inf for the first iteration,
        // which the clamp in R6 must turn into a zero correction, never exp(-inf + inf).
        "streaming/max_then_exp_sum": { program in
            var inputs = ramp(program)
            var x = inputs["X"]!
            for r in 0..<4 { for c in 0..<8 { x.data[r * x.shape[1] + c] = -.infinity } }
            inputs["X"] = x
            return inputs
        },
        // Row 0's first chunk (blocks 0–4, elements 0–39) is all -inf: that chunk's running max
        // stays -inf and its sums 0, which the merge must weigh by 0, never exp(-inf + inf).
        "split-reduction/decode_streaming": { program in
            var inputs = ramp(program)
            var x = inputs["X"]!
            for c in 0..<40 { x.data[c] = -.infinity }
            inputs["X"] = x
            return inputs
        },
        // Random bits almost never leave a block all false; here some blocks are (skipped), some
        // all true and some mixed (tested per element).
        "data-mask-skipping/row_max_by_mask": { program in
            var inputs = DifferentialTests.inputs(program, seed: 11)
            inputs["M"] = blockMask(rows: 24, columns: 22, leading: [], rowBlock: 8, columnBlock: 4)
            return inputs
        },
        // Documents of 6, 10 and 8 positions: random values almost never agree.
        "data-mask-skipping/computed_condition": { program in
            var inputs = DifferentialTests.inputs(program, seed: 13)
            inputs["D"] = NDArray(shape: [24], data: (0..<24).map { $0 < 6 ? 0 : $0 < 16 ? 1 : 2 })
            return inputs
        },
        // Column blocks 0 and 2 are all 0 (skipped); blocks 1 and 3 hold -1s among 0s (kept,
        // although their maximum is 0).
        "data-mask-skipping/nonzero_condition": { program in
            var inputs = DifferentialTests.inputs(program, seed: 14)
            inputs["C"] = NDArray(
                shape: [16, 16], data: (0..<256).map { n in (n % 16) / 4 % 2 == 1 && n % 3 == 0 ? -1 : 0 })
            return inputs
        },
        "data-mask-skipping/masked_column_sum": { program in
            var inputs = DifferentialTests.inputs(program, seed: 12)
            inputs["M"] = blockMask(rows: 20, columns: 16, leading: [1], rowBlock: 4, columnBlock: 8)
            return inputs
        },
    ]

    /// A bool mask whose (rowBlock × columnBlock) blocks are, in turn, all false, all true and
    /// a checkerboard.
    static func blockMask(rows: Int, columns: Int, leading: [Int], rowBlock: Int, columnBlock: Int) -> NDArray {
        var data: [Float] = []
        for r in 0..<rows {
            for c in 0..<columns {
                switch (r / rowBlock + 2 * (c / columnBlock)) % 3 {
                case 0: data.append(0)
                case 1: data.append(1)
                default: data.append((r + c) % 2 == 0 ? 1 : 0)
                }
            }
        }
        return NDArray(shape: leading + [rows, columns], data: data, elementType: .bool)
    }

    func testR0Simplify() throws { try checkRule("simplify") }
    func testR1InlineProducer() throws { try checkRule("inline-producer") }
    func testR3LoopFusion() throws { try checkRule("loop-fusion") }
    func testR4aScaleMotion() throws { try checkRule("scale-motion") }
    func testR4Linearity() throws { try checkRule("linearity") }
    func testR4bDistribution() throws { try checkRule("distribution") }
    func testR5MomentExpansion() throws { try checkRule("moment-expansion") }
    func testR6Streaming() throws { try checkRule("streaming") }
    func testR7Hoist() throws { try checkRule("hoist") }
    func testR8DeadCode() throws { try checkRule("dead-code") }
    func testR9MaskSkipping() throws { try checkRule("mask-skipping") }
    func testR10CSE() throws { try checkRule("cse") }
    func testR11Reblock() throws { try checkRule("reblock") }
    func testR14SplitLoad() throws { try checkRule("split-load") }
    func testR13ScanCarry() throws { try checkRule("scan-carry") }
    func testR15SplitReduction() throws { try checkRule("split-reduction") }
    func testR16DataMaskSkipping() throws { try checkRule("data-mask-skipping") }
    func testR17CopyForwarding() throws { try checkRule("copy-forwarding") }
    func testR18SiblingFusion() throws { try checkRule("sibling-fusion") }

    /// Every rule of the fixed point has a folder with an applying and a non-applying case; no
    /// folder names an unknown rule.
    func testEveryRuleHasCases() throws {
        let tested = Fusion.rules.map(\.name)
        let folders = try FileManager.default.contentsOfDirectory(atPath: Self.folder).sorted()
        XCTAssertEqual(folders, tested.sorted(), "one folder per rule under Tests/Golden/rules")
        for rule in Fusion.rules {
            let (applying, unchanged) = Self.cases(rule.name)
            XCTAssertFalse(applying.isEmpty, "\(rule.name): no case the rule applies to")
            XCTAssertFalse(unchanged.isEmpty, "\(rule.name): no no_*.block case")
        }
    }

    /// `blockc fuse FILE --only-rule NAME` prints the same programs as the goldens.
    func testOnlyRuleOnTheCommandLine() throws {
        for rule in Fusion.rules {
            for name in Self.cases(rule.name).applying {
                let result = CLI.blockc([
                    "fuse", "Tests/Golden/rules/\(rule.name)/\(name).block", "--only-rule", rule.name,
                ])
                XCTAssertEqual(result.status, 0, "\(rule.name)/\(name): \(result.stderr)")
                let path = "\(Self.folder)/\(rule.name)/\(name).expected.block"
                let golden = (try? String(contentsOfFile: path, encoding: .utf8)) ?? "(missing \(path))"
                XCTAssertEqual(result.stdout, golden, "\(rule.name)/\(name):\n" + lineDiff(golden, result.stdout))
            }
        }
    }

    /// The case names in a rule's folder: those the rule applies to and the `no_` ones.
    static func cases(_ rule: String) -> (applying: [String], unchanged: [String]) {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: "\(folder)/\(rule)")) ?? []
        let names = files.filter { $0.hasSuffix(".block") && !$0.hasSuffix(".expected.block") }
            .map { String($0.dropLast(".block".count)) }.sorted()
        return (names.filter { !$0.hasPrefix("no_") }, names.filter { $0.hasPrefix("no_") })
    }

    static func parse(_ path: String) throws -> Program {
        try BlockParser.parse(String(contentsOfFile: path, encoding: .utf8))
    }

    /// Runs the checks of the type comment on every case of `rule`.
    func checkRule(_ rule: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let (applying, unchanged) = Self.cases(rule)
        XCTAssertFalse(applying.isEmpty || unchanged.isEmpty, "\(rule): cases missing", file: file, line: line)
        let options = FusionOptions(onlyRule: rule, cores: CLI.pinnedCores)
        for name in applying {
            let label = "\(rule)/\(name)"
            let input = try Self.parse("\(Self.folder)/\(label).block")
            XCTAssertEqual(Verifier.verify(input, target: .cpu), [], "\(label): input", file: file, line: line)
            let result = Fusion.fuse(input, options: options)
            // (e) The rule fired, and only it.
            XCTAssertFalse(result.trace.isEmpty, "\(label): the rule did not apply", file: file, line: line)
            XCTAssertEqual(Set(result.trace.map(\.rule)), [rule], "\(label): other rules ran", file: file, line: line)
            XCTAssertNotEqual(result.program, input, "\(label): program unchanged", file: file, line: line)
            XCTAssertFalse(result.hitStepCap, "\(label): step cap", file: file, line: line)
            // (b) The golden, which parses back to itself.
            let text = BlockPrinter.print(result.program)
            let goldenPath = "\(Self.folder)/\(label).expected.block"
            assertGolden(text, path: goldenPath, file: file, line: line)
            if let golden = try? Self.parse(goldenPath) {
                XCTAssertEqual(BlockPrinter.print(golden), text, "\(label): golden round trip", file: file, line: line)
            }
            // (c) The verifier.
            XCTAssertEqual(
                Verifier.verify(result.program, target: .cpu), [], "\(label): verifier", file: file, line: line)
            // Idempotence: the rule alone changes nothing more.
            let again = Fusion.fuse(result.program, options: options)
            XCTAssertEqual(again.trace.map(\.description), [], "\(label): not idempotent", file: file, line: line)
            XCTAssertEqual(again.program, result.program, "\(label): not idempotent", file: file, line: line)
            // (d) The interpreter.
            var inputs: [(String, [String: NDArray])] = (1...3).map {
                ("seed \($0)", DifferentialTests.inputs(input, seed: $0))
            }
            inputs.append(("ramp", Self.ramp(input)))
            if let structured = Self.structuredInputs[label] { inputs.append(("structured", structured(input))) }
            for (kind, values) in inputs {
                let reference = try BlockInterpreter.run(input, inputs: values)
                XCTAssertFalse(reference.isEmpty, "\(label): no outputs to compare", file: file, line: line)
                let outputs = try BlockInterpreter.run(result.program, inputs: values)
                let (err, scale) = DifferentialTests.maxError(reference, outputs)
                XCTAssertLessThanOrEqual(
                    err, 1e-4 * scale, "\(label), \(kind) inputs: error \(err) (scale \(scale))", file: file, line: line
                )
            }
        }
        for name in unchanged {
            let label = "\(rule)/\(name)"
            let input = try Self.parse("\(Self.folder)/\(label).block")
            XCTAssertEqual(Verifier.verify(input, target: .cpu), [], "\(label): input", file: file, line: line)
            let result = Fusion.fuse(input, options: options)
            XCTAssertEqual(result.trace.map(\.description), [], "\(label): the rule applied", file: file, line: line)
            XCTAssertEqual(
                BlockPrinter.print(result.program), BlockPrinter.print(input), "\(label): changed", file: file,
                line: line)
        }
    }

    /// Every input filled with a ramp: element `(…, r, c)` of a matrix is `c − r/2` (increasing
    /// along each row, distinct along each column), element `n` of a vector `n/4 − 1`.
    static func ramp(_ program: Program) -> [String: NDArray] {
        var out: [String: NDArray] = [:]
        for id in program.inputs {
            let shape = program[id].shape
            let count = shape.reduce(1, *)
            let columns = shape.last ?? 1
            let rows = shape.count >= 2 ? shape[shape.count - 2] : 1
            let data: [Float] = (0..<count).map { n in
                guard shape.count >= 2 else { return Float(n) / 4 - 1 }
                let c = n % columns
                let r = (n / columns) % rows
                return Float(c) - Float(r) / 2
            }
            out[program[id].name] = NDArray(shape: shape, data: data)
        }
        return out
    }
}
