#!/usr/bin/env python3
"""Runs blockc (fused and --no-fusion) and its peers side by side and prints one table.

Called by Benchmarks/run.sh (which builds blockc and installs the peers); see Benchmarks/README.md.
Only the standard library is used here; the peers run in child processes with the venv's python
(Benchmarks/peers.py), one framework per process so that one runtime's spinning thread pool cannot
steal the two cores from the next.
"""
import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
# The project's shared folder sits next to the repository (and next to every worktree of it):
# ../shared/peers holds attn.c, peak_flops.c and the other peer programs.
PEERS_DIR = os.path.normpath(os.path.join(REPO, "..", "shared", "peers"))
REFERENCE_PEAK = 245.0  # BENCHMARKS.md's AMD Zen 4 figure: used only when the peak cannot be measured
THREADS = "2"

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--quick", action="store_true", help="small sizes, 3 reps: a smoke test (minutes)")
ap.add_argument("--n4096", action="store_true", help="also attention full/causal at N=4096")
ap.add_argument("--tune", action="store_true", help="run 'blockc tune' on every workload first (up to 60 s each) and "
                                                     "time the tuned choice too; targets use the faster of the two")
ap.add_argument("--reps", type=int, default=None, help="timed repetitions per case (default 10, --quick 3)")
ap.add_argument("--warmup", type=int, default=2, help="untimed calls before the timed ones (peers)")
ap.add_argument("--blockc", default=os.path.join(REPO, ".build/release/blockc"))
ap.add_argument("--python", default=os.path.join(REPO, ".venv-bench/bin/python"), help="python with the peers")
ap.add_argument("--peers-dir", default=PEERS_DIR, help="folder with attn.c and peak_flops.c (default ../shared/peers "
                                                        "next to the repository)")
ap.add_argument("--peak", type=float, default=None, help="GFLOP/s to report %% of peak against, instead of the peak "
                                                          "measured in this run by 'blockc peak'")
ap.add_argument("--workdir", default=None, help="scratch folder for builds and logs (default: a new /tmp folder)")
ap.add_argument("--skip", default="", help="comma list of parts to skip: blockc-unfused,numpy,torch,flex,ort,"
                                          "attnc,memory,peak,bf16,variants")
ap.add_argument("--json", default=None, help="also write every measurement to this JSON file")
args = ap.parse_args()
REPS = args.reps or (3 if args.quick else 10)
if REPS > 64:
    sys.exit("--reps must be at most 64 (peers/attn.c keeps at most 64 samples)")
SKIP = set(filter(None, args.skip.split(",")))
WORK = args.workdir or subprocess.run(["mktemp", "-d", "/tmp/blockc-bench.XXXXXX"], capture_output=True,
                                      text=True, check=True).stdout.strip()
os.makedirs(WORK, exist_ok=True)
LOG = open(os.path.join(WORK, "log.txt"), "a")
T_START = time.perf_counter()

BASE_ENV = dict(os.environ, OMP_NUM_THREADS=THREADS, MKL_NUM_THREADS=THREADS, OPENBLAS_NUM_THREADS=THREADS)
# OpenBLAS tuning variables this machine's environment sets (they select a slower AVX2 kernel and a small
# L2 model for OpenBLAS): unset for the NumPy measurements only.
OPENBLAS_TUNING = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def status(msg):
    print(f"[{time.perf_counter() - T_START:6.0f} s] {msg}", file=sys.stderr, flush=True)
    LOG.write(f"## {msg}\n")
    LOG.flush()


