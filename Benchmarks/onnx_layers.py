#!/usr/bin/env python3
"""Full-size transformer layers exported from PyTorch to ONNX: blockc (C) against ONNX Runtime (all
graph optimizations), torch eager and torch.compile, one forward each, at OMP_NUM_THREADS threads.

    Benchmarks/onnx_layers.py [--blockc PATH] [--reps N] [--only gpt2|llama] [--skip-compile]

Needs torch, onnx and onnxruntime (onnxscript for the dynamo exporter; without it the TorchScript
exporter is used) in the Python that runs it: the benchmark venv, not CI. The layers are the
modules of Tests/ONNX/make_fixtures.py at the sizes of issue #15:

- GPT-2 small: d=768, 12 heads, seq 1024, MLP 3072 (GELU), LayerNorm, causal attention;
- Llama-style: d=2048, 16 heads, 4 K/V heads (GQA), FFN 5632 (SwiGLU), RMSNorm, RoPE, seq 1024.

blockc's time is `blockc bench MODEL.onnx` (its harness, the model's own weights); the others are
timed in this process after warm-up. Each row prints the median of --reps runs and the ratios
(peer ÷ blockc: above 1 means blockc is faster), and `blockc report`'s kernels.
"""
import argparse
import importlib.util
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from machine import cpu_model, fma_peak

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
THREADS = int(os.environ.get("OMP_NUM_THREADS", "2"))
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))


def fixtures_module():
    spec = importlib.util.spec_from_file_location("make_fixtures", os.path.join(REPO, "Tests/ONNX/make_fixtures.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def timed(fn, reps, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--blockc", default=os.path.join(REPO, ".build/release/blockc"))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--only", choices=["gpt2", "llama"])
    ap.add_argument("--skip-compile", action="store_true", help="leave out torch.compile")
    args = ap.parse_args()

    import onnxruntime as ort
    import torch

    torch.set_num_threads(THREADS)
    try:
        import onnxscript  # noqa: F401
        dynamo = True
    except ImportError:
        dynamo = False
    GPT2Block, LlamaBlock = fixtures_module().torch_modules()
    layers = [
        ("gpt2", "GPT-2 small layer (d=768, 12 heads, seq 1024)", lambda: GPT2Block(d=768, h=12, t=1024), 768),
        ("llama", "Llama-style layer (d=2048, 16/4 heads, FFN 5632, seq 1024)",
         lambda: LlamaBlock(d=2048, h=16, kv=4, ffn=5632), 2048),
    ]
    work = tempfile.mkdtemp(prefix="blockc-onnx-layers-")
    _, peak = fma_peak(args.blockc)
    print(f"CPU {cpu_model()}, FMA peak {peak}, {THREADS} threads, torch {torch.__version__}, onnxruntime {ort.__version__}, "
          f"exporter {'dynamo' if dynamo else 'TorchScript'}; scratch {work}")
    rows = []
    for key, title, make, d in layers:
        if args.only and args.only != key:
            continue
        torch.manual_seed(0)
        model = make().eval()
        x = torch.randn(1, 1024, d)
        path = os.path.join(work, key + ".onnx")
        with torch.no_grad():
            torch.onnx.export(model, (x,), path, input_names=["x"], output_names=["y"], dynamo=dynamo,
                              external_data=True)
        # blockc: the compiled C on the model's weights.
        bench = subprocess.run([args.blockc, "bench", path, "--reps", str(args.reps), "--peak", "1"],
                               capture_output=True, text=True)
        m = re.search(r"median ([\d.]+) ms", bench.stdout)
        if bench.returncode != 0 or not m:
            print(f"{title}: blockc bench failed:\n{bench.stderr[-2000:]}")
            continue
        blockc_ms = float(m.group(1))
        report = subprocess.run([args.blockc, "report", path], capture_output=True, text=True).stdout
        kernels = [line.split()[0] for line in report.splitlines() if re.match(r"^k\d+_", line)]
        # The same inputs through blockc's compiled code and ONNX Runtime: a check, not a timing.
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = THREADS
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        feed = {"x": x.numpy()}
        ort_ms = timed(lambda: session.run(None, feed), args.reps)
        with torch.no_grad():
            eager_ms = timed(lambda: model(x), args.reps)
            compiled_ms = None
            if not args.skip_compile:
                try:
                    compiled = torch.compile(model)
                    compiled(x)
                    compiled_ms = timed(lambda: compiled(x), args.reps)
                except Exception as e:  # a machine without a working inductor toolchain
                    print(f"{title}: torch.compile failed: {str(e)[:200]}")
        rows.append((title, blockc_ms, ort_ms, eager_ms, compiled_ms, kernels))

    print()
    print("| layer | blockc (C) ms | ONNX Runtime ms (÷ blockc) | torch eager ms (÷) | torch.compile ms (÷) | blockc kernels |")
    print("|---|---|---|---|---|---|")
    for title, b, o, e, c, kernels in rows:
        comp = f"{c:.1f} ({c / b:.2f}×)" if c else "—"
        print(f"| {title} | {b:.1f} | {o:.1f} ({o / b:.2f}×) | {e:.1f} ({e / b:.2f}×) | {comp} | "
              f"{len(kernels)}: {', '.join(kernels)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
