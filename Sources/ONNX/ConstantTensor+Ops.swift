import BlockIR
import Foundation

/// The import-time evaluator: the ops of shape arithmetic on constant tensors, with ONNX's
/// semantics (NumPy broadcasting, negative axes and indices counting from the end).
extension ConstantTensor {
    /// The number of elements.
    public var count: Int { values.count }

    /// Row-major strides of a shape.
    static func strides(_ shape: [Int]) -> [Int] {
        var s = Array(repeating: 1, count: shape.count)
        var acc = 1
        for k in stride(from: shape.count - 1, through: 0, by: -1) {
            s[k] = acc
            acc *= shape[k]
        }
        return s
    }

    /// NumPy broadcasting of shapes.
    static func broadcast(_ shapes: [[Int]]) -> [Int]? {
        let rank = shapes.map(\.count).max() ?? 0
        var out = Array(repeating: 1, count: rank)
        for s in shapes {
            for (k, d) in s.enumerated() {
                let o = k + rank - s.count
                if out[o] == 1 {
                    out[o] = d
                } else if d != 1 && d != out[o] {
                    return nil
                }
            }
        }
        return out
    }

    /// The flat index into a tensor of `shape` broadcast to `out`, for each element of `out`.
    static func broadcastIndices(_ shape: [Int], to out: [Int]) -> [Int] {
        let n = out.reduce(1, *)
        let st = strides(shape)
        let offset = out.count - shape.count
        var result = [Int](repeating: 0, count: n)
        let outStrides = strides(out)
        for e in 0..<n {
            var rest = e
            var flat = 0
            for k in 0..<out.count {
                let idx = rest / outStrides[k]
                rest %= outStrides[k]
                if k >= offset, shape[k - offset] != 1 { flat += idx * st[k - offset] }
            }
            result[e] = flat
        }
        return result
    }

    /// An elementwise function of several tensors with broadcasting.
    static func map(
        _ operands: [ConstantTensor], kind: Kind, _ f: ([Double]) -> Double
    ) throws(ONNXError) -> ConstantTensor {
        guard let out = broadcast(operands.map(\.shape)) else {
            throw ONNXError("shapes \(operands.map(\.shape)) do not broadcast")
        }
        _ = try foldableCount(out)
        let indices = operands.map { broadcastIndices($0.shape, to: out) }
        let n = out.reduce(1, *)
        var values = [Double](repeating: 0, count: n)
        var args = [Double](repeating: 0, count: operands.count)
        for e in 0..<n {
            for k in 0..<operands.count { args[k] = operands[k].values[indices[k][e]] }
            values[e] = f(args)
        }
        return ConstantTensor(kind, shape: out, values: values)
    }

    /// The element count of a shape folded at import, refused past 2^24 elements (or on overflow).
    static func foldableCount(_ shape: [Int]) throws(ONNXError) -> Int {
        var n = 1
        for d in shape {
            guard d >= 0 else { throw ONNXError("the shape \(shape) has a negative size") }
            let (p, overflow) = n.multipliedReportingOverflow(by: d)
            guard !overflow, p <= 1 << 24 else {
                throw ONNXError("a constant of shape \(shape) is too large to fold at import (more than 2^24 elements)")
            }
            n = p
        }
        return n
    }

    /// Rounds to the kind's precision (f32 for floats).
    static func rounded(_ x: Double, _ kind: Kind) -> Double {
        switch kind {
        case .float: return Double(Float(x))
        case .int: return x.rounded(.towardZero)
        case .bool: return x != 0 ? 1 : 0
        }
    }

    /// `a op b` with broadcasting; comparisons give bools, integer division truncates.
    static func binary(_ op: BinaryOp, _ a: ConstantTensor, _ b: ConstantTensor) throws(ONNXError)
        -> ConstantTensor
    {
        let kind: Kind = op.yieldsTruth ? .bool : (a.kind == .float || b.kind == .float ? .float : a.kind)
        return try map([a, b], kind: kind) { v in
            let x = v[0]
            let y = v[1]
            let r: Double
            switch op {
            case .add: r = x + y
            case .sub: r = x - y
            case .mul: r = x * y
            case .div: r = kind == .float ? x / y : (y == 0 ? 0 : (x / y).rounded(.towardZero))
            case .max: r = Swift.max(x, y)
            case .min: r = Swift.min(x, y)
            case .pow: r = Foundation.pow(x, y)
            case .lt: r = x < y ? 1 : 0
            case .le: r = x <= y ? 1 : 0
            case .gt: r = x > y ? 1 : 0
            case .ge: r = x >= y ? 1 : 0
            case .eq: r = x == y ? 1 : 0
            case .ne: r = x != y ? 1 : 0
            case .logicalAnd: r = x != 0 && y != 0 ? 1 : 0
            case .logicalOr: r = x != 0 || y != 0 ? 1 : 0
            }
            return rounded(r, kind)
        }
    }

