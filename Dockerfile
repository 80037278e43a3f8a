# syntax=docker/dockerfile:1
# The Whisper service on an NVIDIA GPU: `make image` (or `fab build`) builds it, `fab deploy` runs it.
#
# Base: CUDA 12.8 runtime + cuDNN 9 on Ubuntu 24.04 (Python 3.12). Host driver >= 570 (CUDA 12.8's minimum)
# with the NVIDIA Container Toolkit; `docker run --gpus all`. CUDA 12, not 13, because ctranslate2 (the
# faster-whisper engine) loads libcublas.so.12 from this image; torch brings its own CUDA 12.8 libraries.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

# The CUDA build of the torch version pyproject.toml pins (CI installs the CPU build of the same version).
ARG TORCH_VERSION=2.13.0
ARG TORCH_CUDA=cu128
# An official model name (downloaded and baked in) or a checkpoint path inside the build context, and the
# engine whose weights to bake (openai-whisper | faster-whisper; the container runs that engine).
ARG WHISPER_MODEL=turbo
ARG WHISPER_ENGINE=openai-whisper

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# The base image tag pins the distribution; Ubuntu drops superseded package versions, so no apt pins.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ffmpeg curl ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv

# Dependencies first (the big, rarely changing layers): torch from the PyTorch CUDA index, then every
# pin of [project].dependencies and the `faster` extra, read from pyproject.toml by deploy/pins.py.
RUN pip install --index-url "https://download.pytorch.org/whl/${TORCH_CUDA}" "torch==${TORCH_VERSION}+${TORCH_CUDA}"
COPY pyproject.toml deploy/pins.py /tmp/pins/
RUN python /tmp/pins/pins.py /tmp/pins/pyproject.toml faster > /tmp/pins/requirements.txt \
    && pip install -r /tmp/pins/requirements.txt \
    && python -c "import torch, sys; sys.exit(torch.__version__ != '${TORCH_VERSION}+${TORCH_CUDA}')" \
    && rm -rf /tmp/pins

RUN groupadd --system --gid 10001 whisper \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/whisper whisper
WORKDIR /app

# Bake the weights so a container starts without downloading gigabytes, for the engine it will run. A name
# is downloaded into /models (openai-whisper's .pt, or faster-whisper's CTranslate2 model from the Hugging
# Face Hub); a path (relative to the repo root, e.g. build/tiny.pt or models/tiny-ct2) is copied to the same
# path under /app, where a relative WHISPER_MODEL resolves exactly as it does for `make run`. The weights
# stay root-owned and read-only: the service only reads them.
ENV WHISPER_MODEL=${WHISPER_MODEL} \
    WHISPER_ENGINE=${WHISPER_ENGINE} \
    WHISPER_MODEL_DIR=/models
RUN --mount=type=bind,target=/context \
    if [ -e "/context/${WHISPER_MODEL}" ]; then \
        mkdir -p "$(dirname "/app/${WHISPER_MODEL}")" \
        && cp -R "/context/${WHISPER_MODEL}" "/app/${WHISPER_MODEL}" \
        && chmod -R a+rX "/app/${WHISPER_MODEL}"; \
    elif [ "${WHISPER_ENGINE}" = "faster-whisper" ]; then \
        python -c "import sys; from faster_whisper import download_model; download_model(sys.argv[1], cache_dir='/models')" \
            "${WHISPER_MODEL}"; \
    else \
        python -c "import sys, whisper; whisper.load_model(sys.argv[1], device='cpu', download_root='/models')" \
            "${WHISPER_MODEL}"; \
    fi

COPY gunicorn.conf.py ./
COPY service/ service/
COPY scripts/smoke.py scripts/smoke.py

USER 10001:10001
ENV PORT=5000 \
    METRICS_PORT=9101 \
    GRACEFUL_TIMEOUT=120
EXPOSE 5000 9101
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["sh", "-c", "curl -fsS http://127.0.0.1:${PORT}/healthz || exit 1"]
# gunicorn drains on SIGTERM for GRACEFUL_TIMEOUT s; `fab deploy` runs containers with
# --stop-timeout GRACEFUL_TIMEOUT + 15 so docker stop does not kill in-flight requests.
STOPSIGNAL SIGTERM
CMD ["gunicorn", "-c", "gunicorn.conf.py", "service:create_app()"]
