/// A named index variable: a grid axis of a kernel or the counter of a loop.
public struct IndexVar: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The variable's name, unique inside its kernel.
    public var name: String

    /// Makes a variable.
    public init(_ name: String) { self.name = name }

    public var description: String { name }
    public static func < (a: IndexVar, b: IndexVar) -> Bool { a.name < b.name }
}

/// An integer expression over index variables: element offsets of loads, stores and masks, and
/// loop bounds. Division rounds toward minus infinity.
public indirect enum IndexExpr: Hashable, Sendable, CustomStringConvertible {
    case constant(Int)
    case variable(IndexVar)
    case add(IndexExpr, IndexExpr)
    case mul(IndexExpr, Int)
    case floorDiv(IndexExpr, Int)
    case min(IndexExpr, IndexExpr)
    case max(IndexExpr, IndexExpr)

    /// `v`
    public static func v(_ name: String) -> IndexExpr { .variable(IndexVar(name)) }

    /// Evaluates the expression; unbound variables read as 0.
    public func evaluate(_ env: [IndexVar: Int]) -> Int {
        switch self {
        case .constant(let c): return c
        case .variable(let v): return env[v] ?? 0
        case .add(let a, let b): return a.evaluate(env) + b.evaluate(env)
        case .mul(let a, let c): return a.evaluate(env) * c
        case .floorDiv(let a, let c):
            let x = a.evaluate(env)
            guard c != 0 else { return 0 }
            let q = x / c
            return (x % c != 0 && ((x < 0) != (c < 0))) ? q - 1 : q
        case .min(let a, let b): return Swift.min(a.evaluate(env), b.evaluate(env))
        case .max(let a, let b): return Swift.max(a.evaluate(env), b.evaluate(env))
        }
    }

    /// The variables the expression reads, in first-occurrence order.
    public var variables: [IndexVar] {
        var out: [IndexVar] = []
        func walk(_ e: IndexExpr) {
            switch e {
            case .constant: break
            case .variable(let v): if !out.contains(v) { out.append(v) }
            case .add(let a, let b), .min(let a, let b), .max(let a, let b):
                walk(a)
                walk(b)
            case .mul(let a, _), .floorDiv(let a, _): walk(a)
            }
        }
        walk(self)
        return out
    }

    /// Replaces variables by expressions.
    public func substituting(_ map: [IndexVar: IndexExpr]) -> IndexExpr {
        switch self {
        case .constant: return self
        case .variable(let v): return map[v] ?? self
        case .add(let a, let b): return .add(a.substituting(map), b.substituting(map))
        case .mul(let a, let c): return .mul(a.substituting(map), c)
        case .floorDiv(let a, let c): return .floorDiv(a.substituting(map), c)
        case .min(let a, let b): return .min(a.substituting(map), b.substituting(map))
        case .max(let a, let b): return .max(a.substituting(map), b.substituting(map))
        }
    }

    /// Printed form: `i * 64 + 1`, `min(j + 1, 16)`, `(i * 64 + 63) / 128`. The `.block` parser
    /// reads it back to the same tree.
    public var description: String { render(precedence: 0) }

    private func render(precedence: Int) -> String {
        switch self {
        case .constant(let c):
            return c < 0 && precedence > 0 ? "(\(c))" : String(c)
        case .variable(let v): return v.name
        case .add(let a, let b):
            let s = a.render(precedence: 1) + " + " + b.render(precedence: 2)
            return precedence > 1 ? "(\(s))" : s
        case .mul(let a, let c):
            let s = a.render(precedence: 2) + " * " + (c < 0 ? "(\(c))" : String(c))
            return precedence > 2 ? "(\(s))" : s
        case .floorDiv(let a, let c):
            let s = a.render(precedence: 2) + " / " + (c < 0 ? "(\(c))" : String(c))
            return precedence > 2 ? "(\(s))" : s
        case .min(let a, let b): return "min(\(a), \(b))"
        case .max(let a, let b): return "max(\(a), \(b))"
        }
    }
}

/// How a load or store addresses one axis of a global tensor.
public enum AxisAccess: Hashable, Sendable, CustomStringConvertible {
    /// One element index; the axis does not appear in the block.
    case point(IndexExpr)
    /// `size` consecutive elements starting at the element offset `start`; the axis appears in
    /// the block with extent `size` (fewer valid elements at the tensor's edge).
    case slice(start: IndexExpr, size: Int)

    /// Printed form: `e` for a point, `e +: 64` for a slice.
    public var description: String {
        switch self {
        case .point(let e): return e.description
        case .slice(let start, let size): return "\(start) +: \(size)"
        }
    }

    /// The index variables the access uses.
    public var variables: [IndexVar] {
        switch self {
        case .point(let e), .slice(let e, _): return e.variables
        }
    }

    /// The same access with variables substituted.
    public func substituting(_ map: [IndexVar: IndexExpr]) -> AxisAccess {
        switch self {
        case .point(let e): return .point(e.substituting(map))
        case .slice(let s, let n): return .slice(start: s.substituting(map), size: n)
        }
    }
}
