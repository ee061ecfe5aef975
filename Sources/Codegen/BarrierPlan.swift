/// Which of the barriers the emitter placed in a GPU kernel are needed, decided over the kernel's rendered text.
///
/// The emitter writes a candidate barrier (a marker line) after every instruction that touches a shared block and
/// between the steps of a multi-step instruction, and marks where each block-program loop's body begins and ends.
/// This pass reads the kernel's text once it is written: every access to a shared buffer (`Bk`, or a value pointer
/// `vN` declared `float *vN = Bk;`) with the thread that makes it where that is known, and keeps only the candidates
/// that separate a write from a later read or write of the same buffer by another thread (RAW, WAW), or a read from a
/// later write (WAR), loop-carried accesses included: each loop body is walked twice, so the end of one iteration
/// meets the start of the next, and a loop that runs zero times leaves the accesses before it pending.
///
/// The thread is known for an access inside a cooperative loop (`for (long f_ = threadIdx.x; f_ < N;
/// f_ += blockDim.x)`, iteration `f_` on thread `f_ % blockDim.x`) whose index is one-to-one in `f_`: `r_`,
/// `r_ * S` after `r_ = f_`, or `r_ * S + c_` with `S` at least the constant row length `C` of `r_ = f_ / C,
/// c_ = f_ % C` (or `C` a run-time extent, at most the block's columns, compared by the identity of its value: the
/// walk follows `long` definitions and copies). Two such accesses of one buffer with the same decomposition and the
/// same index are made by the same thread for every element, so they need no barrier between them; so is
/// `blk_pack`'s output with constant `n` and `lds`. Every other access (a warp's row reduction, `blk_gemm`'s register
/// tiles, the tensor cores' warp tiles, a broadcast read `v[r_]` in a 2-D loop) may involve any thread; a pointer
/// passed to a call counts as written, except the operands the products and `blk_pack` only read. Conflicts are resolved greedily:
/// the latest candidate between the two accesses is kept (the fewest barriers for a sequence), repeated to a fixed
/// point over the loops. A kept candidate clears what is pending; the kernel's end needs none.
struct BarrierPlan {
    /// The marker line of a candidate barrier.
    static let candidate = "\u{1}blk-barrier"
    /// The marker lines around a block-program loop's body.
    static let loopBegin = "\u{1}blk-loop-begin"
    static let loopEnd = "\u{1}blk-loop-end"
    /// The marker line the barrier count replaces.
    static let summary = "\u{1}blk-barrier-summary"

    /// Candidates placed, and those kept.
    var placed = 0
    var kept = 0

    /// One shared-memory access of a line.
    struct Access: Hashable {
        var buffer: Int
        var write: Bool
        /// The decomposition and index when the thread making it is known per element, else `nil`.
        var mapping: String?

        func conflicts(with other: Access) -> Bool {
            guard buffer == other.buffer, write || other.write else { return false }
            guard let m = mapping, let n = other.mapping else { return true }
            return m != n
        }
    }

    private enum Event {
        case accesses([Access])
        case candidate(Int, conditional: Bool)
        case loop([Event])
        /// A variable gets a value: a copy of another's, or a new one.
        case define(String, copying: String?)
    }

    /// Resolves the markers of a kernel's text: each candidate becomes `barrier` (at its indentation) or goes, the
    /// loop markers go, the summary marker becomes a comment with the counts.
    static func resolve(_ text: String, barrier: String) -> (text: String, plan: BarrierPlan) {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var parser = Parser()
        let events = parser.parse(lines)
        var keep: Set<Int> = []
        for c in parser.conditionalCandidates { keep.insert(c) }
        while true {
            var walk = Walk(keep: keep)
            walk.run(events)
            if walk.keep == keep { break }
            keep = walk.keep
        }
        let plan = BarrierPlan(placed: parser.candidateCount, kept: keep.count)
        var out: [String] = []
        var id = 0
        for line in lines {
            let trimmed = line.drop { $0 == " " }
            let indent = String(line.prefix(line.count - trimmed.count))
            switch trimmed {
            case candidate:
                if keep.contains(id) { out.append(indent + barrier) }
                id += 1
            case loopBegin, loopEnd:
                break
            case summary:
                out.append(
                    indent + "/* barriers: \(plan.kept) of the \(plan.placed) placed (the others separate no "
                        + "accesses of one shared element by different threads) */")
            default:
                out.append(line)
            }
        }
        return (out.joined(separator: "\n"), plan)
    }

