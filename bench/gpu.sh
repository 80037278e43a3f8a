#!/usr/bin/env bash
# make bench-gpu: bench/speech.py's workloads on a CUDA GPU with large-v3-turbo *dimensions* (random weights,
# every parameter initialised), in under 8 minutes -> docs/benchmarks-gpu.md. WER means nothing with random
# weights: the report gives throughput and latency only, every side decoding the same tokens per window.
#
# Nothing is downloaded: the model is built and converted here (build/bench-gpu/, reused), the speech is made
# by espeak-ng. Needs what `make install` installed (.venv, ffmpeg, espeak-ng), libcublas.so.12 for
# ctranslate2 (pyproject's `cuda12` extra, as in the image) and, for the peer server, build/peer-server/
# made once with network (`make bench-peer`); without it the peer is left out and the report says so.
# The report's targets are issue #32's four ratios on the same workloads as the CPU run: one long file vs the
# in-process pipeline, clips at concurrency 8 and four long files at once vs the peer server, a clip's p95
# while the long file decodes vs alone (the two against the peer need its venv).
#
# Then live audio (issue #36): bench/realtime.py with 1, 16 and 64 sessions at once on the GPU (the embedded
# tiny.en, real weights: its WER means something) -> build/bench-gpu/realtime.md, about 4 more minutes;
# REALTIME=0 leaves it out.
#
#   bench/gpu.sh            # the run (extra arguments go to python -m bench.speech)
#   bench/gpu.sh --plan     # print the plan and exit: no GPU needed
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} HF_HUB_OFFLINE=1
ARGS=(--device cuda --dims large-v3-turbo --force-tokens 96 --rounds 2 --threads 4 --interval 0.25
      --four-minutes 2.5 --offline)

REALTIME_ARGS=(--device cuda --sessions "1,16,64")

if [[ ${1:-} == --plan ]]; then
    [[ ${REALTIME:-1} == 0 ]] || echo "then: $PY -m bench.realtime ${REALTIME_ARGS[*]} > build/bench-gpu/realtime.md"
    exec "$PY" -m bench.speech "${ARGS[@]}" --plan "${@:2}"
fi
fail() { echo "bench/gpu.sh: $*" >&2; exit 2; }
[[ -x $PY ]] || fail "no $PY: run make install first (or set PYTHON)"
for tool in ffmpeg ffprobe espeak-ng; do
    command -v $tool >/dev/null || fail "$tool is missing: scripts/system-deps.sh test installs it (with network)"
done

# ctranslate2 dlopens libcublas.so.12 (CUDA 12) whatever torch brings: find it where pyproject's cuda12 extra
# puts it (the image's /opt/cuda12, or a venv's site-packages) when the loader does not already.
for dir in /opt/cuda12/nvidia/cublas/lib .venv/lib/python3*/site-packages/nvidia/cublas/lib; do
    if [[ -e $dir/libcublas.so.12 ]]; then
        export LD_LIBRARY_PATH=$dir:$dir/../../cuda_nvrtc/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    fi
done
"$PY" - <<'EOF' || exit 2
import ctypes, sys
import ctranslate2
if ctranslate2.get_cuda_device_count() < 1:
    sys.exit("bench/gpu.sh: no CUDA GPU found (ctranslate2 sees none): run it on a machine with an NVIDIA GPU and its driver")
try:
    ctypes.CDLL("libcublas.so.12")
except OSError:
    sys.exit("bench/gpu.sh: libcublas.so.12 not found: pip install --target /opt/cuda12 nvidia-cublas-cu12==12.9.3.13 nvidia-cuda-nvrtc-cu12==12.9.86")
EOF
began=$SECONDS
"$PY" -m bench.speech "${ARGS[@]}" "$@"
echo "bench/gpu.sh: $((SECONDS - began)) s -> docs/benchmarks-gpu.md" >&2
if [[ ${REALTIME:-1} != 0 ]]; then
    began=$SECONDS
    mkdir -p build/bench-gpu
    "$PY" -m bench.realtime "${REALTIME_ARGS[@]}" | tee build/bench-gpu/realtime.md
    echo "bench/gpu.sh: live audio $((SECONDS - began)) s -> build/bench-gpu/realtime.md" >&2
fi
