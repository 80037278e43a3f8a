"""The provisioning targets of the real Makefile, with a stand-in `pulumi` CLI on PATH.

The Pulumi CLI cannot be installed here; what matters is what the targets ask it to do and what
they do when it is missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STACK_OUTPUTS = {"mode": "vm", "ip": "203.0.113.10", "url": "http://203.0.113.10"}

FAKE_PULUMI = """#!/usr/bin/env bash
echo "pulumi $*" >>"$PULUMI_CALLS"
if [ "$1 $2 $3" = "stack output --json" ]; then cat "$PULUMI_OUTPUTS"; fi
"""


@pytest.fixture
def fake_pulumi(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pulumi").write_text(FAKE_PULUMI)
    (bin_dir / "pulumi").chmod(0o755)
    outputs = tmp_path / "stack-outputs.json"
    outputs.write_text(json.dumps(STACK_OUTPUTS))
    return {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "PULUMI_CALLS": str(tmp_path / "calls.log"),
        "PULUMI_OUTPUTS": str(outputs),
    }


def make(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    # -o: treat the virtualenv stamp as up to date; the test must not reinstall packages.
    command = ["make", "--no-print-directory", "-o", ".venv/.installed", *args]
    # A clean make, also when these tests run under `make infra-test` (no inherited flags or level).
    full_env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    full_env.update(env)
    return subprocess.run(command, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=60)


def calls(env: dict[str, str]) -> list[str]:
    log = Path(env["PULUMI_CALLS"])
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.parametrize("target", ["infra", "infra-preview", "infra-destroy", "outputs"])
def test_missing_cli_stops_with_one_line_naming_the_install(target, tmp_path):
    no_pulumi = {"PATH": "/usr/bin:/bin", "OUTPUTS": str(tmp_path / "o.json")}
    assert shutil.which("pulumi", path=no_pulumi["PATH"]) is None
    result = make(target, env=no_pulumi)
    assert result.returncode != 0
    assert result.stdout == ""
    message = [line for line in result.stderr.splitlines() if not re.match(r"make(\[\d+\])?: ", line)]
    assert message == [
        "pulumi CLI not found; install it: https://www.pulumi.com/docs/iac/download-install/"
        " (or: curl -fsSL https://get.pulumi.com | sh)"
    ]
    assert not (tmp_path / "o.json").exists()


def test_infra_runs_pulumi_up_for_the_stack_then_writes_outputs(fake_pulumi, tmp_path):
    outputs = tmp_path / "deploy" / "outputs.json"
    result = make("infra", "STACK=prod", f"OUTPUTS={outputs}", env=fake_pulumi)
    assert result.returncode == 0, result.stderr
    assert calls(fake_pulumi) == [
        "pulumi up --yes --stack prod",
        "pulumi stack output --json --stack prod",
    ]
    assert json.loads(outputs.read_text()) == STACK_OUTPUTS


def test_stack_defaults_to_dev(fake_pulumi, tmp_path):
    assert make("infra-preview", env=fake_pulumi).returncode == 0
    assert calls(fake_pulumi) == ["pulumi preview --stack dev"]


def test_destroy_asks_unless_told_yes(fake_pulumi):
    assert make("infra-destroy", env=fake_pulumi).returncode == 0
    assert make("infra-destroy", "YES=1", env=fake_pulumi).returncode == 0
    assert calls(fake_pulumi) == [
        "pulumi destroy --stack dev",
        "pulumi destroy --stack dev --yes",
    ]


def test_outputs_writes_the_file_whole_and_leaves_no_temp(fake_pulumi, tmp_path):
    outputs = tmp_path / "outputs.json"
    result = make("outputs", f"OUTPUTS={outputs}", env=fake_pulumi)
    assert result.returncode == 0, result.stderr
    assert json.loads(outputs.read_text()) == STACK_OUTPUTS
    assert not list(tmp_path.glob("outputs.json*.tmp")) and not list(tmp_path.glob("*.tmp"))


def test_outputs_directory_is_gitignored():
    result = subprocess.run(["git", "check-ignore", "-q", ".deploy/outputs.json"], cwd=ROOT, timeout=30)
    assert result.returncode == 0


def test_project_file_runs_infra_with_the_repo_virtualenv():
    import yaml

    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "whisper-gpu"
    assert project["main"].rstrip("/") == "infra"
    assert project["runtime"]["name"] == "python"
    assert project["runtime"]["options"]["virtualenv"] == ".venv"
    assert (ROOT / project["main"] / "__main__.py").is_file()
