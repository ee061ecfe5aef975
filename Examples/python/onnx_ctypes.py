#!/usr/bin/env python3
"""Call a model compiled by blockc from Python, with ctypes and NumPy only (no package of ours).

    python3 Examples/python/onnx_ctypes.py [MODEL.onnx] [--dim NAME=N ...] [--torch] [--blockc PATH]

1. `blockc import` writes the model's weights (its initializers) as NAME.npy files;
2. `blockc emit-c` writes the header, whose comment lists the entry point's parameters in order
   (inputs first, then outputs, each with its type and shape);
3. `blockc build` compiles the fused program into a shared library;
4. ctypes loads it, and the entry point is called on NumPy arrays: the weights from step 1, the
   model's other inputs (a fixture's saved input, or random values), and output arrays to fill.

The result is compared with ONNX Runtime when `onnxruntime` is importable, else with blockc's own
interpreter (`blockc run`). With --torch (needs torch and onnx), the model is first exported from
a small PyTorch module by torch.onnx.export, as Docs/ONNX.md's tutorial does.

The default model is the Llama-style block of the ONNX test fixtures (RMSNorm, RoPE, grouped
query attention, SwiGLU).
"""
import argparse
import ctypes
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DTYPES = {"f32": np.float32, "f16": np.float16, "bf16": np.uint16, "i32": np.int32, "bool": np.bool_}
PARAM = re.compile(r"/\*\s+blk_t_\w+: (input|output) '([^']+)', (\w+)\[([\d, ]*)\]")


def blockc(binary, *args):
    result = subprocess.run([binary, *args], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"blockc {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def export_torch_module(path):
    """A small attention block written in PyTorch, exported with torch.onnx.export."""
    import torch

    class Block(torch.nn.Module):
        def __init__(self, d=32, heads=2):
            super().__init__()
            self.heads = heads
            self.norm = torch.nn.LayerNorm(d)
            self.qkv = torch.nn.Linear(d, 3 * d, bias=False)
            self.out = torch.nn.Linear(d, d, bias=False)

        def forward(self, x):
            b, s, d = x.shape
            q, k, v = self.qkv(self.norm(x)).split(d, dim=-1)
            q, k, v = (t.reshape(b, s, self.heads, d // self.heads).transpose(1, 2) for t in (q, k, v))
            a = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
            return x + self.out(a.transpose(1, 2).reshape(b, s, d))

    torch.manual_seed(0)
    torch.onnx.export(Block().eval(), (torch.randn(1, 16, 32),), path, input_names=["x"], output_names=["y"],
                      dynamo=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", nargs="?", default=os.path.join(REPO, "Tests/ONNX/fixtures/llama_block.onnx"))
    ap.add_argument("--dim", action="append", default=[], help="NAME=N for a symbolic dimension")
    ap.add_argument("--torch", action="store_true", help="export a small PyTorch module first and use it")
    ap.add_argument("--blockc", default=os.path.join(REPO, ".build/debug/blockc"))
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="blockc-ctypes-")
    model = args.model
    if args.torch:
        model = os.path.join(work, "block.onnx")
        export_torch_module(model)
    dims = [a for d in args.dim for a in ("--dim", d)]

    # 1-3: weights, header, shared library.
    blockc(args.blockc, "import", model, "-o", os.path.join(work, "model.graph"),
           "--weights-dir", os.path.join(work, "weights"), *dims)
    blockc(args.blockc, "emit-c", model, "-o", os.path.join(work, "model.c"), *dims)
    library = os.path.join(work, "libmodel.so")
    blockc(args.blockc, "build", model, "-o", library, *dims)
    header = open(os.path.join(work, "model.h")).read()
    entry = re.search(r"^void (blk_u_\w+)\(", header, re.M).group(1)
    params = [(role, name, kind, tuple(int(n) for n in shape.split(",") if n.strip()))
              for role, name, kind, shape in PARAM.findall(header)]

    # 4: arrays in the header's order; weights from the import, the rest from a fixture or random.
    rng = np.random.default_rng(0)
    stem = os.path.splitext(model)[0]
    arrays, inputs, outputs = [], {}, {}
    for role, name, kind, shape in params:
        dtype = DTYPES[kind]
        if role == "output":
            a = np.zeros(shape, dtype=dtype)
            outputs[name] = a
        else:
            weight = os.path.join(work, "weights", name + ".npy")
            saved = f"{stem}.input.{name}.npy"
            if os.path.exists(weight):
                a = np.load(weight)
            elif os.path.exists(saved):
                a = np.load(saved)
            else:
                a = rng.standard_normal(shape).astype(dtype)
            a = np.ascontiguousarray(a, dtype=dtype)
            assert a.shape == shape, (name, a.shape, shape)
            inputs[name] = a
        arrays.append(a)
    lib = ctypes.CDLL(library)
    fn = getattr(lib, entry)
    fn.restype = None
    fn.argtypes = [ctypes.c_void_p] * len(arrays)
    fn(*[a.ctypes.data for a in arrays])

    # The reference: ONNX Runtime on the same inputs, else blockc's interpreter.
    model_inputs = [name for role, name, _, _ in params
                    if role == "input" and not os.path.exists(os.path.join(work, "weights", name + ".npy"))]
    try:
        import onnxruntime
        session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
        feeds = {i.name: inputs[i.name].astype(np.int64) if i.type == "tensor(int64)" else inputs[i.name]
                 for i in session.get_inputs()}
        reference = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
        against = "ONNX Runtime"
    except ImportError:
        for name in model_inputs:
            np.save(os.path.join(work, name + ".npy"), inputs[name])
        given = [a for name in model_inputs for a in ("--input", f"{name}={os.path.join(work, name + '.npy')}")]
        blockc(args.blockc, "run", model, *dims, *given, "--output-dir", os.path.join(work, "out"))
        reference = {name: np.load(os.path.join(work, "out", name + ".npy")) for name in outputs}
        against = "blockc's interpreter"
    worst = 0.0
    for name, got in outputs.items():
        want = np.asarray(reference[name], dtype=np.float32)
        err = float(np.max(np.abs(got.astype(np.float32) - want)))
        worst = max(worst, err / max(1.0, float(np.max(np.abs(want)))))
        print(f"{name}: {got.shape} max abs error {err:.3g} against {against}")
    print(f"{entry} from {os.path.relpath(library, work)} in {work}: {'ok' if worst < 1e-4 else 'MISMATCH'}")
    return 0 if worst < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
