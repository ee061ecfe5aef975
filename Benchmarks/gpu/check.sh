#!/bin/bash
# Runs every example's generated CUDA on a real GPU: see "On a GPU machine" in Benchmarks/README.md.
#
#   Benchmarks/gpu/check.sh BLOCKC OUTDIR [--quick]
#
# BLOCKC: a blockc binary that runs on the GPU machine (a static build: README). Writes OUTDIR/summary.txt
# (one line per bundle and check) and OUTDIR/logs.tgz (every log). Phases:
#   1. every example at its reduced size (reduced.txt, the sizes of CudaTests), f32 and --tf32: built for
#      sm_90 with nvcc, run on the GPU, compared with the interpreter (the bundle's compare.py), and the same
#      bundle run on blockc's CUDA emulator on this machine's CPU (when g++ is there): GPU against emulator;
#   2. every example at its full size, f32 and --tf32: compared, then timed one at a time (REPS=20);
#   3. compute-sanitizer memcheck and racecheck on the reduced f32 harnesses;
#   4. torch references at the examples' full sizes (torch_reference.py), when torch sees the GPU.
# --quick: phase 1 only.
set -u
if [ "$#" -lt 2 ]; then echo "usage: check.sh BLOCKC OUTDIR [--quick]" >&2; exit 2; fi
BLOCKC=$(realpath "$1"); OUTDIR=$(realpath "$2"); QUICK=${3:-}
HERE=$(cd "$(dirname "$0")" && pwd); ROOT=$(cd "$HERE/../.." && pwd)
mkdir -p "$OUTDIR"; L=$OUTDIR/summary.txt; : > "$L"
W=$(mktemp -d /tmp/blockc-gpu.XXXXXX)
T0=$(date +%s)
el() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$L"; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv,noheader 2>&1 | tee -a "$L"
nvcc --version 2>&1 | tail -1 | tee -a "$L"
"$BLOCKC" --help | head -1 | tee -a "$L"
export NVCC=${NVCC:-nvcc} NVCC_ARCH=${NVCC_ARCH:-"-gencode arch=compute_90,code=sm_90"}
HAVE_CXX=0; command -v "${CXX:-g++}" > /dev/null && HAVE_CXX=1
# bundle NAME DIMS|- [--tf32]: a bundle in $W/NAME (dims '-': full size).
bundle() {
    local name=$1 dims=$2 extra=${3:-} dir=$1; [ -n "$extra" ] && dir=${1}_tf32
    local args=(emit-cuda "$ROOT/Examples/$name.graph" --bundle "$W/$PHASE/$dir" $extra)
    [ "$dims" != "-" ] && args+=(--dim "$dims")
    timeout 300 "$BLOCKC" "${args[@]}" > /dev/null 2> "$W/$PHASE/$dir.emit.txt" || echo "$dir: emit-cuda failed"
}
export -f bundle; export BLOCKC ROOT W
# tf32 GRAPH: whether the graph has f32 products for --tf32 to act on (a matmul, no bf16).
tf32() { grep -q "matmul" "$1" && ! grep -q "bf16" "$1"; }
# Every bundle of a phase built and run on the GPU, 12 at a time (REPS=0: correctness only).
run_all() {
    ls -d */ | tr -d / | xargs -P 12 -I{} sh -c \
        'REPS=0 sh {}/run.sh > {}/log.txt 2>&1; echo "{} rc=$? $(grep -h max_rel_err {}/log.txt | tr "\n" " ")"' |
        sort | tee -a "$L"
}
el "phase 1: reduced sizes, f32 and --tf32, on the GPU"
PHASE=r; export PHASE; mkdir -p "$W/r"; cd "$W/r"
while read -r name dims; do
    echo "$name $dims"
    tf32 "$ROOT/Examples/$name.graph" && echo "$name $dims --tf32"
done < "$HERE/reduced.txt" | xargs -P 12 -L1 bash -c 'bundle "$@"' _
run_all
if [ "$HAVE_CXX" = 1 ]; then
    el "phase 1: the same bundles on the emulator (CPU), GPU against emulator"
    ls -d */ | tr -d / | xargs -P 16 -I{} sh -c \
        'cd {} && rm -rf out-gpu && mv out out-gpu && EMU_ARCH=90 sh run.sh --emulate > emu.txt 2>&1; s=$?;
         rm -rf out-emu && mv out out-emu && mv out-gpu out;
         echo "{} emulator rc=$s, GPU against emulator: $(python3 '"$HERE"'/compare_runs.py out out-emu expected)"' |
        sort | tee -a "$L"
fi
[ "$QUICK" = "--quick" ] && { el "done (quick)"; exit 0; }
el "phase 2: full sizes, f32 and --tf32"
PHASE=f; export PHASE; mkdir -p "$W/f"; cd "$W/f"
for g in "$ROOT"/Examples/*.graph; do
    name=$(basename "$g" .graph); echo "$name -"
    tf32 "$g" && echo "$name - --tf32"
done | xargs -P 12 -L1 bash -c 'bundle "$@"' _
run_all
el "phase 2: times, one at a time (REPS=20)"
for n in $(ls -d */ | tr -d /); do
    [ -x "$n/harness" ] && (cd "$n" && echo "$n $(timeout 60 ./harness inputs out 20 | grep median)") | tee -a "$L"
done
el "phase 3: compute-sanitizer memcheck and racecheck (reduced f32)"
cd "$W/r"
for tool in memcheck racecheck; do
    ls -d */ | tr -d / | grep -v _tf32 | xargs -P 12 -I{} sh -c "cd {} && timeout 60 compute-sanitizer --tool $tool \
        --error-exitcode 9 ./harness inputs out 0 > $tool.txt 2>&1; echo \"{} $tool rc=\$? \$(grep -h 'ERROR SUMMARY\|RACECHECK SUMMARY' $tool.txt | head -1)\"" |
        sort | tee -a "$L"
done
el "phase 4: torch references"
timeout 120 python3 "$HERE/torch_reference.py" 2>&1 | tee -a "$L"
el "done"
cd "$W" && tar czf "$OUTDIR/logs.tgz" r/*.emit.txt r/*/*.txt f/*.emit.txt f/*/*.txt 2>/dev/null