def sh(cmd, env=None, timeout=1800, cwd=REPO):
    """Runs a command; returns (rc, stdout, stderr). Everything goes to the log."""
    LOG.write("$ " + " ".join(cmd) + "\n")
    try:
        r = subprocess.run(cmd, env=env or BASE_ENV, cwd=cwd, capture_output=True, text=True, timeout=timeout)
        rc, out, err = r.returncode, r.stdout, r.stderr
    except subprocess.TimeoutExpired as e:
        rc, out, err = "timeout", (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (
            e.stdout or ""), f"timed out after {timeout} s"
    except OSError as e:
        rc, out, err = "oserror", "", str(e)
    LOG.write(out + ("\n[stderr]\n" + err if err else "") + f"\n[rc {rc}]\n")
    LOG.flush()
    return rc, out, err


# ------------------------------------------------------------------------------------------------
# workloads
# ------------------------------------------------------------------------------------------------
BH, D, W = 8, 64, 256
if args.quick:
    ATTN_N, SLIDE_N = (256, 512), (512, 1024)
    LN = dict(M=512, K=256, N=256)
    FFN = dict(M=256, d=256, h=704)
    MEM_N = 4096
else:
    ATTN_N, SLIDE_N = (1024, 2048) + ((4096,) if args.n4096 else ()), (1024, 2048)
    LN = dict(M=4096, K=1024, N=1024)
    FFN = dict(M=2048, d=1024, h=2816)
    MEM_N = 32768


def kept_pairs(N, W):
    """(i, j) pairs with j <= i and i - j < W."""
    return sum(min(i + 1, W) for i in range(N))


WORKLOADS = []  # dicts: key, label, kind, graph, dims, flop, + shape fields for peers.py
for causal in (False, True):
    for N in ATTN_N:
        WORKLOADS.append(dict(
            key=f"attn_{'causal' if causal else 'full'}_{N}", label=f"attn {'causal' if causal else 'full'} N={N}",
            kind="attn", causal=causal, BH=BH, N=N, d=D,
            graph="Examples/attention_causal.graph" if causal else "Examples/attention.graph",
            dims=f"BH={BH},N={N},d={D}", flop=4.0 * BH * N * N * D * (0.5 if causal else 1.0)))
for N in SLIDE_N:
    WORKLOADS.append(dict(key=f"sliding_{N}", label=f"sliding W={W} N={N}", kind="sliding", BH=BH, N=N, d=D, W=W,
                          graph="Examples/attention_sliding_window.graph", dims=f"BH={BH},N={N},d={D},W={W}",
                          flop=4.0 * BH * D * kept_pairs(N, W)))
WORKLOADS.append(dict(key="ln_mm", label=f"LN+matmul {LN['M']}x{LN['K']}x{LN['N']}", kind="ln", **LN,
                      graph="Examples/layernorm_matmul.graph", dims=f"M={LN['M']},K={LN['K']},N={LN['N']}",
                      flop=2.0 * LN["M"] * LN["K"] * LN["N"]))
WORKLOADS.append(dict(key="swiglu", label=f"RMSNorm+SwiGLU {FFN['M']}/{FFN['d']}/{FFN['h']}", kind="swiglu",
                      **FFN, graph="Examples/rmsnorm_swiglu.graph",
                      dims=f"M={FFN['M']},d={FFN['d']},h={FFN['h']}", flop=6.0 * FFN["M"] * FFN["d"] * FFN["h"]))
# bf16 storage (f32 accumulation): the same shapes as the f32 rows they name in f32_key, through
# Examples/attention_bf16.graph and Examples/rmsnorm_swiglu_bf16.graph; torch runs them on bf16 tensors.
if "bf16" not in SKIP:
    for N in ATTN_N[:2]:
        WORKLOADS.append(dict(key=f"attn_full_{N}_bf16", label=f"attn full N={N} bf16", kind="attn_bf16", causal=False,
                              BH=BH, N=N, d=D, graph="Examples/attention_bf16.graph", dims=f"BH={BH},N={N},d={D}",
                              flop=4.0 * BH * N * N * D, f32_key=f"attn_full_{N}"))
    WORKLOADS.append(dict(key="swiglu_bf16", label=f"RMSNorm+SwiGLU {FFN['M']}/{FFN['d']}/{FFN['h']} bf16",
                          kind="swiglu_bf16", **FFN, graph="Examples/rmsnorm_swiglu_bf16.graph",
                          dims=f"M={FFN['M']},d={FFN['d']},h={FFN['h']}", flop=6.0 * FFN["M"] * FFN["d"] * FFN["h"],
                          f32_key="swiglu"))
# Attention variants written in the graph language (issue #13): each graph computes its own
# positions, slopes, rotations or stick-breaking weights. All are causal: FLOPs are the useful
# half of 4*BH*N^2*d. The graph's own dims are read from the file, so B/H/BH/N/d names may vary.
VARIANTS = [("alibi", "Examples/attention_alibi.graph", "ALiBi causal"),
            ("rope", "Examples/attention_rope.graph", "RoPE causal"),
            ("stick", "Examples/stick_breaking_attention.graph", "stick-breaking")]


def graph_dims(path):
    """The `dim NAME = ...` names a graph file declares, in order."""
    with open(path) as fh:
        return [line.split()[1] for line in fh if line.startswith("dim ")]


if "variants" not in SKIP:
    for kind, graph, label in VARIANTS:
        path = os.path.join(REPO, graph)
        if not os.path.exists(path):
            continue
        names = graph_dims(path)
        for N in ATTN_N[:2]:
            given = {"B": 1, "H": BH, "BH": BH, "N": N, "d": D}
            dims = ",".join(f"{n}={given[n]}" for n in names if n in given)
            WORKLOADS.append(dict(key=f"{kind}_{N}", label=f"{label} N={N}", kind=kind, BH=BH, N=N, d=D,
                                  graph=graph, dims=dims, flop=4.0 * BH * N * N * D * 0.5))
BY_KEY = {w["key"]: w for w in WORKLOADS}

# results[key][impl] = dict(median_ms, min_ms, reps, note) or dict(error=...)
results = {w["key"]: {} for w in WORKLOADS}
infos = []


def record(key, impl, **kw):
    results.setdefault(key, {})[impl] = kw


# ------------------------------------------------------------------------------------------------
# machine facts
# ------------------------------------------------------------------------------------------------
def loadavg():
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "?"


CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16")
# The peak every "% of peak" figure uses: --peak if given, else the 2-thread FMA peak measured by
# 'blockc peak' in this run, else (measurement skipped or failed) BENCHMARKS.md's 245.
PEAK = {"gflops": args.peak, "source": "--peak"} if args.peak else {"gflops": REFERENCE_PEAK,
                                                                     "source": "BENCHMARKS.md's reference (not measured)"}


def cpu_facts():
    """(model name, {flag: bool}) from /proc/cpuinfo."""
    model, flags = "?", set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name") and model == "?":
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return model, {f: f in flags for f in CPU_FLAGS}


def native_arch():
    """What gcc's -march=native resolves to here (e.g. znver3, sapphirerapids)."""
    rc, out, _ = sh(["gcc", "-march=native", "-Q", "--help=target"])
    m = re.search(r"^\s*-march=\s*(\S+)", out, re.M) if rc == 0 else None
    return m.group(1) if m else "?"


PEAK_RE = re.compile(r"peak_fma isa=(\S+) threads=(\d+) accumulators=(\d+) max ([\d.]+) median ([\d.]+)")
# The bf16 dot peak (vdpbf16ps chains), printed by the same probe where -march=native has AVX512_BF16.
BF16_PEAK_RE = re.compile(r"peak_dpbf16 isa=(\S+) threads=(\d+) accumulators=\d+ max ([\d.]+) median ([\d.]+)")


def measure_peak(when):
    """Runs 'blockc peak' (PeakProbe.swift: AVX-512 or AVX2 FMA chains, whichever -march=native has,
    built with the flags the generated C uses). Runs at the start and at the end of the benchmark; the
    peak is the best 2-thread rep of both, since another process on the cores only ever lowers a rep."""
    status(f"FMA peak at the {when} (blockc peak)")
    rc, out, err = sh([args.blockc, "peak", "--reps", "5" if args.quick else "9"])
    lines = [m.groups() for m in PEAK_RE.finditer(out)]
    if rc != 0 or not lines:
        infos.append(f"blockc peak failed (rc {rc}): {(err.strip() or out.strip())[:200]}")
        return
    infos.append(f"FMA peak at the {when} (blockc peak, {lines[0][0]}, {lines[0][2]} accumulators/thread): " +
                 ", ".join(f"{th} thread{'s' if th != '1' else ''} max {float(mx):.1f} median {float(md):.1f}"
                           for _, th, _, mx, md in lines) + " GFLOP/s")
    bf16 = [m.groups() for m in BF16_PEAK_RE.finditer(out)]
    if bf16:
        infos.append(f"bf16 dot peak at the {when} (blockc peak, {bf16[0][0]}): " +
                     ", ".join(f"{th} thread{'s' if th != '1' else ''} max {float(mx):.1f} median {float(md):.1f}"
                               for _, th, mx, md in bf16) + " GFLOP/s")
        _, bth, bmx, _ = max(bf16, key=lambda l: int(l[1]))
        if int(bth) == int(THREADS) and float(bmx) > PEAK.get("bf16", 0):
            PEAK["bf16"] = float(bmx)
    isa, th, nacc, mx, md = max(lines, key=lambda l: int(l[1]))
    if int(th) != int(THREADS):
        infos.append(f"NOTE: peak_fma ran {th} thread(s), not {THREADS}")
    if float(mx) > PEAK.get("measured", 0):
        PEAK.update(measured=float(mx), isa=isa, threads=int(th))
    if not args.peak:
        PEAK.update(gflops=PEAK["measured"], source=f"measured in this run: blockc peak {PEAK['isa']}, "
                                                    f"{PEAK['threads']} threads, best rep at start and end")


def cross_check_peak_flops():
    """peers/peak_flops.c (zmm and ymm, 16 accumulators) as a second opinion, where it builds."""
    src = os.path.join(args.peers_dir, "peak_flops.c")
    if not os.path.exists(src):
        infos.append(f"peers/peak_flops.c not found in {args.peers_dir}")
        return
    exe = os.path.join(WORK, "peak_flops")
    rc, _, err = sh(["gcc", "-O3", "-march=native", "-fopenmp", src, "-o", exe])
    if rc != 0:
        why = "it uses zmm (AVX-512) registers and this CPU has no avx512f" if not FLAGS.get("avx512f") else \
            err.strip()[:200]
        infos.append(f"peers/peak_flops.c (cross-check) does not build here: {why}")
        return
    rc, out, _ = sh([exe, "20000000" if args.quick else "50000000"])
    got = re.findall(r"(\w+_fma): max ([\d.]+) GFLOP/s\s+median ([\d.]+)", out)
    if got:
        infos.append("peers/peak_flops.c (cross-check, 2 threads): " +
                     ", ".join(f"{n} max {float(a):.0f} median {float(b):.0f}" for n, a, b in got) + " GFLOP/s")


FLAGS = {}


def machine_facts():
    cpu, flags = cpu_facts()
    FLAGS.update(flags)
    gcc = sh(["gcc", "--version"])[1].splitlines()[:1]
    rev = sh(["git", "describe", "--always", "--dirty"])[1].strip()
    infos.append(f"{datetime.datetime.now():%Y-%m-%d %H:%M}  cpu '{cpu}' x{os.cpu_count()}  "
                 f"{gcc[0] if gcc else 'gcc ?'}  blockc {rev or '?'}  OMP_NUM_THREADS={THREADS}")
    infos.append("cpu flags: " + " ".join(f"{f}={'yes' if v else 'no'}" for f, v in flags.items()) +
                 f"  (gcc -march=native = {native_arch()})")
    infos.append(f"load average at start: {loadavg()} (anything else running skews every figure)")
    if "peak" in SKIP:
        return
    measure_peak("start")
    cross_check_peak_flops()


# ------------------------------------------------------------------------------------------------
# blockc
# ------------------------------------------------------------------------------------------------
BENCH_RE = re.compile(r"median ([\d.]+) ms, min ([\d.]+) ms \((\d+) reps\)")


def run_blockc():
    # each bf16 workload right after the f32 one of the same shape, so that the two see the same load
    order = [w for w in WORKLOADS if "f32_key" not in w]
    for b in (w for w in WORKLOADS if "f32_key" in w):
        i = next((i for i, w in enumerate(order) if w["key"] == b["f32_key"]), len(order) - 1)
        order.insert(i + 1, b)
    for w in order:
        for impl, extra in (("fused", []), ("unfused", ["--no-fusion"])):
            if impl == "unfused" and "blockc-unfused" in SKIP:
                continue
            status(f"blockc {impl}: {w['label']}")
            rc, out, err = sh([args.blockc, "bench", w["graph"], "--dim", w["dims"], "--reps", str(REPS)] + extra,
                              timeout=1800)
            m = BENCH_RE.search(out)
            if rc == 0 and m:
                record(w["key"], impl, median_ms=float(m.group(1)), min_ms=float(m.group(2)), reps=int(m.group(3)))
            else:
                msg = (err.strip().splitlines() or [f"rc {rc}"])[-1][:200]
                record(w["key"], impl, error=f"rc {rc}: {msg}")


def run_tuned():
    """'blockc tune' per workload into one cache, then 'blockc bench --tuned' (impl 'tuned')."""
    cache = os.path.join(WORK, "blockc-tune.json")
    for w in WORKLOADS:
        status(f"blockc tune: {w['label']}")
        rc, out, err = sh([args.blockc, "tune", w["graph"], "--dim", w["dims"], "--cache", cache, "--budget", "60",
                           "--reps", "3"], timeout=600)
        if rc != 0:
            record(w["key"], "tuned", error=f"tune rc {rc}: {(err.strip().splitlines() or [''])[-1][:200]}")
            continue
        rc, out, err = sh([args.blockc, "bench", w["graph"], "--dim", w["dims"], "--reps", str(REPS), "--tuned", cache],
                          timeout=1800)
        m = BENCH_RE.search(out)
        chosen = next((line.split("tuned block sizes ")[1].split(" ")[0] for line in err.splitlines()
                       if "tuned block sizes" in line), "defaults")
        if rc == 0 and m:
            record(w["key"], "tuned", median_ms=float(m.group(1)), min_ms=float(m.group(2)), reps=int(m.group(3)),
                   note=f"blocks {chosen}")
        else:
            record(w["key"], "tuned", error=f"rc {rc}: {(err.strip().splitlines() or [''])[-1][:200]}")


def build_bf16_libs():
    """blockc's generated C of each bf16 workload as a shared library, so that the torch process can
    call the entry point once through ctypes (inputs as uint16 bf16 bit patterns) and report its error.
    Timing stays with 'blockc bench', like the f32 rows."""
    for w in WORKLOADS:
        if "f32_key" not in w:
            continue
        name = next((l.split()[1] for l in open(os.path.join(REPO, w["graph"])) if l.startswith("graph ")), None)
        d = os.path.join(WORK, "bf16", w["key"])
        os.makedirs(d, exist_ok=True)
        src, lib = os.path.join(d, f"{name}.c"), os.path.join(d, f"lib{name}.so")
        rc, _, err = sh([args.blockc, "emit-c", w["graph"], "--dim", w["dims"], "-o", src])
        if rc == 0:
            rc, _, err = sh(["gcc", "-O3", "-march=native", "-fopenmp", "-fno-math-errno", "-fno-trapping-math",
                             "-std=gnu11", "-shared", "-fPIC", "-I", d, src, "-o", lib, "-lm"])
        if rc == 0:
            w.update(lib=lib, entry=f"blk_u_{name}")
        else:
            infos.append(f"{w['key']}: building blockc's C as a shared library for the ctypes check failed: "
                         f"{err.strip()[-200:]}")


# ------------------------------------------------------------------------------------------------
# peers
# ------------------------------------------------------------------------------------------------
def run_peer_child(impl, kinds, env, timeout):
    cases = [{k: v for k, v in w.items() if k not in ("graph", "dims", "flop", "label", "f32_key")}
             for w in WORKLOADS if w["kind"] in kinds]
    if not cases:
        return
    path = os.path.join(WORK, f"cases_{impl}.json")
    with open(path, "w") as fh:
        json.dump(cases, fh)
    status(f"peer {impl}: {', '.join(c['key'] for c in cases)}")
    rc, out, err = sh([args.python, os.path.join(HERE, "peers.py"), "--impl", impl, "--cases", path,
                       "--reps", str(REPS), "--warmup", str(args.warmup)], env=env, timeout=timeout)
    seen = set()
    for line in out.splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if "info" in r:
            infos.append(r["info"])
            continue
        key, name = r.pop("key"), r.pop("impl")
        seen.add(key)
        record(key, name, **r)
    if rc != 0:
        msg = (err.strip().splitlines() or [f"rc {rc}"])[-1][:200]
        infos.append(f"peer process '{impl}' ended with rc {rc}: {msg}")
        for c in cases:
            if c["key"] not in seen:
                record(c["key"], impl, error=f"process failed: {msg}")


def run_peers():
    if not os.path.exists(args.python):
        infos.append(f"peers skipped: {args.python} not found (run.sh installs it)")
        return
    if "numpy" not in SKIP:
        env = {k: v for k, v in BASE_ENV.items() if k not in OPENBLAS_TUNING}
        run_peer_child("numpy", ("attn", "ln", "swiglu"), env, 1800)
    if "torch" not in SKIP:
        run_peer_child("torch", ("attn", "swiglu", "attn_bf16", "swiglu_bf16", "alibi", "rope", "stick"), BASE_ENV,
                       1800)
    if "flex" not in SKIP:
        run_peer_child("flex", ("sliding", "alibi"), BASE_ENV, 1800)
    if "ort" not in SKIP:
        run_peer_child("ort", ("attn",), BASE_ENV, 1800)


def run_attn_c():
    if "attnc" in SKIP:
        return
    src = os.path.join(args.peers_dir, "attn.c")
    exe = os.path.join(WORK, "attn")
    status("peer attn.c (hand-written flash kernel)")
    rc, _, err = sh(["gcc", "-O3", "-march=native", "-fopenmp", src, "-o", exe, "-lm"])
    keys = [w["key"] for w in WORKLOADS if w["kind"] == "attn"]
    if rc != 0:
        why = "it is written with AVX-512 intrinsics and this CPU has no avx512f" if not FLAGS.get("avx512f") else \
            err.strip()[:200]
        for k in keys:
            record(k, "attn_c", error=f"build failed: {why}")
        return
    rc, out, err = sh([exe, str(REPS)] + [str(n) for n in ATTN_N], timeout=3600)
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 5 and f[2] == "fused_flash":
            N, causal = int(f[0]), f[1] == "1"
            key = f"attn_{'causal' if causal else 'full'}_{N}"
            record(key, "attn_c", min_ms=float(f[3]), median_ms=float(f[4]), reps=REPS,
                   note=f"max abs err vs its naive C {f[6] if len(f) > 6 else '?'}")
    for k in keys:
        if "attn_c" not in results[k]:
            record(k, "attn_c", error=f"rc {rc}: {(err.strip().splitlines() or ['no output'])[-1][:200]}")


# ------------------------------------------------------------------------------------------------
# memory: fused attention at N=32768 (quick: 4096) under /usr/bin/time -v
# ------------------------------------------------------------------------------------------------
memory = {}


def run_memory():
    if "memory" in SKIP:
        return
    status(f"memory: fused attention N={MEM_N} BH={BH} (one call under /usr/bin/time -v)")
    memory.update(N=MEM_N)
    d = os.path.join(WORK, "mem")
    os.makedirs(d, exist_ok=True)
    rc, _, err = sh([args.blockc, "emit-c", "Examples/attention.graph", "--dim", f"BH={BH},N={MEM_N},d={D}",
                     "-o", os.path.join(d, "attention.c")])
    if rc != 0:
        memory["error"] = f"emit-c failed: {err.strip()[-200:]}"
        return
    exe = os.path.join(d, "mem_attention")
    rc, _, err = sh(["gcc", "-O3", "-march=native", "-fopenmp", "-fno-math-errno", "-fno-trapping-math",
                     "-std=gnu11", "-I", d, "-DENTRY=blk_u_attention", "-DENTRY_HEADER=\"attention.h\"", f"-DBH={BH}",
                     f"-DN={MEM_N}", f"-DD={D}", os.path.join(d, "attention.c"), os.path.join(HERE, "mem_driver.c"),
                     "-o", exe, "-lm"])
    if rc != 0:
        memory["error"] = f"gcc failed: {err.strip()[-300:]}"
        return
    timebin = "/usr/bin/time"
    cmd = ([timebin, "-v"] if os.path.exists(timebin) else []) + [exe]
    rc, out, err = sh(cmd, timeout=1800)
    m = re.search(r"io_bytes (\d+) rss_before_io_kib (\d+) rss_with_io_kib (\d+) peak_rss_kib (\d+) seconds ([\d.]+)",
                  out)
    if rc != 0 or not m:
        memory["error"] = f"rc {rc}: {(err.strip().splitlines() or ['no output'])[-1][:200]}"
        return
    io, before, with_io, peak, secs = int(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4)), float(
        m.group(5))
    t = re.search(r"Maximum resident set size \(kbytes\): (\d+)", err)
    peak_time = int(t.group(1)) if t else None
    memory.update(io_bytes=io, rss_before_io_kib=before, rss_with_io_kib=with_io, peak_rss_kib=peak,
                  time_v_peak_kib=peak_time, seconds=secs, source="/usr/bin/time -v" if t else "getrusage")
    use = peak_time if peak_time is not None else peak
    memory["extra_bytes"] = use * 1024 - io
    memory["entry_growth_bytes"] = max(0, (peak - with_io) * 1024)


