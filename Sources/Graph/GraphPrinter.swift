import BlockIR

/// Prints a graph in the `.graph` text form, one op per line with every node named, so
/// `--print-after=parse` shows what the sugar (softmax, layernorm, …) expanded to. The text
/// parses back to an equivalent graph.
public enum GraphPrinter {
    /// The text of a graph.
    public static func print(_ graph: Graph) -> String {
        var lines = ["graph \(graph.name)"]
        for d in graph.dims { lines.append("dim \(d.name) = \(d.value)") }
        func shape(_ s: [Int]) -> String { "[" + s.map(String.init).joined(separator: ", ") + "]" }
        func ref(_ id: NodeID) -> String {
            if case .constant(let c) = graph[id].op { return constantText(c) }
            return graph[id].name
        }
        for node in graph.nodes {
            let rhs: String
            switch node.op {
            case .input:
                let type = node.elementType == .f32 ? "" : node.elementType.rawValue
                lines.append("input \(node.name): \(type)\(shape(node.shape))")
                continue
            case .constant:
                continue
            case .position(let axis):
                // Shaped like the first earlier tensor of the same shape, else by a shape list.
                let like = graph.nodes[..<node.id.index].first { n in
                    n.shape == node.shape && { if case .constant = n.op { false } else { true } }()
                }
                rhs = "pos(\(like.map(\.name) ?? shape(node.shape)), axis=\(axis))"
            case .unary(let op, let a): rhs = "\(op.rawValue)(\(ref(a)))"
            case .binary(let op, let a, let b): rhs = "\(op.rawValue)(\(ref(a)), \(ref(b)))"
            case .matmul(let a, let b, let ta, let tb):
                rhs =
                    "matmul(\(ref(a)), \(ref(b))" + (ta ? ", transpose_a=true" : "") + (tb ? ", transpose_b=true" : "")
                    + ")"
            case .reduce(let op, let a, let axis, let keep):
                rhs = "reduce_\(op.rawValue)(\(ref(a)), axis=\(axis)" + (keep ? ", keepdims=true" : "") + ")"
            case .transpose(let a, let perm):
                rhs = "transpose(\(ref(a)), perm=\(shape(perm)))"
            case .reshape(let a): rhs = "reshape(\(ref(a)), \(shape(node.shape)))"
            case .slice(let a, let axis, let start):
                rhs = "slice(\(ref(a)), axis=\(axis), start=\(start), end=\(start + node.shape[axis]))"
            case .concat(let parts, let axis):
                rhs = "concat([\(parts.map(ref).joined(separator: ", "))], axis=\(axis))"
            case .cast(let a, let type): rhs = "cast(\(ref(a)), \(type))"
            case .cumsum(let a, let axis, let reverse, let exclusive):
                rhs =
                    "cumsum(\(ref(a)), axis=\(axis)" + (reverse ? ", reverse=true" : "")
                    + (exclusive ? ", exclusive=true" : "") + ")"
            case .blockBroadcast(let a, let blocks):
                rhs = "block_broadcast(\(ref(a)), \(shape(blocks)))"
            case .mask(let a, let p, let fill):
                rhs = "where(\(predicateText(p)), \(ref(a)), \(constantText(fill)))"
            case .select(let c, let a, let b): rhs = "where(\(ref(c)), \(ref(a)), \(ref(b)))"
            case .gather(let t, let index, let axis): rhs = "gather(\(ref(t)), \(ref(index)), axis=\(axis))"
            }
            lines.append("\(node.name) = \(rhs)")
        }
        lines.append("output " + graph.outputs.map { graph[$0].name }.joined(separator: ", "))
        return lines.joined(separator: "\n") + "\n"
    }

    static func constantText(_ c: Float) -> String {
        let s = formatFloat(c)
        return c < 0 ? "(\(s))" : s
    }

    /// A predicate in the graph form's syntax (`i - j >= 0 && same_segment(i, j, [300])`).
    static func predicateText(_ p: Predicate) -> String {
        p.atoms.map { atom -> String in
            switch atom {
            case .affineNonNegative, .affineZero, .quotient: return atom.description
            case .sameSegment(let bounds):
                return "same_segment(i, j, [" + bounds.map(String.init).joined(separator: ", ") + "])"
            }
        }.joined(separator: " && ")
    }
}
