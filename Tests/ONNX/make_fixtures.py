#!/usr/bin/env python3
"""Writes the ONNX test fixtures under Tests/ONNX/fixtures/: tiny transformer blocks built with
the `onnx` helper API and exported from PyTorch modules (fixed seeds), their inputs, and ONNX
Runtime's outputs as .npy.

    python3 -m venv .venv-onnx
    .venv-onnx/bin/pip install onnx onnxruntime numpy "torch==2.13.0+cpu" onnxscript
    .venv-onnx/bin/python Tests/ONNX/make_fixtures.py

Each fixture NAME gives NAME.onnx, NAME.input.<input>.npy and NAME.output.<output>.npy; the
PyTorch exports keep their weights as external data in NAME.onnx.data. Without torch only the
helper-API fixtures are written; names on the command line (`make_fixtures.py bert_ts14`) write
only those fixtures.
"""
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


class Builder:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes = []
        self.inits = []
        self.count = 0

    def name(self, hint):
        self.count += 1
        return f"/{hint}_{self.count}"

    def weight(self, name, shape, scale=0.2):
        a = (self.rng.standard_normal(shape) * scale).astype(np.float32)
        self.inits.append(numpy_helper.from_array(a, name))
        return name

    def const(self, value, dtype=np.int64):
        n = self.name("const")
        self.inits.append(numpy_helper.from_array(np.array(value, dtype=dtype), n))
        return n

    def op(self, op_type, inputs, outputs=1, **attrs):
        outs = [self.name(op_type) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=self.name(op_type + "_node"), **attrs))
        return outs[0] if outputs == 1 else outs


def save(name, b, inputs, outputs, feeds, opset):
    graph = helper.make_graph(b.nodes, name, inputs, outputs, b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    path = os.path.join(HERE, name + ".onnx")
    onnx.save(model, path)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    results = session.run(None, feeds)
    for k, v in feeds.items():
        np.save(os.path.join(HERE, f"{name}.input.{k}.npy"), v)
    for o, r in zip(outputs, results):
        np.save(os.path.join(HERE, f"{name}.output.{o.name}.npy"), r)
    print(name, os.path.getsize(path), "bytes")


def gpt2_block(seq=16, d=32, heads=4):
    """Pre-LN GPT-2 block: causal attention masked with Trilu/Where, head shapes by Shape→Gather→
    Concat→Reshape, the 1/√d scale from Shape→Gather→Cast→Sqrt, exact (erf) GELU MLP."""
    b = Builder(2)
    hd = d // heads
    x = "x"
    ln1 = b.op("LayerNormalization", [x, b.weight("ln1.weight", [d], 1.0), b.weight("ln1.bias", [d])],
               epsilon=1e-5)
    qkv = b.op("Add", [b.op("MatMul", [ln1, b.weight("attn.c_attn.weight", [d, 3 * d])]),
                       b.weight("attn.c_attn.bias", [3 * d])])
    q, k, v = b.op("Split", [qkv, b.const([d, d, d])], outputs=3, axis=2)
    shape = b.op("Shape", [x])
    lead = b.op("Slice", [shape, b.const([0]), b.const([2])])
    heads_shape = b.op("Concat", [lead, b.const([heads, hd])], axis=0)

    def split_heads(t, perm):
        return b.op("Transpose", [b.op("Reshape", [t, heads_shape])], perm=perm)

    qh = split_heads(q, [0, 2, 1, 3])
    kt = split_heads(k, [0, 2, 3, 1])
    vh = split_heads(v, [0, 2, 1, 3])
    head_dim = b.op("Cast", [b.op("Gather", [b.op("Shape", [qh]), b.const(-1)], axis=0)], to=TensorProto.FLOAT)
    scores = b.op("Div", [b.op("MatMul", [qh, kt]), b.op("Sqrt", [head_dim])])
    n = b.op("Gather", [shape, b.const(1)], axis=0)
    square = b.op("Concat", [b.op("Unsqueeze", [n, b.const([0])]), b.op("Unsqueeze", [n, b.const([0])])], axis=0)
    ones = b.op("ConstantOfShape", [square], value=helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0]))
    mask = b.op("Cast", [b.op("Trilu", [ones], upper=0)], to=TensorProto.BOOL)
    masked = b.op("Where", [mask, scores, b.const(-np.inf, np.float32)])
    probs = b.op("Softmax", [masked], axis=-1)
    ctx = b.op("Transpose", [b.op("MatMul", [probs, vh])], perm=[0, 2, 1, 3])
    merged = b.op("Reshape", [ctx, b.const([0, 0, -1])])
    proj = b.op("Add", [b.op("MatMul", [merged, b.weight("attn.c_proj.weight", [d, d])]),
                        b.weight("attn.c_proj.bias", [d])])
    h = b.op("Add", [x, proj])
    ln2 = b.op("LayerNormalization", [h, b.weight("ln2.weight", [d], 1.0), b.weight("ln2.bias", [d])],
               epsilon=1e-5)
    fc = b.op("Add", [b.op("MatMul", [ln2, b.weight("mlp.c_fc.weight", [d, 4 * d])]),
                      b.weight("mlp.c_fc.bias", [4 * d])])
    erf = b.op("Erf", [b.op("Div", [fc, b.const(np.sqrt(2.0), np.float32)])])
    gelu = b.op("Mul", [b.op("Mul", [fc, b.op("Add", [erf, b.const(1.0, np.float32)])]),
                        b.const(0.5, np.float32)])
    down = b.op("Add", [b.op("MatMul", [gelu, b.weight("mlp.c_proj.weight", [4 * d, d])]),
                        b.weight("mlp.c_proj.bias", [d])])
    b.nodes.append(helper.make_node("Add", [h, down], ["y"], name="/residual"))
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "seq", d])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "seq", d])]
    feeds = {"x": np.random.default_rng(12).standard_normal((1, seq, d)).astype(np.float32)}
    save("gpt2_block", b, inputs, outputs, feeds, opset=17)


