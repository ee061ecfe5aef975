#!/usr/bin/env python3
"""Attention under a block mask given as data (issue #14): blockc against torch FlexAttention given
the same BlockMask, and dense torch SDPA given the boolean mask, at N=4096 (BH=8, d=64, fp32).

    Benchmarks/mask_sparsity.py [--blockc PATH] [--reps N] [--n N]

Needs torch (the benchmark venv); CI never runs it. For each kept fraction (10 %, 25 %, 50 %, 100 %
of 128×128 blocks; the diagonal block of every row is always kept, so no row is fully masked) it
builds one seeded random block pattern, writes it as the element mask `M: bool[1, N, N]` of
Examples/attention_block_mask.graph and times:

- blockc: `blockc bench Examples/attention_block_mask.graph --input M=mask.npy` (the compiled C; the
  summary kernel that reduces M to block bits is part of the timed program);
- FlexAttention (torch.compile, Inductor's CPU template) with `create_block_mask` of the same pattern
  (mask construction not timed);
- SDPA with the dense boolean mask (`attn_mask=M`);
- blockc given the block mask itself: `B: bool[1, N/128, N/128]` of
  Examples/attention_block_mask_blocks.graph (`--input B=blocks.npy`), as Flex is given its BlockMask
  (the element mask is never built; the timed program holds a kernel over B that writes each query
  block's range of kept key blocks and its links, and the attention kernel, which reads B itself).

Every time is the median of --reps timed runs (default 15, after a warm-up), for blockc and the
peers alike. Each row prints the medians and the ratios (peer ÷ blockc: above 1 means blockc is faster), and the
time relative to the fully kept case next to the kept fraction (time should follow the fraction).

Then packed documents: causal attention inside 8 documents of seeded random lengths summing to N,
their boundaries a runtime input (`offsets`, cu_seqlens) of Examples/attention_packed.graph,
against FlexAttention given the document mask (same document and causal; `create_block_mask` not
timed) and SDPA given the dense boolean mask.

Then jagged batches (`jagged_row`): 16 sequences of seeded random lengths in 1 ... 1024 stored back to
back (values [H, T, d], T = Σ L_b, offsets [17]) of Examples/attention_jagged.graph (max_len = 1024),
against padded dense SDPA (the batch padded to [B, H, 1024, d] with a key padding mask; padding not
timed) and, where it runs, FlexAttention over the packed layout with a document mask.
"""
import argparse
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
THREADS = int(os.environ.setdefault("OMP_NUM_THREADS", "2"))