# ------------------------------------------------------------------------------------------------
# the table
# ------------------------------------------------------------------------------------------------
PEER_COLS = [("tuned", "blockc tuned"), ("blockc_f32", "blockc f32"), ("numpy", "numpy"), ("numpy_matmul", "np matmul"), ("torch_sdpa", "torch SDPA"),
             ("torch_eager", "torch eager"), ("flex", "FlexAttn"), ("ort_mha", "ORT MHA"), ("attn_c", "attn.c")]


def med(key, impl):
    r = results.get(key, {}).get(impl)
    if impl == "fused" and USE_TUNED and r:
        t = results.get(key, {}).get("tuned")
        if t and t.get("median_ms") and r.get("median_ms"):
            return min(r["median_ms"], t["median_ms"])
    return r.get("median_ms") if r else None


USE_TUNED = False  # print_targets sets it: 'fused' then means the faster of fused and tuned


def fmt_ms(x):
    return "-" if x is None else (f"{x:.2f}" if x < 100 else f"{x:.1f}")


def print_table():
    print()
    print(f"blockc benchmark ({'--quick smoke test' if args.quick else 'full'}): median ms of {REPS} timed reps "
          f"after warm-up (peers: {args.warmup} warm-up calls; blockc bench: 1 first run + 1 warm-up), "
          f"OMP_NUM_THREADS={THREADS}")
    for i in infos:
        print("  " + i)
    print("  ratios: 'peer ms (peer/fused)' and unf/fu = unfused/fused; > 1 means blockc fused is faster.")
    if args.tune:
        print("  'blockc tuned': the fused program with the block sizes 'blockc tune' chose on this machine, ratio "
              "fused/tuned (> 1: tuning helped); the targets below use the faster of fused and tuned, and the last "
              "line counts the required targets the untuned defaults meet.")
    print(f"  %pk = fused GFLOP/s over {PEAK['gflops']:.1f} GFLOP/s ({PEAK['source']}), FLOPs as in BENCHMARKS.md "
          "(attention 4*BH*N^2*d, causal halved, sliding: kept pairs only; LN 2MKN; SwiGLU 6Mdh).")
    if any("f32_key" in w for w in WORKLOADS):
        print("  bf16 rows: every tensor stored as bf16, f32 accumulation; 'blockc f32' is blockc's fused f32 kernel "
              "of the same shape (f32/bf16), the torch columns are torch on bf16 tensors (SDPA; rms_norm + SwiGLU "
              "eager)" + (f"; their %pk is of the bf16 dot peak measured in this run ({PEAK['bf16']:.1f} GFLOP/s, "
                          "vdpbf16ps)." if "bf16" in PEAK else "."))
    lw = max(28, max(len(w["label"]) for w in WORKLOADS))
    cols = [c for c in PEER_COLS if any(c[0] in results[w["key"]] for w in WORKLOADS)]
    head = f"{'workload':<{lw}} {'fused':>9} {'unfused':>9} {'unf/fu':>7} {'%pk':>6}"
    for _, name in cols:
        head += f" {name:>17}"
    print()
    print(head)
    print("-" * len(head))
    divided = False
    for w in WORKLOADS:
        k = w["key"]
        if "f32_key" in w and not divided:
            print("-- bf16 storage (f32 accumulation) " + "-" * (len(head) - 35))
            divided = True
        f, u = med(k, "fused"), med(k, "unfused")
        ratio = f"{u / f:.2f}x" if f and u else "-"
        peak = PEAK.get("bf16", PEAK["gflops"]) if "f32_key" in w else PEAK["gflops"]
        pk = f"{100 * w['flop'] / (f * 1e6) / peak:.0f}%" if f else "-"
        row = f"{w['label']:<{lw}} {fmt_ms(f):>9} {fmt_ms(u):>9} {ratio:>7} {pk:>6}"
        for impl, _ in cols:
            r = results[k].get(impl)
            if r is None:
                cell = ""
            elif "error" in r:
                cell = "FAILED"
            else:
                p = r["median_ms"]
                # the tuned column shows its speedup over the defaults (fused / tuned)
                ratio_text = f"{f / p:.2f}x" if impl == "tuned" else f"{p / f:.2f}x"
                cell = f"{fmt_ms(p)} ({ratio_text})" if f else fmt_ms(p)
            row += f" {cell:>17}"
        print(row)
    failures = [(k, impl, r["error"]) for k in results for impl, r in results[k].items() if "error" in r]
    notes = [(k, impl, r["note"]) for k in results for impl, r in results[k].items() if r.get("note")]
    if notes:
        print()
        print("notes:")
        for k, impl, n in notes:
            print(f"  {k} {impl}: {n}")
    if failures:
        print()
        print("failed or skipped:")
        for k, impl, e in failures:
            print(f"  {k} {impl}: {e}")


