import BlockIR
import Graph

/// The reference semantics of the graph level: evaluates every node of a graph in order on
/// dense fp32 arrays.
///
/// Binary ops broadcast as NumPy does; `matmul` is a batched product over the last two axes
/// (leading axes broadcast) accumulated in fp32; reductions fold along one axis in index order;
/// masks test `Predicate.holds(row:column:)` on the last two axes. Scalar functions are
/// `UnaryOp.apply` and `BinaryOp.apply`. Intermediate arrays are released after their last use.
public enum GraphInterpreter {
    /// Runs `graph` on `inputs` (by input name) and returns the outputs by node name.
    ///
    /// A missing input or one of the wrong shape is a `Diagnostic` naming the input and the
    /// expected shape. Inputs the graph does not declare are ignored.
    ///
    /// `progress`, when given, is called before each node with its number, the node count and
    /// its name.
    public static func run(
        _ graph: Graph, inputs: [String: NDArray], progress: ((Int, Int, String) -> Void)? = nil
    ) throws(Diagnostic) -> [String: NDArray] {
        let count = graph.nodes.count
        // The last node reading each node; outputs live to the end.
        var lastUse = Array(0..<count)
        for node in graph.nodes {
            for operand in node.op.operands where operand.index >= 0 && operand.index < count {
                lastUse[operand.index] = max(lastUse[operand.index], node.id.index)
            }
        }
        for output in graph.outputs where output.index >= 0 && output.index < count { lastUse[output.index] = count }
        var values: [NDArray?] = Array(repeating: nil, count: count)
        for (position, node) in graph.nodes.enumerated() {
            progress?(position, count, node.name)
            func operand(_ id: NodeID) throws(Diagnostic) -> NDArray {
                guard id.index >= 0 && id.index < position, let value = values[id.index] else {
                    throw Diagnostic("node '\(node.name)' reads \(id), which is not computed before it")
                }
                return value
            }
            let result: NDArray
            switch node.op {
            case .input:
                guard let given = inputs[node.name] else {
                    throw Diagnostic(
                        "missing input '\(node.name)': expected an \(node.elementType) array of shape \(node.shape)")
                }
                guard given.shape == node.shape else {
                    throw Diagnostic(
                        "input '\(node.name)' has shape \(given.shape); the graph expects shape \(node.shape)")
                }
                if let n = graph.offsetInputs[node.name],
                    let problem = SegmentOffsets.problem(
                        given.data, length: n, maxLength: graph.segmentMaxLengths[node.name], name: node.name)
                {
                    throw Diagnostic(problem)
                }
                result = given
            case .constant(let c):
                result = NDArray(shape: [], data: [c])
            case .position(let axis):
                guard axis >= 0 && axis < node.shape.count, node.shape.allSatisfy({ $0 > 0 }) else {
                    throw Diagnostic("node '\(node.name)': pos axis \(axis) is out of range for shape \(node.shape)")
                }
                result = positions(node.shape, axis: axis)
            case .unary(let op, let a):
                result = unary(op, try operand(a))
            case .binary(let op, let a, let b):
                result = try binary(op, try operand(a), try operand(b))
            case .matmul(let a, let b, let transposeA, let transposeB):
                result = try matmul(try operand(a), try operand(b), transposeA: transposeA, transposeB: transposeB)
            case .reduce(let op, let a, let axis, let keepDims):
                result = try reduce(op, try operand(a), axis: axis, keepDims: keepDims)
            case .transpose(let a, let permutation):
                result = try transpose(try operand(a), permutation: permutation)
            case .reshape(let a):
                let x = try operand(a)
                guard node.shape.allSatisfy({ $0 >= 0 }), NDArray.elementCount(of: node.shape) == x.elementCount else {
                    throw Diagnostic("node '\(node.name)': cannot reshape \(x.shape) to \(node.shape)")
                }
                result = NDArray(shape: node.shape, data: x.data)
            case .mask(let a, let predicate, let fill):
                result = try mask(try operand(a), predicate, fill: fill)
            case .cast(let a, _):
                result = try operand(a)
            case .slice(let a, let axis, let start):
                result = try Self.slice(try operand(a), axis: axis, start: start, shape: node.shape)
            case .cumsum(let a, let axis, let reverse, let exclusive):
                let x = try operand(a)
                guard axis >= 0 && axis < x.shape.count else {
                    throw Diagnostic("node '\(node.name)': cumsum axis \(axis) is out of range for shape \(x.shape)")
                }
                result = Self.cumsum(x, axis: axis, reverse: reverse, exclusive: exclusive)
            case .blockBroadcast(let a, let blocks):
                let x = try operand(a)
                guard blocks.count <= x.shape.count, blocks.allSatisfy({ $0 >= 1 }) else {
                    throw Diagnostic("node '\(node.name)': block sizes \(blocks) do not fit shape \(x.shape)")
                }
                result = Self.blockBroadcast(x, blocks: blocks, shape: node.shape)
            case .concat(let parts, let axis):
                var arrays: [NDArray] = []
                for p in parts { arrays.append(try operand(p)) }
                result = try Self.concat(arrays, axis: axis, shape: node.shape)
            case .select(let c, let a, let b):
                result = try Self.select(try operand(c), try operand(a), try operand(b), shape: node.shape)
            case .gather(let t, let index, let axis):
                result = try Self.gather(
                    try operand(t), try operand(index), axis: axis, shape: node.shape, table: graph[t].name,
                    indexName: graph[index].name)
            }
            // Every node's tensor is stored in its element type: narrower types round here.
            var stored = result
            if node.elementType != .f32 { stored.data = result.data.map(node.elementType.stored) }
            stored.elementType = node.elementType
            guard stored.shape == node.shape else {
                throw Diagnostic("node '\(node.name)' computes shape \(stored.shape) but is declared \(node.shape)")
            }
            values[position] = stored
            for operand in node.op.operands where operand.index >= 0 && operand.index < count {
                if lastUse[operand.index] == position { values[operand.index] = nil }
            }
        }
        var outputs: [String: NDArray] = [:]
        for id in graph.outputs {
            guard id.index >= 0 && id.index < count, let value = values[id.index] else {
                throw Diagnostic("output \(id) is not a node of the graph")
            }
            outputs[graph[id].name] = value
        }
        return outputs
    }

