"""One owner per host fact: infra/startup.sh installs the NVIDIA driver (pinned), Docker Engine and the NVIDIA
Container Toolkit on every host; Ansible never installs them, it checks them on the single VM and fails with
a line that points at the startup script. The GPU path runs for real here on top of the converged sandbox,
with a stand-in `nvidia-smi` on PATH (no GPU on this machine)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import ANSIBLE_DIR, ROOT, run_playbook

STARTUP = (ROOT / "infra" / "startup.sh").read_text()
# What only the startup script may install or write: packages, their apt sources, the runtime registration.
STARTUP_OWNS = (
    "docker-ce",
    "download.docker.com",
    "nvidia-container-toolkit",
    "nvidia.github.io/libnvidia-container",
    "nvidia-ctk runtime configure",
    "cuda_installer",
    "nvidia-persistenced-init",  # the persistence daemon's unit, from the driver's sample
    "create-dev-char-symlinks",  # NVIDIA's udev rule for /dev/char
)
ANSIBLE_MUST_NOT = STARTUP_OWNS + ("cuda-drivers", "cuda-keyring", "developer.download.nvidia.com")


def ansible_texts() -> dict[str, str]:
    return {
        str(path.relative_to(ROOT)): path.read_text()
        for path in ANSIBLE_DIR.rglob("*")
        if path.is_file() and path.suffix in (".yml", ".yaml", ".j2", ".py", ".cfg")
    }


@pytest.mark.parametrize("fact", STARTUP_OWNS)
def test_the_startup_script_owns_it(fact):
    assert fact in STARTUP


@pytest.mark.parametrize("fact", ANSIBLE_MUST_NOT)
def test_no_ansible_file_installs_it(fact):
    # "^docker-ce" in base's unattended-upgrades blacklist holds the package back; it installs nothing
    found = [path for path, text in ansible_texts().items() if re.search(rf"(?<!\^){re.escape(fact)}", text)]
    assert not found, f"{fact} appears in {found}: only infra/startup.sh may install it"


def test_the_driver_pin_has_one_owner_the_dockerfile(tmp_path):
    """The Dockerfile's ARG MIN_DRIVER_MAJOR: ansible/inventory.py gives it to the role, infra/host.py
    writes it into the startup script; neither holds a copy."""
    from deploy.config import image_facts

    defaults = (ANSIBLE_DIR / "roles/nvidia_driver_check/defaults/main.yml").read_text()
    assert not re.findall(r"^nvidia_driver_check_min_major:", defaults, re.MULTILINE)
    assert re.findall(r"^DRIVER_MIN_MAJOR=@DRIVER_MIN_MAJOR@", STARTUP, re.MULTILINE)
    assert image_facts()["MIN_DRIVER_MAJOR"] == 580


def stub_nvidia_smi(tmp_path: Path, version: str) -> str:
    bin_dir = tmp_path / f"nvidia-{version}"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text(f"#!/bin/sh\necho 'Tesla T4, {version}'\n")
    (bin_dir / "nvidia-smi").chmod(0o755)
    return str(bin_dir)


@pytest.fixture(scope="module")
def gpu_run(sandbox, second_run, tmp_path_factory):
    path = stub_nvidia_smi(tmp_path_factory.mktemp("gpu"), "580.82.07")
    return run_playbook(sandbox, extra_vars={"whisper_gpu_enabled": True}, path_prefix=path)


def test_a_prepared_gpu_host_passes_the_checks_and_changes_nothing(gpu_run):
    assert gpu_run.returncode == 0, gpu_run.output[-4000:]
    assert gpu_run.recap["changed"] == 0, gpu_run.changed_tasks()
    for task in (
        "nvidia_driver_check : Check that the driver answers and is new enough for the image",
        "container_toolkit_check : Check that the startup script registered the nvidia runtime with Docker",
    ):
        assert gpu_run.tasks[task] == {"ok"}, task


def test_an_old_driver_fails_with_a_line_that_names_the_startup_script(sandbox, second_run, tmp_path):
    result = run_playbook(
        sandbox, extra_vars={"whisper_gpu_enabled": True}, path_prefix=stub_nvidia_smi(tmp_path, "570.133.20")
    )
    assert result.returncode != 0
    assert "no NVIDIA driver >= 580 answers (Tesla T4, 570.133.20); infra/startup.sh installs it" in (
        " ".join(result.output.split())
    )
    assert result.recap["changed"] == 0


def test_the_play_waits_for_the_startup_scripts_marker(sandbox, second_run):
    result = run_playbook(
        sandbox, extra_vars={"whisper_host_ready_file": "/nonexistent", "whisper_host_ready_timeout": 2}
    )
    assert result.returncode != 0
    assert "infra/startup.sh did not finish" in result.output
    assert result.tasks["Wait until the startup script has finished on this boot"] == {"fatal"}
