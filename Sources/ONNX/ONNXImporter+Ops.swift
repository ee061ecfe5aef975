import BlockIR
import Graph

/// The op table: each supported ONNX op as graph primitives, or folded when its inputs are
/// constants.
extension ONNXImporter {
    /// The ops `importNode` knows, for messages and docs.
    public static let supportedOps: [String] = [
        "Abs", "Add", "And", "Attention", "Cast", "CastLike", "Concat", "Constant", "ConstantOfShape", "Cos", "Div",
        "Equal", "Erf", "Exp", "Expand", "Gather", "Gelu", "Gemm", "Greater", "GreaterOrEqual", "Identity",
        "LayerNormalization", "Less", "LessOrEqual", "Log", "MatMul", "Max", "Min", "Mul", "Neg", "Not", "Or", "Pow",
        "RMSNormalization", "Range", "Reciprocal", "ReduceMax", "ReduceMean", "ReduceSum", "Relu", "Reshape", "Shape",
        "Sigmoid", "SimplifiedLayerNormalization", "Sin", "Slice", "Softmax", "Split", "Sqrt", "Squeeze", "Sub",
        "Tanh", "Transpose", "Trilu", "Unsqueeze", "Where",
    ]

    /// Imports one node: its outputs become values (nodes of the graph, or folded constants).
    mutating func importNode(_ n: NodeProto) throws {
        let inputs: [Value?] = try n.inputs.map { name throws -> Value? in
            if name.isEmpty { return nil }
            guard let v = values[name] else {
                throw ONNXError("input '\(name)' is not computed by any earlier node, input or initializer")
            }
            return v
        }
        func input(_ k: Int) throws -> Value {
            guard k < inputs.count, let v = inputs[k] else { throw ONNXError("input \(k) is missing") }
            return v
        }
        func optional(_ k: Int) -> Value? { k < inputs.count ? inputs[k] : nil }
        func int(_ name: String, _ d: Int) -> Int { n.attribute(name).map { Int($0.i) } ?? d }
        func float(_ name: String, _ d: Float) -> Float { n.attribute(name)?.f ?? d }
        func ints(_ name: String) -> [Int]? { n.attribute(name).map { $0.ints.map { Int($0) } } }
        func intsInput(_ k: Int, _ what: String) throws -> [Int]? {
            guard let v = optional(k) else { return nil }
            return try constant(v, what).intValues
        }

        let domain = n.domain == "ai.onnx" ? "" : n.domain
        guard domain.isEmpty || (domain == "com.microsoft" && n.opType == "SimplifiedLayerNormalization") else {
            throw ONNXError(
                "the domain '\(n.domain)' is not supported (only the default ONNX domain); "
                    + "supported ops: \(Self.supportedOps.joined(separator: ", "))")
        }
        let results: [Value]
        switch n.opType {
        case "Identity":
            results = [try input(0)]
        case "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Equal", "Less", "LessOrEqual", "Greater",
            "GreaterOrEqual", "And", "Or":
            let ops: [String: BinaryOp] = [
                "Add": .add, "Sub": .sub, "Mul": .mul, "Div": .div, "Pow": .pow, "Max": .max, "Min": .min,
                "Equal": .eq, "Less": .lt, "LessOrEqual": .le, "Greater": .gt, "GreaterOrEqual": .ge,
                "And": .logicalAnd, "Or": .logicalOr,
            ]
            guard inputs.count == 2 else { throw ONNXError("takes two inputs here, got \(inputs.count)") }
            results = [try binary(ops[n.opType]!, input(0), input(1))]
        case "Not":
            let x = try input(0)
            if case .constant(let c, _) = x {
                results = [folded(ConstantTensor(.bool, shape: c.shape, values: c.values.map { $0 != 0 ? 0 : 1 }))]
            } else {
                results = [.node(try b.logicalNot(node(x)))]
            }
        case "Sqrt", "Reciprocal", "Neg", "Exp", "Log", "Tanh", "Erf", "Sigmoid", "Sin", "Cos", "Abs":
            let ops: [String: UnaryOp] = [
                "Sqrt": .sqrt, "Reciprocal": .recip, "Neg": .neg, "Exp": .exp, "Log": .log, "Tanh": .tanh,
                "Erf": .erf, "Sigmoid": .sigmoid, "Sin": .sin, "Cos": .cos, "Abs": .abs,
            ]
            results = [try unary(ops[n.opType]!, input(0))]
        case "Relu":
            results = [try binary(.max, input(0), .constant(.scalar(.float, 0), name: "zero"))]
        case "Gelu":
            let x = try input(0)
            switch n.attribute("approximate")?.string ?? "none" {
            case "tanh":
                results = [try unary(.gelu, x)]
            case "none":
                // 0.5·x·(1 + erf(x/√2))
                let half = Value.constant(.scalar(.float, 0.5), name: "half")
                let erf = try unary(.erf, binary(.mul, x, .constant(.scalar(.float, 0.5.squareRoot()), name: "c")))
                let one = try binary(.add, erf, .constant(.scalar(.float, 1), name: "one"))
                results = [try binary(.mul, binary(.mul, x, half), one)]
            case let other:
                throw ONNXError("approximate='\(other)' is not one of 'none', 'tanh'")
            }
        case "MatMul":
            results = [try matmul(input(0), input(1))]
        case "Gemm":
            let ta = int("transA", 0) != 0
            let tb = int("transB", 0) != 0
            let alpha = float("alpha", 1)
            let beta = float("beta", 1)
            let a = try node(input(0))
            let w = try node(input(1))
            guard b.shape(of: a).count == 2, b.shape(of: w).count == 2 else {
                throw ONNXError("Gemm takes 2-D A and B, got \(b.shape(of: a)) and \(b.shape(of: w))")
            }
            var y = Value.node(try b.matmul(a, w, transposeA: ta, transposeB: tb))
            if alpha != 1 { y = try binary(.mul, y, .constant(.scalar(.float, Double(alpha)), name: "alpha")) }
            if let c = optional(2) {
                let scaled = beta == 1 ? c : try binary(.mul, c, .constant(.scalar(.float, Double(beta)), name: "beta"))
                y = try binary(.add, y, scaled)
            }
            results = [y]
        case "Softmax":
            let x = try input(0)
            let rank = shape(x).count
            let axis = try Self.normalize(int("axis", opset >= 13 ? -1 : 1), rank: rank)
            guard opset >= 13 || axis == rank - 1 else {
                throw ONNXError(
                    "before opset 13 Softmax flattens from axis \(axis); only the last axis is supported there")
            }
            results = [.node(try b.softmax(node(x), axis: axis))]
        case "ReduceMean", "ReduceSum", "ReduceMax":
            let x = try input(0)
            let attrUntil: Int64 = n.opType == "ReduceSum" ? 13 : 18
            let axes = opset < attrUntil ? ints("axes") : try intsInput(1, "the axes input")
            let keep = int("keepdims", 1) != 0
            results = [
                try reduce(n.opType, x, axes: axes, keepDims: keep, noopWhenEmpty: int("noop_with_empty_axes", 0) != 0)
            ]
        case "LayerNormalization":
            let x = try input(0)
            let rank = shape(x).count
            guard try Self.normalize(int("axis", -1), rank: rank) == rank - 1 else {
                throw ONNXError("only normalization over the last axis is supported (axis=-1)")
            }
            try refuseExtraOutputs(n, keep: 1)
            let gamma = try optional(1).map { v throws in try node(v) }
            let beta = try optional(2).map { v throws in try node(v) }
            results = [.node(try b.layerNorm(node(x), gamma: gamma, beta: beta, epsilon: float("epsilon", 1e-5)))]
        case "RMSNormalization", "SimplifiedLayerNormalization":
            let x = try input(0)
            let rank = shape(x).count
            guard try Self.normalize(int("axis", -1), rank: rank) == rank - 1 else {
                throw ONNXError("only normalization over the last axis is supported (axis=-1)")
            }
            try refuseExtraOutputs(n, keep: 1)
            let gamma = try optional(1).map { v throws in try node(v) }
            results = [.node(try b.rmsNorm(node(x), gamma: gamma, epsilon: float("epsilon", 1e-5)))]
        case "Where":
            results = [try whereOp(input(0), input(1), input(2))]
        case "Trilu":
            let x = try input(0)
            let k = max(min(try intsInput(1, "the diagonal offset k")?.first ?? 0, 1 << 31), -(1 << 31))
            let upper = int("upper", 1) != 0
            guard shape(x).count >= 2 else { throw ONNXError("Trilu needs rank 2 or more, got \(shape(x))") }
            if case .constant(let c, _) = x {
                results = [folded(c.trilu(upper: upper, k: k))]
            } else {
                let atom: PredicateAtom =
                    upper
                    ? .affineNonNegative(rowCoefficient: -1, columnCoefficient: 1, constant: -k)
                    : .affineNonNegative(rowCoefficient: 1, columnCoefficient: -1, constant: k)
                results = [.node(try b.mask(node(x), Predicate([atom]), fill: 0))]
            }
        case "Expand":
            results = [try expand(input(0), constant(input(1), "the shape input").intValues)]
        case "Reshape":
            let x = try input(0)
            let spec = try constant(input(1), "the shape input").intValues
            results = [try reshape(x, reshapeTarget(shape(x), spec, allowZero: int("allowzero", 0) != 0))]
        case "Transpose":
            let x = try input(0)
            let rank = shape(x).count
            let perm = ints("perm") ?? Array((0..<rank).reversed())
            guard perm.sorted() == Array(0..<rank) else {
                throw ONNXError("perm \(perm) is not a permutation of \(rank) axes")
            }
            if case .constant(let c, _) = x {
                results = [folded(c.transposed(perm))]
            } else {
                results = [.node(try b.transpose(node(x), permutation: perm))]
            }
        case "Squeeze":
            let x = try input(0)
            let s = shape(x)
            let axes = try (opset < 13 ? ints("axes") : intsInput(1, "the axes input"))?.map { a throws in
                try Self.normalize(a, rank: s.count)
            }
            var out: [Int] = []
            for (k, d) in s.enumerated() {
                if let axes {
                    if axes.contains(k) {
                        guard d == 1 else { throw ONNXError("cannot squeeze axis \(k) of \(s): its size is \(d)") }
                        continue
                    }
                } else if d == 1 {
                    continue
                }
                out.append(d)
            }
            results = [try reshape(x, out)]
        case "Unsqueeze":
            let x = try input(0)
            let s = shape(x)
            guard let axes = try opset < 13 ? ints("axes") : intsInput(1, "the axes input") else {
                throw ONNXError("the axes are missing")
            }
            let rank = s.count + axes.count
            let normalized = try axes.map { a throws in try Self.normalize(a, rank: rank) }.sorted()
            var out = s
            for a in normalized { out.insert(1, at: a) }
            results = [try reshape(x, out)]
        case "Slice":
            results = [try slice(n, inputs)]
        case "Split":
            results = try split(n, inputs)
        case "Concat":
            guard let axisAttr = n.attribute("axis") else { throw ONNXError("the axis attribute is missing") }
            let parts = inputs.compactMap { $0 }
            guard let first = parts.first else { throw ONNXError("no inputs") }
            let axis = try Self.normalize(Int(axisAttr.i), rank: shape(first).count)
            let constants = parts.compactMap { v -> ConstantTensor? in
                if case .constant(let c, _) = v { return c }
                return nil
            }
            if constants.count == parts.count {
                results = [folded(try ConstantTensor.concatenated(constants, axis: axis))]
            } else {
                let typed = parts.first { if case .node = $0 { return true } else { return false } }!
                let type = try b.elementType(of: node(typed))
                var ids: [NodeID] = []
                for p in parts where shape(p)[axis] > 0 {
                    if case .constant(let c, let name) = p, c.shape.isEmpty == false {
                        ids.append(try materialize(c, name: name, type: type))
                    } else {
                        ids.append(try node(p))
                    }
                }
                results = [.node(try b.concat(ids, axis: axis))]
            }
        case "Gather":
            results = [try gather(input(0), input(1), axis: int("axis", 0))]
        case "Shape":
            let s = shape(try input(0))
            let rank = s.count
            var start = int("start", 0)
            var end = int("end", rank)
            if start < 0 { start += rank }
            if end < 0 { end += rank }
            start = min(max(start, 0), rank)
            end = min(max(end, start), rank)
            results = [folded(.ints(Array(s[start..<end])))]
        case "Constant":
            results = [try constantOp(n)]
        case "ConstantOfShape":
            let s = try constant(input(0), "the shape input").intValues
            guard s.allSatisfy({ $0 >= 0 }) else { throw ONNXError("the shape \(s) has a negative size") }
            var fill = ConstantTensor.scalar(.float, 0)
            if let t = n.attribute("value")?.t { fill = try ConstantTensor.decode(t, folder: nil) }
            guard fill.count == 1 else { throw ONNXError("the value attribute must hold one element") }
            let count = try ConstantTensor.foldableCount(s)
            results = [
                folded(ConstantTensor(fill.kind, shape: s, values: Array(repeating: fill.values[0], count: count)))
            ]
        case "Cast":
            guard let to = n.attribute("to") else { throw ONNXError("the 'to' attribute is missing") }
            results = [try cast(input(0), to: Self.elementType(ofDataType: to.i, what: "the 'to' type"))]
        case "CastLike":
            let like = try input(1)
            let type: ElementType
            if case .node(let id) = like { type = b.elementType(of: id) } else { type = Self.type(of: kind(like)) }
            results = [try cast(input(0), to: type)]
        case "Range":
            let start = try constant(input(0), "start")
            let limit = try constant(input(1), "limit")
            let delta = try constant(input(2), "delta")
            let d = delta.values[0]
            guard d != 0 else { throw ONNXError("delta is 0") }
            let steps = ((limit.values[0] - start.values[0]) / d).rounded(.up)
            guard steps.isFinite, steps <= Double(1 << 24) else {
                throw ONNXError("Range(\(start.values[0]), \(limit.values[0]), \(d)) is too large to fold at import")
            }
            let count = max(Int(steps), 0)
            let kind = start.kind
            let vals = (0..<count).map { ConstantTensor.rounded(start.values[0] + Double($0) * d, kind) }
            results = [folded(ConstantTensor(kind, shape: [count], values: vals))]
        case "Attention":
            try refuseExtraOutputs(n, keep: 1)
            results = [try attention(n, inputs)]
        default:
            throw ONNXError(
                "the op \(n.opType) is not supported; supported ops: \(Self.supportedOps.joined(separator: ", "))")
        }
        guard results.count >= n.outputs.filter({ !$0.isEmpty }).count else {
            throw ONNXError("it has \(n.outputs.count) outputs; blockc imports only the first \(results.count)")
        }
        for (name, v) in zip(n.outputs, results) where !name.isEmpty { values[name] = v }
    }

