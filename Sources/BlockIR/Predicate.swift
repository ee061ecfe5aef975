/// One condition on a (row `i`, column `j`) element position of a tensor's last two axes.
public enum PredicateAtom: Hashable, Sendable, CustomStringConvertible {
    /// `rowCoefficient·i + columnCoefficient·j + constant ≥ 0`.
    case affineNonNegative(rowCoefficient: Int, columnCoefficient: Int, constant: Int)
    /// `rowCoefficient·i + columnCoefficient·j + constant = 0`.
    case affineZero(rowCoefficient: Int, columnCoefficient: Int, constant: Int)
    /// `i` and `j` fall in the same segment of `[0, b₀), [b₀, b₁), …, [bₙ, ∞)` (block-diagonal
    /// document masks with compile-time boundaries).
    case sameSegment(boundaries: [Int])

    /// Whether the element `(i, j)` satisfies the atom.
    public func holds(row i: Int, column j: Int) -> Bool {
        switch self {
        case .affineNonNegative(let a, let b, let c): return a * i + b * j + c >= 0
        case .affineZero(let a, let b, let c): return a * i + b * j + c == 0
        case .sameSegment(let bounds): return Self.segment(i, bounds) == Self.segment(j, bounds)
        }
    }

    static func segment(_ x: Int, _ bounds: [Int]) -> Int {
        var s = 0
        for b in bounds where x >= b { s += 1 }
        return s
    }

    /// Printed form: `i - j >= 0`, `i - j - 255 == 0`, `segments(300, 700)`.
    public var description: String {
        switch self {
        case .affineNonNegative(let a, let b, let c): return Self.affineText(a, b, c) + " >= 0"
        case .affineZero(let a, let b, let c): return Self.affineText(a, b, c) + " == 0"
        case .sameSegment(let bounds): return "segments(" + bounds.map(String.init).joined(separator: ", ") + ")"
        }
    }

    static func affineText(_ a: Int, _ b: Int, _ c: Int) -> String {
        var terms: [(Int, String)] = []
        if a != 0 { terms.append((a, "i")) }
        if b != 0 { terms.append((b, "j")) }
        if c != 0 || terms.isEmpty { terms.append((c, "")) }
        var out = ""
        for (k, (coef, name)) in terms.enumerated() {
            let mag = Swift.abs(coef)
            let body = name.isEmpty ? String(mag) : (mag == 1 ? name : "\(mag)*\(name)")
            if k == 0 {
                out += (coef < 0 ? "-" : "") + body
            } else {
                out += (coef < 0 ? " - " : " + ") + body
            }
        }
        return out
    }
}

/// A conjunction of conditions on element positions: an index-predicate mask keeps the elements
/// where every atom holds.
public struct Predicate: Hashable, Sendable, CustomStringConvertible {
    /// The atoms, all of which must hold.
    public var atoms: [PredicateAtom]

    /// Makes a predicate.
    public init(_ atoms: [PredicateAtom]) { self.atoms = atoms }

    /// Whether the element `(i, j)` is kept.
    public func holds(row i: Int, column j: Int) -> Bool {
        atoms.allSatisfy { $0.holds(row: i, column: j) }
    }

    /// Printed form: atoms joined by `&&`.
    public var description: String { atoms.map(\.description).joined(separator: " && ") }
}
