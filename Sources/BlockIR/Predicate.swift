/// One condition on a (row `i`, column `j`) element position of a tensor's last two axes.
public enum PredicateAtom: Hashable, Sendable, CustomStringConvertible {
    /// `rowCoefficient·i + columnCoefficient·j + constant ≥ 0`.
    case affineNonNegative(rowCoefficient: Int, columnCoefficient: Int, constant: Int)
    /// `rowCoefficient·i + columnCoefficient·j + constant = 0`.
    case affineZero(rowCoefficient: Int, columnCoefficient: Int, constant: Int)
    /// `i` and `j` fall in the same segment of `[0, b₀), [b₀, b₁), …, [bₙ, ∞)` (block-diagonal
    /// document masks with compile-time boundaries).
    case sameSegment(boundaries: [Int])
    /// An affine condition that also reads the chunk indices `⌊i/m⌋` and `⌊j/m⌋` (chunked and
    /// dual-chunk attention masks, `i % m` as `i − m·⌊i/m⌋`).
    case quotient(QuotientAffine)

    /// Whether the element `(i, j)` satisfies the atom.
    public func holds(row i: Int, column j: Int) -> Bool {
        switch self {
        case .affineNonNegative(let a, let b, let c): return a * i + b * j + c >= 0
        case .affineZero(let a, let b, let c): return a * i + b * j + c == 0
        case .sameSegment(let bounds): return Self.segment(i, bounds) == Self.segment(j, bounds)
        case .quotient(let q): return q.holds(row: i, column: j)
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
        case .quotient(let q): return q.description
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

/// `a·i + b·j + p·⌊i/m⌋ + q·⌊j/m⌋ + c ≥ 0` (or `= 0`) with a divisor `m > 0`; `⌊·⌋` rounds
/// toward −∞, so negative positions (masks placed before a tensor's start) stay consistent.
public struct QuotientAffine: Hashable, Sendable, CustomStringConvertible {
    /// The divisor `m` of both quotients (positive).
    public var divisor: Int
    /// The coefficient `a` of `i`.
    public var row: Int
    /// The coefficient `b` of `j`.
    public var column: Int
    /// The coefficient `p` of `⌊i/m⌋`.
    public var rowQuotient: Int
    /// The coefficient `q` of `⌊j/m⌋`.
    public var columnQuotient: Int
    /// The constant `c`.
    public var constant: Int
    /// `= 0` instead of `≥ 0`.
    public var isEquality: Bool

    /// Makes the atom `a·i + b·j + p·⌊i/m⌋ + q·⌊j/m⌋ + c ≥ 0` (`= 0` when `isEquality`).
    public init(
        divisor: Int, row: Int = 0, column: Int = 0, rowQuotient: Int, columnQuotient: Int, constant: Int = 0,
        isEquality: Bool = false
    ) {
        self.divisor = divisor
        self.row = row
        self.column = column
        self.rowQuotient = rowQuotient
        self.columnQuotient = columnQuotient
        self.constant = constant
        self.isEquality = isEquality
    }

    /// A copy of `other` with another constant.
    public init(copying other: QuotientAffine, constant: Int) {
        self = other
        self.constant = constant
    }

    /// `⌊x/m⌋` for `m > 0`.
    public static func floorDivide(_ x: Int, _ m: Int) -> Int {
        let q = x / m
        return x % m != 0 && x < 0 ? q - 1 : q
    }

    /// The left-hand side at `(i, j)`.
    public func value(row i: Int, column j: Int) -> Int {
        row * i + column * j + rowQuotient * Self.floorDivide(i, divisor) + columnQuotient
            * Self.floorDivide(j, divisor) + constant
    }

    /// Whether the element `(i, j)` satisfies the atom.
    public func holds(row i: Int, column j: Int) -> Bool {
        let v = value(row: i, column: j)
        return isEquality ? v == 0 : v >= 0
    }

    /// The same condition with every coefficient negated: `≥ 0` becomes `≤ 0`.
    public var negated: QuotientAffine {
        QuotientAffine(
            divisor: divisor, row: -row, column: -column, rowQuotient: -rowQuotient, columnQuotient: -columnQuotient,
            constant: -constant, isEquality: isEquality)
    }

    /// Printed form, the same in both text forms: `i/256 - j/256 + 1 >= 0`, `-(i/4) + j/4 >= 0`,
    /// `i - 2*(i/2) == 0`.
    public var description: String {
        let m = divisor
        let terms: [(Int, String)] = [
            (row, "i"), (column, "j"), (rowQuotient, "i/\(m)"), (columnQuotient, "j/\(m)"), (constant, ""),
        ]
        var out = ""
        for (coef, name) in terms where coef != 0 || (name.isEmpty && out.isEmpty) {
            let mag = Swift.abs(coef)
            let body: String
            if name.isEmpty {
                body = String(mag)
            } else if mag == 1 {
                // `-(i/4)`: in the graph form a leading `-i/4` would read as `⌊−i/4⌋`.
                body = name.contains("/") && out.isEmpty && coef < 0 ? "(\(name))" : name
            } else {
                body = name.contains("/") ? "\(mag)*(\(name))" : "\(mag)*\(name)"
            }
            if out.isEmpty {
                out = (coef < 0 ? "-" : "") + body
            } else {
                out += (coef < 0 ? " - " : " + ") + body
            }
        }
        return out + (isEquality ? " == 0" : " >= 0")
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