    /// Throws when a node output past the first `keep` is used.
    func refuseExtraOutputs(_ n: NodeProto, keep: Int) throws {
        if n.outputs.dropFirst(keep).contains(where: { !$0.isEmpty }) {
            throw ONNXError(
                "only its first \(keep == 1 ? "output is" : "\(keep) outputs are") supported; "
                    + "its other outputs must be unused")
        }
    }

    /// The shape `Reshape` gives: `0` copies the input's axis (unless `allowzero`), `-1` infers.
    func reshapeTarget(_ s: [Int], _ spec: [Int], allowZero: Bool) throws -> [Int] {
        var out: [Int] = []
        var infer: Int?
        for (k, d) in spec.enumerated() {
            if d == 0 && !allowZero {
                guard k < s.count else { throw ONNXError("0 on axis \(k) copies an axis the input \(s) lacks") }
                out.append(s[k])
            } else if d == -1 {
                guard infer == nil else { throw ONNXError("the shape \(spec) has more than one -1") }
                infer = k
                out.append(1)
            } else {
                guard d >= 0, d <= 1 << 31 else { throw ONNXError("the shape \(spec) has a size out of range") }
                out.append(d)
            }
        }
        let total = s.reduce(1, *)
        guard out.count <= 8, out.reduce(1.0, { $0 * Double($1) }) <= Double(1 << 40) else {
            throw ONNXError("the shape \(spec) is out of range")
        }
        if let infer {
            let rest = out.reduce(1, *)
            guard rest > 0, total % rest == 0 else { throw ONNXError("cannot reshape \(s) to \(spec)") }
            out[infer] = total / rest
        }
        guard out.reduce(1, *) == total else { throw ONNXError("cannot reshape \(s) (\(total) elements) to \(spec)") }
        return out
    }