    // MARK: Ops

    /// Each element of `x` repeated over a block: on the trailing `blocks.count` axes, result
    /// element `e` is `x`'s element `e / block`.
    static func blockBroadcast(_ x: NDArray, blocks: [Int], shape: [Int]) -> NDArray {
        let rank = shape.count
        let factors = Array(repeating: 1, count: rank - blocks.count) + blocks
        var strides = Array(repeating: 1, count: rank)
        for k in stride(from: rank - 2, through: 0, by: -1) { strides[k] = strides[k + 1] * x.shape[k + 1] }
        let count = shape.reduce(1, *)
        var data = [Float](repeating: 0, count: count)
        var index = Array(repeating: 0, count: rank)
        for n in 0..<count {
            var source = 0
            for k in 0..<rank { source += (index[k] / factors[k]) * strides[k] }
            data[n] = x.data[source]
            var k = rank - 1
            while k >= 0 {
                index[k] += 1
                if index[k] < shape[k] { break }
                index[k] = 0
                k -= 1
            }
        }
        return NDArray(shape: shape, data: data)
    }

    /// Cumulative sums along `axis` (`Dense.scan`).
    static func cumsum(_ x: NDArray, axis: Int, reverse: Bool, exclusive: Bool) -> NDArray {
        let outer = x.shape[..<axis].reduce(1, *)
        let inner = x.shape[(axis + 1)...].reduce(1, *)
        var out = [Float](repeating: 0, count: x.data.count)
        x.data.withUnsafeBufferPointer { source in
            out.withUnsafeMutableBufferPointer { target in
                guard let src = source.baseAddress, let dst = target.baseAddress else { return }
                Dense.scan(
                    .sum, src, outer: outer, length: x.shape[axis], inner: inner, validLength: x.shape[axis],
                    reverse: reverse, exclusive: exclusive, into: dst)
            }
        }
        return NDArray(shape: x.shape, data: out)
    }

    /// Every element's index along `axis`, row-major.
    static func positions(_ shape: [Int], axis: Int) -> NDArray {
        let inner = shape[(axis + 1)...].reduce(1, *)
        let size = shape[axis]
        let count = NDArray.elementCount(of: shape)
        var out = [Float](repeating: 0, count: count)
        for f in 0..<count { out[f] = Float((f / inner) % size) }
        return NDArray(shape: shape, data: out)
    }

