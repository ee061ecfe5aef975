/// Renders a block program as Graphviz DOT: global tensors as ellipses (inputs green, outputs
/// blue, temporaries grey), each kernel as a cluster labelled with its grid, each loop as a
/// nested cluster labelled with its range and carried values (shape @ tier), and edges for the
/// loads and stores between kernels and global memory. Output is deterministic.
public enum DotPrinter {
    /// The DOT text of a program.
    public static func print(_ program: Program) -> String {
        var lines = [
            "digraph \"\(escape(program.name))\" {", "  rankdir=LR;", "  node [fontname=\"Helvetica\", fontsize=10];",
        ]
        for (index, tensor) in program.tensors.enumerated() {
            let color: String
            switch tensor.role {
            case .input: color = "palegreen"
            case .output: color = "lightskyblue"
            case .temp: color = "lightgrey"
            }
            let shape = tensor.shape.map(String.init).joined(separator: "×")
            let view = tensor.viewOf.map { " (view of \(program[$0].name))" } ?? ""
            lines.append(
                "  t\(index) [shape=ellipse, style=filled, fillcolor=\(color), label=\"\(escape(tensor.name))\\n\(shape) @global\(view)\"];"
            )
        }
        var edges: [String] = []
        for (k, kernel) in program.kernels.enumerated() {
            let grid = kernel.grid.map { "\($0.variable) < \($0.extent)" }.joined(separator: ", ")
            lines.append("  subgraph cluster_k\(k) {")
            lines.append("    label=\"\(escape(kernel.name))\\ngrid(\(grid))\"; style=rounded; color=black;")
            var counter = 0
            body(kernel.body, kernel: k, indent: "    ", counter: &counter, lines: &lines, edges: &edges)
            lines.append("  }")
        }
        // Deduplicate edges, keeping the first occurrence's order.
        var seen: Set<String> = []
        for e in edges where seen.insert(e).inserted { lines.append(e) }
        lines.append("}")
        return lines.joined(separator: "\n") + "\n"
    }

    private static func body(
        _ instructions: [Instruction], kernel: Int, indent: String, counter: inout Int, lines: inout [String],
        edges: inout [String]
    ) {
        let node = "k\(kernel)_n\(counter)"
        counter += 1
        var ops: [String] = []
        for inst in instructions {
            switch inst.op {
            case .loop(let loop):
                let id = counter
                counter += 1
                let carried = loop.carried.map { "\($0.type)" }.joined(separator: ", ")
                lines.append("\(indent)subgraph cluster_k\(kernel)_l\(id) {")
                lines.append(
                    "\(indent)  label=\"for \(loop.variable) in \(escape(loop.lower.description)) ..< \(escape(loop.upper.description))\(loop.condition == nil ? "" : " (guarded)")\\ncarries \(escape(carried))\"; style=dashed;"
                )
                body(loop.body, kernel: kernel, indent: indent + "  ", counter: &counter, lines: &lines, edges: &edges)
                lines.append("\(indent)}")
            case .load(let t, _), .gather(let t, _, _, _):
                ops.append(inst.op.mnemonic)
                edges.append("  t\(t.index) -> \(node) [color=darkgreen];")
            case .store(_, let t, _):
                ops.append("store")
                edges.append("  \(node) -> t\(t.index) [color=blue];")
            case .yield: break
            case .fill, .index, .unary, .binary, .select, .broadcast, .reduce, .scan, .dot, .transpose, .concat, .mask:
                ops.append(inst.op.mnemonic)
            }
        }
        // One node per body: its ops, counted, in first-seen order.
        var order: [String] = []
        var counts: [String: Int] = [:]
        for op in ops {
            if counts[op] == nil { order.append(op) }
            counts[op, default: 0] += 1
        }
        let label = order.map { counts[$0]! > 1 ? "\($0) ×\(counts[$0]!)" : $0 }.joined(separator: "\\n")
        lines.append("\(indent)\(node) [shape=box, label=\"\(label.isEmpty ? "(no ops)" : label)\"];")
    }

    private static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
    }
}