    /// `Cast` to a graph element type (folded on constants).
    mutating func cast(_ x: Value, to type: ElementType) throws -> Value {
        if case .constant(let c, _) = x { return folded(c.cast(to: Self.kind(of: type))) }
        return .node(try b.cast(node(x), to: type))
    }

    /// `Constant`'s value from its one attribute.
    mutating func constantOp(_ n: NodeProto) throws -> Value {
        guard let a = n.attributes.first else { throw ONNXError("it has no value attribute") }
        switch a.name {
        case "value":
            guard let t = a.t else { throw ONNXError("the value attribute holds no tensor") }
            return folded(try ConstantTensor.decode(t, folder: nil))
        case "value_float": return folded(.scalar(.float, Double(a.f)))
        case "value_floats":
            return folded(ConstantTensor(.float, shape: [a.floats.count], values: a.floats.map(Double.init)))
        case "value_int": return folded(.scalar(.int, Double(a.i)))
        case "value_ints": return folded(.ints(a.ints.map { Int($0) }))
        default: throw ONNXError("the attribute '\(a.name)' is not supported (sparse or string constants)")
        }
    }

    /// `MatMul` with NumPy semantics: a 1-D operand gains an axis that the result drops.
    mutating func matmul(_ x: Value, _ y: Value) throws -> Value {
        var a = try node(x)
        var w = try node(y)
        let ra = b.shape(of: a).count
        let rb = b.shape(of: w).count
        guard ra >= 1, rb >= 1 else { throw ONNXError("MatMul needs operands of rank 1 or more") }
        if ra == 1 { a = try b.reshape(a, [1] + b.shape(of: a)) }
        if rb == 1 { w = try b.reshape(w, b.shape(of: w) + [1]) }
        let y = try b.matmul(a, w)
        var s = b.shape(of: y)
        if ra == 1 { s.remove(at: s.count - 2) }
        if rb == 1 { s.removeLast() }
        return try fit(y, s)
    }

