#!/usr/bin/env python3
"""Peer implementations for Benchmarks/run.sh (one framework per process).

    peers.py --impl numpy|torch|flex|ort --cases CASES.json --reps R [--warmup W]

CASES.json is a list of workloads as written by bench.py:
    {"key": "attn_full_1024", "kind": "attn", "BH": 8, "N": 1024, "d": 64, "causal": false}
    {"key": "sliding_1024",   "kind": "sliding", "BH": 8, "N": 1024, "d": 64, "W": 256}
    {"key": "ln_mm",          "kind": "ln", "M": 4096, "K": 1024, "N": 1024}
    {"key": "swiglu",         "kind": "swiglu", "M": 2048, "d": 1024, "h": 2816}
    {"key": "attn_full_1024_bf16", "kind": "attn_bf16", ...}   torch SDPA on bf16 tensors
    {"key": "swiglu_bf16",         "kind": "swiglu_bf16", ...} torch rms_norm + SwiGLU on bf16 tensors
    {"key": "alibi_1024", "kind": "alibi"|"rope"|"stick", "BH": 8, "N": 1024, "d": 64}   causal attention
        variants (heads = BH, batch 1): torch eager, torch SDPA with the bias as attn_mask (ALiBi) or
        after eager RoPE, FlexAttention with an ALiBi score_mod
bf16 cases may carry "lib" and "entry": blockc's generated C for that graph as a shared library,
called once through ctypes with the inputs as uint16 bf16 bit patterns to check its error.

Prints one JSON object per line: {"key", "impl", "median_ms", "min_ms", "reps", "note"} or
{"key", "impl", "error"}. Each impl runs its function `warmup` times, then `reps` timed times
(time.perf_counter around one synchronous call). The caller sets the thread environment
(OMP_NUM_THREADS=2 etc.); torch additionally gets torch.set_num_threads(2), ONNX Runtime
intra_op_num_threads=2.
"""
import argparse
import json
import os
import sys
import time
import traceback

ap = argparse.ArgumentParser()
ap.add_argument("--impl", required=True, choices=["numpy", "torch", "flex", "ort"])
ap.add_argument("--cases", required=True)
ap.add_argument("--reps", type=int, default=10)
ap.add_argument("--warmup", type=int, default=2)
args = ap.parse_args()
THREADS = int(os.environ.get("OMP_NUM_THREADS", "2"))

import numpy as np  # noqa: E402

with open(args.cases) as fh:
    CASES = json.load(fh)


def emit(obj):
    print(json.dumps(obj), flush=True)


