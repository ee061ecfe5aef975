#!/usr/bin/env bash
# Benchmarks/run.sh: blockc fused and unfused against its peers, one run, one table.
# Not run by CI. See Benchmarks/README.md.
#
#   Benchmarks/run.sh [--quick] [--n4096] [--tune] [--reps N] [--peak GFLOPS] [--no-build] [--no-install] [--json FILE] [--skip LIST]
#
# --quick       small sizes, 3 reps (a smoke test, a few minutes)
# --n4096       also attention full/causal at N=4096
# --tune        run 'blockc tune' on every workload first (<= 60 s each), time the tuned choice too
# --reps N      timed repetitions per case (default 10; --quick 3)
# --peak GFLOPS report % of peak against this instead of the FMA peak 'blockc peak' measures
# --no-build    use the existing .build/release/blockc
# --no-install  do not create or fill .venv-bench (peers that are missing are reported as failed)
# --json FILE   also write every measurement as JSON
# --skip LIST   comma list of parts to leave out: blockc-unfused,numpy,torch,flex,ort,attnc,memory,peak,bf16,variants
# --workdir DIR scratch folder for builds and log.txt (default: a new /tmp/blockc-bench.*)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv-bench"
BUILD=1
INSTALL=1
PASS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --no-build) BUILD=0 ;;
    --no-install) INSTALL=0 ;;
    --quick|--n4096|--tune) PASS+=("$1") ;;
    --reps|--json|--skip|--workdir|--peak) PASS+=("$1" "$2"); shift ;;
    -h|--help) sed -n "2,16p" "$0"; exit 0 ;;
    *) echo "run.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2

if [[ $BUILD == 1 ]]; then
  echo "== swift build -c release --product blockc" >&2
  swift build -c release --product blockc >&2
fi
[[ -x .build/release/blockc ]] || { echo "run.sh: .build/release/blockc is missing (drop --no-build)" >&2; exit 1; }

# Peers: torch (CPU wheel, from pip's local find-links), numpy, onnx, onnxruntime, in an ignored venv.
if [[ $INSTALL == 1 ]]; then
  if [[ ! -x "$VENV/bin/python" ]]; then
    echo "== creating $VENV" >&2
    python3 -m venv "$VENV" >&2
  fi
  if ! "$VENV/bin/python" -c 'import torch, numpy, onnx, onnxruntime' 2>/dev/null; then
    echo "== installing the peers into $VENV (torch==2.13.0+cpu numpy onnx onnxruntime)" >&2
    # The +cpu pin keeps pip from pulling the 5 GB CUDA build of torch.
    "$VENV/bin/pip" install --quiet "torch==2.13.0+cpu" numpy onnx onnxruntime >&2 \
      || echo "run.sh: installing the peers failed; the table will mark them as failed" >&2
  fi
fi

if [[ ! -x /usr/bin/time ]]; then
  echo "== /usr/bin/time missing: apt-get install -y time" >&2
  (apt-get install -y time >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1 && apt-get install -y time >/dev/null 2>&1; }) \
    || echo "run.sh: could not install GNU time; the memory check falls back to getrusage" >&2
fi

exec python3 "$ROOT/Benchmarks/bench.py" --blockc "$ROOT/.build/release/blockc" --python "$VENV/bin/python" "${PASS[@]}"
