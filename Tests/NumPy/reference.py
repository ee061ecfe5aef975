#!/usr/bin/env python3
"""NumPy reference for blockc's examples.

usage: reference.py EXAMPLE DIR

Reads the inputs blockc saved in DIR (NAME.npy, from `blockc run --save-inputs`), computes the
example's outputs with NumPy in float64, and compares them with blockc's outputs in DIR.
Prints the maximum absolute error per output; exits 1 when an error exceeds 1e-4 absolute for
attention, 1e-4 * max(1, max|reference|) for the others (fp32 accumulation over their reduction
lengths). Examples whose name ends in _bf16 store every tensor as bf16 (.npy '<u2' bit
patterns): the reference computes in float64 from the same bf16 inputs, and the tolerance is
2^-5 * max(1, max|reference|), a few bf16 roundings of the intermediates (the graph and the naive
program round every intermediate to bf16; the fused program rounds only the output).
"""
import sys
import numpy as np


def rmsnorm(x, g, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * g


def softmax(s):
    m = np.max(s, axis=-1, keepdims=True)
    e = np.exp(s - m)
    return e / np.sum(e, axis=-1, keepdims=True)


def silu(x):
    return x / (1 + np.exp(-x))


def attention(t, keep=None):
    q, k, v = t["Q"], t["K"], t["V"]
    d = q.shape[-1]
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(d)
    if keep is not None:
        i = np.arange(s.shape[-2])[:, None]
        j = np.arange(s.shape[-1])[None, :]
        s = np.where(keep(i, j), s, -np.inf)
    return {"O": softmax(s) @ v}


def attention_block_mask(t):
    """Attention under a bool mask input M [1 or BH, N, N], broadcast over the heads."""
    q, k, v = t["Q"], t["K"], t["V"]
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    return {"O": softmax(np.where(t["M"], s, -np.inf)) @ v}


def attention_block_mask_blocks(t):
    """Attention under a block mask B [1, N/bs, N/bs] (sys.argv[3] = bs): element (i, j) is kept
    iff B[0, i // bs, j // bs]."""
    bs = int(sys.argv[3])
    m = np.repeat(np.repeat(t["B"], bs, axis=-2), bs, axis=-1)
    return attention_block_mask({"Q": t["Q"], "K": t["K"], "V": t["V"], "M": m})


def attention_packed(t):
    """Causal attention within packed documents: token p's document is the number of document
    starts offsets[1:D] at or before p (the cu_seqlens convention for monotone offsets)."""
    q, k, v, offsets = t["Q"], t["K"], t["V"], t["offsets"]
    n = q.shape[-2]
    doc = np.sum(np.arange(n)[:, None] >= offsets[None, 1:-1], axis=-1)
    i = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    s = np.where((doc[:, None] == doc[None, :]) & (i >= j), s, -np.inf)
    return {"O": softmax(s) @ v}


def attention_jagged(t):
    """Attention over a jagged batch, sequence by sequence: sequence b is tokens
    offsets[b] ..< offsets[b+1] of every head (offsets[0] = 0, offsets[B] = T), attending to its own
    tokens only (no mask, no padding); the output has the same layout."""
    q, k, v, offsets = t["Q"], t["K"], t["V"], t["offsets"].astype(np.int64)
    assert offsets[0] == 0 and offsets[-1] == q.shape[-2], offsets
    o = np.full(q.shape, np.nan)
    for b in range(len(offsets) - 1):
        lo, hi = offsets[b], offsets[b + 1]
        if hi > lo:
            s = q[..., lo:hi, :] @ np.swapaxes(k[..., lo:hi, :], -1, -2) / np.sqrt(q.shape[-1])
            o[..., lo:hi, :] = softmax(s) @ v[..., lo:hi, :]
    return {"O": o}


def attention_gqa(t):
    """Query head h uses key/value head h // (H // Hkv)."""
    q, k, v = t["Q"], t["K"], t["V"]
    group = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
    return attention({"Q": q, "K": k, "V": v})
def attention_alibi(t):
    """Causal attention with the ALiBi bias -slope_h * (i - j), slope_h = 2^(-8 (h + 1) / H)."""
    q, k, v = t["Q"], t["K"], t["V"]
    heads, n, d = q.shape[1], q.shape[2], q.shape[3]
    slope = 2.0 ** (-8.0 * (np.arange(heads) + 1) / heads)
    i = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(d) - slope[:, None, None] * (i - j)
    s = np.where(i >= j, s, -np.inf)
    return {"O": softmax(s) @ v}


def rope(x, positions):
    """Llama RoPE at the given positions (one per row): x·cos + rotate_half(x)·sin."""
    d = x.shape[-1]
    inv_freq = 10000.0 ** (-2.0 * np.arange(d // 2) / d)
    theta = np.asarray(positions, dtype=np.float64)[:, None] * inv_freq[None, :]
    emb = np.concatenate([theta, theta], axis=-1)
    half = np.concatenate([-x[..., d // 2 :], x[..., : d // 2]], axis=-1)
    return x * np.cos(emb) + half * np.sin(emb)


def attention_rope(t):
    """Causal attention of RoPE'd queries and keys at positions 0 .. N-1."""
    q, k, v = t["Q"], t["K"], t["V"]
    n, d = q.shape[2], q.shape[3]
    s = rope(q, np.arange(n)) @ np.swapaxes(rope(k, np.arange(n)), -1, -2) / np.sqrt(d)
    i = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    return {"O": softmax(np.where(i >= j, s, -np.inf)) @ v}


def attention_dca(t):
    """Dual chunk attention, chunk size C = sys.argv[3]: keys at j mod C; queries at i mod C
    (same chunk, causal), C + i mod C (previous chunk), 2C - 1 (earlier chunks)."""
    q, k, v = t["Q"], t["K"], t["V"]
    n, d = q.shape[2], q.shape[3]
    c = int(sys.argv[3])
    r = np.arange(n)
    kr = np.swapaxes(rope(k, r % c), -1, -2)
    si = rope(q, r % c) @ kr / np.sqrt(d)
    ss = rope(q, c + r % c) @ kr / np.sqrt(d)
    sx = rope(q, np.full(n, 2 * c - 1)) @ kr / np.sqrt(d)
    i = r[:, None] // c
    j = r[None, :] // c
    s = np.where(i == j, si, np.where(i == j + 1, ss, np.where(i > j + 1, sx, -np.inf)))
    s = np.where(r[:, None] >= r[None, :], s, -np.inf)
    return {"O": softmax(s) @ v}

def stick_breaking_attention(t):
    """Stick-breaking attention from its definition (the product form, not the log-space cumsum):
    for i > j, beta_ij = sigmoid(q_i . k_j / sqrt(d)) and A_ij = beta_ij * prod_{j<k<i} (1 - beta_ik);
    A_ij = 0 for j >= i; O = A V. Keys are visited from the last down, so `rest` holds, per query,
    the product of (1 - beta) over the keys between the key and the query."""
    q, k, v = t["Q"], t["K"], t["V"]
    d = q.shape[-1]
    beta = 1.0 / (1.0 + np.exp(-(q @ np.swapaxes(k, -1, -2) / np.sqrt(d))))
    n = beta.shape[-1]
    i = np.arange(beta.shape[-2])
    a = np.zeros_like(beta)
    rest = np.ones(beta.shape[:-1])
    for j in range(n - 1, -1, -1):
        below = i > j
        a[..., j] = np.where(below, beta[..., j] * rest, 0.0)
        rest = np.where(below, rest * (1.0 - beta[..., j]), rest)
    return {"O": a @ v}


def same_segment(i, j, bounds):
    return np.searchsorted(bounds, i, side="right") == np.searchsorted(bounds, j, side="right")


def layernorm_matmul(t):
    x = t["X"]
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    xn = (x - mu) / np.sqrt(var + 1e-5) * t["gamma"] + t["beta"]
    return {"Y": xn @ t["W"]}


def rmsnorm_swiglu(t):
    xn = rmsnorm(t["X"], t["g"], 1e-6)
    return {"Y": (silu(xn @ t["W1"]) * (xn @ t["W3"])) @ t["W2"]}


def transformer_layer(t):
    x = t["X"]
    s_len, d_model = x.shape
    dh = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    h = d_model // dh
    xa = rmsnorm(x, t["g_attn"], 1e-6)

    def heads(w):
        return (xa @ w).reshape(s_len, h, dh).transpose(1, 0, 2)

    q, k, v = heads(t["Wq"]), heads(t["Wk"]), heads(t["Wv"])
    sc = q @ np.swapaxes(k, -1, -2) / np.sqrt(dh)
    keep = np.tril(np.ones((s_len, s_len), dtype=bool))
    p = softmax(np.where(keep, sc, -np.inf))
    a = (p @ v).transpose(1, 0, 2).reshape(s_len, d_model)
    x1 = x + a @ t["Wo"]
    xf = rmsnorm(x1, t["g_ffn"], 1e-6)
    return {"Y": x1 + (silu(xf @ t["W1"]) * (xf @ t["W3"])) @ t["W2"]}


def llama_ffn(x1, t):
    xf = rmsnorm(x1, t["g_ffn"], 1e-6)
    return x1 + (silu(xf @ t["W1"]) * (xf @ t["W3"])) @ t["W2"]


def llama_layer_prefill(t):
    """Causal GQA layer; sys.argv[3] is the number of query heads H (query head h reads K/V head
    h // g, g = H / Hkv)."""
    x = t["X"]
    s_len, d_model = x.shape
    h = int(sys.argv[3])
    dh = d_model // h
    hkv = t["Wk"].shape[1] // dh
    xa = rmsnorm(x, t["g_attn"], 1e-6)
    q = (xa @ t["Wq"]).reshape(s_len, h, dh).transpose(1, 0, 2)
    k = np.repeat((xa @ t["Wk"]).reshape(s_len, hkv, dh).transpose(1, 0, 2), h // hkv, axis=0)
    v = np.repeat((xa @ t["Wv"]).reshape(s_len, hkv, dh).transpose(1, 0, 2), h // hkv, axis=0)
    sc = q @ np.swapaxes(k, -1, -2) / np.sqrt(dh)
    keep = np.tril(np.ones((s_len, s_len), dtype=bool))
    p = softmax(np.where(keep, sc, -np.inf))
    a = (p @ v).transpose(1, 0, 2).reshape(s_len, d_model)
    return {"Y": llama_ffn(x + a @ t["Wo"], t)}


def llama_layer_decode(t):
    """One token against the K/V cache [Hkv, N, dh]; sys.argv[3] is the number of query heads H."""
    x = t["X"]
    d_model = x.shape[1]
    h = int(sys.argv[3])
    dh = d_model // h
    kc, vc = t["Kc"], t["Vc"]
    hkv = kc.shape[0]
    xa = rmsnorm(x, t["g_attn"], 1e-6)
    q = (xa @ t["Wq"]).reshape(hkv, h // hkv, dh)
    p = softmax(q @ np.swapaxes(kc, -1, -2) / np.sqrt(dh))
    a = (p @ vc).reshape(1, d_model)
    return {"Y": llama_ffn(x + a @ t["Wo"], t), "Knew": xa @ t["Wk"], "Vnew": xa @ t["Wv"]}


def embedding_rmsnorm(t):
    """Rows of E by token id (blockc draws random ids in 0 ..< V), RMSNorm, projection."""
    tokens, table = t["tokens"], t["E"]
    assert np.all((tokens >= 0) & (tokens < table.shape[0])), "token ids out of range"
    return {"y": rmsnorm(table[tokens], t["g"], 1e-6) @ t["W"]}


def load(path):
    """An array from a .npy file blockc wrote, as float64 (i32 as int64, for indexing); bf16
    arrays are '<u2' bit patterns."""
    a = np.load(path)
    if a.dtype == np.int32:
        return a.astype(np.int64)
    if a.dtype == np.bool_:
        return a
    if a.dtype == np.uint16:
        return (a.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    assert a.dtype in (np.float32, np.float16), f"{path} has dtype {a.dtype}"
    return a.astype(np.float64)


EXAMPLES = {
    "attention": attention,
    "attention_causal": lambda t: attention(t, lambda i, j: i >= j),
    "attention_sliding_window": lambda t: attention(t, lambda i, j: (j <= i) & (i - j < int(sys.argv[3]))),
    "attention_documents": lambda t: attention(t, lambda i, j: same_segment(i, j, [300, 700, 1500])),
    "embedding_rmsnorm": embedding_rmsnorm,
    "attention_gqa": attention_gqa,
    "decode_attention": attention,
    "attention_block_mask": attention_block_mask,
    "attention_block_mask_blocks": attention_block_mask_blocks,
    "attention_packed": attention_packed,
    "attention_jagged": attention_jagged,
    "attention_alibi": attention_alibi,
    # sys.argv[3] is the chunk size C: keys j <= i in the query's chunk or the one before.
    "attention_chunked": lambda t: attention(
        t, lambda i, j: (j <= i) & (i // int(sys.argv[3]) - j // int(sys.argv[3]) <= 1)
    ),
    "attention_rope": attention_rope,
    "attention_dca": attention_dca,
    "stick_breaking_attention": stick_breaking_attention,
    "layernorm_matmul": layernorm_matmul,
    "rmsnorm_swiglu": rmsnorm_swiglu,
    "transformer_layer": transformer_layer,
    "llama_layer_prefill": llama_layer_prefill,
    "llama_layer_decode": llama_layer_decode,
    "attention_bf16": attention,
    "rmsnorm_swiglu_bf16": rmsnorm_swiglu,
}

INPUTS = {
    "attention": ["Q", "K", "V"],
    "attention_causal": ["Q", "K", "V"],
    "attention_sliding_window": ["Q", "K", "V"],
    "attention_documents": ["Q", "K", "V"],
    "embedding_rmsnorm": ["tokens", "E", "g", "W"],
    "attention_gqa": ["Q", "K", "V"],
    "decode_attention": ["Q", "K", "V"],
    "attention_block_mask": ["Q", "K", "V", "M"],
    "attention_block_mask_blocks": ["Q", "K", "V", "B"],
    "attention_packed": ["Q", "K", "V", "offsets"],
    "attention_jagged": ["Q", "K", "V", "offsets"],
    "attention_alibi": ["Q", "K", "V"],
    "attention_chunked": ["Q", "K", "V"],
    "attention_rope": ["Q", "K", "V"],
    "attention_dca": ["Q", "K", "V"],
    "stick_breaking_attention": ["Q", "K", "V"],
    "layernorm_matmul": ["X", "gamma", "beta", "W"],
    "rmsnorm_swiglu": ["X", "g", "W1", "W3", "W2"],
    "transformer_layer": ["X", "g_attn", "Wq", "Wk", "Wv", "Wo", "g_ffn", "W1", "W3", "W2"],
    "llama_layer_prefill": ["X", "g_attn", "Wq", "Wk", "Wv", "Wo", "g_ffn", "W1", "W3", "W2"],
    "llama_layer_decode": ["X", "g_attn", "Wq", "Wk", "Wv", "Wo", "Kc", "Vc", "g_ffn", "W1", "W3", "W2"],
    "attention_bf16": ["Q", "K", "V"],
    "rmsnorm_swiglu_bf16": ["X", "g", "W1", "W3", "W2"],
}


def main():
    name, folder = sys.argv[1], sys.argv[2]
    tensors = {}
    for n in INPUTS[name]:
        tensors[n] = load(f"{folder}/{n}.npy")
    expected = EXAMPLES[name](tensors)
    ok = True
    for out, ref in expected.items():
        got = load(f"{folder}/{out}.npy")
        if got.shape != ref.shape:
            print(f"{name}.{out}: shape {got.shape} != reference {ref.shape}")
            ok = False
            continue
        # A row that a mask keeps nothing of is NaN (0/0) in NumPy and in blockc alike: NaN must
        # meet NaN, and the other elements are compared.
        nan = np.isnan(ref)
        if not np.array_equal(nan, np.isnan(got)):
            print(f"{name}.{out}: NaN at other positions than the reference's")
            ok = False
            continue
        err = float(np.max(np.abs(got.astype(np.float64) - ref)[~nan], initial=0.0))
        # Attention outputs are averages of V rows: an absolute 1e-4. Others scale with |ref|.
        scale = max(1.0, float(np.max(np.abs(ref))))
        if name.endswith("_bf16"):
            tol = 2**-5 * scale
        else:
            tol = 1e-4 if name.startswith("attention") else 1e-4 * scale
        status = "ok" if err <= tol else "FAIL"
        print(f"{name}.{out}: max abs error {err:.3g} (tolerance {tol:.3g}) {status}")
        ok = ok and err <= tol
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