# ------------------------------------------------------------------------------------------------
# targets (BENCHMARKS.md, "Targets for generated code")
# ------------------------------------------------------------------------------------------------
def check(label, num, den, need):
    """'label: yes (3.1x)' for num/den >= need (a speedup of fused over something)."""
    if num is None or den is None:
        return f"{label}: n/a (missing measurement)"
    r = num / den
    return f"{label}: {'yes' if r >= need else 'NO'} ({r:.2f}x)"


def print_targets():
    global USE_TUNED
    if args.tune:
        USE_TUNED = False
        untuned, _, _ = targets()
        USE_TUNED = True
    req, stretch, variant_targets = targets()
    USE_TUNED = False
    print()
    print("required targets (BENCHMARKS.md):")
    for line in req:
        print("  " + line)
    print("stretch targets:")
    for line in stretch:
        print("  " + line)
    if variant_targets:
        print("attention variant targets (issue #13: >= 2x each peer):")
        for line in variant_targets:
            print("  " + line)
    print("not measured here: compile time (transformer layer .graph -> C < 0.5 s) and the CUDA targets.")
    n_no = sum(1 for line in req if ": NO" in line or line.endswith("NO"))
    n_na = sum(1 for line in req if "n/a" in line)
    print(f"required: {sum(1 for line in req if ': yes' in line)} hold, {n_no} do not, {n_na} not measured.")
    if args.tune:
        print(f"required with the untuned defaults: {sum(1 for line in untuned if ': yes' in line)} hold, "
              f"{sum(1 for line in untuned if ': NO' in line or line.endswith('NO'))} do not.")


