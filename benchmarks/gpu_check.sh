#!/usr/bin/env bash
# The GPU check: one command for a GPU host as users and CI have them (CUDA PyTorch, Triton,
# cuda-bindings; maybe no TensorRT, no PyAV, no network). Installs nothing; uses what the host
# has, says which parts it can run, and runs those.
#
#   bash benchmarks/gpu_check.sh                        # on the GPU host, from anywhere
#   bash benchmarks/gpu_check.sh --dry-run              # anywhere: builds and checks every step's
#                                                       # arguments, uses no GPU, under 10 s; writes to a
#                                                       # fresh $TMPDIR/stvsr-gpu-check-dry.XXXXXX (printed)
#   bash benchmarks/gpu_check.sh --onnx-dir DIR         # ONNX files exported beforehand on a CPU machine
#                                                       # (DIR/zsm-fp32.onnx, zsm-fp16.onnx[, zsm-int8.onnx],
#                                                       # <net>-fp32.onnx): TensorRT engine and ORT CUDA steps
#   bash benchmarks/gpu_check.sh --ptx-dir DIR          # PTX built elsewhere (python -m stvsr.plugins build):
#                                                       # checked too, beside the PTX built on the host
# Environment: STVSR_GPU_OUT (default benchmarks/results/gpu; a dry run: a fresh temporary folder), PYTHON (default python3, else python),
# STVSR_GPU_CHECK_DRY_RUN=1 (same as --dry-run).
#
# Steps, each with a time limit (all together 470 s, under 8 minutes; without TensorRT 360 s):
#   env           30 s  packages, GPU, driver; which steps can run here
#   ptx           60 s  python -m stvsr.plugins build for this GPU (the host's Triton): the PTX an engine
#                       build here would embed
#   kernels       80 s  benchmarks/gpu_kernels.py: that PTX loaded with cuda-bindings and launched in
#                       TensorRT's argument layout vs the PyTorch ops, 540p/1080p, FP32/FP16, timed
#   bench        120 s  stvsr-bench --backends pytorch,pytorch-fp16: the five networks at the papers' sizes
#                       on CUDA
#   overlap       30 s  benchmarks/gpu_overlap.py: stvsr-run's TensorRT backend stream/event/pinned-memory
#                       code with a context test double: double-buffered vs one-at-a-time wall time
#   ort-cuda      30 s  benchmarks/gpu_ort_cuda.py: nodes ONNX Runtime's CUDA provider leaves on the CPU
#                       (skipped, with the reason, by the CPU build of onnxruntime)
#   trt-plugins   45 s  with TensorRT: benchmarks/plugins_gpu.py --require-tensorrt at 540p, FP16
#   trt-validate  65 s  with TensorRT and --onnx-dir: benchmarks/validate_gpu.py, zsm engines, both plugin
#                       flavours
#   summary       10 s  the table
# Output, in STVSR_GPU_OUT: summary.md (one table per part, the step table with status and seconds)
# and logs.tar.gz (each step's log and raw JSON/Markdown, the PTX). A step that cannot run here is
# listed as skipped with the reason; a failing step is named on stderr and in summary.md, the
# others still run, and the exit status is 1. No GPU (no nvidia-smi, or it lists none): exit 2,
# nothing written.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"     # runs from a checkout; no installation needed
export PYTHONUNBUFFERED=1                                 # a step stopped at its limit keeps its log

DRY=${STVSR_GPU_CHECK_DRY_RUN:-0}
ONNX_DIR=""
EXTRA_PTX=""
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY=1 ;;
        --onnx-dir) ONNX_DIR=${2:?--onnx-dir needs a folder}; shift ;;
        --ptx-dir) EXTRA_PTX=${2:?--ptx-dir needs a folder}; shift ;;
        -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
        *) echo "gpu_check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
for d in "$ONNX_DIR" "$EXTRA_PTX"; do
    if [ -n "$d" ] && [ ! -d "$d" ]; then echo "gpu_check: $d is not a folder" >&2; exit 2; fi
