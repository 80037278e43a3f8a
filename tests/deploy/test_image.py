"""The Dockerfile: hadolint-clean, the same pins as CI, the same command as `make run`, no secrets."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

from deploy.pins import image_requirements, pinned_version
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
HADOLINT = str(Path(sys.executable).with_name("hadolint"))


def instructions(name: str) -> list[str]:
    """The arguments of every `name` instruction, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [line.split(None, 1)[1] for line in joined.splitlines() if line.startswith(f"{name} ")]


def arg_default(name: str) -> str:
    (value,) = [a.split("=", 1)[1] for a in instructions("ARG") if a.startswith(f"{name}=")]
    return value


def shipped_base() -> str:
    """The base the image ships with: BASE_IMAGE's default (tests build on a local Debian instead)."""
    assert instructions("FROM") == ["${BASE_IMAGE} AS system", "system AS pins", "system"]
    return arg_default("BASE_IMAGE")


def test_no_syntax_directive_that_would_pull_a_frontend_image():
    # BuildKit resolves `# syntax=docker/dockerfile:1` from Docker Hub at every build; the built-in
    # frontend of Docker >= 20.10 already has RUN --mount (bind, secret)
    assert not DOCKERFILE.lstrip().startswith("# syntax")
    assert "--mount=type=secret,id=ca,required=false" in DOCKERFILE


