import BlockIR
import Graph

extension ONNXImporter {
    /// Opset-23 `Attention`, decomposed into primitives:
    ///
    /// ```
    /// Q [B, Hq, S, D], K [B, Hkv, T, D], V [B, Hkv, T, Dv]   (3-D inputs are [B, S, H·D])
    /// S = matmul(Q, K, transpose_b) · scale          (grouped query heads: Q as [B, Hkv, g, S, D],
    /// S = softcap · tanh(S / softcap)   if softcap     K and V as [B, Hkv, 1, T, D], broadcast)
    /// S = where(i - j >= 0, S, -inf)    if is_causal;  a mask input: where(mask, S, -inf) or S + mask
    /// Y = matmul(softmax(S), V)
    /// ```
    mutating func attention(_ n: NodeProto, _ inputs: [Value?]) throws -> Value {
        func input(_ k: Int) throws -> NodeID {
            guard k < inputs.count, let v = inputs[k] else { throw ONNXError("input \(k) is missing") }
            return try node(v)
        }
        if inputs.count > 4, inputs[4...].contains(where: { $0 != nil }) {
            throw ONNXError("past_key, past_value and nonpad_kv_seqlen inputs are not supported")
        }
        if let mode = n.attribute("qk_matmul_output_mode"), mode.i != 0 {
            throw ONNXError("qk_matmul_output_mode=\(mode.i) is not supported (only 0)")
        }
        var q = try input(0)
        var k = try input(1)
        var v = try input(2)
        let threeD = b.shape(of: q).count == 3
        if threeD {
            guard let hq = n.attribute("q_num_heads")?.i, let hkv = n.attribute("kv_num_heads")?.i, hq > 0, hkv > 0
            else {
                throw ONNXError("3-D inputs need the q_num_heads and kv_num_heads attributes")
            }
            q = try splitHeads(q, Int(hq))
            k = try splitHeads(k, Int(hkv))
            v = try splitHeads(v, Int(hkv))
        }
        let sq = b.shape(of: q)
        let sk = b.shape(of: k)
        let sv = b.shape(of: v)
        guard sq.count == 4, sk.count == 4, sv.count == 4 else {
            throw ONNXError("Q, K and V must be 4-D [B, H, S, D] (or 3-D with head counts), got \(sq), \(sk), \(sv)")
        }
        let (batch, hq, s, d) = (sq[0], sq[1], sq[2], sq[3])
        let (hkv, t) = (sk[1], sk[2])
        guard hkv > 0, hq % hkv == 0, sv[1] == hkv, sv[2] == t else {
            throw ONNXError(
                "Q has \(hq) heads, K and V \(hkv) and \(sv[1]); query heads must be a multiple of key heads")
        }
        let group = hq / hkv
        if group > 1 {
            q = try b.reshape(q, [batch, hkv, group, s, d])
            k = try b.reshape(k, [sk[0], hkv, 1, t, sk[3]])
            v = try b.reshape(v, [sv[0], hkv, 1, t, sv[3]])
        }
        let scale = n.attribute("scale").map { Double($0.f) } ?? 1 / Double(d).squareRoot()
        var scores = Value.node(try b.matmul(q, k, transposeB: true))
        scores = try binary(.mul, scores, .constant(.scalar(.float, Double(Float(scale))), name: "scale"))
        if let cap = n.attribute("softcap")?.f, cap > 0 {
            let c = Value.constant(.scalar(.float, Double(cap)), name: "softcap")
            scores = try binary(.mul, unary(.tanh, binary(.div, scores, c)), c)
        }
        let minusInf = Value.constant(.scalar(.float, -Double.infinity), name: "neg_inf")
        if n.attribute("is_causal")?.i ?? 0 != 0 {
            guard s == t else { throw ONNXError("is_causal with \(s) queries and \(t) keys is not supported") }
            let causal = Predicate([.affineNonNegative(rowCoefficient: 1, columnCoefficient: -1, constant: 0)])
            scores = .node(try b.mask(node(scores), causal, fill: -.infinity))
        }
        if inputs.count > 3, var mask = inputs[3] {
            if group > 1 {
                // [.., S, T] masks broadcast over the head group axis.
                let ms = shape(mask)
                if ms.count == 4 {
                    mask = try reshape(mask, [ms[0], ms[1] == 1 ? 1 : hkv, ms[1] == 1 ? 1 : group] + ms[2...])
                }
            }
            if kind(mask) == .bool {
                scores = try whereOp(mask, scores, minusInf)
            } else {
                scores = try binary(.add, scores, mask)
            }
        }
        let p = try b.softmax(node(scores), axis: -1)
        var y = try b.matmul(p, v)
        if group > 1 { y = try b.reshape(y, [batch, hq, s, sv[3]]) }
        if threeD {
            y = try b.transpose(y, permutation: [0, 2, 1, 3])
            y = try b.reshape(y, [batch, s, hq * sv[3]])
        }
        return .node(y)
    }

    /// `[B, S, H·D]` as `[B, H, S, D]`.
    mutating func splitHeads(_ x: NodeID, _ heads: Int) throws -> NodeID {
        let s = b.shape(of: x)
        guard s[2] % heads == 0 else { throw ONNXError("the last axis \(s[2]) does not split into \(heads) heads") }
        let r = try b.reshape(x, [s[0], s[1], heads, s[2] / heads])
        return try b.transpose(r, permutation: [0, 2, 1, 3])
    }
}
