"""The Dockerfile's pyannote step (--build-arg DIARIZATION_BACKEND=pyannote, docs/api.md): run in a sandbox
with `pip` and `python` stubs that record what they are given (no download, no image built), it installs
pyproject's `pyannote` extra under the image's pins, downloads community-1 with the token from the hf_token
build secret and nothing else, and checks that the pipeline loads offline; without the build argument it
does nothing, and without the secret it stops, saying how to pass it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from service.settings import Settings
from service.settings.speakers import PYANNOTE_PIPELINE
from tests.deploy.test_image import DOCKERFILE, instructions

TOKEN = "hf_" + "x" * 34  # a made-up token (the secret's content)
# what a stub prints: its name, its arguments, and the variables that say how it may reach the Hub
RECORD = (
    'import json, os, sys; names = ("HF_TOKEN", "HF_HUB_OFFLINE", "PYANNOTE_METRICS_ENABLED"); '
    "print(json.dumps([os.path.basename(sys.argv[1]), sys.argv[2:], "
    "{k: os.environ[k] for k in names if k in os.environ}]))"
)


def step() -> str:
    (run,) = [r for r in instructions("RUN") if "id=hf_token" in r]
    return run


def build(
    tmp_path: Path, backend: str, token: str | None = TOKEN
) -> tuple[subprocess.CompletedProcess, list]:
    """The step's script in tmp_path: /run/secrets, /tmp/pins and the pipeline's directory moved there."""
    script = step()[step().index("if [ ") :]
    for path in ("/run/secrets", "/tmp/pins"):
        script = script.replace(path, str(tmp_path / path.strip("/")))
    (tmp_path / "run" / "secrets").mkdir(parents=True)
    if token is not None:
        (tmp_path / "run" / "secrets" / "hf_token").write_text(token)
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for name in ("pip", "python"):
        (stubs / name).write_text(
            f'#!/bin/sh\n{sys.executable} -c \'{RECORD}\' "$0" "$@" >> {tmp_path}/calls\n'
            'case "$2" in *snapshot_download*) mkdir -p "$4/.cache" && touch "$4/config.yaml";; esac\n'
        )
        (stubs / name).chmod(0o755)
    env = {
        "PATH": f"{stubs}:/usr/bin:/bin",
        "DIARIZATION_BACKEND": backend,
        "PYANNOTE_PIPELINE_DIR": str(tmp_path / "models" / "community-1"),
    }
    done = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True)
    calls = tmp_path / "calls"
    return done, [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []


def test_the_token_comes_in_as_a_build_secret_only():
    assert step().startswith("--mount=type=secret,id=hf_token,required=false ")
    assert (
        "ARG DIARIZATION_BACKEND\n" in DOCKERFILE
        and "DIARIZATION_BACKEND=${DIARIZATION_BACKEND}" in DOCKERFILE
    )
    assert "PYANNOTE_PIPELINE_DIR=/models/" in " ".join(instructions("ENV"))  # a choice of the image's own
    assert Settings().pyannote_pipeline_dir != "/models/pyannote/speaker-diarization-community-1"
    assert "hf_token" not in " ".join(instructions("ARG") + instructions("ENV") + instructions("COPY"))


def test_without_the_build_argument_nothing_happens(tmp_path):
    done, calls = build(tmp_path, backend="")
    assert done.returncode == 0 and calls == []


def test_without_the_secret_the_build_stops_saying_how_to_pass_it(tmp_path):
    done, calls = build(tmp_path, backend="pyannote", token=None)
    assert done.returncode == 1 and calls == []
    assert "docker build --secret id=hf_token,env=HF_TOKEN" in done.stderr


def test_the_extra_is_installed_the_pipeline_downloaded_then_loaded_offline(tmp_path):
    done, calls = build(tmp_path, "pyannote")
    assert done.returncode == 0, done.stderr
    pins, pipeline = tmp_path / "tmp" / "pins", tmp_path / "models" / "community-1"
    install, download, check = calls
    assert install == ["pip", ["install", "-r", f"{pins}/pyannote.txt", "-c", f"{pins}/requirements.txt"], {}]
    assert (
        download[0] == "python" and "snapshot_download(sys.argv[1], local_dir=sys.argv[2])" in download[1][1]
    )
    assert download[1][2:] == [PYANNOTE_PIPELINE, str(pipeline)] and download[2] == {"HF_TOKEN": TOKEN}
    assert "Pipeline.from_pretrained(sys.argv[1])" in check[1][1] and check[1][2:] == [str(pipeline)]
    assert check[2] == {"HF_HUB_OFFLINE": "1", "PYANNOTE_METRICS_ENABLED": "false"}  # no token, no network
    assert (pipeline / "config.yaml").exists() and not (pipeline / ".cache").exists()
    assert TOKEN not in done.stdout + done.stderr
