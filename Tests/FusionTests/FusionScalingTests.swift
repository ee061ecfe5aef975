import BlockIR
import BlockTestSupport
import Fusion
import Graph
import XCTest

/// Compile time grows linearly with the program (issue #11, item 8): the work the driver does
/// per step is counted, not timed, on stacks of Llama layers of two depths.
final class FusionScalingTests: XCTestCase {
    /// One Llama decoder layer, as in Sources/transformer-stack, at small sizes.
    static func layer(_ b: inout GraphBuilder, _ x: NodeID, index l: Int, s: Int) throws -> NodeID {
        let (h, dh, f) = (2, 64, 256)
        let d = h * dh
        func weight(_ name: String, _ shape: [Int]) throws -> NodeID { try b.input("\(name)_\(l)", shape) }
        let xa = try b.rmsNorm(x, gamma: weight("g_attn", [d]))
        func heads(_ w: NodeID) throws -> NodeID {
            try b.transpose(b.reshape(b.matmul(xa, w), [s, h, dh]), permutation: [1, 0, 2])
        }
        let q = try heads(weight("Wq", [d, d]))
        let k = try heads(weight("Wk", [d, d]))
        let v = try heads(weight("Wv", [d, d]))
        let scores = try b.mul(b.matmul(q, k, transposeB: true), b.constant(1 / Float(dh).squareRoot()))
        let causal = Predicate([.affineNonNegative(rowCoefficient: 1, columnCoefficient: -1, constant: 0)])
        let p = try b.softmax(b.mask(scores, causal, fill: -.infinity), axis: -1)
        let a = try b.reshape(b.transpose(b.matmul(p, v), permutation: [1, 0, 2]), [s, d])
        let x1 = try b.add(x, b.matmul(a, weight("Wo", [d, d])))
        let xf = try b.rmsNorm(x1, gamma: weight("g_ffn", [d]))
        let g = try b.mul(b.unary(.silu, b.matmul(xf, weight("W1", [d, f]))), b.matmul(xf, weight("W3", [d, f])))
        return try b.add(x1, b.matmul(g, weight("W2", [f, d])))
    }

    /// The naive block program of `layers` layers.
    static func stack(layers: Int) throws -> Program {
        var b = GraphBuilder(name: "stack")
        let s = 128
        var x = try b.input("X", [s, 128])
        for l in 0..<layers { x = try layer(&b, x, index: l, s: s) }
        try b.output(x, name: "Y")
        return try Lowering.lower(b.build())
    }

    /// Kernels looked at per step: examinations, neighbours marked again, producers searched.
    static func visitsPerStep(_ s: FusionStatistics) -> Double {
        Double(s.examinations + s.neighboursVisited + s.producersVisited) / Double(max(1, s.steps))
    }

    func testWorkPerStepDoesNotGrowWithTheProgram() throws {
        let (two, eight) = (try Self.stack(layers: 2), try Self.stack(layers: 8))
        let (a, b) = (
            Fusion.fuse(two, options: FusionOptions(cores: CLI.pinnedCores)).statistics,
            Fusion.fuse(eight, options: FusionOptions(cores: CLI.pinnedCores)).statistics
        )
        // Every layer fuses the same way, so the steps grow with the layers...
        XCTAssertGreaterThan(b.steps, 3 * a.steps, "steps \(a.steps) → \(b.steps)")
        // ...but a step changes its kernel in place: the kernel list is copied once (it is shared
        // with the caller's program), never once per step.
        XCTAssertLessThanOrEqual(a.kernelsCopied, two.kernels.count)
        XCTAssertLessThanOrEqual(b.kernelsCopied, eight.kernels.count)
        // The kernels a step looks at stay a bounded neighbourhood, whatever the program's size.
        XCTAssertLessThan(Self.visitsPerStep(b), 1.25 * Self.visitsPerStep(a), "\(a) → \(b)")
        XCTAssertLessThan(Self.visitsPerStep(b), 32, "\(b)")
    }

    /// A kernel looked at again only because a neighbour changed is not walked again by the
    /// kernel-local rewrites that found nothing in it (its facts remember them).
    func testUnchangedKernelsSkipLocalRewrites() throws {
        let s = Fusion.fuse(try Self.stack(layers: 4), options: FusionOptions(cores: CLI.pinnedCores)).statistics
        // Most examinations end with no rule applying; each such kernel is looked at again when
        // a neighbour changes, and then skips the 11 kernel-local rewrites (R8 has three).
        let stable = s.examinations - s.steps
        XCTAssertGreaterThan(s.localRewritesSkipped, 8 * stable, "\(s)")
    }
}