    /// Reads the events of a kernel's lines.
    private struct Parser {
        /// Each value pointer's or buffer's shared buffer index.
        var buffers: [String: Int] = [:]
        var candidateCount = 0
        var conditionalCandidates: [Int] = []
        /// The open braces: whether each is a conditional, and the decomposition of a cooperative loop.
        var scopes: [(conditional: Bool, decomposition: String?)] = []
        var pendingCooperative = false

        mutating func parse(_ lines: [String]) -> [Event] {
            for line in lines {
                let t = line.trimmingSpaces
                if let (name, buffer) = Self.declaration(t) { buffers[name] = buffer }
            }
            var index = 0
            return parseBlock(lines, &index)
        }

        /// Parses events up to a loop end marker (consumed) or the end.
        mutating func parseBlock(_ lines: [String], _ index: inout Int) -> [Event] {
            var events: [Event] = []
            while index < lines.count {
                let t = lines[index].trimmingSpaces
                index += 1
                switch t {
                case candidate:
                    let conditional = scopes.contains { $0.conditional }
                    if conditional { conditionalCandidates.append(candidateCount) }
                    events.append(.candidate(candidateCount, conditional: conditional))
                    candidateCount += 1
                    continue
                case loopBegin:
                    events.append(.loop(parseBlock(lines, &index)))
                    continue
                case loopEnd:
                    return events
                default:
                    break
                }
                if Self.declaration(t) != nil || t.hasPrefix("//") || t.hasPrefix("/*") { continue }
                if pendingCooperative {
                    pendingCooperative = false
                    if t.hasPrefix("const long r_ = f_") { scopes[scopes.count - 1].decomposition = t }
                }
                if let (name, source) = Self.definition(t) { events.append(.define(name, copying: source)) }
                let accesses = self.accesses(t)
                if !accesses.isEmpty { events.append(.accesses(accesses)) }
                if t.hasPrefix("}") { _ = scopes.popLast() }
                if t.hasSuffix("{") {
                    let cooperative = t.hasPrefix("for (long f_ = threadIdx.x; f_ < ") && t.contains("f_ += blockDim.x")
                    scopes.append((conditional: t.hasPrefix("if") || t.hasPrefix("} else"), decomposition: nil))
                    pendingCooperative = cooperative
                }
            }
            return events
        }

        /// `float *vN = Bk;` or `float *__restrict__ Bk = blk_smem + ...;`: the name and its buffer.
        static func declaration(_ t: String) -> (String, Int)? {
            if t.hasPrefix("float *v"), t.hasSuffix(";"), let eq = t.range(of: " = B") {
                let name = String(t[t.index(t.startIndex, offsetBy: 7)..<eq.lowerBound])
                let number = t[eq.upperBound...].dropLast()
                if let b = Int(number) { return (name, b) }
            }
            if t.hasPrefix("float *__restrict__ B"), t.contains(" = blk_smem") {
                let rest = t.dropFirst("float *__restrict__ B".count)
                if let b = Int(rest.prefix { $0.isNumber }) { return ("B\(b)", b) }
            }
            return nil
        }

        /// Brackets a variable's name in a mapping key, replaced by its value's identity when walked.
        static let variableMark: Character = "\u{2}"

        /// `const long NAME = EXPR;`, `long NAME = EXPR;` or `NAME = IDENTIFIER;`: the name, and the identifier it
        /// copies (`nil` for any other expression).
        static func definition(_ t: String) -> (String, String?)? {
            var rest = Substring(t)
            var declared = false
            if rest.hasPrefix("const long ") {
                rest = rest.dropFirst(11)
                declared = true
            } else if rest.hasPrefix("long ") {
                rest = rest.dropFirst(5)
                declared = true
            }
            guard rest.hasSuffix(";"), let eq = rest.range(of: " = ") else { return nil }
            let name = rest[..<eq.lowerBound]
            let value = rest[eq.upperBound...].dropLast()
            func identifier(_ x: Substring) -> Bool {
                !x.isEmpty && !(x.first!.isNumber) && x.allSatisfy { $0 == "_" || $0.isLetter || $0.isNumber }
            }
            guard identifier(name) else { return nil }
            if identifier(value) { return (String(name), String(value)) }
            return declared ? (String(name), nil) : nil
        }