    /// `Reduce*` over several axes: one reduction per axis, kept, then reshaped without them.
    mutating func reduce(
        _ op: String, _ x: Value, axes given: [Int]?, keepDims: Bool, noopWhenEmpty: Bool
    ) throws -> Value {
        let s = shape(x)
        if (given ?? []).isEmpty && noopWhenEmpty { return x }
        let axes = try Set(
            (given?.isEmpty == false ? given! : Array(0..<s.count)).map { a throws in
                try Self.normalize(a, rank: s.count)
            }
        ).sorted(by: >)
        var id = try node(x)
        for a in axes {
            switch op {
            case "ReduceMean": id = try b.mean(id, axis: a, keepDims: true)
            case "ReduceSum": id = try b.reduce(.sum, id, axis: a, keepDims: true)
            default: id = try b.reduce(.max, id, axis: a, keepDims: true)
            }
        }
        if keepDims { return .node(id) }
        return try fit(id, s.enumerated().filter { !axes.contains($0.offset) }.map(\.element))
    }

    /// `Expand`: folded on constants; a tensor plus zeros of the target shape otherwise.
    mutating func expand(_ x: Value, _ spec: [Int]) throws -> Value {
        guard spec.count <= 8, spec.allSatisfy({ $0 >= 0 && $0 <= 1 << 31 }),
            let target = ConstantTensor.broadcast([shape(x), spec]),
            target.reduce(1.0, { $0 * Double($1) }) <= Double(1 << 40)
        else {
            throw ONNXError("cannot expand \(shape(x)) to \(spec)")
        }
        if case .constant(let c, _) = x {
            _ = try ConstantTensor.foldableCount(target)
            let picks = ConstantTensor.broadcastIndices(c.shape, to: target)
            return folded(ConstantTensor(c.kind, shape: target, values: picks.map { c.values[$0] }))
        }
        let id = try node(x)
        if target == b.shape(of: id) { return .node(id) }
        // x + 0 (x ∨ false for bool) over the target shape: a broadcast by arithmetic.
        let zero = try b.mul(b.position(shape: target, axis: 0), b.constant(0))
        switch b.elementType(of: id) {
        case .bool: return .node(try b.binary(.logicalOr, id, b.binary(.lt, zero, b.constant(0))))
        case .i32: return .node(try b.add(id, b.cast(zero, to: .i32)))
        case let t: return .node(try b.add(id, b.cast(zero, to: t)))
        }
    }