    /// Elementwise unary op.
    static func unary(_ op: UnaryOp, _ x: NDArray) -> NDArray {
        var out = [Float](repeating: 0, count: x.elementCount)
        x.data.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                guard let s = src.baseAddress, let d = dst.baseAddress else { return }
                Dense.apply(op, s, d, count: src.count)
            }
        }
        return NDArray(shape: x.shape, data: out)
    }

    /// `where(cond, a, b)` with NumPy broadcasting: a choice per element, never arithmetic.
    static func select(_ c: NDArray, _ a: NDArray, _ b: NDArray, shape: [Int]) throws(Diagnostic) -> NDArray {
        let rank = shape.count
        let operands = [c, a, b]
        guard operands.allSatisfy({ $0.rank <= rank }) else {
            throw Diagnostic("where: operand shapes \(operands.map(\.shape)) do not broadcast to \(shape)")
        }
        let strides = operands.map { x in
            (0..<rank).map { k in
                let axis = k - (rank - x.rank)
                return axis < 0 || x.shape[axis] == 1 ? 0 : x.strides[axis]
            }
        }
        let total = NDArray.elementCount(of: shape)
        var out = [Float](repeating: 0, count: total)
        var index = Array(repeating: 0, count: rank)
        for f in 0..<total {
            var o = [0, 0, 0]
            for k in 0..<rank {
                for m in 0..<3 { o[m] += index[k] * strides[m][k] }
            }
            out[f] = c.data[o[0]] != 0 ? a.data[o[1]] : b.data[o[2]]
            var k = rank - 1
            while k >= 0 {
                index[k] += 1
                if index[k] < shape[k] { break }
                index[k] = 0
                k -= 1
            }
        }
        return NDArray(shape: shape, data: out)
    }

    /// `gather(table, index, axis)`: an index that is not an integer in `0 ..< size` is an error
    /// naming the index, where it is, and both tensors.
    static func gather(
        _ table: NDArray, _ index: NDArray, axis: Int, shape: [Int], table tableName: String, indexName: String
    ) throws(Diagnostic) -> NDArray {
        guard axis >= 0 && axis < table.rank,
            shape == Array(table.shape[..<axis]) + index.shape + Array(table.shape[(axis + 1)...])
        else {
            throw Diagnostic("gather: table \(table.shape), index \(index.shape) and axis \(axis) do not give \(shape)")
        }
        let outer = table.shape[..<axis].reduce(1, *)
        let size = table.shape[axis]
        let inner = table.shape[(axis + 1)...].reduce(1, *)
        let count = index.elementCount
        var out = [Float](repeating: 0, count: outer * count * inner)
        for r in 0..<count {
            let x = index.data[r]
            guard x >= 0, x < Float(size), x == x.rounded(.down) else {
                var position: [Int] = []
                var rest = r
                for d in index.shape.reversed() {
                    position.insert(rest % Swift.max(1, d), at: 0)
                    rest /= Swift.max(1, d)
                }
                throw Diagnostic(
                    "gather: index \(formatFloat(x)) at \(position) of '\(indexName)' is out of range for axis \(axis) "
                        + "of '\(tableName)' (size \(size)); indices must lie in 0 ..< \(size)")
            }
            let row = Int(x)
            for o in 0..<outer {
                let src = (o * size + row) * inner
                let dst = (o * count + r) * inner
                for e in 0..<inner { out[dst + e] = table.data[src + e] }
            }
        }
        return NDArray(shape: shape, data: out)
    }

    /// Elementwise binary op with NumPy broadcasting.
    static func binary(_ op: BinaryOp, _ a: NDArray, _ b: NDArray) throws(Diagnostic) -> NDArray {
        let shape: [Int]
        do {
            shape = try GraphBuilder.broadcastShape(a.shape, b.shape, op: op.rawValue)
        } catch {
            throw Diagnostic(error.message)
        }
        let rank = shape.count
        // Broadcast strides: 0 along axes an operand lacks or has size 1.
        func strides(_ x: NDArray) -> [Int] {
            let own = x.strides
            return (0..<rank).map { k in
                let axis = k - (rank - x.rank)
                return axis < 0 || x.shape[axis] == 1 ? 0 : own[axis]
            }
        }
        let sa = strides(a)
        let sb = strides(b)
        let total = NDArray.elementCount(of: shape)
        var out = [Float](repeating: 0, count: total)
        guard total > 0 else { return NDArray(shape: shape, data: out) }
        let inner = rank == 0 ? 1 : shape[rank - 1]
        let innerA = rank == 0 ? 0 : sa[rank - 1]
        let innerB = rank == 0 ? 0 : sb[rank - 1]
        a.data.withUnsafeBufferPointer { pa in
            b.data.withUnsafeBufferPointer { pb in
                out.withUnsafeMutableBufferPointer { po in
                    guard let xa = pa.baseAddress, let xb = pb.baseAddress, let xo = po.baseAddress else { return }
                    var index = Array(repeating: 0, count: max(0, rank - 1))
                    var offset = 0
                    while offset < total {
                        var oa = 0
                        var ob = 0
                        for (k, i) in index.enumerated() {
                            oa += i * sa[k]
                            ob += i * sb[k]
                        }
                        Dense.apply(op, xa + oa, aStride: innerA, xb + ob, bStride: innerB, xo + offset, count: inner)
                        offset += inner
                        var k = index.count - 1
                        while k >= 0 {
                            index[k] += 1
                            if index[k] < shape[k] { break }
                            index[k] = 0
                            k -= 1
                        }
                    }
                }
            }
        }
        return NDArray(shape: shape, data: out)
    }

    /// Batched matrix product over the last two axes with broadcast batch axes.
    static func matmul(
        _ a: NDArray, _ b: NDArray, transposeA: Bool, transposeB: Bool
    ) throws(Diagnostic) -> NDArray {
        guard a.rank >= 2 && b.rank >= 2 else {
            throw Diagnostic("matmul needs operands of rank 2 or more, got \(a.shape) and \(b.shape)")
        }
        let (ra, ca) = (a.shape[a.rank - 2], a.shape[a.rank - 1])
        let (rb, cb) = (b.shape[b.rank - 2], b.shape[b.rank - 1])
        let (m, k) = transposeA ? (ca, ra) : (ra, ca)
        let (kb, n) = transposeB ? (cb, rb) : (rb, cb)
        guard k == kb else {
            throw Diagnostic("matmul: inner dimensions differ (\(a.shape) and \(b.shape))")
        }
        let batchA = Array(a.shape.dropLast(2))
        let batchB = Array(b.shape.dropLast(2))
        let batch: [Int]
        do {
            batch = try GraphBuilder.broadcastShape(batchA, batchB, op: "matmul batch")
        } catch {
            throw Diagnostic(error.message)
        }
        func batchStrides(_ own: [Int], _ matrix: Int) -> [Int] {
            let ownStrides = NDArray.strides(of: own).map { $0 * matrix }
            return (0..<batch.count).map { d in
                let axis = d - (batch.count - own.count)
                return axis < 0 || own[axis] == 1 ? 0 : ownStrides[axis]
            }
        }
        let strideA = batchStrides(batchA, ra * ca)
        let strideB = batchStrides(batchB, rb * cb)
        let batches = NDArray.elementCount(of: batch)
        var out = [Float](repeating: 0, count: batches * m * n)
        let (aRow, aColumn) = transposeA ? (1, ca) : (ca, 1)
        let (bRow, bColumn) = transposeB ? (1, cb) : (cb, 1)
        a.data.withUnsafeBufferPointer { pa in
            b.data.withUnsafeBufferPointer { pb in
                out.withUnsafeMutableBufferPointer { po in
                    guard let xa = pa.baseAddress, let xb = pb.baseAddress, let xo = po.baseAddress else { return }
                    var index = Array(repeating: 0, count: batch.count)
                    for t in 0..<batches {
                        var oa = 0
                        var ob = 0
                        for (d, i) in index.enumerated() {
                            oa += i * strideA[d]
                            ob += i * strideB[d]
                        }
                        Dense.matmul(
                            m: m, n: n, k: k, a: xa + oa, aRow: aRow, aColumn: aColumn, b: xb + ob, bRow: bRow,
                            bColumn: bColumn, c: xo + t * m * n, ldc: n)
                        var d = index.count - 1
                        while d >= 0 {
                            index[d] += 1
                            if index[d] < batch[d] { break }
                            index[d] = 0
                            d -= 1
                        }
                    }
                }
            }
        }
        return NDArray(shape: batch + [m, n], data: out)
    }

    /// Reduction over one axis, optionally keeping it with size 1.
    static func reduce(_ op: ReduceOp, _ x: NDArray, axis: Int, keepDims: Bool) throws(Diagnostic) -> NDArray {
        guard axis >= 0 && axis < x.rank else {
            throw Diagnostic("reduce_\(op.rawValue): axis \(axis) is out of range for shape \(x.shape)")
        }
        let outer = NDArray.elementCount(of: Array(x.shape[..<axis]))
        let length = x.shape[axis]
        let inner = NDArray.elementCount(of: Array(x.shape[(axis + 1)...]))
        var shape = x.shape
        if keepDims { shape[axis] = 1 } else { shape.remove(at: axis) }
        var out = [Float](repeating: op.identity, count: outer * inner)
        x.data.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                guard let s = src.baseAddress, let d = dst.baseAddress else { return }
                Dense.reduce(
                    op, s, outer: outer, length: length, inner: inner, validOuter: outer, validLength: length,
                    validInner: inner, into: d)
            }
        }
        return NDArray(shape: shape, data: out)
    }

    /// Axis permutation: output axis `k` is input axis `permutation[k]`.
    /// Elements `start ..< start + shape[axis]` of `axis` of `x`.
    static func slice(_ x: NDArray, axis: Int, start: Int, shape: [Int]) throws(Diagnostic) -> NDArray {
        guard axis >= 0, axis < x.rank, shape.count == x.rank, start >= 0, start + shape[axis] <= x.shape[axis],
            x.shape.indices.allSatisfy({ $0 == axis || x.shape[$0] == shape[$0] })
        else { throw Diagnostic("slice: \(shape) at \(start) on axis \(axis) does not fit in \(x.shape)") }
        // Row-major: the axis splits the array into `outer` runs of `x.shape[axis] · inner`.
        let inner = x.shape[(axis + 1)...].reduce(1, *)
        let outer = x.shape[..<axis].reduce(1, *)
        var data: [Float] = []
        data.reserveCapacity(NDArray.elementCount(of: shape))
        for o in 0..<outer {
            let base = (o * x.shape[axis] + start) * inner
            data += x.data[base..<(base + shape[axis] * inner)]
        }
        return NDArray(shape: shape, data: data)
    }

    /// The arrays joined along `axis`.
    static func concat(_ parts: [NDArray], axis: Int, shape: [Int]) throws(Diagnostic) -> NDArray {
        guard axis >= 0, axis < shape.count,
            parts.allSatisfy({ p in
                p.rank == shape.count && p.shape.indices.allSatisfy { $0 == axis || p.shape[$0] == shape[$0] }
            }), parts.map({ $0.shape[axis] }).reduce(0, +) == shape[axis]
        else { throw Diagnostic("concat: \(parts.map(\.shape)) along axis \(axis) do not make \(shape)") }
        let inner = shape[(axis + 1)...].reduce(1, *)
        let outer = shape[..<axis].reduce(1, *)
        var data: [Float] = []
        data.reserveCapacity(NDArray.elementCount(of: shape))
        for o in 0..<outer {
            for p in parts {
                let run = p.shape[axis] * inner
                data += p.data[(o * run)..<((o + 1) * run)]
            }
        }
        return NDArray(shape: shape, data: data)
    }

    static func transpose(_ x: NDArray, permutation: [Int]) throws(Diagnostic) -> NDArray {
        guard permutation.count == x.rank, permutation.sorted() == Array(0..<x.rank) else {
            throw Diagnostic("transpose: \(permutation) is not a permutation of the axes of \(x.shape)")
        }
        let shape = permutation.map { x.shape[$0] }
        let inStrides = x.strides
        let strides = permutation.map { inStrides[$0] }
        let total = x.elementCount
        var out = [Float](repeating: 0, count: total)
        guard total > 0, x.rank > 0 else { return NDArray(shape: shape, data: x.data) }
        let inner = shape[x.rank - 1]
        let innerStride = strides[x.rank - 1]
        x.data.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                guard let s = src.baseAddress, let d = dst.baseAddress else { return }
                var index = Array(repeating: 0, count: x.rank - 1)
                var offset = 0
                while offset < total {
                    var base = 0
                    for (k, i) in index.enumerated() { base += i * strides[k] }
                    var j = 0
                    while j < inner {
                        d[offset + j] = s[base + j * innerStride]
                        j += 1
                    }
                    offset += inner
                    var k = index.count - 1
                    while k >= 0 {
                        index[k] += 1
                        if index[k] < shape[k] { break }
                        index[k] = 0
                        k -= 1
                    }
                }
            }
        }
        return NDArray(shape: shape, data: out)
    }

    /// Replaces the elements of the last two axes where the predicate fails by `fill`.
    static func mask(_ x: NDArray, _ predicate: Predicate, fill: Float) throws(Diagnostic) -> NDArray {
        guard x.rank >= 2 else {
            throw Diagnostic("where: masks apply to the last two axes; the tensor has shape \(x.shape)")
        }
        let rows = x.shape[x.rank - 2]
        let columns = x.shape[x.rank - 1]
        let matrices = NDArray.elementCount(of: Array(x.shape.dropLast(2)))
        var out = x.data
        out.withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            for t in 0..<matrices {
                MaskRows.apply(
                    predicate, fill: fill, to: base + t * rows * columns, rows: rows, columns: columns, ld: columns,
                    rowOffset: 0, columnOffset: 0)
            }
        }
        return NDArray(shape: x.shape, data: out)
    }
}
