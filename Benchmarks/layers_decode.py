#!/usr/bin/env python3
"""The Llama layer examples (issue #16) against torch, one run, at OMP_NUM_THREADS threads:

    Benchmarks/layers_decode.py [--blockc PATH] [--reps N] [--skip-compile]

- the prefill layer (Examples/llama_layer_prefill.graph: S=1024, D=2048, 16 query / 4 K/V heads,
  FFN 5632, causal) and the decode step (Examples/llama_layer_decode.graph: one token against a
  KV cache of 4096), blockc's compiled C against the same layer in torch, eager and torch.compile;
- decode attention (Examples/decode_attention.graph) at KV 8192: blockc as the plan makes it for
  this machine's cores against blockc with the key loop unsplit (`--cores 1`) and torch SDPA. The
  split rule (R15) splits a grid smaller than the cores, so the row that shows it has one K/V head
  and one query row (BH=1: one sequence, multi-query attention) next to the 32-head one.

Needs torch in the Python that runs it (the benchmark venv, not CI). blockc's time is `blockc
bench` (its harness, random inputs); torch's is the median of --reps calls after warm-up in this
process. Ratios are peer ÷ blockc: above 1 means blockc is faster.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

from machine import cpu_model, fma_peak

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
THREADS = int(os.environ.get("OMP_NUM_THREADS", "2"))
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))


def timed(fn, reps, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def blockc_ms(blockc, graph, reps, extra=()):
    run = subprocess.run([blockc, "bench", os.path.join(REPO, graph), "--reps", str(reps), "--peak", "1", *extra],
                         capture_output=True, text=True)
    m = re.search(r"median ([\d.]+) ms", run.stdout)
    if run.returncode != 0 or not m:
        raise RuntimeError(f"blockc bench {graph} {' '.join(extra)} failed:\n{run.stderr[-2000:]}")
    return float(m.group(1))


def kernels(blockc, graph, extra=()):
    out = subprocess.run([blockc, "report", os.path.join(REPO, graph), *extra], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if re.match(r"^k\d+_", line)]


def torch_layers(torch):
    F = torch.nn.functional

    def rmsnorm(x, g, eps=1e-6):
        return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * g

    def prefill(X, w):
        S, D = X.shape
        H, Hkv, dh = 16, 4, D // 16
        xa = rmsnorm(X, w["g_attn"])
        q = (xa @ w["Wq"]).view(S, H, dh).transpose(0, 1)
        k = (xa @ w["Wk"]).view(S, Hkv, dh).transpose(0, 1).repeat_interleave(H // Hkv, dim=0)
        v = (xa @ w["Wv"]).view(S, Hkv, dh).transpose(0, 1).repeat_interleave(H // Hkv, dim=0)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(0, 1).reshape(S, D)
        x1 = X + a @ w["Wo"]
        xf = rmsnorm(x1, w["g_ffn"])
        return x1 + (F.silu(xf @ w["W1"]) * (xf @ w["W3"])) @ w["W2"]

    def decode(X, w, Kc, Vc):
        D = X.shape[1]
        H, Hkv, dh = 16, 4, D // 16
        xa = rmsnorm(X, w["g_attn"])
        q = (xa @ w["Wq"]).view(Hkv, H // Hkv, dh)
        k_new, v_new = xa @ w["Wk"], xa @ w["Wv"]
        a = F.scaled_dot_product_attention(q, Kc, Vc).reshape(1, D)
        x1 = X + a @ w["Wo"]
        xf = rmsnorm(x1, w["g_ffn"])
        return x1 + (F.silu(xf @ w["W1"]) * (xf @ w["W3"])) @ w["W2"], k_new, v_new

    return prefill, decode


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--blockc", default=os.path.join(REPO, ".build/release/blockc"))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--skip-compile", action="store_true", help="leave out torch.compile")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    _, peak = fma_peak(args.blockc)
    print(f"CPU {cpu_model()}, FMA peak {peak}, {THREADS} threads, torch {torch.__version__}")
    D, F_, dh, Hkv = 2048, 5632, 128, 4
    scale = D ** -0.5
    w = {"g_attn": torch.ones(D), "g_ffn": torch.ones(D), "Wq": torch.randn(D, D) * scale,
         "Wk": torch.randn(D, Hkv * dh) * scale, "Wv": torch.randn(D, Hkv * dh) * scale,
         "Wo": torch.randn(D, D) * scale, "W1": torch.randn(D, F_) * scale, "W3": torch.randn(D, F_) * scale,
         "W2": torch.randn(F_, D) * F_ ** -0.5}
    prefill, decode = torch_layers(torch)
    X = torch.randn(1024, D)
    x1 = torch.randn(1, D)
    Kc, Vc = torch.randn(Hkv, 4096, dh), torch.randn(Hkv, 4096, dh)

    def torch_times(fn, *inputs):
        with torch.no_grad():
            eager = timed(lambda: fn(*inputs), args.reps)
            compiled = None
            if not args.skip_compile:
                try:
                    c = torch.compile(fn)
                    c(*inputs)
                    compiled = timed(lambda: c(*inputs), args.reps)
                except Exception as e:  # a machine without a working inductor toolchain
                    print(f"torch.compile failed: {str(e)[:200]}")
        return eager, compiled

    rows = []
    for title, graph, fn, inputs in [
        ("prefill layer (S=1024, D=2048, 16/4 heads, FFN 5632)", "Examples/llama_layer_prefill.graph", prefill,
         (X, w)),
        ("decode step (1 token, KV 4096)", "Examples/llama_layer_decode.graph", decode, (x1, w, Kc, Vc)),
    ]:
        b = blockc_ms(args.blockc, graph, args.reps)
        eager, compiled = torch_times(fn, *inputs)
        rows.append((title, b, eager, compiled, kernels(args.blockc, graph)))
    print()
    print("| layer | blockc (C) ms | torch eager ms (÷ blockc) | torch.compile ms (÷) | blockc kernels |")
    print("|---|---|---|---|---|")
    for title, b, e, c, ks in rows:
        comp = f"{c:.2f} ({c / b:.2f}×)" if c else "—"
        print(f"| {title} | {b:.2f} | {e:.2f} ({e / b:.2f}×) | {comp} | {len(ks)}: {', '.join(ks)} |")

    print()
    print("| decode attention, KV 8192, d 128 | blockc ms (split chunks) | blockc unsplit ms (÷ blockc) | "
          "torch SDPA ms (÷ blockc) |")
    print("|---|---|---|---|")
    for bh in (1, 32):
        dims = ("--dim", f"BH={bh},N=8192")
        split = blockc_ms(args.blockc, "Examples/decode_attention.graph", args.reps, dims)
        unsplit = blockc_ms(args.blockc, "Examples/decode_attention.graph", args.reps, dims + ("--cores", "1"))
        parts = kernels(args.blockc, "Examples/decode_attention.graph", dims)
        q, k, v = torch.randn(bh, 1, dh), torch.randn(bh, 8192, dh), torch.randn(bh, 8192, dh)
        with torch.no_grad():
            sdpa = timed(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v), args.reps)
        print(f"| BH={bh} | {split:.3f} ({len(parts)} kernels: {', '.join(parts)}) | {unsplit:.3f} "
              f"({unsplit / split:.2f}×) | {sdpa:.3f} ({sdpa / split:.2f}×) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