def timed(fn, reps, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def block_pattern(nb, fraction, seed):
    """A bool [nb, nb] pattern with about `fraction` of the blocks kept, the diagonal always."""
    rng = np.random.default_rng(seed)
    keep = rng.random((nb, nb)) < fraction
    np.fill_diagonal(keep, True)
    if fraction >= 1.0:
        keep[:] = True
    return keep


def jagged_row(args, torch, flex, create_block_mask, work, heads, d, blk, sequences=16, max_len=1024):
    """Jagged batch: blockc's attention_jagged (offsets given) against padded dense SDPA (key padding
    mask) and FlexAttention with a document mask on the packed layout. Returns the table row."""
    lengths = np.random.default_rng(16).integers(1, max_len + 1, sequences)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    t = int(offsets[-1])
    path = os.path.join(work, "jagged_offsets.npy")
    np.save(path, offsets)
    bench = subprocess.run([args.blockc, "bench", "Examples/attention_jagged.graph", "--dim",
                            f"H={heads},T={t},d={d},B={sequences},max_len={max_len}", "--input", f"offsets={path}",
                            "--reps", str(args.reps), "--peak", "1"], capture_output=True, text=True, cwd=REPO)
    m = re.search(r"median ([\d.]+) ms", bench.stdout)
    if bench.returncode != 0 or not m:
        print(f"blockc bench failed on the jagged batch:\n{bench.stderr[-1500:]}")
        return None
    jagged_ms = float(m.group(1))
    torch.manual_seed(1)
    q, k, v = (torch.randn(1, heads, t, d) for _ in range(3))

    def padded(x):
        out = torch.zeros(sequences, heads, max_len, d)
        for b in range(sequences):
            out[b, :, :lengths[b]] = x[0, :, offsets[b]:offsets[b + 1]]
        return out

    qp, kp, vp = padded(q), padded(k), padded(v)
    key_mask = (torch.arange(max_len)[None, :] < torch.from_numpy(lengths)[:, None])[:, None, None, :]
    sdpa = torch.nn.functional.scaled_dot_product_attention
    flex_ms, err = float("nan"), float("nan")
    with torch.inference_mode():
        sdpa_ms = timed(lambda: sdpa(qp, kp, vp, attn_mask=key_mask), args.reps)
        try:
            doc = torch.from_numpy(np.searchsorted(offsets[1:-1], np.arange(t), side="right"))
            document_mask = create_block_mask(lambda b, h, qi, ki: doc[qi] == doc[ki], None, None, t, t,
                                              device="cpu", BLOCK_SIZE=blk)
            out = flex(q, k, v, block_mask=document_mask)
            ref = sdpa(qp, kp, vp, attn_mask=key_mask)
            err = max((out[0, :, offsets[b]:offsets[b + 1]] - ref[b, :, :lengths[b]]).abs().max().item()
                      for b in range(sequences))
            flex_ms = timed(lambda: flex(q, k, v, block_mask=document_mask), args.reps)
        except Exception as e:  # FlexAttention's CPU path may not take this length: report it, keep the row.
            print(f"  jagged: FlexAttention failed ({type(e).__name__}: {str(e)[:200]})")
    work_fraction = float(np.sum(lengths.astype(np.int64) ** 2)) / (sequences * max_len ** 2)
    print(f"  jagged: {sequences} sequences (lengths {', '.join(map(str, lengths))}, T={t}), blockc {jagged_ms:.1f} ms, "
          f"flex {flex_ms:.1f} ms, padded sdpa {sdpa_ms:.1f} ms (flex vs padded sdpa max error {err:.1e})", flush=True)
    return (f"| jagged, {sequences} sequences up to {max_len} (T = {t}; Σ L² = {work_fraction:.1%} of B·max_len²) | "
            f"{jagged_ms:.1f} (—) | {flex_ms:.1f} ({flex_ms / jagged_ms:.2f}×, document mask) | "
            f"{sdpa_ms:.1f} ({sdpa_ms / jagged_ms:.2f}×, padded + key mask) |")


def blockc_block_mask_ms(blockc, keep, n, bh, d, blk, reps, work, label):
    """Median ms of `blockc bench` on Examples/attention_block_mask_blocks.graph given the block
    pattern `keep` ([n/blk, n/blk] bool) as B, or None (the error printed) when it fails."""
    path = os.path.join(work, f"blocks{label}.npy")
    np.save(path, keep.reshape(1, *keep.shape))
    bench = subprocess.run([blockc, "bench", "Examples/attention_block_mask_blocks.graph", "--dim",
                            f"BH={bh},N={n},d={d},bs={blk}", "--input", f"B={path}", "--reps", str(reps),
                            "--peak", "1"], capture_output=True, text=True, cwd=REPO)
    m = re.search(r"median ([\d.]+) ms", bench.stdout)
    if bench.returncode != 0 or not m:
        print(f"blockc bench (block-mask input) failed at {label}:\n{bench.stderr[-1500:]}")
        return None
    return float(m.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--blockc", default=os.path.join(REPO, ".build/release/blockc"))
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--n", type=int, default=4096)
    args = ap.parse_args()
    import torch
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    torch.set_num_threads(THREADS)
    flex = torch.compile(flex_attention, dynamic=False)
    n, bh, d, blk = args.n, 8, 64, 128
    nb = n // blk
    work = tempfile.mkdtemp(prefix="blockc-mask-")
    _, peak = fma_peak(args.blockc)
    print(f"CPU {cpu_model()}, FMA peak {peak}, {THREADS} threads, torch {torch.__version__}, N={n}, BH={bh}, d={d}, {blk}x{blk} blocks; "
          f"scratch {work}")
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, bh, n, d) for _ in range(3))
    rows = []
    block_rows = []
    for fraction in (0.10, 0.25, 0.50, 1.00):
        keep = block_pattern(nb, fraction, seed=int(fraction * 100))
        element = np.kron(keep, np.ones((blk, blk), dtype=bool))
        path = os.path.join(work, f"mask{int(fraction * 100)}.npy")
        np.save(path, element.reshape(1, n, n))
        bench = subprocess.run([args.blockc, "bench", "Examples/attention_block_mask.graph", "--dim",
                                f"BH={bh},N={n},d={d}", "--input", f"M={path}", "--reps", str(args.reps),
                                "--peak", "1"], capture_output=True, text=True, cwd=REPO)
        m = re.search(r"median ([\d.]+) ms", bench.stdout)
        if bench.returncode != 0 or not m:
            print(f"blockc bench failed at {fraction:.0%}:\n{bench.stderr[-1500:]}")
            return 1
        blockc_ms = float(m.group(1))
        blocks_ms = blockc_block_mask_ms(args.blockc, keep, n, bh, d, blk, args.reps, work, int(fraction * 100))
        if blocks_ms is None:
            return 1
        block_rows.append((fraction, keep.mean(), blocks_ms))
        table = torch.from_numpy(keep)
        block_mask = create_block_mask(lambda b, h, qi, ki: table[qi // blk, ki // blk], None, None, n, n,
                                       device="cpu", BLOCK_SIZE=blk)
        dense = torch.from_numpy(element)
        with torch.inference_mode():
            out = flex(q, k, v, block_mask=block_mask)
            ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=dense)
            err = (out - ref).abs().max().item()
            flex_ms = timed(lambda: flex(q, k, v, block_mask=block_mask), args.reps)
            sdpa_ms = timed(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=dense),
                            args.reps)
        kept = keep.mean()
        rows.append((fraction, kept, blockc_ms, flex_ms, sdpa_ms, err))
        print(f"  {fraction:.0%}: blockc {blockc_ms:.1f} ms (block-mask input {blocks_ms:.1f} ms), "
              f"flex {flex_ms:.1f} ms, sdpa {sdpa_ms:.1f} ms "
              f"(flex vs sdpa max error {err:.1e})", flush=True)
    # Packed documents: 8 documents, boundaries at seeded random positions (no empty document).
    documents = 8
    cuts = np.sort(np.random.default_rng(8).choice(np.arange(1, n), documents - 1, replace=False))
    offsets = np.concatenate([[0], cuts, [n]]).astype(np.int32)
    path = os.path.join(work, "offsets.npy")
    np.save(path, offsets)
    bench = subprocess.run([args.blockc, "bench", "Examples/attention_packed.graph", "--dim",
                            f"BH={bh},N={n},d={d},D={documents}", "--input", f"offsets={path}", "--reps",
                            str(args.reps), "--peak", "1"], capture_output=True, text=True, cwd=REPO)
    m = re.search(r"median ([\d.]+) ms", bench.stdout)
    if bench.returncode != 0 or not m:
        print(f"blockc bench failed on packed documents:\n{bench.stderr[-1500:]}")
        return 1
    packed_ms = float(m.group(1))
    doc = torch.from_numpy(np.searchsorted(offsets[1:-1], np.arange(n), side="right"))
    document_mask = create_block_mask(lambda b, h, qi, ki: (doc[qi] == doc[ki]) & (qi >= ki), None, None, n, n,
                                      device="cpu", BLOCK_SIZE=blk)
    dense = (doc[:, None] == doc[None, :]) & torch.tril(torch.ones(n, n, dtype=torch.bool))
    with torch.inference_mode():
        out = flex(q, k, v, block_mask=document_mask)
        ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=dense)
        err = (out - ref).abs().max().item()
        flex_doc_ms = timed(lambda: flex(q, k, v, block_mask=document_mask), args.reps)
        sdpa_doc_ms = timed(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=dense),
                            args.reps)
    lengths = np.diff(offsets)
    kept_fraction = float(dense.float().mean())
    print(f"  packed: {documents} documents (lengths {', '.join(map(str, lengths))}), blockc {packed_ms:.1f} ms, "
          f"flex {flex_doc_ms:.1f} ms, sdpa {sdpa_doc_ms:.1f} ms (flex vs sdpa max error {err:.1e})", flush=True)
    jagged = jagged_row(args, torch, flex, create_block_mask, work, bh, d, blk)
    full = rows[-1][2]
    print()
    print("| kept blocks | blockc ms (÷ full) | FlexAttention ms (÷ blockc) | SDPA + bool mask ms (÷ blockc) |")
    print("|---|---|---|---|")
    for fraction, kept, b, f, s, _ in rows:
        print(f"| {kept:.1%} (target {fraction:.0%}) | {b:.1f} ({b / full:.2f}) | {f:.1f} ({f / b:.2f}×) | "
              f"{s:.1f} ({s / b:.2f}×) |")
    print(f"| packed, {documents} runtime documents, causal ({kept_fraction:.1%} of the elements) | "
          f"{packed_ms:.1f} ({packed_ms / full:.2f}) | {flex_doc_ms:.1f} ({flex_doc_ms / packed_ms:.2f}×) | "
          f"{sdpa_doc_ms:.1f} ({sdpa_doc_ms / packed_ms:.2f}×) |")
    if jagged:
        print(jagged)
    # blockc given the block mask (B), as Flex is given its BlockMask; construction untimed for both.
    full_blocks = block_rows[-1][2]
    print()
    print("| kept blocks | blockc, block-mask input ms (÷ full) | FlexAttention ms (÷ blockc) | "
          "blockc, element mask ms (÷ block-mask input) |")
    print("|---|---|---|---|")
    for (fraction, kept, b), (_, _, e, f, _, _) in zip(block_rows, rows):
        print(f"| {kept:.1%} (target {fraction:.0%}) | {b:.1f} ({b / full_blocks:.2f}) | {f:.1f} ({f / b:.2f}×) | "
              f"{e:.1f} ({e / b:.2f}×) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
