import Foundation

/// Elementwise functions of one argument, shared by the graph and the block program.
public enum UnaryOp: String, Hashable, Sendable, CaseIterable {
    case neg, exp, log, sqrt, rsqrt, recip, tanh, sigmoid, silu, gelu, abs, square
    /// Trigonometric functions (radians), e.g. for rotary position embeddings.
    case sin, cos
    /// `log(1 + eˣ)`, computed as `log1p(e^(−|x|)) + max(x, 0)` so that it neither overflows for
    /// large `x` nor loses the small values for very negative `x`.
    case softplus
    /// `log(1 + x)`, accurate for small `x`.
    case log1p
    /// The error function `erf(x)` (exact GELU is `0.5·x·(1 + erf(x/√2))`).
    case erf
    /// `1` at every valid element (ones shaped like the operand): counts elements in reductions.
    case one

    /// The reference semantics of the op on one fp32 value.
    public func apply(_ x: Float) -> Float {
        switch self {
        case .neg: return -x
        case .exp: return Foundation.exp(x)
        case .log: return Foundation.log(x)
        case .sqrt: return x.squareRoot()
        case .rsqrt: return 1 / x.squareRoot()
        case .recip: return 1 / x
        case .tanh: return Foundation.tanh(x)
        case .sigmoid: return 1 / (1 + Foundation.exp(-x))
        case .silu: return x / (1 + Foundation.exp(-x))
        case .gelu:
            // tanh approximation, as in most inference runtimes.
            let c: Float = 0.797_884_56  // sqrt(2/pi)
            return 0.5 * x * (1 + Foundation.tanh(c * (x + 0.044715 * x * x * x)))
        case .abs: return Swift.abs(x)
        case .square: return x * x
        case .sin: return Foundation.sin(x)
        case .cos: return Foundation.cos(x)
        case .softplus: return Foundation.log1p(Foundation.exp(-Swift.abs(x))) + (x > 0 ? x : (x.isNaN ? x : 0))
        case .log1p: return Foundation.log1p(x)
        case .erf: return Foundation.erf(x)
        case .one: return 1
        }
    }
}

/// Elementwise functions of two arguments, shared by the graph and the block program.
public enum BinaryOp: String, Hashable, Sendable, CaseIterable {
    case add, sub, mul, div, max, min, pow
    /// Comparisons: `1` where `a < b` (`<=`, `>`, `>=`, `==`, `!=`) holds, else `0`; a NaN
    /// operand compares false except under `ne`, as in IEEE 754. At the graph level the result
    /// is a `bool` tensor.
    case lt, le, gt, ge, eq, ne
    /// Logical connectives on truth values (`1` where both / either operand is non-zero, else
    /// `0`); at the graph level on `bool` tensors.
    case logicalAnd = "logical_and", logicalOr = "logical_or"

    /// Whether the op yields a truth value (`1` or `0`): a comparison or a logical connective.
    public var yieldsTruth: Bool {
        switch self {
        case .add, .sub, .mul, .div, .max, .min, .pow: return false
        case .lt, .le, .gt, .ge, .eq, .ne, .logicalAnd, .logicalOr: return true
        }
    }

    /// Whether the op compares numbers (`lt le gt ge eq ne`).
    public var isComparison: Bool {
        switch self {
        case .lt, .le, .gt, .ge, .eq, .ne: return true
        case .add, .sub, .mul, .div, .max, .min, .pow, .logicalAnd, .logicalOr: return false
        }
    }

    /// The reference semantics of the op on fp32 values.
    public func apply(_ a: Float, _ b: Float) -> Float {
        switch self {
        case .add: return a + b
        case .sub: return a - b
        case .mul: return a * b
        case .div: return a / b
        case .max: return a.isNaN || b.isNaN ? .nan : Swift.max(a, b)
        case .min: return a.isNaN || b.isNaN ? .nan : Swift.min(a, b)
        case .pow: return Foundation.pow(a, b)
        case .lt: return a < b ? 1 : 0
        case .le: return a <= b ? 1 : 0
        case .gt: return a > b ? 1 : 0
        case .ge: return a >= b ? 1 : 0
        case .eq: return a == b ? 1 : 0
        case .ne: return a != b ? 1 : 0
        case .logicalAnd: return a != 0 && b != 0 ? 1 : 0
        case .logicalOr: return a != 0 || b != 0 ? 1 : 0
        }
    }
}

/// Reductions over an axis, shared by the graph and the block program.
public enum ReduceOp: String, Hashable, Sendable, CaseIterable {
    case sum, max

    /// The identity element: `0` for `sum`, `-inf` for `max`.
    public var identity: Float {
        switch self {
        case .sum: return 0
        case .max: return -.infinity
        }
    }

    /// The binary op that combines two partial results.
    public var combiner: BinaryOp {
        switch self {
        case .sum: return .add
        case .max: return .max
        }
    }
}

/// Formats an fp32 constant so that parsing the text gives back the same value.
public func formatFloat(_ x: Float) -> String {
    if x == .infinity { return "inf" }
    if x == -.infinity { return "-inf" }
    if x.isNaN { return "nan" }
    if x == x.rounded() && Swift.abs(x) < 1e9 { return String(format: "%.1f", Double(x)) }
    return "\(x)"
}