    /// `Slice` with clamped bounds: any step on constants, step 1 on tensors (a view per axis).
    mutating func slice(_ n: NodeProto, _ inputs: [Value?]) throws -> Value {
        guard let x = inputs.first ?? nil else { throw ONNXError("the data input is missing") }
        let s = shape(x)
        var starts: [Int]
        var ends: [Int]
        var axes: [Int]?
        var steps: [Int]?
        if opset < 10 {
            starts = n.attribute("starts")?.ints.map { Int(clamping: $0) } ?? []
            ends = n.attribute("ends")?.ints.map { Int(clamping: $0) } ?? []
            axes = n.attribute("axes")?.ints.map { Int($0) }
        } else {
            func list(_ k: Int, _ what: String) throws -> [Int]? {
                guard k < inputs.count, let v = inputs[k] else { return nil }
                let c = try constant(v, what)
                return c.values.map { Int(clamping: Int64(exactly: $0) ?? ($0 > 0 ? Int64.max : Int64.min)) }
            }
            starts = try list(1, "starts") ?? []
            ends = try list(2, "ends") ?? []
            axes = try list(3, "axes")
            steps = try list(4, "steps")
        }
        let axisList = try (axes ?? Array(0..<starts.count)).map { a throws in try Self.normalize(a, rank: s.count) }
        guard starts.count == axisList.count, ends.count == axisList.count else {
            throw ONNXError("starts, ends and axes have different lengths")
        }
        var v = x
        for (k, axis) in axisList.enumerated() {
            let dim = shape(v)[axis]
            let step = steps?[k] ?? 1
            guard step != 0 else { throw ONNXError("a step of 0") }
            var lo = starts[k]
            var hi = ends[k]
            if lo < 0 { lo = lo &+ dim }
            if hi < 0 { hi = hi &+ dim }
            if step > 0 {
                lo = min(max(lo, 0), dim)
                hi = min(max(hi, 0), dim)
            } else {
                lo = min(max(lo, 0), dim - 1)
                hi = min(max(hi, -1), dim - 1)
            }
            if case .constant(let c, _) = v {
                v = folded(c.sliced(axis: axis, start: lo, end: hi, step: step))
                continue
            }
            guard step == 1 else {
                throw ONNXError("a step of \(step) on axis \(axis) of a computed tensor is not supported (only 1)")
            }
            guard lo < hi else {
                throw ONNXError("the slice \(starts[k]):\(ends[k]) of axis \(axis) (size \(dim)) is empty")
            }
            v = .node(try b.slice(node(v), axis: axis, start: lo, end: hi))
        }
        return v
    }

