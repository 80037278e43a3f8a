"""infra/startup.sh prepares the host, run on a fake GPU host (fake_host.py): the NVIDIA driver (pinned
installer, version floor), the container toolkit and its dev-char rule, Docker with compose and buildx, a
CPU-only host without NVIDIA's parts, and the booting/ready states it reports."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def test_docker_gets_the_nvidia_runtime_once(host):
    Path(host.env["DOCKER_DAEMON_JSON"]).write_text("{}")
    host.boot()
    assert host.calls("nvidia-ctk runtime") == [
        f"nvidia-ctk runtime configure --runtime=docker --config={host.env['DOCKER_DAEMON_JSON']}"
    ]
    assert host.calls("systemctl restart") == ["systemctl restart docker"]
    host.boot()
    assert len(host.calls("nvidia-ctk runtime")) == 1
    assert len(host.calls("systemctl restart")) == 1


def test_missing_driver_is_installed_with_the_pinned_installer_and_branch_once(host):
    (host.fake / "driver-installed").unlink()
    host.boot()
    assert host.calls("installer") == [
        "installer install_driver --installation-mode=binary --installation-branch=lts"
    ]
    downloads = [c for c in host.calls("curl") if "cuda_installer.pyz" in c]
    assert len(downloads) == 1
    assert (
        "https://github.com/GoogleCloudPlatform/compute-gpu-installation/releases/download/"
        "cuda-installer-v1.7.1/cuda_installer.pyz" in downloads[0]
    )
    assert "latest" not in downloads[0]
    host.boot()  # the driver answers now: no second install
    assert len(host.calls("installer")) == 1


def test_the_driver_installer_waits_for_the_apt_lock_like_the_script_does(host):
    (host.fake / "driver-installed").unlink()
    host.boot()
    config = (host.fake / "installer-apt-config").read_text()
    assert config, "the installer ran without APT_CONFIG: its apt-get calls fail at once on a held lock"
    # apt itself reads the file the installer's apt-get calls get.
    read = subprocess.run(
        ["apt-config", "shell", "T", "DPkg::Lock::Timeout"],
        env={**os.environ, "APT_CONFIG": config},
        capture_output=True,
        text=True,
        check=True,
    )
    assert read.stdout.strip() == "T='600'"


def test_nvidias_dev_char_rule_is_installed_and_applied_once(host):
    # NVIDIA's fix for containers losing the GPU after `systemctl daemon-reload` (toolkit issue #48).
    host.boot()
    rule = Path(host.env["DEV_CHAR_RULE"]).read_text()
    assert rule == (
        'ACTION=="add", DEVPATH=="/bus/pci/drivers/nvidia", '
        'RUN+="/usr/bin/nvidia-ctk system create-dev-char-symlinks --create-all"\n'
    )
    links = ["nvidia-ctk system create-dev-char-symlinks --create-all"]
    assert host.calls("nvidia-ctk system") == links  # this boot's links: the driver is bound already
    host.boot()
    assert host.calls("nvidia-ctk system") == links  # the rule is there: nothing again


def test_a_cpu_only_host_gets_docker_but_no_nvidia_toolkit_or_driver(host):
    (host.fake / "driver-installed").unlink()  # no driver, and none will be installed
    host.lack_packages("nvidia-container-toolkit")
    host.set_metadata(whisper_gpu="none")  # the stack's attribute for gpuType: none (infra/host.py)
    result = host.boot()
    assert "CPU-only host" in result.stdout
    assert host.guest_states() == ["whisper/state=booting", "whisper/state=ready"]
    assert not host.calls("installer") and not host.calls("nvidia-") and not host.calls("apt-get")
    assert not Path(host.env["DEV_CHAR_RULE"]).exists()


def test_the_host_reports_booting_then_ready_and_leaves_a_marker(host):
    host.boot()
    assert host.guest_states() == ["whisper/state=booting", "whisper/state=ready"]
    assert (host.root / "host-ready").exists()


def test_a_driver_older_than_580_stops_the_script_before_ready(host):
    (host.fake / "driver-version").write_text("570.133.20\n")
    result = host.boot(ok=False)
    assert "driver 570.133.20 is older than 580" in result.stdout
    assert host.guest_states() == ["whisper/state=booting"]
    assert not (host.root / "host-ready").exists()


DOCKER_PACKAGES = [
    "docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin", "docker-compose-plugin",
]  # fmt: skip


def test_a_host_without_docker_gets_the_engine_compose_and_buildx(host):
    # docker-compose-plugin is only a Recommends of docker-ce, which --no-install-recommends skips, and the
    # monitoring role runs `docker compose`: the script names every package of Docker's own install line
    # (https://docs.docker.com/engine/install/ubuntu/).
    host.lack_packages(*DOCKER_PACKAGES)
    host.boot()
    (install,) = [c for c in host.calls("apt-get") if " install " in f" {c} "]
    assert install.split()[-len(DOCKER_PACKAGES) :] == DOCKER_PACKAGES
    assert "--no-install-recommends" in install
    sources = (host.root / "sources.list.d" / "docker.list").read_text()
    assert "https://download.docker.com/linux/" in sources


def test_a_host_from_the_old_script_gets_compose_and_buildx_on_its_next_boot(host):
    # The old script installed docker-ce, docker-ce-cli and containerd.io only, and skipped Docker whenever a
    # `docker` command existed (here: the stub on PATH).
    host.lack_packages("docker-buildx-plugin", "docker-compose-plugin")
    host.boot()
    installs = [c for c in host.calls("apt-get") if " install " in f" {c} "]
    assert len(installs) == 1 and installs[0].split()[-len(DOCKER_PACKAGES) :] == DOCKER_PACKAGES
    (host.fake / "missing-packages").unlink()
    before = len(host.calls("apt-get"))
    host.boot()  # all there now: nothing more to install
    assert len(host.calls("apt-get")) == before