def test_hadolint_finds_nothing():
    result = subprocess.run([HADOLINT, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_torch_is_pypis_build_of_the_version_ci_pins():
    # PyPI's torch 2.13.0 for Linux is the CUDA 13 build: no extra index, no local version suffix.
    assert "download.pytorch.org" not in DOCKERFILE and "+cu" not in DOCKERFILE
    torch = "torch==" + pinned_version(ROOT / "pyproject.toml", "torch")
    assert torch in image_requirements(ROOT / "pyproject.toml")
    base = shipped_base()
    assert base.startswith("nvidia/cuda:13.0.") and base.endswith("-base-ubuntu24.04")


def test_every_other_dependency_comes_from_pyproject_via_pins_py(tmp_path):
    assert "COPY pyproject.toml deploy/pins.py /tmp/pins/" in DOCKERFILE
    (install,) = [r for r in instructions("RUN") if "pins.py" in r]
    (step,) = [s for s in install.split("&&") if "pins.py /tmp" in s and "--extras-only" not in s]
    command = shlex.split(step.split(">")[0])  # python /tmp/pins/pins.py PYPROJECT EXTRAS
    assert command[:2] == ["python", "/tmp/pins/pins.py"] and command[2] == "/tmp/pins/pyproject.toml"
    # the install stage gets the lists alone: its cache holds while the lists do
    assert "COPY --from=pins /tmp/pins/requirements.txt /tmp/pins/cuda12.txt /tmp/pins/" in DOCKERFILE
    (pip,) = [r for r in instructions("RUN") if "pip install -r /tmp/pins/requirements.txt" in r]
    assert "pip install -r /tmp/pins/requirements.txt" in pip
    assert "pip install --target /opt/cuda12 -r /tmp/pins/cuda12.txt" in pip
    # run what the image runs, on the real pyproject.toml
    result = subprocess.run(
        [sys.executable, str(ROOT / "deploy/pins.py"), str(ROOT / "pyproject.toml"), *command[3:]],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = result.stdout.split()
    assert lines == image_requirements(ROOT / "pyproject.toml", ("faster",))
    assert all("==" in line for line in lines), lines  # exact pins only
    assert {"flask", "gunicorn", "openai-whisper", "torch", "faster-whisper"} <= {
        line.split("==")[0] for line in lines
    }
    assert not {"pytest", "fabric", "pulumi"} & {line.split("==")[0] for line in lines}  # no ops/dev extras


def test_the_container_runs_the_same_command_as_make_run():
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\nrun:", 1)[1].split("\n\n", 1)[0]
    # the recipe picks the model (the embedded default when WHISPER_MODEL is unset), then execs gunicorn
    (gunicorn,) = [
        line[line.index("$(BIN)/gunicorn") :] for line in recipe.splitlines() if "$(BIN)/gunicorn" in line
    ]
    make_run = shlex.split(gunicorn.replace("$(BIN)/", ""))
    (cmd,) = instructions("CMD")
    assert json.loads(cmd) == make_run


def test_ports_health_stop_signal_and_user():
    # the service's own defaults (service/settings) apply: the image sets no port and exposes none
    # (tests/test_settings.py finds any copy of a default here)
    assert not instructions("EXPOSE")
    (healthcheck,) = instructions("HEALTHCHECK")
    assert "/healthz" in healthcheck and "--start-period" in healthcheck
    assert "from service.settings import from_env" in healthcheck and "from_env().port" in healthcheck
    assert instructions("STOPSIGNAL") == ["SIGTERM"]
    (user,) = instructions("USER")
    assert user.split(":")[0] not in ("0", "root")
    assert any("WHISPER_MODEL_DIR=/models" in env for env in instructions("ENV"))
    assert {"WHISPER_MODEL", "WHISPER_ENGINE"} <= set(instructions("ARG"))  # no default of their own
    assert any("WHISPER_ENGINE=${WHISPER_ENGINE}" in env for env in instructions("ENV"))


def test_no_secret_enters_any_layer():
    names = [a.split("=")[0] for a in instructions("ARG")] + re.findall(
        r"(\w+)=", " ".join(instructions("ENV"))
    )
    assert not [n for n in names if re.search(r"TOKEN|SECRET|PASSWORD|API_KEY|CREDENTIAL", n)], names
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    ignore = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert ignore[0] == "*"  # nothing enters the build context unless listed
    allowed = [p[1:] for p in ignore if p.startswith("!")]
    for copy in instructions("COPY"):
        if copy.startswith("--from="):  # from an earlier stage of this Dockerfile, not the context
            continue
        for source in copy.split()[:-1]:
            assert any(source.rstrip("/") == a.rstrip("/") for a in allowed), source
    assert not [a for a in allowed if re.search(r"\.env|\.deploy|Pulumi|\.venv|secret", a)]


def bake(tmp_path: Path, model: str, engine: str = "openai-whisper", models: str = "") -> tuple[Path, str]:
    """Run the Dockerfile's weight-baking step in a sandbox: /context, /app, /models moved under tmp_path,
    `python` a stub that records its arguments (no download here)."""
    (step,) = [r for r in instructions("RUN") if r.startswith("--mount=type=bind,target=/context")]
    script = step.split(None, 1)[1]
    for path in ("/context", "/app", "/models"):
        script = script.replace(path, str(tmp_path / path.strip("/")))
    stub_bin = tmp_path / "bin"
    stub_bin.mkdir(exist_ok=True)
    (stub_bin / "python").write_text(
        "#!/bin/sh\n"  # the settings' defaults are read for real, from the context's service/
        f'case "$2" in *service.settings*) exec {sys.executable} "$@";; esac\n'
        f'printf "%s\\n" "$@" > {tmp_path}/python-args\n'
    )
    (stub_bin / "python").chmod(0o755)
    env = {"PATH": f"{stub_bin}:/usr/bin:/bin", "WHISPER_MODEL": model, "WHISPER_ENGINE": engine}
    env |= {"MODELS": models} if models else {}
    subprocess.run(["sh", "-c", script], env=env, check=True)
    args = tmp_path / "python-args"
    return tmp_path / "app", args.read_text() if args.exists() else ""


def test_a_checkpoint_in_the_context_is_baked_at_the_path_make_run_uses(tmp_path):
    (tmp_path / "context" / "build").mkdir(parents=True)
    (tmp_path / "context" / "build" / "tiny.pt").write_bytes(b"weights")
    app, python_args = bake(tmp_path, "build/tiny.pt")
    assert (app / "build" / "tiny.pt").read_bytes() == b"weights"  # WORKDIR /app + WHISPER_MODEL
    assert python_args == ""  # nothing downloaded
    assert any(line == "!build/*.pt" for line in (ROOT / ".dockerignore").read_text().splitlines())


def test_a_converted_model_directory_is_baked_for_faster_whisper(tmp_path):
    (tmp_path / "context" / "models" / "tiny-ct2").mkdir(parents=True)
    (tmp_path / "context" / "models" / "tiny-ct2" / "model.bin").write_bytes(b"ct2")
    app, python_args = bake(tmp_path, "models/tiny-ct2", engine="faster-whisper")
    assert (app / "models" / "tiny-ct2" / "model.bin").read_bytes() == b"ct2"
    assert python_args == ""


def test_every_models_entry_is_baked_for_its_engine(tmp_path):
    """MODELS=name=source[:engine],...: the embedded base for both engines, and a name downloaded."""
    context = tmp_path / "context" / "build"
    (context / "base-ct2").mkdir(parents=True)
    (context / "base-ct2" / "model.bin").write_bytes(b"ct2")
    (context / "tiny.en.pt").write_bytes(b"tiny")
    (context / "base.pt").write_bytes(b"base")
    models = (
        "base=build/base-ct2:faster-whisper,base-ow=build/base.pt:openai-whisper,small=small:faster-whisper"
    )
    app, python_args = bake(tmp_path, "build/tiny.en.pt", models=models)
    assert (app / "build" / "tiny.en.pt").read_bytes() == b"tiny"
    assert (app / "build" / "base-ct2" / "model.bin").read_bytes() == b"ct2"
    assert (app / "build" / "base.pt").read_bytes() == b"base"
    code, name = python_args.splitlines()[1:3]  # the one name: downloaded for its engine
    assert "download_model(sys.argv[1]" in code and name == "small"
    assert "!build/base-ct2/" in (ROOT / ".dockerignore").read_text().splitlines()
    assert "MODELS" in instructions("ARG")


def test_faster_whisper_weights_are_downloaded_into_the_model_dir(tmp_path):
    (tmp_path / "context").mkdir()
    _, python_args = bake(tmp_path, "turbo", engine="faster-whisper")
    code, name = python_args.splitlines()[1:3]
    assert "download_model(sys.argv[1], cache_dir=" in code and f"'{tmp_path}/models'" in code
    assert name == "turbo"


def test_an_official_name_is_downloaded_into_the_model_dir(tmp_path):
    (tmp_path / "context").mkdir()
    app, python_args = bake(tmp_path, "turbo")
    assert not app.exists()
    code, name = python_args.splitlines()[1:3]  # -c CODE NAME
    assert "whisper.load_model(sys.argv[1]" in code and f"download_root='{tmp_path}/models'" in code
    assert name == "turbo"


def test_without_build_arguments_the_image_bakes_the_services_own_defaults(tmp_path):
    (tmp_path / "context").mkdir()
    (tmp_path / "context" / "service").symlink_to(ROOT / "service")
    _, python_args = bake(tmp_path, "", engine="")
    code, name = python_args.splitlines()[1:3]
    assert name == Settings().whisper_model
    assert ("download_model" in code) == (Settings().whisper_engine == "faster-whisper")