def llama_block(seq=16, d=48, heads=4, kv_heads=2):
    """Llama block, opset 23: RMSNormalization, RoPE (Range→cos/sin folded at import,
    rotate_half by Slice/Neg/Concat), grouped-query Attention with is_causal, SwiGLU MLP."""
    b = Builder(3)
    hd = d // heads
    x = "x"
    rms1 = b.op("RMSNormalization", [x, b.weight("input_layernorm.weight", [d], 1.0)], epsilon=1e-6)

    def project(t, name, out):
        return b.op("MatMul", [t, b.weight(name, [d, out])])

    def heads_of(t, h):
        return b.op("Transpose", [b.op("Reshape", [t, b.const([1, seq, h, hd])])], perm=[0, 2, 1, 3])

    q = heads_of(project(rms1, "q_proj.weight", d), heads)
    k = heads_of(project(rms1, "k_proj.weight", kv_heads * hd), kv_heads)
    v = heads_of(project(rms1, "v_proj.weight", kv_heads * hd), kv_heads)
    n = b.op("Gather", [b.op("Shape", [x]), b.const(1)], axis=0)
    pos = b.op("Cast", [b.op("Range", [b.const(0), n, b.const(1)])], to=TensorProto.FLOAT)
    inv_freq = b.const(1.0 / (10000 ** (np.arange(0, hd, 2) / hd)), np.float32)
    freqs = b.op("Mul", [b.op("Unsqueeze", [pos, b.const([1])]), b.op("Unsqueeze", [inv_freq, b.const([0])])])
    emb = b.op("Concat", [freqs, freqs], axis=-1)
    cos = b.op("Cos", [emb])
    sin = b.op("Sin", [emb])

    def rope(t):
        lo = b.op("Slice", [t, b.const([0]), b.const([hd // 2]), b.const([3])])
        hi = b.op("Slice", [t, b.const([hd // 2]), b.const([2**62]), b.const([-1])])
        rotated = b.op("Concat", [b.op("Neg", [hi]), lo], axis=-1)
        return b.op("Add", [b.op("Mul", [t, cos]), b.op("Mul", [rotated, sin])])

    attn = b.op("Attention", [rope(q), rope(k), v], is_causal=1)
    merged = b.op("Reshape", [b.op("Transpose", [attn], perm=[0, 2, 1, 3]), b.const([1, seq, d])])
    h = b.op("Add", [x, project(merged, "o_proj.weight", d)])
    rms2 = b.op("RMSNormalization", [h, b.weight("post_attention_layernorm.weight", [d], 1.0)], epsilon=1e-6)
    gate = project(rms2, "gate_proj.weight", 2 * d)
    up = project(rms2, "up_proj.weight", 2 * d)
    act = b.op("Mul", [b.op("Mul", [gate, b.op("Sigmoid", [gate])]), up])
    down = b.op("MatMul", [act, b.weight("down_proj.weight", [2 * d, d])])
    b.nodes.append(helper.make_node("Add", [h, down], ["y"], name="/residual"))
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, seq, d])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, seq, d])]
    feeds = {"x": np.random.default_rng(13).standard_normal((1, seq, d)).astype(np.float32)}
    save("llama_block", b, inputs, outputs, feeds, opset=23)


def ops_mix(n=6, d=8):
    """Many ops at once, each result an output: Gemm, reductions with and without keepdims,
    Squeeze/Unsqueeze, Expand, Where on a computed condition, Pow, Gelu (opset 20, both
    approximations), Cast/CastLike, an int64 token embedding (Gather by an input), Attention with
    3-D inputs and a boolean mask input, Trilu on a computed tensor, Slice with negative bounds."""
    b = Builder(4)
    x = "x"
    tokens = "tokens"
    mask = "mask"
    outs = []

    def out(name, value, shape, dtype=TensorProto.FLOAT):
        b.nodes.append(helper.make_node("Identity", [value], [name], name="/out_" + name))
        outs.append(helper.make_tensor_value_info(name, dtype, shape))

    gemm = b.op("Gemm", [x, b.weight("gemm.w", [d, d]), b.weight("gemm.b", [d])], transB=1, alpha=0.5, beta=2.0)
    out("gemm", gemm, [n, d])
    out("reduce_sum", b.op("ReduceSum", [x, b.const([1])], keepdims=0), [n])
    out("reduce_max", b.op("ReduceMax", [x, b.const([0, 1])], keepdims=1), [1, 1])
    out("reduce_mean", b.op("ReduceMean", [x, b.const([-1])]), [n, 1])
    sq = b.op("Squeeze", [b.op("Unsqueeze", [x, b.const([0, 3])]), b.const([3])])
    out("expand", b.op("Expand", [sq, b.const([2, n, d])]), [2, n, d])
    cond = b.op("Less", [x, b.const(0.0, np.float32)])
    out("where", b.op("Where", [cond, b.op("Neg", [x]), b.op("Pow", [x, b.const(2.0, np.float32)])]), [n, d])
    out("gelu", b.op("Add", [b.op("Gelu", [x]), b.op("Gelu", [x], approximate="tanh")]), [n, d])
    as_int = b.op("Cast", [b.op("Mul", [x, b.const(4.0, np.float32)])], to=TensorProto.INT32)
    out("cast", b.op("CastLike", [as_int, x]), [n, d])
    emb = b.op("Gather", [b.weight("wte.weight", [10, d]), tokens], axis=0)
    out("embedding", b.op("Add", [emb, b.op("Tanh", [b.op("Sigmoid", [x])])]), [n, d])
    q = b.op("MatMul", [b.op("Unsqueeze", [x, b.const([0])]), b.weight("attn.q", [d, d])])
    k = b.op("MatMul", [b.op("Unsqueeze", [x, b.const([0])]), b.weight("attn.k", [d, d])])
    v = b.op("MatMul", [b.op("Unsqueeze", [x, b.const([0])]), b.weight("attn.v", [d, d])])
    out("attention", b.op("Attention", [q, k, v, mask], q_num_heads=2, kv_num_heads=2), [1, n, d])
    out("trilu", b.op("Trilu", [x, b.const(1)], upper=1), [n, d])
    out("slice", b.op("Slice", [x, b.const([-4, 1]), b.const([-1, 100]), b.const([1, 0])]), [n - 1, 3])
    out("reciprocal", b.op("Reciprocal", [b.op("Add", [b.op("Exp", [x]), b.const(1.0, np.float32)])]), [n, d])
    rng = np.random.default_rng(14)
    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, d]),
        helper.make_tensor_value_info("tokens", TensorProto.INT64, [n]),
        helper.make_tensor_value_info("mask", TensorProto.BOOL, [n, n]),
    ]
    feeds = {
        "x": rng.standard_normal((n, d)).astype(np.float32),
        "tokens": rng.integers(0, 10, n).astype(np.int64),
        "mask": rng.random((n, n)) < 0.7,
    }
    feeds["mask"][:, 0] = True
    save("ops_mix", b, inputs, outs, feeds, opset=23)
    # blockc reads int64 data as i32.
    np.save(os.path.join(HERE, "ops_mix.input.tokens.npy"), feeds["tokens"].astype(np.int32))


