"""torch on the GPU at the examples' full sizes, for Benchmarks/gpu/check.sh: median of 20 CUDA-event timings."""
import torch
import torch.nn.functional as F

if not torch.cuda.is_available():
    raise SystemExit("torch sees no GPU")
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


def median_ms(f, reps=20):
    f()
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(reps):
        start.record()
        f()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return sorted(times)[reps // 2]


dev = "cuda"
print("torch", torch.__version__, torch.cuda.get_device_name())
for dt in (torch.float32, torch.bfloat16):
    q, k, v = (torch.randn(1, 8, 1024, 64, device=dev, dtype=dt) for _ in range(3))
    for causal in (False, True):
        ms = median_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal))
        print(f"torch sdpa {dt} causal={causal} BH=8 N=1024 d=64: {ms:.4f} ms")
x, w = torch.randn(4096, 1024, device=dev), torch.randn(1024, 1024, device=dev)
g, b = torch.randn(1024, device=dev), torch.randn(1024, device=dev)
ln = median_ms(lambda: F.layer_norm(x, (1024,), g, b) @ w)
print(f"torch layernorm+matmul f32 4096x1024x1024: {ln:.4f} ms; matmul alone {median_ms(lambda: x @ w):.4f} ms")
for dt in (torch.float32, torch.bfloat16):
    X, gm = torch.randn(2048, 1024, device=dev, dtype=dt), torch.randn(1024, device=dev, dtype=dt)
    W1, W3 = (torch.randn(1024, 2816, device=dev, dtype=dt) for _ in range(2))
    W2 = torch.randn(2816, 1024, device=dev, dtype=dt)

    def swiglu():
        xn = X * torch.rsqrt((X.float() ** 2).mean(-1, keepdim=True) + 1e-6).to(dt) * gm
        return (F.silu(xn @ W1) * (xn @ W3)) @ W2

    print(f"torch rmsnorm+swiglu {dt} M=2048 d=1024 h=2816: {median_ms(swiglu):.4f} ms")
