"""The machine facts a benchmark prints in the same run: the CPU model and the fp32 FMA peak that
`blockc peak` measures at the run's thread count (the best rep, since another process only ever
lowers one)."""
import re
import subprocess


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def fma_peak(blockc, reps=7):
    """(GFLOP/s, description) of the most-threads line of `blockc peak`, or (None, why)."""
    result = subprocess.run([blockc, "peak", "--reps", str(reps)], capture_output=True, text=True)
    lines = re.findall(r"peak_fma isa=(\S+) threads=(\d+) accumulators=\d+ max ([\d.]+)", result.stdout)
    if result.returncode != 0 or not lines:
        return None, f"blockc peak failed: {result.stderr.strip()[:200]}"
    isa, threads, best = max(lines, key=lambda line: int(line[1]))
    return float(best), f"{best} GFLOP/s ({isa}, {threads} threads, blockc peak in this run)"