        /// The thread mapping key of an access with index `index` in the innermost cooperative loop, if one-to-one.
        func mapping(_ index: String) -> String? {
            guard let scope = scopes.last, let d = scope.decomposition else { return nil }
            let parts = index.split(separator: " ").map(String.init)
            if d == "const long r_ = f_;" {
                if parts == ["r_"]
                    || (parts.count == 3 && parts[0] == "r_" && parts[1] == "*" && (Int(parts[2]) ?? 0) > 0)
                {
                    return d + "|" + index
                }
                return nil
            }
            // const long r_ = f_ / C, c_ = f_ % C;
            let prefix = "const long r_ = f_ / "
            guard d.hasPrefix(prefix), let comma = d.firstIndex(of: ",") else { return nil }
            let divisor = String(d[d.index(d.startIndex, offsetBy: prefix.count)..<comma])
            guard parts.count == 5, parts[0] == "r_", parts[1] == "*", let s = Int(parts[2]), s > 0, parts[3] == "+",
                parts[4] == "c_"
            else { return nil }
            if let c = Int(divisor) { return s >= c ? d + "|" + index : nil }
            // A run-time extent (at most the block's columns, so at most the row stride `s`): the key names its
            // value, resolved when walked (`Walk.resolve`).
            guard divisor.allSatisfy({ $0 == "_" || $0.isLetter || $0.isNumber }) else { return nil }
            return "2-D over \(Self.variableMark)\(divisor)\(Self.variableMark)|" + index
        }

        /// Whether a call is a cooperative product (`blk_gemm`, `blk_gemm_bf16`, their 4x1 tiles `blk_gemm_4x1` and
        /// `blk_gemm_bf16_4x1`, the tensor cores' `blk_gemm_mma_RxC`): it reads its operands and writes its output
        /// (argument 8).
        static func isProduct(_ name: String) -> Bool {
            ["blk_gemm", "blk_gemm_bf16", "blk_gemm_4x1", "blk_gemm_bf16_4x1"].contains(name)
                || name.hasPrefix("blk_gemm_mma_")
        }

        /// The accesses of a cooperative product (`isProduct`) or `blk_pack` call: `blk_pack`'s output (`S[k * lds + j]`,
        /// element `f` on thread `f % blockDim.x` with `k = f / n, j = f % n`) with its mapping when `n` and `lds`
        /// are constants; a product's output (`blk_gemm`'s register tiles per thread, the tensor cores' tiles per warp) by
        /// any thread; the operands read by any thread. `nil` for any other line.
        func callAccesses(_ t: String) -> [Access]? {
            let output: Int
            if let open = t.firstIndex(of: "("), Self.isProduct(String(t[..<open])) {
                output = 8
            } else if t.hasPrefix("blk_pack(") {
                output = 5
            } else {
                return nil
            }
            guard t.hasSuffix(");"), let open = t.firstIndex(of: "(") else { return nil }
            var args: [String] = [""]
            var depth = 0
            for ch in t[t.index(after: open)..<t.index(t.endIndex, offsetBy: -2)] {
                if ch == "(" { depth += 1 }
                if ch == ")" { depth -= 1 }
                if ch == "," && depth == 0 {
                    args.append("")
                } else if ch != " " || depth > 0 {
                    args[args.count - 1].append(ch)
                }
            }
            guard args.count > output + 1 else { return nil }
            var found: [Access] = []
            for (k, a) in args.enumerated() {
                guard let b = buffers[a] else {
                    // A pointer expression (or a shared name inside one) is left to the general scan.
                    if a.contains(where: { !($0.isLetter || $0.isNumber || $0 == "_") })
                        && buffers.keys.contains(where: { a.contains($0) })
                    {
                        return nil
                    }
                    continue
                }
                guard k == output else {
                    found.append(Access(buffer: b, write: false, mapping: nil))
                    continue
                }
                var mapping: String?
                if output == 5, let n = Int(args[1]), let ld = Int(args[output + 1]), n > 0, ld >= n {
                    mapping = "const long r_ = f_ / \(n), c_ = f_ % \(n);|r_ * \(ld) + c_"
                }
                found.append(Access(buffer: b, write: true, mapping: mapping))
            }
            return found
        }