def targets():
    req, stretch = [], []
    for N in ATTN_N:
        fk, ck = f"attn_full_{N}", f"attn_causal_{N}"
        f = med(fk, "fused")
        req.append(check(f"attention full N={N}: fused >= 2x blockc unfused", med(fk, "unfused"), f, 2.0))
        req.append(check(f"attention full N={N}: fused >= 1.5x numpy unfused", med(fk, "numpy"), f, 1.5))
        if f:
            pct = 100 * BY_KEY[fk]["flop"] / (f * 1e6) / PEAK['gflops']
            req.append(f"attention full N={N}: fused >= 50% of FMA peak: {'yes' if pct >= 50 else 'NO'} ({pct:.0f}% of "
                       f"{PEAK['gflops']:.0f} GFLOP/s, {'measured in this run' if 'measured' in PEAK['source'] else PEAK['source']})")
        else:
            req.append(f"attention full N={N}: fused >= 50% of FMA peak: n/a (missing measurement)")
        stretch.append(check(f"attention full N={N}: fused >= 1.0x ORT MultiHeadAttention", med(fk, "ort_mha"), f, 1.0))
        stretch.append(check(f"attention full N={N}: fused >= 1.0x hand-written attn.c", med(fk, "attn_c"), f, 1.0))
        c = med(ck, "fused")
        req.append(check(f"attention causal N={N}: fused causal >= 1.8x faster than fused full", f, c, 1.8))
        req.append(check(f"attention causal N={N}: fused >= 1.0x torch SDPA causal", med(ck, "torch_sdpa"), c, 1.0))
        stretch.append(check(f"attention causal N={N}: fused >= 1.0x hand-written attn.c causal",
                             med(ck, "attn_c"), c, 1.0))
        stretch.append(check(f"attention causal N={N}: fused >= 1.3x torch SDPA causal", med(ck, "torch_sdpa"), c, 1.3))
        stretch.append(check(f"attention causal N={N}: fused >= 1.0x ORT MultiHeadAttention (unidirectional)",
                             med(ck, "ort_mha"), c, 1.0))
    # sliding window: time should follow the kept blocks, i.e. grow like the number of kept (i, j)
    # pairs from N1 to N2 (about 2x), not like N^2 (4x).
    if len(SLIDE_N) >= 2:
        n1, n2 = SLIDE_N[0], SLIDE_N[-1]
        t1, t2 = med(f"sliding_{n1}", "fused"), med(f"sliding_{n2}", "fused")
        kr = kept_pairs(n2, W) / kept_pairs(n1, W)
        if t1 and t2:
            tr = t2 / t1
            ok = tr <= 1.3 * kr
            req.append(f"sliding window: time follows kept blocks (N={n1}->{n2}: time x{tr:.2f}, kept pairs x{kr:.2f}, "
                       f"full attention would be x{(n2 / n1) ** 2:.0f}; pass if time ratio <= 1.3x kept ratio): "
                       f"{'yes' if ok else 'NO'}")
        else:
            req.append("sliding window: time follows kept blocks: n/a (missing measurement)")
    for N in SLIDE_N:
        k = f"sliding_{N}"
        s = med(k, "fused")
        if f"attn_causal_{N}" in results and s and med(f"attn_causal_{N}", "fused"):
            c = med(f"attn_causal_{N}", "fused")
            req.append(f"sliding window N={N}: fused sliding / fused causal time = {s / c:.2f} "
                       f"(kept pairs {kept_pairs(N, W) / (N * (N + 1) / 2):.2f}) [info]")
        req.append(check(f"sliding window N={N}: fused >= 1.0x FlexAttention", med(k, "flex"), s, 1.0))
        stretch.append(check(f"sliding window N={N}: fused >= 2x FlexAttention", med(k, "flex"), s, 2.0))
    f = med("ln_mm", "fused")
    req.append(check("LayerNorm+matmul: fused faster than blockc unfused", med("ln_mm", "unfused"), f, 1.0))
    req.append(check("LayerNorm+matmul: fused faster than numpy unfused", med("ln_mm", "numpy"), f, 1.0))
    stretch.append(check("LayerNorm+matmul: fused >= 1.0x numpy matmul alone", med("ln_mm", "numpy_matmul"), f, 1.0))
    f = med("swiglu", "fused")
    req.append(check("RMSNorm+SwiGLU: fused faster than blockc unfused", med("swiglu", "unfused"), f, 1.0))
    req.append(check("RMSNorm+SwiGLU: fused faster than numpy unfused", med("swiglu", "numpy"), f, 1.0))
    stretch.append(check("RMSNorm+SwiGLU: fused >= 1.1x numpy", med("swiglu", "numpy"), f, 1.1))
    stretch.append(check("RMSNorm+SwiGLU: fused >= 1.1x torch eager", med("swiglu", "torch_eager"), f, 1.1))
    # bf16 storage (f32 accumulation): bf16 >= 1.6x blockc f32 and >= 1.5x torch bf16
    for w in WORKLOADS:
        if "f32_key" not in w:
            continue
        k, b = w["key"], med(w["key"], "fused")
        what = f"bf16 attention full N={w['N']}" if w["kind"] == "attn_bf16" else "bf16 RMSNorm+SwiGLU"
        torch_name = "torch bf16 SDPA" if w["kind"] == "attn_bf16" else "torch bf16 eager"
        torch_impl = "torch_sdpa" if w["kind"] == "attn_bf16" else "torch_eager"
        req.append(check(f"{what}: fused >= 1.6x blockc f32 fused", med(k, "blockc_f32"), b, 1.6))
        req.append(check(f"{what}: fused >= 1.5x {torch_name}", med(k, torch_impl), b, 1.5))
        t = med(k, torch_impl)
        if t and "bf16" in PEAK:
            # What the 1.5x target asks of this machine: torch's rate times 1.5, against the bf16 dot peak.
            need = 1.5 * w["flop"] / (t * 1e6)
            req[-1] += (f" [{torch_name} runs at {100 * w['flop'] / (t * 1e6) / PEAK['bf16']:.0f}% of the bf16 dot "
                        f"peak; 1.5x of it needs {need:.0f} GFLOP/s = {100 * need / PEAK['bf16']:.0f}% of that peak]")
    # attention variants (issue #13): >= 2x each peer measured on the same row
    variant_targets = []
    for w in WORKLOADS:
        if w["kind"] not in ("alibi", "rope", "stick"):
            continue
        k, f = w["key"], med(w["key"], "fused")
        for impl, name in PEER_COLS:
            if impl in results[k] and impl not in ("tuned", "blockc_f32"):
                variant_targets.append(check(f"{w['label']}: fused >= 2x {name}", med(k, impl), f, 2.0))
    # memory
    if "memory" not in SKIP:
        tag = "" if MEM_N == 32768 else f" [--quick: N={MEM_N}, not the target size]"
        if "extra_bytes" in memory:
            m = memory
            extra = m["extra_bytes"]
            req.append(f"memory: fused attention N={MEM_N} BH={BH} within 1 GiB extra: "
                       f"{'yes' if extra <= 2 ** 30 else 'NO'} (peak RSS {m['time_v_peak_kib'] or m['peak_rss_kib']} KiB "
                       f"from {m['source']} - Q,K,V,O {m['io_bytes'] / 2 ** 20:.0f} MiB = {extra / 2 ** 20:.1f} MiB extra; "
                       f"the entry point itself grew RSS by {m['entry_growth_bytes'] / 2 ** 20:.1f} MiB; "
                       f"one call {m['seconds']:.2f} s){tag}")
        else:
            req.append(f"memory: fused attention N={MEM_N}: n/a ({memory.get('error', 'not run')}){tag}")
    return req, stretch, variant_targets


