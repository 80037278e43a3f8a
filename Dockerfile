# The Whisper service on an NVIDIA GPU: `make image` (or `fab build`) builds it, `fab deploy` runs it.
#
# Every CUDA library comes from a wheel of PyPI, so `pip install --dry-run` against PyPI proves the set exists
# (tests/deploy/test_image_resolves.py does, for this file's exact requirement set):
#   - torch==2.13.0 from PyPI is the CUDA 13.0 build: it requires cuda-toolkit==13.0.3 (nvidia-cublas 13,
#     cudart 13, ...) and nvidia-cudnn-cu13, and loads them from site-packages/nvidia/ itself.
#   - ctranslate2 4.8.5 (faster-whisper) dlopens libcublas.so.12 and the driver's libcuda.so.1, nothing else of
#     CUDA: the `cuda12` extra (nvidia-cublas-cu12 + its nvrtc) goes to /opt/cuda12, OFF sys.path, because
#     torch's preloader globs site-packages/nvidia/cublas/lib/libcublas.so.* first and would load cuBLAS 12.
# Base: CUDA 13.0 `base` (cudart and NVIDIA_REQUIRE_CUDA only, no second copy of the libraries), Ubuntu 24.04,
# Python 3.12. Host: NVIDIA driver >= 580 (CUDA 13.0's minimum; the container toolkit refuses an older one
# through NVIDIA_REQUIRE_CUDA) on a Turing or newer GPU (CUDA 13 dropped Maxwell, Pascal and Volta).
# BASE_IMAGE swaps the base for any Debian or Ubuntu image with Python >= 3.11 (`make image-test` uses a
# locally bootstrapped Debian 12 where Docker Hub is out of reach); the default is what ships.
#
# No `# syntax=` line: BuildKit's built-in Dockerfile frontend (Docker >= 20.10) handles RUN --mount, and a
# syntax image would have to be pulled from Docker Hub at every build.
#
# Behind a TLS-intercepting proxy, pass its CA bundle as a build secret; it is mounted for the RUN steps that
# download (apt, pip) and never written into a layer:
#   docker build --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt ...   (or EXTRA_CA=path with make image)
ARG BASE_IMAGE=nvidia/cuda:13.0.2-base-ubuntu24.04
FROM ${BASE_IMAGE} AS system

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    LD_LIBRARY_PATH=/opt/cuda12/nvidia/cublas/lib:/opt/cuda12/nvidia/cuda_nvrtc/lib:/usr/local/nvidia/lib:/usr/local/nvidia/lib64

