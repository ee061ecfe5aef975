import BlockIR
import BlockTestSupport
import XCTest

@testable import Fusion

/// R9's loop bounds for quotient atoms (`p·⌊x/m⌋ + b·y + q·⌊y/m⌋ + c ≥ 0`): every block a bound
/// skips is fully masked, checked element by element with `Predicate.holds`.
final class QuotientBoundTests: XCTestCase {
    /// Random small shapes, block sizes, strides, divisors, offsets and coefficients; for each,
    /// every iteration outside the bounds is checked over all its elements, and the bounds must
    /// skip something in a good share of the cases (so a vacuous bound fails too).
    func testSkippedBlocksAreFullyMasked() throws {
        var generator = SplitMix64(seed: 11)
        func random(_ range: ClosedRange<Int>) -> Int {
            range.lowerBound + Int(generator.next() % UInt64(range.count))
        }
        var boundedCases = 0
        var skippedBlocks = 0
        for _ in 0..<2000 {
            let onRows = random(0...1) == 0
            let m = random(1...7)
            let p = [-3, -2, -1, 1, 2, 3][random(0...5)]
            // g(y) = b·y + q·⌊y/m⌋ monotone: b and q of one sign.
            let sign = random(0...1) == 0 ? 1 : -1
            let b = sign * random(0...2)
            let q = sign * random(0...3)
            let c = random(-12...12)
            let atom = QuotientAffine(
                divisor: m, row: onRows ? 0 : b, column: onRows ? b : 0, rowQuotient: onRows ? p : q,
                columnQuotient: onRows ? q : p, constant: c)
            let block = FusionRule.MovingBlock(
                stride: random(1...8), rest: .constant(random(-6...10)), size: random(1...8),
                fixedStart: .constant(random(-6...30)), fixedSize: random(1...8))
            guard let (lower, upper) = FusionRule.quotientBound(atom, onRows: onRows, block) else {
                return XCTFail("no bound for \(atom)")
            }
            XCTAssertTrue((lower == nil) != (upper == nil), "one side per sign of p: \(atom)")
            let lo = lower?.evaluate([:]) ?? Int.min
            let hi = upper?.evaluate([:]) ?? Int.max
            boundedCases += 1
            let rest = block.rest.evaluate([:])
            let fixed = block.fixedStart.evaluate([:])
            for k in -20..<40 where k < lo || k >= hi {
                skippedBlocks += 1
                for x in (block.stride * k + rest)..<(block.stride * k + rest + block.size) {
                    for y in fixed..<(fixed + block.fixedSize) {
                        let (i, j) = onRows ? (x, y) : (y, x)
                        XCTAssertFalse(
                            Predicate([.quotient(atom)]).holds(row: i, column: j),
                            "\(atom) holds at (\(i), \(j)) in skipped block k = \(k) (bounds \(lo) ..< \(hi))")
                    }
                }
            }
            // Tight: the iteration just inside each bound has a kept element.
            for k in [lower == nil ? nil : lo, upper == nil ? nil : hi - 1].compactMap({ $0 }) {
                var kept = false
                for x in (block.stride * k + rest)..<(block.stride * k + rest + block.size) {
                    for y in fixed..<(fixed + block.fixedSize) {
                        let (i, j) = onRows ? (x, y) : (y, x)
                        kept = kept || Predicate([.quotient(atom)]).holds(row: i, column: j)
                    }
                }
                XCTAssertTrue(kept, "\(atom): block k = \(k) at the bound has no kept element (\(lo) ..< \(hi))")
            }
        }
        XCTAssertEqual(boundedCases, 2000)
        XCTAssertGreaterThan(skippedBlocks, 10_000)
    }

    /// No bound where the atom reads the moving position outside the quotient (`i % 2`), where it
    /// does not read the moving position at all, or where the fixed side is not monotone.
    func testNoBoundWhereNotMonotone() {
        let block = FusionRule.MovingBlock(
            stride: 4, rest: .constant(0), size: 4, fixedStart: .constant(0), fixedSize: 4)
        let remainder = QuotientAffine(divisor: 2, row: 1, rowQuotient: -2, columnQuotient: 0)
        XCTAssertNil(FusionRule.quotientBound(remainder, onRows: true, block))
        let fixedOnly = QuotientAffine(divisor: 2, rowQuotient: 0, columnQuotient: 1)
        XCTAssertNil(FusionRule.quotientBound(fixedOnly, onRows: true, block))
        let mixed = QuotientAffine(divisor: 3, column: 1, rowQuotient: 1, columnQuotient: -3)
        XCTAssertNil(FusionRule.quotientBound(mixed, onRows: true, block))
    }
}