    /// `Split` into slices by sizes (input, attribute, or `num_outputs` equal parts).
    mutating func split(_ n: NodeProto, _ inputs: [Value?]) throws -> [Value] {
        guard let x = inputs.first ?? nil else { throw ONNXError("the data input is missing") }
        let s = shape(x)
        let axis = try Self.normalize(n.attribute("axis").map { Int($0.i) } ?? 0, rank: s.count)
        var sizes: [Int]
        if opset >= 13, inputs.count > 1, let v = inputs[1] {
            sizes = try constant(v, "the split input").intValues
        } else if let attr = n.attribute("split") {
            sizes = attr.ints.map { Int($0) }
        } else {
            let parts = n.attribute("num_outputs").map { Int($0.i) } ?? n.outputs.count
            guard parts > 0, parts <= s[axis] else {
                throw ONNXError("cannot split axis \(axis) of \(s) into \(parts) parts")
            }
            let chunk = (s[axis] + parts - 1) / parts
            sizes = (0..<parts).map { k in min(chunk, max(s[axis] - k * chunk, 0)) }
        }
        guard sizes.reduce(0, +) == s[axis], sizes.allSatisfy({ $0 > 0 }) else {
            throw ONNXError("the split sizes \(sizes) do not cover axis \(axis) of \(s) with non-empty parts")
        }
        var out: [Value] = []
        var start = 0
        for size in sizes {
            if case .constant(let c, _) = x {
                out.append(folded(c.sliced(axis: axis, start: start, end: start + size, step: 1)))
            } else {
                out.append(.node(try b.slice(node(x), axis: axis, start: start, end: start + size)))
            }
            start += size
        }
        return out
    }

