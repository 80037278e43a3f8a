"""`make deploy`: DRY_RUN=1 prints every step's commands in order and runs none; a missing tool stops it at
the start with one line that says how to fix it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAKE = shutil.which("make")


# `pulumi config --json` is the one read-only call a dry run makes: it answers from stack-config.json.
STUB_PULUMI = """#!/bin/sh
if [ "$1 $2" = "config --json" ]; then
  [ -f {tmp}/stack-config.json ] || {{ echo "error: no stack named 'dev' found" >&2; exit 255; }}
  cat {tmp}/stack-config.json; exit 0
fi
echo "pulumi $*" >> {tmp}/ran.log
exit 1
"""
FLEET_CONFIG = {"gcp:project": {"value": "p"}, "whisper-gpu:replicas": {"value": "2", "secret": False}}


@pytest.fixture
def operator(tmp_path):
    """Stub docker, pulumi and gcloud that record any run (a dry run must run none), and ADC credentials."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("docker", "gcloud"):
        stub = bin_dir / tool
        stub.write_text(f'#!/bin/sh\necho "{tool} $*" >> {tmp_path}/ran.log\nexit 1\n')
        stub.chmod(0o755)
    (bin_dir / "pulumi").write_text(STUB_PULUMI.format(tmp=tmp_path))
    (bin_dir / "pulumi").chmod(0o755)
    (tmp_path / "stack-config.json").write_text(json.dumps({"gcp:project": {"value": "p"}}))
    credentials = tmp_path / "adc.json"
    credentials.write_text("{}")
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "GOOGLE_APPLICATION_CREDENTIALS": str(credentials),
        "DOCKERHUB_USERNAME": "alice",
        "DOCKERHUB_TOKEN": "dckr_pat_not_used_in_a_dry_run",
    }
    return tmp_path, env