        /// The shared accesses of a line.
        func accesses(_ t: String) -> [Access] {
            if let call = callAccesses(t) { return call }
            var found: [Access] = []
            let chars = Array(t)
            var calls: [(name: String, argument: Int)] = []
            var k = 0
            while k < chars.count {
                let ch = chars[k]
                if ch == "_" || ch.isLetter {
                    var j = k
                    while j < chars.count && (chars[j] == "_" || chars[j].isLetter || chars[j].isNumber) { j += 1 }
                    let word = String(chars[k..<j])
                    if j < chars.count && chars[j] == "(" {
                        calls.append((word, 0))
                        k = j + 1
                        continue
                    }
                    if let b = buffers[word] {
                        if j < chars.count && chars[j] == "[" {
                            var depth = 0
                            var e = j
                            repeat {
                                if chars[e] == "[" { depth += 1 }
                                if chars[e] == "]" { depth -= 1 }
                                e += 1
                            } while e < chars.count && depth > 0
                            let index = String(chars[(j + 1)..<(e - 1)])
                            var a = e
                            while a < chars.count && chars[a] == " " { a += 1 }
                            var write = false
                            if a < chars.count {
                                if chars[a] == "=" && (a + 1 >= chars.count || chars[a + 1] != "=") { write = true }
                                if "+-*/".contains(chars[a]) && a + 1 < chars.count && chars[a + 1] == "=" {
                                    write = true
                                }
                            }
                            found.append(Access(buffer: b, write: write, mapping: mapping(index)))
                            k = j
                            continue
                        }
                        let call = calls.last
                        let readOnly =
                            (call.map { Self.isProduct($0.name) } == true && call?.argument != 8)
                            || (call?.name == "blk_pack" && call?.argument != 5)
                        found.append(Access(buffer: b, write: !readOnly, mapping: nil))
                    }
                    k = j
                    continue
                }
                if ch == "(" { calls.append(("", 0)) }
                if ch == ")" { _ = calls.popLast() }
                if ch == ",", !calls.isEmpty { calls[calls.count - 1].argument += 1 }
                k += 1
            }
            return found
        }
    }

    /// One pass of the greedy choice over the events.
    private struct Walk {
        var keep: Set<Int>
        /// Accesses since the last barrier that runs, each with its position.
        var pending: [(access: Access, position: Int)] = []
        /// The latest candidate passed (and its position), not across a loop's exit.
        var last: (id: Int, position: Int)?
        var position = 0
        /// Each variable's value, as an identity: the position where it was computed (copies share it).
        var values: [String: String] = [:]

        /// An access whose key names a variable, with the variable's current value (any thread if unknown).
        func resolve(_ a: Access) -> Access {
            guard let m = a.mapping, m.contains(Parser.variableMark) else { return a }
            let pieces = m.split(separator: Parser.variableMark, omittingEmptySubsequences: false)
            guard pieces.count == 3, let value = values[String(pieces[1])] else {
                return Access(buffer: a.buffer, write: a.write, mapping: nil)
            }
            return Access(buffer: a.buffer, write: a.write, mapping: pieces[0] + value + pieces[2])
        }

        mutating func run(_ events: [Event]) {
            for e in events {
                position += 1
                switch e {
                case .candidate(let id, let conditional):
                    if conditional { continue }
                    last = (id, position)
                    if keep.contains(id) { pending.removeAll() }
                case .accesses(let list):
                    for a in list { record(resolve(a)) }
                case .define(let name, let source):
                    values[name] = source.flatMap { values[$0] } ?? "\(name)@\(position)"
                case .loop(let body):
                    let before = pending
                    run(body)
                    run(body)
                    for p in before where !pending.contains(where: { $0.position == p.position }) {
                        pending.append(p)
                    }
                    last = nil
                }
            }
        }

        mutating func record(_ a: Access) {
            if let l = last, pending.contains(where: { $0.position < l.position && $0.access.conflicts(with: a) }) {
                keep.insert(l.id)
                pending.removeAll { $0.position < l.position }
            }
            pending.append((a, position))
        }
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