def ops_mix2(n=6, d=8):
    """The other ops and attribute forms: Constant (value, value_ints, value_float), Split by
    num_outputs, Squeeze without axes, softmax over a leading axis, comparisons and connectives,
    Max/Min/Relu/Abs/Log/Sqrt/Sin/Cos, LayerNormalization without a bias, Gemm without C, 1-D
    MatMul, Reshape with allowzero, RMSNormalization with defaults, grouped 3-D Attention with
    softcap and a float mask."""
    b = Builder(7)
    x = "x"
    outs = []

    def out(name, value, shape, dtype=TensorProto.FLOAT):
        b.nodes.append(helper.make_node("Identity", [value], [name], name="/out_" + name))
        outs.append(helper.make_tensor_value_info(name, dtype, shape))

    shape = b.op("Constant", [], value_ints=[1, n, d])
    three = b.op("Constant", [], value_float=3.0)
    half = b.op("Constant", [], value=helper.make_tensor("h", TensorProto.FLOAT, [], [0.5]))
    x3 = b.op("Reshape", [x, shape], allowzero=1)
    out("softmax0", b.op("Softmax", [b.op("Mul", [x3, three])], axis=1), [1, n, d])
    a, c = b.op("Split", [x], outputs=2, axis=1, num_outputs=2)
    out("split", b.op("Sub", [a, b.op("Mul", [c, half])]), [n, d // 2])
    out("squeeze", b.op("Squeeze", [x3]), [n, d])
    pos = b.op("Greater", [x, b.const(0.2, np.float32)])
    neg = b.op("LessOrEqual", [x, b.const(-0.2, np.float32)])
    mid = b.op("Not", [b.op("Or", [pos, neg])])
    both = b.op("And", [b.op("GreaterOrEqual", [x, b.const(-1.0, np.float32)]), b.op("Equal", [pos, pos])])
    out("logic", b.op("Add", [b.op("Cast", [mid], to=TensorProto.FLOAT), b.op("Cast", [both], to=TensorProto.FLOAT)]),
        [n, d])
    out("maxmin", b.op("Add", [b.op("Max", [x, b.op("Relu", [b.op("Neg", [x])])]), b.op("Min", [x, b.op("Abs", [x])])]),
        [n, d])
    out("trig", b.op("Add", [b.op("Log", [b.op("Sqrt", [b.op("Add", [b.op("Abs", [x]), b.const(1.0, np.float32)])])]),
                             b.op("Mul", [b.op("Sin", [x]), b.op("Cos", [x])])]), [n, d])
    out("layernorm", b.op("LayerNormalization", [x, b.weight("ln.w", [d], 1.0)], axis=-1), [n, d])
    out("gemm", b.op("Gemm", [x, b.weight("g.w", [d, 3])]), [n, 3])
    out("matvec", b.op("MatMul", [x, b.weight("mv", [d])]), [n])
    out("rmsnorm", b.op("RMSNormalization", [x, b.weight("rms.w", [d], 1.0)], axis=-1), [n, d])
    x1 = b.op("Unsqueeze", [x, b.const([0])])
    q = b.op("MatMul", [x1, b.weight("attn.q", [d, 2 * d])])
    k = b.op("MatMul", [x1, b.weight("attn.k", [d, d])])
    v = b.op("MatMul", [x1, b.weight("attn.v", [d, d])])
    bias = b.weight("attn.bias", [n, n], 1.0)
    out("attention", b.op("Attention", [q, k, v, bias], q_num_heads=4, kv_num_heads=2, softcap=3.0), [1, n, 2 * d])
    rng = np.random.default_rng(17)
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, d])]
    feeds = {"x": rng.standard_normal((n, d)).astype(np.float32)}
    save("ops_mix2", b, inputs, outs, feeds, opset=23)