def bench(fn):
    for _ in range(args.warmup):
        fn()
    ts = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts[len(ts) // 2] * 1e3, ts[0] * 1e3


def run(key, impl, fn, note=""):
    try:
        med, mn = bench(fn)
    except Exception as e:  # keep going: one failing peer must not stop the others
        emit(dict(key=key, impl=impl, error=f"{type(e).__name__}: {str(e)[:300]}"))
        return
    emit(dict(key=key, impl=impl, median_ms=med, min_ms=mn, reps=args.reps, note=note))


def fail(key, impl, e):
    emit(dict(key=key, impl=impl, error=f"{type(e).__name__}: {str(e)[:300]}"))


# ---------------- inputs (same seeds in every process) ----------------
def attn_inputs(c):
    r = np.random.default_rng(c["N"])
    return [r.standard_normal((c["BH"], c["N"], c["d"]), dtype=np.float32) for _ in range(3)]


def ln_inputs(c):
    M, K, N = c["M"], c["K"], c["N"]
    r = np.random.default_rng(1)
    X = r.standard_normal((M, K), dtype=np.float32)
    g = r.standard_normal(K, dtype=np.float32)
    b = r.standard_normal(K, dtype=np.float32)
    W = (r.standard_normal((K, N), dtype=np.float32) / np.float32(K ** 0.5)).astype(np.float32)
    return X, g, b, W


def ffn_inputs(c):
    M, d, h = c["M"], c["d"], c["h"]
    r = np.random.default_rng(2)
    X = r.standard_normal((M, d), dtype=np.float32)
    g = r.standard_normal(d, dtype=np.float32)
    W1 = (r.standard_normal((d, h), dtype=np.float32) / np.float32(d ** 0.5)).astype(np.float32)
    W3 = (r.standard_normal((d, h), dtype=np.float32) / np.float32(d ** 0.5)).astype(np.float32)
    W2 = (r.standard_normal((h, d), dtype=np.float32) / np.float32(h ** 0.5)).astype(np.float32)
    return X, g, W1, W3, W2


# ---------------- attention variants (the graphs of Examples/, written in torch) ----------------
def alibi_bias(torch, H, N):
    """-slope_h * (i - j) with slope_h = 2^(-8 (h + 1) / H), -inf above the diagonal: [1, H, N, N]."""
    slope = 2.0 ** (-8.0 * (torch.arange(H, dtype=torch.float32) + 1) / H)
    i = torch.arange(N)[:, None]
    j = torch.arange(N)[None, :]
    bias = -slope[:, None, None] * (i - j).float()
    return bias.masked_fill(j > i, float("-inf"))[None]


def rope(torch, x, base=10000.0):
    """Llama rotary embedding of x [1, H, N, d]: x*cos + rotate_half(x)*sin, position = row index."""
    N, d = x.shape[-2], x.shape[-1]
    inv = base ** (-torch.arange(0, d // 2, dtype=torch.float32) * 2 / d)
    ang = torch.arange(N, dtype=torch.float32)[:, None] * inv[None, :]
    cos, sin = torch.cat([ang.cos(), ang.cos()], -1), torch.cat([ang.sin(), ang.sin()], -1)
    half = torch.cat([-x[..., d // 2:], x[..., :d // 2]], -1)
    return x * cos + half * sin


def stick_breaking(torch, q, k, v):
    """Stick-breaking attention in log space: A_ij = sigmoid(s_ij) prod_{j<k<i} (1 - sigmoid(s_ik)), j < i."""
    F = torch.nn.functional
    N, d = q.shape[-2], q.shape[-1]
    s = (q @ k.transpose(-1, -2)) / d ** 0.5
    below = torch.ones(N, N, dtype=torch.bool).tril(-1)
    log1m = (-F.softplus(s)).masked_fill(~below, 0.0)
    # sum over j < k < i of log(1 - beta_ik): a reverse exclusive cumsum along the keys
    after = torch.flip(torch.cumsum(torch.flip(log1m, [-1]), -1), [-1]) - log1m
    a = torch.exp(-F.softplus(-s) + after).masked_fill(~below, 0.0)
    return a @ v


# ---------------- NumPy (OpenBLAS), unfused ----------------
def run_numpy():
    emit(dict(info=f"numpy {np.__version__} OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')} "
                   f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE', '(unset)')} "
                   f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '(unset)')}"))
    for c in CASES:
        key = c["key"]
        try:
            if c["kind"] == "attn":
                q, k, v = attn_inputs(c)
                BH, N, d, causal = c["BH"], c["N"], c["d"], c["causal"]
                scale = np.float32(1.0 / d ** 0.5)
                kT = np.ascontiguousarray(k.transpose(0, 2, 1))
                negmask = np.where(np.triu(np.ones((N, N), bool), 1), -np.inf, 0).astype(np.float32)
                S = np.empty((BH, N, N), np.float32)
                O = np.empty((BH, N, d), np.float32)

                def attn():
                    np.matmul(q, kT, out=S)
                    np.multiply(S, scale, out=S)
                    if causal:
                        np.add(S, negmask, out=S)
                    np.subtract(S, S.max(-1, keepdims=True), out=S)
                    np.exp(S, out=S)
                    np.divide(S, S.sum(-1, keepdims=True), out=S)
                    np.matmul(S, v, out=O)
                    return O
                run(key, "numpy", attn)
                del S, negmask
            elif c["kind"] == "ln":
                X, g, b, W = ln_inputs(c)
                Y = np.empty((c["M"], c["N"]), np.float32)

                def ln():
                    mu = X.mean(1, keepdims=True)
                    xc = X - mu
                    var = np.mean(xc * xc, 1, keepdims=True)
                    xh = xc * (1.0 / np.sqrt(var + 1e-5)) * g + b
                    return np.matmul(xh, W, out=Y)
                run(key, "numpy", ln)
                run(key, "numpy_matmul", lambda: np.matmul(X, W, out=Y), note="matmul alone (floor)")
            elif c["kind"] == "swiglu":
                X, g, W1, W3, W2 = ffn_inputs(c)

                def ffn():
                    xn = X * (1.0 / np.sqrt(np.mean(X * X, 1, keepdims=True) + 1e-6)) * g
                    a = xn @ W1
                    cc = xn @ W3
                    a *= 1.0 / (1.0 + np.exp(-a))
                    a *= cc
                    return a @ W2
                run(key, "numpy", ffn)
        except Exception as e:
            fail(key, "numpy", e)


# ---------------- torch eager: SDPA, RMSNorm+SwiGLU ----------------
def run_torch():
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(THREADS)
    emit(dict(info=f"torch {torch.__version__} threads={torch.get_num_threads()} "
                   f"cpu_capability={torch.backends.cpu.get_cpu_capability()}"))
    for c in CASES:
        key = c["key"]
        try:
            if c["kind"] == "attn":
                q, k, v = (torch.from_numpy(x)[None] for x in attn_inputs(c))
                causal = c["causal"]

                def sdpa():
                    with torch.inference_mode():
                        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                run(key, "torch_sdpa", sdpa)
            elif c["kind"] in ("alibi", "rope", "stick"):
                q, k, v = (torch.from_numpy(x)[None] for x in attn_inputs(c))
                N, d = c["N"], c["d"]
                if c["kind"] == "alibi":
                    bias = alibi_bias(torch, c["BH"], N)

                    def eager():
                        with torch.inference_mode():
                            s = (q @ k.transpose(-1, -2)) / d ** 0.5 + bias
                            return torch.softmax(s, -1) @ v

                    def sdpa():
                        with torch.inference_mode():
                            return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
                    run(key, "torch_eager", eager)
                    run(key, "torch_sdpa", sdpa, note="attn_mask = the ALiBi bias with -inf above the diagonal")
                elif c["kind"] == "rope":
                    def eager():
                        with torch.inference_mode():
                            qr, kr = rope(torch, q), rope(torch, k)
                            s = (qr @ kr.transpose(-1, -2)) / d ** 0.5
                            s = s.masked_fill(torch.ones(N, N, dtype=torch.bool).triu(1), float("-inf"))
                            return torch.softmax(s, -1) @ v

                    def sdpa():
                        with torch.inference_mode():
                            return F.scaled_dot_product_attention(rope(torch, q), rope(torch, k), v, is_causal=True)
                    run(key, "torch_eager", eager)
                    run(key, "torch_sdpa", sdpa, note="eager RoPE, then SDPA is_causal")
                else:
                    def eager():
                        with torch.inference_mode():
                            return stick_breaking(torch, q, k, v)
                    run(key, "torch_eager", eager, note="log space: softplus, reverse cumsum, exp")
            elif c["kind"] == "swiglu":
                X, g, W1, W3, W2 = (torch.from_numpy(x) for x in ffn_inputs(c))
                d = c["d"]

                def ffn():
                    with torch.inference_mode():
                        xn = F.rms_norm(X, (d,), g, 1e-6)
                        return (F.silu(xn @ W1) * (xn @ W3)) @ W2
                run(key, "torch_eager", ffn)
            elif c["kind"] == "attn_bf16":
                q32, k32, v32 = (torch.from_numpy(x)[None] for x in attn_inputs(c))
                q, k, v = (x.to(torch.bfloat16) for x in (q32, k32, v32))

                def sdpa_bf16():
                    with torch.inference_mode():
                        return F.scaled_dot_product_attention(q, k, v)
                with torch.inference_mode():
                    ref = F.scaled_dot_product_attention(q32, k32, v32)
                    got = sdpa_bf16().float()
                note = f"torch bf16 max abs err vs torch f32 {(got - ref).abs().max().item():.1e}"
                note += blockc_bf16_check(c, attn_inputs(c), ref[0].numpy())
                del ref, got
                run(key, "torch_sdpa", sdpa_bf16, note=note)
            elif c["kind"] == "swiglu_bf16":
                f32 = [torch.from_numpy(x) for x in ffn_inputs(c)]
                X, g, W1, W3, W2 = (x.to(torch.bfloat16) for x in f32)
                d = c["d"]

                def ffn_bf16():
                    with torch.inference_mode():
                        xn = F.rms_norm(X, (d,), g, 1e-6)
                        return (F.silu(xn @ W1) * (xn @ W3)) @ W2
                with torch.inference_mode():
                    X32, g32, W132, W332, W232 = f32
                    xn = F.rms_norm(X32, (d,), g32, 1e-6)
                    ref = (F.silu(xn @ W132) * (xn @ W332)) @ W232
                    got = ffn_bf16().float()
                note = f"torch bf16 max abs err vs torch f32 {(got - ref).abs().max().item():.1e}"
                note += blockc_bf16_check(c, ffn_inputs(c), ref.numpy())
                del ref, got
                run(key, "torch_eager", ffn_bf16, note=note)
        except Exception as e:
            fail(key, "torch", e)


# ---------------- blockc's generated bf16 C, called through ctypes (a correctness check) ----------------
def to_bf16_bits(a):
    """float32 -> bf16 bit patterns as uint16, rounded to nearest even (Docs/IR.md, "Element types")."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    return ((u + np.uint32(0x7FFF) + ((u >> 16) & np.uint32(1))) >> 16).astype(np.uint16)


def from_bf16_bits(u):
    return (u.astype(np.uint32) << 16).view(np.float32)


def blockc_bf16_check(c, inputs, ref):
    """Calls blockc's generated entry point (built by bench.py as a shared library: c['lib'], c['entry'])
    on the same inputs as uint16 bf16 bit patterns; returns a note with its error against the f32 reference."""
    if not c.get("lib"):
        return ""
    try:
        import ctypes
        lib = ctypes.CDLL(c["lib"])
        fn = getattr(lib, c["entry"])
        args_u16 = [to_bf16_bits(x) for x in inputs]
        out = np.zeros(ref.shape, np.uint16)
        ptrs = [a.ctypes.data_as(ctypes.c_void_p) for a in args_u16 + [out]]
        fn.restype = None
        fn.argtypes = [ctypes.c_void_p] * len(ptrs)
        fn(*ptrs)
        err = float(np.abs(from_bf16_bits(out) - ref).max())
        return f"; blockc bf16 (generated C via ctypes, uint16 inputs) max abs err vs torch f32 {err:.1e}"
    except Exception as e:
        return f"; blockc bf16 ctypes check failed: {type(e).__name__}: {str(e)[:200]}"


# ---------------- torch FlexAttention (torch.compile), sliding window ----------------
def run_flex():
    try:
        import torch
        from torch.nn.attention.flex_attention import flex_attention, create_block_mask
        torch.set_num_threads(THREADS)
        flex = torch.compile(flex_attention, dynamic=False)
    except Exception as e:
        for c in CASES:
            fail(c["key"], "flex", e)
        return
    emit(dict(info=f"torch {torch.__version__} FlexAttention via torch.compile (Inductor CPU)"))
    for c in CASES:
        key = c["key"]
        if c["kind"] == "alibi":
            run_flex_alibi(c, flex, create_block_mask)
            continue
        if c["kind"] != "sliding":
            continue
        try:
            q, k, v = (torch.from_numpy(x)[None] for x in attn_inputs(c))
            N, W, d = c["N"], c["W"], c["d"]

            def keep(b, h, qi, ki):
                return (qi >= ki) & (qi - ki < W)
            bm = create_block_mask(keep, None, None, N, N, device="cpu")
            with torch.inference_mode():
                t0 = time.perf_counter()
                out = flex(q, k, v, block_mask=bm)
                ct = time.perf_counter() - t0
                i = torch.arange(N)[:, None]
                j = torch.arange(N)[None, :]
                s = (q @ k.transpose(-1, -2)) / d ** 0.5
                ref = torch.softmax(s.masked_fill(~((i >= j) & (i - j < W)), float("-inf")), -1) @ v
                err = (out - ref).abs().max().item()
                del s, ref

            def f():
                with torch.inference_mode():
                    return flex(q, k, v, block_mask=bm)
            run(key, "flex", f, note=f"compile {ct:.1f} s, max abs err {err:.1e}")
        except Exception as e:
            fail(key, "flex", e)


def run_flex_alibi(c, flex, create_block_mask):
    """ALiBi as a FlexAttention score_mod over a causal block mask."""
    import torch
    key = c["key"]
    try:
        q, k, v = (torch.from_numpy(x)[None] for x in attn_inputs(c))
        H, N = c["BH"], c["N"]
        slope = 2.0 ** (-8.0 * (torch.arange(H, dtype=torch.float32) + 1) / H)

        def alibi(score, b, h, qi, ki):
            return score - slope[h] * (qi - ki)

        def causal(b, h, qi, ki):
            return qi >= ki
        bm = create_block_mask(causal, None, None, N, N, device="cpu")
        with torch.inference_mode():
            t0 = time.perf_counter()
            out = flex(q, k, v, score_mod=alibi, block_mask=bm)
            ct = time.perf_counter() - t0
            ref = torch.softmax((q @ k.transpose(-1, -2)) / c["d"] ** 0.5 + alibi_bias(torch, H, N), -1) @ v
            err = (out - ref).abs().max().item()
            del ref

        def f():
            with torch.inference_mode():
                return flex(q, k, v, score_mod=alibi, block_mask=bm)
        run(key, "flex", f, note=f"score_mod ALiBi, compile {ct:.1f} s, max abs err {err:.1e}")
    except Exception as e:
        fail(key, "flex", e)


# ---------------- ONNX Runtime com.microsoft.MultiHeadAttention ----------------
def run_ort():
    try:
        import onnx
        import onnxruntime as ort
        from onnx import helper, TensorProto
    except Exception as e:
        for c in CASES:
            fail(c["key"], "ort_mha", e)
        return
    emit(dict(info=f"onnxruntime {ort.__version__} onnx {onnx.__version__} intra_op_num_threads={THREADS}"))

    def opts():
        so = ort.SessionOptions()
        so.intra_op_num_threads = THREADS
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        return so

    for c in CASES:
        key = c["key"]
        if c["kind"] != "attn":
            continue
        try:
            BH, N, D, causal = c["BH"], c["N"], c["d"], c["causal"]
            q, k, v = attn_inputs(c)
            F32 = TensorProto.FLOAT
            # (BH, N, d) -> BSNH packed as (1, N, BH*d), as in peers/bench_compilers.py
            feeds = {n: np.ascontiguousarray(x.transpose(1, 0, 2)).reshape(1, N, BH * D)
                     for n, x in zip("qkv", (q, k, v))}
            g = helper.make_graph(
                [helper.make_node("MultiHeadAttention", ["q", "k", "v"], ["o"], domain="com.microsoft",
                                  num_heads=BH, unidirectional=int(causal))],
                "g", [helper.make_tensor_value_info(n, F32, [1, N, BH * D]) for n in "qkv"],
                [helper.make_tensor_value_info("o", F32, None)])
            ops = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
            m = helper.make_model(g, opset_imports=ops)
            m.ir_version = helper.find_min_ir_version_for([ops[0]])
            sess = ort.InferenceSession(m.SerializeToString(), opts(), providers=["CPUExecutionProvider"])
            # sanity check against float32 NumPy on the first head (cheap)
            o = sess.run(None, feeds)[0].reshape(N, BH, D).transpose(1, 0, 2)
            s = (q[0] @ k[0].T) / np.float32(D ** 0.5)
            if causal:
                s[np.triu(np.ones((N, N), bool), 1)] = -np.inf
            s = np.exp(s - s.max(-1, keepdims=True))
            ref = (s / s.sum(-1, keepdims=True)) @ v[0]
            err = float(np.abs(o[0] - ref).max())
            run(key, "ort_mha", lambda: sess.run(None, feeds), note=f"max abs err (head 0) {err:.1e}")
        except Exception as e:
            fail(key, "ort_mha", e)


try:
    {"numpy": run_numpy, "torch": run_torch, "flex": run_flex, "ort": run_ort}[args.impl]()
except Exception:
    traceback.print_exc()
    sys.exit(1)