    /// `Gather`: folded on constants, a slice for a scalar constant index, else `gather` by i32 indices.
    mutating func gather(_ data: Value, _ indices: Value, axis: Int) throws -> Value {
        let s = shape(data)
        let a = try Self.normalize(axis, rank: s.count)
        if case .constant(let idx, let name) = indices {
            let positions = try idx.intValues.map { i throws -> Int in
                let p = i < 0 ? i + s[a] : i
                guard p >= 0 && p < s[a] else { throw ONNXError("index \(i) is out of range for axis \(a) of \(s)") }
                return p
            }
            if case .constant(let c, _) = data {
                return folded(c.gathered(axis: a, indices: positions, indexShape: idx.shape))
            }
            if idx.shape.isEmpty {
                var out = s
                out.remove(at: a)
                let row = try b.slice(node(data), axis: a, start: positions[0], end: positions[0] + 1)
                return try fit(row, out)
            }
            // Negative indices counted from the end: a new constant unless there were none.
            let normalized = ConstantTensor(.int, shape: idx.shape, values: positions.map(Double.init))
            let index: NodeID
            if positions == idx.intValues {
                index = try materialize(normalized, name: name, type: .i32)
            } else {
                guard case .constant(_, let fresh) = folded(normalized) else { throw ONNXError("unreachable") }
                index = try materialize(normalized, name: fresh, type: .i32)
            }
            return .node(try b.gather(node(data), index, axis: a))
        }
        return .node(try b.gather(node(data), node(indices), axis: a))
    }