done
PY=${PYTHON:-$(command -v python3 || command -v python)}
if [ "$DRY" = 1 ]; then    # a dry run never replaces real results: a fresh folder of its own, printed at the end
    OUT=${STVSR_GPU_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/stvsr-gpu-check-dry.XXXXXX")} || exit 2
else
    OUT=${STVSR_GPU_OUT:-benchmarks/results/gpu}
fi

# ---- preflight: a GPU, before anything is written
GPU_LIST="none (dry run)"
if [ "$DRY" != 1 ]; then
    if ! command -v nvidia-smi >/dev/null 2>&1; then
        echo "gpu_check: no NVIDIA driver (nvidia-smi not found): this check needs a machine with an NVIDIA GPU;" \
             "nothing was run (bash benchmarks/gpu_check.sh --dry-run checks the steps without one)" >&2
        exit 2
    fi
    if ! GPU_LIST=$(nvidia-smi -L 2>&1) || ! grep -q "^GPU " <<<"$GPU_LIST"; then
        echo "gpu_check: nvidia-smi sees no GPU ($GPU_LIST); nothing was run" >&2
        exit 2
    fi
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/stvsr-gpu-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/logs" "$OUT"
: >"$WORK/steps.tsv"
: >"$WORK/plan.tsv"
FAILED=()
START=$(date +%s)

record() { printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "${5:-}" >>"$WORK/steps.tsv"; }

# step NAME LIMIT_S COMMAND...: run with a time limit (dry run: plan it), log to logs/NAME.log.
step() {
    local name=$1 limit=$2; shift 2
    if [ "$DRY" = 1 ]; then
        printf '%s\t%s\t%s\n' "$name" "$limit" "$(printf '%q ' "$@")" >>"$WORK/plan.tsv"
        record "$name" "planned (dry run)" 0 "$limit" "$*"
        return 0
    fi
    local t0 rc why
    t0=$(date +%s)
    echo "== [$(date -u +%H:%M:%S)] $name (limit ${limit} s): $*" | tee "$WORK/logs/$name.log"
    timeout --kill-after=5 "$limit" "$@" 2>&1 | tee -a "$WORK/logs/$name.log"
    rc=${PIPESTATUS[0]}
    local dt=$(( $(date +%s) - t0 ))
    if [ "$rc" -eq 0 ]; then
        record "$name" ok "$dt" "$limit"
    else
        why="exit $rc"
        [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && why="timed out after ${limit} s"
        record "$name" "**FAILED** ($why)" "$dt" "$limit" "see logs/$name.log"
        FAILED+=("$name")
        echo "gpu_check: step '$name' FAILED ($why); log: logs/$name.log in $OUT/logs.tar.gz" >&2
    fi
    return "$rc"
}

skip() { record "$1" skipped 0 "$2" "$3"; echo "gpu_check: step '$1' skipped: $3"; }

# ---- env: what this host has; HAVE_* flags for the steps below
if [ "$DRY" = 1 ]; then
    step env 30 "$PY" benchmarks/gpu_check.py env --out "$WORK/env.json" --shell "$WORK/env.sh"
    HAVE_TRITON=1 HAVE_KERNELS=1 HAVE_TORCH_CUDA=1 HAVE_BENCH=1 HAVE_OVERLAP=1 HAVE_ORT_CUDA=1 HAVE_TENSORRT=1 ARCH=90
else
    step env 30 "$PY" benchmarks/gpu_check.py env --out "$WORK/env.json" --shell "$WORK/env.sh"
    HAVE_TRITON=0 HAVE_KERNELS=0 HAVE_TORCH_CUDA=0 HAVE_BENCH=0 HAVE_OVERLAP=0 HAVE_ORT_CUDA=0 HAVE_TENSORRT=0 ARCH=90
    WHY_PTX="env step failed" WHY_KERNELS="env step failed" WHY_BENCH="env step failed" \
        WHY_OVERLAP="env step failed" WHY_TENSORRT="env step failed"
    # shellcheck disable=SC1091
    [ -f "$WORK/env.sh" ] && . "$WORK/env.sh"
    if [ "$HAVE_TORCH_CUDA" != 1 ]; then
        FAILED+=(gpu)
        record gpu "**FAILED**" 0 - "${WHY_BENCH:-env step failed}: none of the GPU steps can run"
        echo "gpu_check: ${WHY_BENCH:-env step failed}: none of the GPU steps can run" >&2
    fi
fi

# ---- ptx + kernels: the AOT PTX as TensorRT would launch it
PTX_ARGS=()
if [ "$HAVE_TRITON" = 1 ]; then
    step ptx 60 "$PY" -m stvsr.plugins build --arch "$ARCH" -o "$WORK/ptx" --reuse-cache && PTX_ARGS+=(--ptx-dir "$WORK/ptx")
else
    skip ptx 60 "$WHY_PTX"
fi
[ -n "$EXTRA_PTX" ] && PTX_ARGS+=(--ptx-dir "$EXTRA_PTX")
if [ "$HAVE_KERNELS" = 1 ] && [ ${#PTX_ARGS[@]} -gt 0 ]; then
    step kernels 80 "$PY" benchmarks/gpu_kernels.py "${PTX_ARGS[@]}" --out "$WORK/kernels.json"
elif [ "$HAVE_KERNELS" = 1 ]; then
    skip kernels 80 "no PTX: the ptx step failed and no --ptx-dir was given"
else
    skip kernels 80 "$WHY_KERNELS"
fi

# ---- bench: PyTorch CUDA FP32/FP16 of the five networks at the papers' sizes
if [ "$HAVE_BENCH" = 1 ]; then      # CUDA torch, click and onnx (gpu_check.py env)
    step bench 120 "$PY" -m stvsr.bench.cli --backends pytorch,pytorch-fp16 --no-comparisons --repeats 10 \
        --warmup 2 -o "$WORK/bench" -y
else
    skip bench 120 "$WHY_BENCH"
fi

# ---- overlap: double buffering on real streams
if [ "$HAVE_OVERLAP" = 1 ]; then
    step overlap 30 "$PY" benchmarks/gpu_overlap.py --out "$WORK/overlap.json"
else
    skip overlap 30 "$WHY_OVERLAP"
fi

# ---- ort-cuda: always run; it reports a CPU build of onnxruntime as skipped
ORT_ARGS=(--out "$WORK/ort_cuda.json")
[ -n "$ONNX_DIR" ] && ORT_ARGS+=(--onnx-dir "$ONNX_DIR")
step ort-cuda 30 "$PY" benchmarks/gpu_ort_cuda.py "${ORT_ARGS[@]}"

# ---- TensorRT steps, where TensorRT is importable
if [ "$HAVE_TENSORRT" = 1 ]; then
    [ -f "$WORK/ptx/manifest.json" ] && export STVSR_PLUGIN_PTX_DIR="$WORK/ptx"   # engines reuse the PTX built above
    step trt-plugins 45 "$PY" benchmarks/plugins_gpu.py --require-tensorrt --sizes 540p --dtypes fp16 --iters 10 \
        --out "$WORK/plugins_gpu.json"
    if [ -n "$ONNX_DIR" ]; then
        PRECISIONS=fp32,fp16
        [ -f "$ONNX_DIR/zsm-int8.onnx" ] && PRECISIONS=fp32,fp16,int8
        step trt-validate 65 "$PY" benchmarks/validate_gpu.py --models zsm --precisions "$PRECISIONS" \
            --onnx-dir "$ONNX_DIR" --opt-level 0 --repeats 5 --out "$WORK/validate_gpu.md" --work "$WORK/validate"
    else
        skip trt-validate 65 "needs --onnx-dir (zsm ONNX files exported beforehand on a CPU machine)"
    fi
else
    skip trt-plugins 45 "$WHY_TENSORRT"
    skip trt-validate 65 "$WHY_TENSORRT"
fi

# ---- dry run: every planned step's argument handling, in one Python process, no GPU
if [ "$DRY" = 1 ]; then
    if ! "$PY" benchmarks/gpu_check.py dry-run --plan "$WORK/plan.tsv" 2>&1 | tee "$WORK/logs/dry-run.log"; then
        FAILED+=(dry-run)
    fi
fi

# ---- summary + archive: the only two files written
GIT=$(git rev-parse --short HEAD 2>/dev/null || echo "?")
SUMMARY_ARGS=(--work "$WORK" --out "$OUT/summary.md" --git "$GIT")
[ "$DRY" = 1 ] && SUMMARY_ARGS+=(--dry-run)
TOTAL=$(( $(date +%s) - START ))
record total - "$TOTAL" - ""          # the summary puts the limits of the steps that ran or were planned
if ! timeout 10 "$PY" benchmarks/gpu_check.py summary "${SUMMARY_ARGS[@]}"; then
    FAILED+=(summary)
    echo "gpu_check: step 'summary' FAILED" >&2
fi
rm -rf "$WORK/validate"                                  # engines and copies: large, and rebuilt anyway
tar -czf "$OUT/logs.tar.gz.tmp" -C "$WORK" . && mv "$OUT/logs.tar.gz.tmp" "$OUT/logs.tar.gz"

if [ "$DRY" = 1 ]; then
    echo "gpu_check: no GPU (dry run): every step's arguments built and checked, nothing measured; written to" \
         "$OUT: summary.md and logs.tar.gz"
    [ ${#FAILED[@]} -gt 0 ] && { echo "gpu_check: dry run FAILED: ${FAILED[*]}" >&2; exit 1; }
    exit 0
fi
if [ ${#FAILED[@]} -gt 0 ]; then
    echo "gpu_check: FAILED steps: ${FAILED[*]} (see $OUT/summary.md)" >&2
    exit 1
fi
echo "gpu_check: done in ${TOTAL} s; $OUT/summary.md and $OUT/logs.tar.gz"