    /// An elementwise function of one tensor (in f32, as the graph would compute it).
    func unary(_ op: UnaryOp) -> ConstantTensor {
        if op == .neg { return ConstantTensor(kind, shape: shape, values: values.map { -$0 }) }
        if op == .abs { return ConstantTensor(kind, shape: shape, values: values.map { Swift.abs($0) }) }
        return ConstantTensor(.float, shape: shape, values: values.map { Double(op.apply(Float($0))) })
    }

    /// The same values as another kind (floats to integers truncate).
    func cast(to kind: Kind) -> ConstantTensor {
        ConstantTensor(kind, shape: shape, values: values.map { Self.rounded($0, kind) })
    }

    /// The same values with another shape.
    func reshaped(_ newShape: [Int]) -> ConstantTensor { ConstantTensor(kind, shape: newShape, values: values) }

    /// Axis permutation.
    func transposed(_ perm: [Int]) -> ConstantTensor {
        let out = perm.map { shape[$0] }
        let inStrides = Self.strides(shape)
        let outStrides = Self.strides(out)
        var values = [Double](repeating: 0, count: count)
        for e in 0..<count {
            var rest = e
            var flat = 0
            for k in 0..<out.count {
                let idx = rest / outStrides[k]
                rest %= outStrides[k]
                flat += idx * inStrides[perm[k]]
            }
            values[e] = self.values[flat]
        }
        return ConstantTensor(kind, shape: out, values: values)
    }

    /// Elements `start ..< end` step `step` of one axis (bounds already clamped).
    func sliced(axis: Int, start: Int, end: Int, step: Int) -> ConstantTensor {
        var picks: [Int] = []
        var p = start
        while step > 0 ? p < end : p > end {
            picks.append(p)
            let (next, overflow) = p.addingReportingOverflow(step)
            if overflow { break }
            p = next
        }
        return gathered(axis: axis, indices: picks, indexShape: [picks.count])
    }

    /// `Gather` along an axis by (non-negative) indices of a shape.
    func gathered(axis: Int, indices: [Int], indexShape: [Int]) -> ConstantTensor {
        let outer = shape[..<axis].reduce(1, *)
        let inner = shape[(axis + 1)...].reduce(1, *)
        let n = shape[axis]
        var values: [Double] = []
        values.reserveCapacity(outer * indices.count * inner)
        for o in 0..<outer {
            for i in indices {
                let base = (o * n + i) * inner
                values.append(contentsOf: self.values[base..<(base + inner)])
            }
        }
        return ConstantTensor(
            kind, shape: Array(shape[..<axis]) + indexShape + Array(shape[(axis + 1)...]), values: values)
    }

    /// Tensors joined along an axis; every other axis agrees.
    static func concatenated(_ parts: [ConstantTensor], axis: Int) throws(ONNXError) -> ConstantTensor {
        for p in parts {
            var a = p.shape
            var b = parts[0].shape
            guard a.count == b.count, axis < a.count else {
                throw ONNXError("cannot concatenate shapes \(parts.map(\.shape)) along axis \(axis)")
            }
            a[axis] = 0
            b[axis] = 0
            guard a == b else { throw ONNXError("cannot concatenate shapes \(parts.map(\.shape)) along axis \(axis)") }
        }
        var shape = parts[0].shape
        shape[axis] = parts.map { $0.shape[axis] }.reduce(0, +)
        let outer = shape[..<axis].reduce(1, *)
        var values: [Double] = []
        for o in 0..<outer {
            for p in parts {
                let chunk = p.shape[axis...].reduce(1, *)
                values.append(contentsOf: p.values[(o * chunk)..<((o + 1) * chunk)])
            }
        }
        let kind = parts.contains { $0.kind == .float } ? Kind.float : parts[0].kind
        return ConstantTensor(kind, shape: shape, values: values)
    }

    /// `Trilu`: keeps the lower (or upper) triangle of the last two axes from diagonal `k`.
    func trilu(upper: Bool, k: Int) -> ConstantTensor {
        let rows = shape[shape.count - 2]
        let cols = shape[shape.count - 1]
        var values = self.values
        for e in 0..<count {
            let i = (e / cols) % rows
            let j = e % cols
            let keep = upper ? j - i >= k : j - i <= k
            if !keep { values[e] = 0 }
        }
        return ConstantTensor(kind, shape: shape, values: values)
    }

    /// Whether every element equals the first.
    var isUniform: Bool { values.allSatisfy { $0 == values.first } }
}