    /// `Where(cond, x, y)`; a constant condition that is a band of the last two axes (`j - i`
    /// between two bounds, checked on every element) becomes a mask predicate, which fusion
    /// folds into the attention kernel instead of reading an N×N tensor.
    mutating func whereOp(_ cond: Value, _ x: Value, _ y: Value) throws -> Value {
        if case .constant(let c, _) = cond, case .constant(let p, _) = x, case .constant(let q, _) = y {
            let kind: ConstantTensor.Kind = p.kind == .float || q.kind == .float ? .float : p.kind
            return folded(try ConstantTensor.map([c, p, q], kind: kind) { $0[0] != 0 ? $0[1] : $0[2] })
        }
        guard let target = ConstantTensor.broadcast([shape(cond), shape(x), shape(y)]) else {
            throw ONNXError("shapes \(shape(cond)), \(shape(x)) and \(shape(y)) do not broadcast")
        }
        if case .constant(let c, _) = cond, target.count >= 2,
            let band = Self.band(
                c, rows: target[target.count - 2],
                columns: target[target.count - 1])
        {
            if band.atoms.isEmpty {
                return try expand(x, target)
            }
            if case .node(let id) = x, b.shape(of: id) == target, case .constant(let f, _) = y, f.isUniform,
                b.elementType(of: id).isFloat
            {
                return .node(try b.mask(id, band, fill: Float(f.values[0])))
            }
            if case .node(let id) = y, b.shape(of: id) == target, case .constant(let f, _) = x, f.isUniform,
                b.elementType(of: id).isFloat, band.atoms.count == 1,
                case .affineNonNegative(let r, let col, let k) = band.atoms[0]
            {
                let negated = Predicate([
                    .affineNonNegative(rowCoefficient: -r, columnCoefficient: -col, constant: -k - 1)
                ])
                return .node(try b.mask(id, negated, fill: Float(f.values[0])))
            }
        }
        let tx: ElementType? = if case .node(let id) = y { b.elementType(of: id) } else { nil }
        let ty: ElementType? = if case .node(let id) = x { b.elementType(of: id) } else { nil }
        let c = try node(cond, like: .bool)
        let xi = try node(x, within: target, like: tx)
        let yi = try node(y, within: target, like: ty)
        return try fit(b.select(c, xi, yi), target)
    }

    /// The predicate `lo ≤ j - i ≤ hi` (each bound only when it cuts) that a constant boolean
    /// matrix equals on every element, or nil; an all-true matrix gives no atoms.
    static func band(_ c: ConstantTensor, rows: Int, columns: Int) -> Predicate? {
        guard c.shape.count >= 2, c.shape[c.shape.count - 2] == rows, c.shape[c.shape.count - 1] == columns,
            rows > 0, columns > 0
        else { return nil }
        var lo = Int.max
        var hi = Int.min
        for e in 0..<c.count where c.values[e] != 0 {
            let d = e % columns - (e / columns) % rows
            lo = min(lo, d)
            hi = max(hi, d)
        }
        guard lo <= hi else { return nil }
        for e in 0..<c.count {
            let d = e % columns - (e / columns) % rows
            guard (c.values[e] != 0) == (d >= lo && d <= hi) else { return nil }
        }
        var atoms: [PredicateAtom] = []
        // j - i <= hi  ⇔  i - j + hi >= 0 (cuts unless it holds for the last column of row 0).
        if hi < columns - 1 { atoms.append(.affineNonNegative(rowCoefficient: 1, columnCoefficient: -1, constant: hi)) }
        // j - i >= lo  ⇔  j - i - lo >= 0 (cuts unless it holds for column 0 of the last row).
        if lo > -(rows - 1) {
            atoms.append(.affineNonNegative(rowCoefficient: -1, columnCoefficient: 1, constant: -lo))
        }
        return Predicate(atoms)
    }
}