# The base image tag pins the distribution; Ubuntu drops superseded package versions, so no apt pins.
# hadolint ignore=DL3008
RUN --mount=type=secret,id=ca,required=false \
    if [ -s /run/secrets/ca ]; then echo 'Acquire::https::CAInfo "/run/secrets/ca";' >/etc/apt/apt.conf.d/99ca; fi \
    && apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ffmpeg curl ca-certificates \
    && rm -rf /var/lib/apt/lists/* /etc/apt/apt.conf.d/99ca \
    && python3 -m venv /opt/venv

# The requirement lists, read from pyproject.toml by deploy/pins.py so the image and CI cannot drift: every pin
# of [project].dependencies and the `faster` extra for the venv, the `cuda12` extra for /opt/cuda12. In a stage
# of their own: the install below is cached on the lists' content, so an edit elsewhere in pyproject.toml
# (a linter setting) does not reinstall 4 GB of wheels.
FROM system AS pins
COPY pyproject.toml deploy/pins.py /tmp/pins/
RUN python /tmp/pins/pins.py /tmp/pins/pyproject.toml faster > /tmp/pins/requirements.txt \
    && python /tmp/pins/pins.py --extras-only /tmp/pins/pyproject.toml cuda12 > /tmp/pins/cuda12.txt \
    && python /tmp/pins/pins.py --extras-only /tmp/pins/pyproject.toml nodeps > /tmp/pins/nodeps.txt \
    && python /tmp/pins/pins.py --extras-only /tmp/pins/pyproject.toml pyannote > /tmp/pins/pyannote.txt

# Dependencies first (the big, rarely changing layers). The checks fail the build, not the first request,
# when a library is missing.
FROM system
COPY --from=pins /tmp/pins/requirements.txt /tmp/pins/cuda12.txt /tmp/pins/nodeps.txt /tmp/pins/
RUN --mount=type=secret,id=ca,required=false \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && pip install -r /tmp/pins/requirements.txt \
    && pip install --target /opt/cuda12 -r /tmp/pins/cuda12.txt \
    && pip install --no-deps -r /tmp/pins/nodeps.txt \
    && python -c "import resemblyzer, sklearn" \
    && python -c "import torch, sys; sys.exit(not (torch.version.cuda or '').startswith('13.'))" \
    && python -c "import ctypes; ctypes.CDLL('libcublas.so.12'); ctypes.CDLL('libcublasLt.so.12')" \
    && rm -rf /tmp/pins

# The image's facts the hosts follow, written once here: the service account's uid (the host's `whisper`
# account has the same, so bind mounts are writable: ansible/inventory.py reads it) and the oldest NVIDIA
# driver branch CUDA 13.0 runs on (infra/startup.sh and Ansible check the host's: infra/host.py and
# ansible/inventory.py read it).
ARG WHISPER_UID=10001
ARG MIN_DRIVER_MAJOR=580
LABEL io.whisper.min-driver-major="${MIN_DRIVER_MAJOR}"
RUN groupadd --system --gid "${WHISPER_UID}" whisper \
    && useradd --system --uid "${WHISPER_UID}" --gid "${WHISPER_UID}" --create-home --home-dir /home/whisper whisper
WORKDIR /app

# Bake the weights so a container starts without downloading gigabytes, for the engine it will run. A name
# is downloaded into /models (openai-whisper's .pt, or faster-whisper's CTranslate2 model from the Hugging
# Face Hub); a path (relative to the repo root, e.g. build/tiny.pt or models/tiny-ct2) is copied to the same
# path under /app, where a relative WHISPER_MODEL resolves exactly as it does for `make run`. The weights
# stay root-owned and read-only: the service only reads them.
# Layer order: a build argument changes the cache key of every RUN after its ARG line, so each is declared
# just before its first use; the dependencies above are reused by every build whatever its model or tag.
# An official model name (downloaded and baked in) or a checkpoint path inside the build context, and the
# engine whose weights to bake (openai-whisper | faster-whisper; the container runs that engine). `fab build`
# passes both; left unset, the image bakes the service's own defaults (service/settings, their one owner, read
# from the context) and its ENV stays empty, which the service reads as unset.
# MODELS (docs/models.md): the further models a container offers, `name=source[:engine]`, comma-separated;
# each source is baked the same way (e.g. MODELS=base=build/base-ct2:faster-whisper,base-ow=build/base.pt).
ARG WHISPER_MODEL
ARG WHISPER_ENGINE
ARG MODELS
ENV WHISPER_MODEL=${WHISPER_MODEL} \
    WHISPER_ENGINE=${WHISPER_ENGINE} \
    MODELS=${MODELS} \
    WHISPER_MODEL_DIR=/models
RUN --mount=type=bind,target=/context \
    bake() { \
        if [ -e "/context/$1" ]; then \
            mkdir -p "$(dirname "/app/$1")" \
            && cp -R "/context/$1" "/app/$1" \
            && chmod -R a+rX "/app/$1"; \
        elif [ "$2" = "faster-whisper" ]; then \
            python -c "import sys; from faster_whisper import download_model; download_model(sys.argv[1], cache_dir='/models')" \
                "$1"; \
        else \
            python -c "import sys, whisper; whisper.load_model(sys.argv[1], device='cpu', download_root='/models')" \
                "$1"; \
        fi; \
    } \
    && model="${WHISPER_MODEL:-$(PYTHONPATH=/context python -c 'from service.settings import DEFAULTS; print(DEFAULTS.whisper_model)')}" \
    && engine="${WHISPER_ENGINE:-$(PYTHONPATH=/context python -c 'from service.settings import DEFAULTS; print(DEFAULTS.whisper_engine)')}" \
    && bake "${model}" "${engine}" \
    && IFS=, \
    && for entry in ${MODELS:-}; do \
        source="${entry#*=}"; \
        case "${source}" in \
            *:openai-whisper|*:faster-whisper) bake "${source%:*}" "${source##*:}" ;; \
            *) bake "${source}" "${engine}" ;; \
        esac || exit 1; \
    done

# Speaker diarization's second backend (docs/api.md, "The pyannote backend"): with
# --build-arg DIARIZATION_BACKEND=pyannote, pyannote.audio (pyproject's `pyannote` extra, constrained by the pins
# above, so torch stays) and the community-1 pipeline, whose weights are gated on the Hugging Face Hub,
# downloaded with the operator's token into PYANNOTE_PIPELINE_DIR, then loaded offline as the service will.
# The token is a BuildKit secret (`docker build --secret id=hf_token,env=HF_TOKEN`): mounted for this step
# alone, never a build argument, an ENV, a layer's file or a part of the cache key. The lists are bind-mounted
# from the pins stage, so this layer is rebuilt only when they change. Unset, the step does nothing. After
# the Whisper weights: switching the backend does not download them again.
ARG DIARIZATION_BACKEND
ENV DIARIZATION_BACKEND=${DIARIZATION_BACKEND} \
    PYANNOTE_PIPELINE_DIR=/models/pyannote/speaker-diarization-community-1
RUN --mount=type=secret,id=hf_token,required=false \
    --mount=type=secret,id=ca,required=false \
    --mount=type=bind,from=pins,source=/tmp/pins/pyannote.txt,target=/tmp/pins/pyannote.txt \
    --mount=type=bind,from=pins,source=/tmp/pins/requirements.txt,target=/tmp/pins/requirements.txt \
    if [ "${DIARIZATION_BACKEND}" != "pyannote" ]; then exit 0; fi \
    && if [ ! -s /run/secrets/hf_token ]; then \
        echo "DIARIZATION_BACKEND=pyannote downloads the gated pyannote/speaker-diarization-community-1: pass a Hugging Face token that accepted its conditions, docker build --secret id=hf_token,env=HF_TOKEN ... (docs/api.md)" >&2; \
        exit 1; \
    fi \
    && if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca REQUESTS_CA_BUNDLE=/run/secrets/ca; fi \
    && pip install -r /tmp/pins/pyannote.txt -c /tmp/pins/requirements.txt \
    && HF_TOKEN="$(cat /run/secrets/hf_token)" python -c "import sys; from huggingface_hub import snapshot_download; snapshot_download(sys.argv[1], local_dir=sys.argv[2])" \
        pyannote/speaker-diarization-community-1 "${PYANNOTE_PIPELINE_DIR}" \
    && rm -rf "${PYANNOTE_PIPELINE_DIR}/.cache" \
    && chmod -R a+rX "${PYANNOTE_PIPELINE_DIR}" \
    && HF_HUB_OFFLINE=1 PYANNOTE_METRICS_ENABLED=false python -c "import sys; from pyannote.audio import Pipeline; sys.exit(Pipeline.from_pretrained(sys.argv[1]) is None)" \
        "${PYANNOTE_PIPELINE_DIR}"

COPY gunicorn.conf.py pyproject.toml ./
COPY service/ service/
COPY scripts/smoke.py scripts/smoke.py
# Background jobs (SQLite + audio + results) live in /data/jobs: `fab deploy` mounts the host's data directory
# there in both blue/green colours (docs/deploy.md), so a job outlives the container that took it.
RUN install -d -o "${WHISPER_UID}" -g "${WHISPER_UID}" /data/jobs
ENV JOBS_DIR=/data/jobs
# The tag this image is built for (`fab build` passes the commit id); /readyz reports it as `build`. Last, so
# that a new tag changes no layer.
ARG WHISPER_BUILD=dev
ENV WHISPER_BUILD=${WHISPER_BUILD}

USER ${WHISPER_UID}:${WHISPER_UID}
# The service listens on loopback by default (make run); in a container that would be unreachable, so the image
# binds every interface of its own network namespace, and `fab deploy` and infra/startup.sh publish the ports
# on the host's loopback only (docs/security.md).
ENV API_HOST=0.0.0.0 \
    METRICS_HOST=0.0.0.0
# PORT, METRICS_PORT and GRACEFUL_TIMEOUT are the service's own defaults (service/settings) unless the env file
# sets them, so the image repeats none of them: no EXPOSE (`fab deploy` and infra/startup.sh publish the
# ports themselves). The healthcheck asks the settings for the port the server listens on.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; from service.settings import from_env; u.urlopen(f'http://127.0.0.1:{from_env().port}/healthz', timeout=4)"]
# gunicorn drains on SIGTERM for GRACEFUL_TIMEOUT s; `fab deploy` runs containers with --stop-timeout
# GRACEFUL_TIMEOUT + 5 (STOP_MARGIN_SECONDS, service/settings) so docker stop does not kill in-flight requests.
STOPSIGNAL SIGTERM
CMD ["gunicorn", "-c", "gunicorn.conf.py", "service:create_app()"]