def link_bf16_to_f32():
    """The 'blockc f32' column of a bf16 row: blockc's fused f32 kernel of the same shape."""
    for w in WORKLOADS:
        if "f32_key" in w and "fused" in results.get(w["f32_key"], {}):
            f32 = results[w["f32_key"]]["fused"]
            b = results[w["key"]].get("fused", {})
            note = f"f32/bf16 by the fastest rep instead of the median: {f32['min_ms'] / b['min_ms']:.2f}x " \
                   f"({f32['min_ms']:.2f} / {b['min_ms']:.2f} ms)" if b.get("min_ms") else None
            record(w["key"], "blockc_f32", **dict(f32, note=note))


def main():
    machine_facts()
    run_blockc()
    if args.tune:
        run_tuned()
    link_bf16_to_f32()
    if "torch" not in SKIP:
        build_bf16_libs()
    run_peers()
    run_attn_c()
    run_memory()
    if "peak" not in SKIP:
        measure_peak("end")
    infos.append(f"load average at end: {loadavg()}")
    print_table()
    print_targets()
    print(f"\n(total {time.perf_counter() - T_START:.0f} s; commands and raw output in {LOG.name})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(infos=infos, reps=REPS, quick=args.quick, peak=PEAK, workloads=WORKLOADS, results=results,
                           memory=memory), fh, indent=1)


if __name__ == "__main__":
    main()