def torch_modules():
    """The GPT-2 and Llama blocks as PyTorch modules (also used, at full size, by
    Benchmarks/onnx_layers.py): GPT2Block(d, h, t) with a causal `masked_fill`, LlamaBlock(d, h,
    kv, ffn) with RMSNorm, RoPE, grouped K/V heads by repeat_interleave and SwiGLU."""
    import math

    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class GPT2Block(nn.Module):
        def __init__(self, d=32, h=4, t=16):
            super().__init__()
            self.h = h
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.c_attn, self.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
            self.fc, self.proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
            self.register_buffer("bias", torch.tril(torch.ones(t, t)).view(1, 1, t, t))
            with torch.no_grad():
                for ln in (self.ln1, self.ln2):
                    ln.weight.uniform_(0.5, 1.5)
                    ln.bias.uniform_(-0.2, 0.2)

        def forward(self, x):
            b, t, c = x.shape
            q, k, v = self.c_attn(self.ln1(x)).split(c, dim=2)
            q, k, v = (z.view(b, t, self.h, c // self.h).transpose(1, 2) for z in (q, k, v))
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(self.bias[:, :, :t, :t] == 0, float("-inf"))
            y = (F.softmax(att, dim=-1) @ v).transpose(1, 2).contiguous().view(b, t, c)
            x = x + self.c_proj(y)
            return x + self.proj(F.gelu(self.fc(self.ln2(x))))

    def rotate_half(x):
        return torch.cat((-x[..., x.shape[-1] // 2:], x[..., : x.shape[-1] // 2]), dim=-1)

    class LlamaBlock(nn.Module):
        def __init__(self, d=48, h=4, kv=2, ffn=None):
            super().__init__()
            ffn = ffn or 2 * d
            self.h, self.kv, self.hd = h, kv, d // h
            self.n1, self.n2 = nn.RMSNorm(d, eps=1e-6), nn.RMSNorm(d, eps=1e-6)
            self.q, self.o = nn.Linear(d, d, bias=False), nn.Linear(d, d, bias=False)
            self.k, self.v = nn.Linear(d, kv * self.hd, bias=False), nn.Linear(d, kv * self.hd, bias=False)
            self.gate, self.up = nn.Linear(d, ffn, bias=False), nn.Linear(d, ffn, bias=False)
            self.down = nn.Linear(ffn, d, bias=False)
            self.register_buffer("inv_freq", 1.0 / (10000 ** (torch.arange(0, self.hd, 2).float() / self.hd)))
            with torch.no_grad():
                self.n1.weight.uniform_(0.5, 1.5)
                self.n2.weight.uniform_(0.5, 1.5)

        def forward(self, x):
            b, t, c = x.shape
            h = self.n1(x)
            q = self.q(h).view(b, t, self.h, self.hd).transpose(1, 2)
            k = self.k(h).view(b, t, self.kv, self.hd).transpose(1, 2)
            v = self.v(h).view(b, t, self.kv, self.hd).transpose(1, 2)
            freqs = torch.outer(torch.arange(t, dtype=torch.float32), self.inv_freq)
            emb = torch.cat((freqs, freqs), dim=-1)
            cos, sin = emb.cos(), emb.sin()
            q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
            k = k.repeat_interleave(self.h // self.kv, dim=1)
            v = v.repeat_interleave(self.h // self.kv, dim=1)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.o(y.transpose(1, 2).reshape(b, t, c))
            h = self.n2(x)
            return x + self.down(F.silu(self.gate(h)) * self.up(h))

    return GPT2Block, LlamaBlock


def bert_module():
    """A BERT encoder layer as a PyTorch module, as Hugging Face's eager `BertLayer` computes it:
    Q/K/V projections with bias, scores divided by √d_head plus the additive padding mask
    `(1 - mask) · float32 lowest` (mask [B, T], 1 keeps and 0 pads, broadcast over heads and
    queries), softmax, output projection, residual + LayerNorm (post-LN, eps 1e-12), exact (erf)
    GELU FFN, residual + LayerNorm."""
    import math

    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class BertLayer(nn.Module):
        def __init__(self, d=32, h=4, ffn=None):
            super().__init__()
            ffn = ffn or 4 * d
            self.h, self.hd = h, d // h
            self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
            self.ln1, self.ln2 = nn.LayerNorm(d, eps=1e-12), nn.LayerNorm(d, eps=1e-12)
            self.up, self.down = nn.Linear(d, ffn), nn.Linear(ffn, d)
            with torch.no_grad():
                for ln in (self.ln1, self.ln2):
                    ln.weight.uniform_(0.5, 1.5)
                    ln.bias.uniform_(-0.2, 0.2)

        def forward(self, x, mask):
            b, t, c = x.shape
            q, k, v = (f(x).view(b, t, self.h, self.hd).transpose(1, 2) for f in (self.q, self.k, self.v))
            extended = (1.0 - mask[:, None, None, :]) * torch.finfo(torch.float32).min
            att = q @ k.transpose(-1, -2) / math.sqrt(self.hd) + extended
            y = (F.softmax(att, dim=-1) @ v).transpose(1, 2).reshape(b, t, c)
            x = self.ln1(x + self.o(y))
            return self.ln2(x + self.down(F.gelu(self.up(x))))

    return BertLayer


def save_torch_export(name, path, feeds, model, args):
    """Rewrites an exported model without the exporter's stack traces (absolute paths), weights
    of 1 KB and more as external data in NAME.onnx.data; stores its inputs and ONNX Runtime's
    outputs, checked against the module's within 1e-4."""
    import torch

    exported = onnx.load(path)
    for node in exported.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    del exported.metadata_props[:]
    exported.producer_version = ""
    if os.path.exists(path + ".data"):
        os.remove(path + ".data")
    onnx.save(exported, path, save_as_external_data=True, all_tensors_to_one_file=True,
              location=name + ".onnx.data", size_threshold=1024)
    os.chmod(path + ".data", 0o644)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (y,) = session.run(None, feeds)
    for k, v in feeds.items():
        np.save(os.path.join(HERE, f"{name}.input.{k}.npy"), v)
    np.save(os.path.join(HERE, f"{name}.output.y.npy"), y)
    with torch.no_grad():
        assert np.abs(model(*args).numpy() - y).max() < 1e-4, name
    print(name, os.path.getsize(path), "bytes +", os.path.getsize(path + ".data"), "bytes of data")


def torch_fixtures(selected):
    """GPT-2 and Llama blocks as PyTorch modules, exported by torch.onnx.export (dynamo):
    what a real exporter writes (external data, additive float masks, repeat_interleave as
    Expand, transposed weights)."""
    import torch

    GPT2Block, LlamaBlock = torch_modules()
    for name, module, shape, seed in [
        ("gpt2_torch", GPT2Block, (1, 16, 32), 5),
        ("llama_torch", LlamaBlock, (1, 16, 48), 6),
    ]:
        if not selected(name):
            continue
        torch.manual_seed(seed)
        model = module().eval()
        x = torch.randn(*shape)
        path = os.path.join(HERE, name + ".onnx")
        torch.onnx.export(model, (x,), path, dynamo=True, input_names=["x"], output_names=["y"],
                          external_data=True)
        save_torch_export(name, path, {"x": x.numpy()}, model, (x,))


def bert_fixtures(selected):
    """The BERT encoder layer (one module, one seed) exported four ways, seq as the named dim
    `seq` (bound to 16; the last 5 tokens padded): by the dynamo exporter at opsets 20 (its
    default; the `Gelu` op) and 18 (GELU as Erf), and by the TorchScript exporter
    (`dynamo=False`, which stops at opset 20) at opset 14 (LayerNorm decomposed to
    ReduceMean/Sub/Pow/Sqrt/Div, before `LayerNormalization`) and 17; both TorchScript exports
    compute head shapes by Shape → Gather → Unsqueeze → Concat → Reshape."""
    import torch
    from torch.export import Dim

    BertLayer = bert_module()
    torch.manual_seed(8)
    model = BertLayer().eval()
    x = torch.randn(1, 16, 32)
    mask = torch.ones(1, 16)
    mask[:, -5:] = 0
    for name, dynamo, opset in [
        ("bert_dynamo18", True, 18),
        ("bert_dynamo20", True, 20),
        ("bert_ts14", False, 14),
        ("bert_ts17", False, 17),
    ]:
        if not selected(name):
            continue
        path = os.path.join(HERE, name + ".onnx")
        if dynamo:
            seq = Dim("seq", min=2, max=512)
            torch.onnx.export(model, (x, mask), path, dynamo=True, opset_version=opset, input_names=["x", "mask"],
                              output_names=["y"], dynamic_shapes={"x": {1: seq}, "mask": {1: seq}},
                              external_data=True)
        else:
            torch.onnx.export(model, (x, mask), path, dynamo=False, opset_version=opset, input_names=["x", "mask"],
                              output_names=["y"], dynamic_axes={"x": {1: "seq"}, "mask": {1: "seq"}})
        save_torch_export(name, path, {"x": x.numpy(), "mask": mask.numpy()}, model, (x, mask))


if __name__ == "__main__":
    names = set(sys.argv[1:])

    def selected(name):
        return not names or name in names

    os.makedirs(HERE, exist_ok=True)
    for fixture in (gpt2_block, llama_block, ops_mix, ops_mix2):
        if selected(fixture.__name__):
            fixture()
    try:
        import torch  # noqa: F401
    except ImportError:
        print("torch is not installed: the PyTorch exports are not rewritten")
    else:
        torch_fixtures(selected)
        bert_fixtures(selected)
