import BlockIR
import Graph

/// A small deterministic PRNG (SplitMix64) for tests.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// Seeds the generator.
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Random graphs for differential tests of lowering and fusion: chains of elementwise ops,
/// reductions with broadcasts back, matmuls (with transposes), masks and softmax-like
/// patterns, rotations by slices and concatenations (window views), positions as values, over
/// small odd shapes so edge blocks occur.
public enum RandomGraphs {
    /// A random graph from a seed; it always builds.
    public static func make(seed: UInt64) -> Graph {
        var rng = SplitMix64(seed: seed)
        let m = Int.random(in: 3...40, using: &rng)
        let n = Int.random(in: 3...40, using: &rng)
        var b = GraphBuilder(name: "random\(seed)")
        var pool: [NodeID] = []
        do {
            pool.append(try b.input("X", [m, n]))
            pool.append(try b.input("Y", [m, n]))
            let w = try b.input("W", [n, Int.random(in: 2...33, using: &rng)])
            let steps = Int.random(in: 2...7, using: &rng)
            for _ in 0..<steps {
                let x = pool.randomElement(using: &rng)!
                let shape = b.shape(of: x)
                switch Int.random(in: 0..<12, using: &rng) {
                case 0:
                    let ops: [UnaryOp] = [.exp, .tanh, .sigmoid, .silu, .neg, .square, .abs]
                    let op = ops.randomElement(using: &rng)!
                    // Keep exp's argument tame.
                    pool.append(try b.unary(op, op == .exp ? b.unary(.tanh, x) : x))
                case 1:
                    let same = pool.filter { b.shape(of: $0) == shape }
                    let y = same.randomElement(using: &rng)!
                    let ops: [BinaryOp] = [.add, .sub, .mul, .max, .min]
                    pool.append(try b.binary(ops.randomElement(using: &rng)!, x, y))
                case 2:
                    pool.append(try b.mul(x, b.constant(Float(Int.random(in: 1...9, using: &rng)) / 4)))
                case 3 where shape.count == 2:
                    let op: ReduceOp = Bool.random(using: &rng) ? .sum : .max
                    let axis = Int.random(in: 0...1, using: &rng)
                    let r = try b.reduce(op, x, axis: axis, keepDims: true)
                    pool.append(try b.sub(x, r))
                case 4 where shape.count == 2 && shape[1] == n:
                    pool.append(try b.matmul(x, w))
                case 5 where shape.count == 2:
                    let t = try b.transposeLast(x)
                    pool.append(try b.matmul(x, t, transposeB: false))
                case 6 where shape.count == 2:
                    let lo = Int.random(in: -3...3, using: &rng)
                    let keep = PredicateAtom.affineNonNegative(rowCoefficient: 1, columnCoefficient: -1, constant: lo)
                    let masked = try b.mask(x, Predicate([keep]), fill: -.infinity)
                    // With lo >= 0 every row keeps column 0, so a softmax over the masked rows is finite;
                    // otherwise mask with a finite fill.
                    if lo >= 0 {
                        pool.append(try b.softmax(masked, axis: -1))
                    } else {
                        pool.append(try b.mask(x, Predicate([keep]), fill: 0))
                    }
                case 7 where shape.count == 2:
                    pool.append(try b.softmax(x, axis: -1))
                case 8 where shape.count == 2:
                    pool.append(try b.rmsNorm(x, gamma: nil))
                case 9 where shape.count == 2 && shape[1] > 1:
                    // Rotate the columns by c: two windows of x joined in the other order.
                    let c = Int.random(in: 1..<shape[1], using: &rng)
                    let tail = try b.slice(x, axis: 1, start: c, end: shape[1])
                    let head = try b.slice(x, axis: 1, start: 0, end: c)
                    pool.append(try b.concat([Bool.random(using: &rng) ? b.unary(.neg, tail) : tail, head], axis: 1))
                case 10 where shape.count == 2 && shape[0] > 1:
                    // Rotate the rows, one part computed (stored straight into its window).
                    let r = Int.random(in: 1..<shape[0], using: &rng)
                    let low = try b.slice(x, axis: 0, start: r, end: shape[0])
                    let high = try b.unary(.tanh, b.slice(x, axis: 0, start: 0, end: r))
                    pool.append(try b.concat([low, high], axis: 0))
                case 11 where shape.count == 2:
                    // Positions as values, kept small.
                    let p = try b.position(of: x, axis: Int.random(in: 0...1, using: &rng))
                    pool.append(try b.add(x, b.mul(p, b.constant(0.125))))
                default:
                    pool.append(try b.add(x, x))
                }
            }
            try b.output(pool.last!, name: "Out")
            return try b.build()
        } catch {
            // Every step above is shape-correct by construction; a failure is a builder bug.
            fatalError("random graph \(seed) failed to build: \(error)")
        }
    }
}