def make_deploy(tmp_path: Path, env: dict, mode: str | None, *args: str) -> subprocess.CompletedProcess:
    outputs = tmp_path / "outputs.json"
    if mode:
        outputs.write_text(json.dumps({"ip": "203.0.113.7", "url": "http://203.0.113.7", "mode": mode}))
    return subprocess.run(
        [MAKE, "--no-print-directory", "-C", str(ROOT), "deploy", "TAG=abc123", f"OUTPUTS={outputs}", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def positions(out: str, *needles: str) -> list[int]:
    lines = out.splitlines()
    found = []
    for needle in needles:
        hits = [i for i, line in enumerate(lines) if needle in line]
        assert hits, f"{needle!r} not in:\n{out}"
        found.append(hits[0])
    return found


def test_dry_run_prints_every_step_in_order_and_runs_nothing(operator):
    tmp_path, env = operator
    result = make_deploy(tmp_path, env, "vm", "DRY_RUN=1")
    assert result.returncode == 0, result.stdout + result.stderr
    steps = positions(
        result.stdout,
        "-m deploy.cloudcheck --stack dev",  # account, APIs, GPU quota: before the 30-minute build
        "fab -r " + str(ROOT) + " build --tag abc123",
        "push --tag abc123",
        "-m deploy.zonefallback --stack dev",  # pulumi up, with the zone fallback
        "pulumi stack output --json",
        "-m deploy.stack wait-host",
        "ansible-playbook -i ansible/inventory.py ansible/site.yml",
        "deploy --tag abc123",
        f"scripts/smoke.py --outputs {tmp_path}/outputs.json --expect-build abc123",
    )
    assert steps == sorted(steps)
    assert "dockerImage" not in result.stdout  # vm mode: Fabric deploys, Pulumi does not roll the tag
    assert not (tmp_path / "ran.log").exists()


@pytest.mark.parametrize("outputs_mode", [None, "vm"], ids=["first-deploy", "was-a-single-vm"])
def test_dry_run_in_fleet_mode_rolls_the_tag_through_pulumi(operator, outputs_mode):
    # The mode is the stack config's: no outputs yet, or outputs of the single VM being replaced.
    tmp_path, env = operator
    (tmp_path / "stack-config.json").write_text(json.dumps(FLEET_CONFIG))
    result = make_deploy(tmp_path, env, outputs_mode, "DRY_RUN=1")
    assert result.returncode == 0, result.stdout + result.stderr
    steps = positions(
        result.stdout,
        "-m deploy.cloudcheck --stack dev",
        "build --tag abc123",
        "push --tag abc123",
        "pulumi config set dockerImage alice/whisper-gpu-service:abc123",
        "-m deploy.zonefallback --stack dev",  # pulumi up, with the zone fallback
        "-m deploy.stack wait-fleet",
        "scripts/smoke.py --outputs",
    )
    assert "--expect-build abc123" in result.stdout.splitlines()[steps[-1]]
    assert steps == sorted(steps)
    assert "deploy --tag" not in result.stdout and "ansible-playbook" not in result.stdout
    assert not (tmp_path / "ran.log").exists()


def test_missing_tools_stop_it_at_the_start_with_the_fix(operator):
    tmp_path, env = operator
    env = {"PATH": str(tmp_path / "empty"), "HOME": str(tmp_path)}  # no docker, pulumi or credentials
    result = make_deploy(tmp_path, env, "vm", "DRY_RUN=1")
    assert result.returncode != 0
    assert "missing docker: install Docker Engine: https://docs.docker.com/engine/install/" in result.stderr
    assert "missing pulumi: install the Pulumi CLI" in result.stderr
    assert "missing gcloud credentials: run: gcloud auth application-default login" in result.stderr
    assert (
        "missing gcloud: install the Google Cloud CLI: https://cloud.google.com/sdk/docs/install"
        in result.stderr
    )
    assert "missing Docker Hub credentials: export DOCKERHUB_USERNAME=" in result.stderr
    assert "fab" not in result.stdout  # stopped before the first step


def test_a_stack_whose_config_cannot_be_read_stops_before_any_step(operator):
    tmp_path, env = operator
    (tmp_path / "stack-config.json").unlink()
    result = make_deploy(tmp_path, env, "vm", "DRY_RUN=1")
    assert result.returncode != 0
    assert "cannot read stack dev's config (error: no stack named 'dev' found)" in result.stderr
    assert "pulumi stack init dev" in result.stderr
    assert "fab" not in result.stdout


def test_one_missing_tool_gives_exactly_its_line(operator):
    tmp_path, env = operator
    (tmp_path / "bin" / "pulumi").unlink()
    result = make_deploy(tmp_path, env, "vm")
    assert result.returncode != 0
    missing = [line for line in result.stderr.splitlines() if line.startswith("missing ")]
    assert missing == ["missing pulumi: install the Pulumi CLI: curl -fsSL https://get.pulumi.com | sh"]
    assert not (tmp_path / "ran.log").exists()  # not even docker build ran


def test_install_ops_installs_the_ops_pins_and_the_deploy_code_without_torch(tmp_path):
    """`make install-ops` runs for real against a venv whose pip only records its arguments."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)  # runs deploy/pins.py (stdlib only)
    pip = venv / "bin" / "pip"
    pip.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/pip.log\n')
    pip.chmod(0o755)
    result = subprocess.run(
        [MAKE, "--no-print-directory", "-C", str(ROOT), "install-ops", f"VENV={venv}"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    installs = [line.split() for line in (tmp_path / "pip.log").read_text().splitlines()]
    ops = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["ops"]
    assert ["install", "-q", "--no-deps", "-e", "."] in installs  # the deploy code, none of its dependencies
    assert any(set(ops) <= set(words) for words in installs), installs
    everything = " ".join(" ".join(words) for words in installs)
    assert "torch" not in everything and "openai-whisper" not in everything
    assert not any(word.startswith(".[") for words in installs for word in words)  # no extras of the project
    assert (venv / ".installed").exists()  # make deploy's steps then find the venv ready


def test_the_readmes_deploy_commands_name_everything_a_new_project_needs():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Deploy in five commands", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line for line in block.strip().splitlines() if line.strip()]
    assert len(commands) == 5
    for needed in (
        "gcloud auth login",  # gcloud's own account: IAP, OS Login, the preflight
        "gcloud auth application-default login",  # Pulumi's gcp provider
        "PULUMI_CONFIG_PASSPHRASE",  # or pulumi up stops to ask, and make outputs fails without a terminal
        "pulumi stack init dev",
        "gcp:project",
        "DOCKERHUB_TOKEN",
        "make deploy",
    ):
        assert needed in block, f"the README's five commands lack {needed}"
