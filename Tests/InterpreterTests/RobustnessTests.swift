import BlockIR
import XCTest

@testable import Interpreter

/// Mutated programs make the interpreter and the report fail with diagnostics, never trap.
final class RobustnessTests: XCTestCase {
    func testMutatedProgramsNeverTrap() {
        var generator = RandomInputs.SplitMix64(seed: 17, stream: 0)
        func pick(_ n: Int) -> Int { Int(generator.next() % UInt64(n)) }
        let base = TestPrograms.tiledMatmul(m: 9, k: 7, n: 5, tile: 4)
        let inputs = [
            "A": RandomInputs.standardNormal(shape: [9, 7], seed: 1, stream: 0),
            "B": RandomInputs.standardNormal(shape: [7, 5], seed: 1, stream: 1),
        ]
        let sizes = [-1, 0, 1, 3, 4, 5]
        let exprs: [IndexExpr] = [.constant(-3), .constant(0), .constant(100), .v("i"), .v("k"), .v("zz"), .v("j")]
        func mutate(_ body: [Instruction]) -> [Instruction] {
            var body = body
            guard !body.isEmpty else { return body }
            let index = pick(body.count)
            var inst = body[index]
            switch pick(7) {
            case 0:
                if var r = inst.results.first {
                    r.type.shape = (0..<pick(4)).map { _ in sizes[pick(sizes.count)] }
                    inst.results[0] = r
                }
            case 1: inst.op = inst.op.mappingOperands { _ in ValueID(pick(10)) }
            case 2:
                switch inst.op {
                case .load(_, let a): inst.op = .load(TensorID(pick(5) - 1), a)
                case .store(let v, _, let a): inst.op = .store(v, TensorID(pick(5) - 1), a)
                default: break
                }
            case 3:
                switch inst.op {
                case .load(let t, var a) where !a.isEmpty:
                    a[pick(a.count)] =
                        pick(2) == 0
                        ? .point(exprs[pick(exprs.count)])
                        : .slice(start: exprs[pick(exprs.count)], size: sizes[pick(sizes.count)])
                    inst.op = .load(t, a)
                case .store(let v, let t, var a) where !a.isEmpty:
                    a.removeLast(pick(2))
                    inst.op = .store(v, t, a)
                default: break
                }
            case 4:
                if case .loop(var loop) = inst.op {
                    loop.body = mutate(loop.body)
                    if pick(3) == 0 { loop.upper = exprs[pick(exprs.count)] }
                    inst.op = .loop(loop)
                }
            case 5:
                body.remove(at: index)
                return body
            default:
                inst.op =
                    [
                        Op.fill(1), .transpose(ValueID(pick(8))), .reduce(.max, ValueID(pick(8)), axis: pick(3)),
                        .broadcast(ValueID(pick(8)), axis: pick(3)), .yield([ValueID(pick(8))]),
                    ][pick(5)]
            }
            body[index] = inst
            return body
        }
        var failures = 0
        for _ in 0..<400 {
            var program = base
            for _ in 0..<(1 + pick(3)) { program.kernels[0].body = mutate(program.kernels[0].body) }
            if pick(4) == 0 { program.kernels[0].grid[pick(2)].extent = pick(6) - 1 }
            do {
                _ = try BlockInterpreter.run(program, inputs: inputs)
            } catch {
                failures += 1
                XCTAssertFalse(error.message.isEmpty)
            }
            _ = CostReport.analyze(program) { _ in 0 }.json
        }
        XCTAssertGreaterThan(failures, 100)
    }
}
