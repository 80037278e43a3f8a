"""The persistence daemon's unit, for real under systemd: infra/startup.sh installs it from the driver's
sample tarball, and the role nvidia_driver_check starts it only where it exists.

Debian 12's systemd runs as PID 1 in a container on the real Docker engine (the locally bootstrapped base plus
Debian's systemd package; unprivileged: this machine refuses --privileged, and systemd needs no more for
units). The startup script's own function runs in it, and so does ansible-playbook (the test's venv and the
checkout mounted read-only, local connection). Stand-ins, since there is no GPU or NVIDIA runfile here:
`nvidia-smi`, the `nvidia-persistenced` binary (it forks and stays, as the real daemon does), and the sample
tarball, whose install.sh does what NVIDIA's init/install.sh does for systemd (creates the daemon's user,
writes the unit, `systemctl reenable` and `start`).
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from deploy.config import image_facts

from .conftest import ANSIBLE_DIR, ROOT, parse_run

IMAGE = "whisper-local/systemd:bookworm"
DOCKERFILE = """\
FROM {base}
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends systemd systemd-sysv python3 bzip2 \\
    && rm -rf /var/lib/apt/lists/*
CMD ["/sbin/init"]
"""
BOOT_SECONDS = 60
SAMPLE = "/usr/share/doc/NVIDIA_GLX-1.0/samples/nvidia-persistenced-init.tar.bz2"
UNIT = "nvidia-persistenced.service"
VENV = Path(sys.prefix).resolve()  # ansible-playbook runs from it inside the container
# The interpreter the venv was made from, mounted where it is unless it is the system's own (under /usr):
# Debian 12's python3 in the image is then that same interpreter, and /usr must stay the container's.
PYTHON_HOME = Path(sys.executable).resolve().parents[1]
MOUNTS = tuple(p for p in dict.fromkeys((ROOT, VENV, PYTHON_HOME)) if not p.is_relative_to("/usr"))

FAKE_NVIDIA_SMI = "#!/bin/sh\necho 'Tesla T4, 580.82.07'\n"
FAKE_DAEMON = """#!/bin/sh
# Stand-in for the driver's nvidia-persistenced: records its arguments, forks a child that stays, exits.
mkdir -p /var/run/nvidia-persistenced
echo "$*" >/var/run/nvidia-persistenced/args
setsid sleep infinity </dev/null >/dev/null 2>&1 &
"""
FAKE_INSTALL_SH = """#!/bin/sh
# Stand-in for NVIDIA's sample init/install.sh, its systemd path.
set -e
id nvidia-persistenced >/dev/null 2>&1 || useradd -r -s /sbin/nologin -d / nvidia-persistenced
cat >/usr/lib/systemd/system/nvidia-persistenced.service <<'UNIT'
[Unit]
Description=NVIDIA Persistence Daemon
Wants=syslog.target

[Service]
Type=forking
ExecStart=/usr/bin/nvidia-persistenced --user nvidia-persistenced
ExecStopPost=/bin/rm -rf /var/run/nvidia-persistenced

[Install]
WantedBy=multi-user.target
UNIT
systemctl reenable nvidia-persistenced.service
systemctl start nvidia-persistenced.service
"""
PLAYBOOK = f"""\
- name: The role alone, on this host
  hosts: localhost
  connection: local
  gather_facts: false
  vars:  # what ansible/inventory.py gives every host: the Dockerfile's oldest driver branch
    nvidia_driver_check_min_major: {image_facts()["MIN_DRIVER_MAJOR"]}
  roles:
    - role: nvidia_driver_check
"""


@pytest.fixture(scope="module")
def systemd_image(docker_engine, base_image, tmp_path_factory) -> str:
    if not docker_engine.image_exists(IMAGE):
        context = tmp_path_factory.mktemp("systemd-image")
        (context / "Dockerfile").write_text(DOCKERFILE.format(base=base_image))
        docker_engine.build([IMAGE], context, context / "build.log")
    return IMAGE


class SystemdHost:
    def __init__(self, engine, name: str):
        self.engine, self.name = engine, name

    def sh(self, script: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        return self.engine.docker("exec", self.name, "bash", "-c", script, check=check, timeout=timeout)

    def put(self, path: str, data: bytes, mode: int = 0o755) -> None:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
        subprocess.run(
            ["docker", "cp", "-", f"{self.name}:/"], input=buffer.getvalue(), check=True, timeout=60
        )

    def unit(self, verb: str) -> str:
        return self.sh(f"systemctl {verb} {UNIT}", check=False).stdout.strip()

    def install_persistenced(self) -> subprocess.CompletedProcess:
        """infra/startup.sh's own step, sourced: the script defines its steps and runs none."""
        return self.sh(f"source {ROOT}/infra/startup.sh && install_persistenced")

    def run_role(self):
        env = {
            "ANSIBLE_CONFIG": f"{ANSIBLE_DIR}/ansible.cfg",
            "ANSIBLE_ROLES_PATH": f"{ANSIBLE_DIR}/roles",
            "ANSIBLE_HOME": "/tmp/ansible-home",
            "ANSIBLE_LOCAL_TEMP": "/tmp/ansible-tmp",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_STDOUT_CALLBACK": "default",
            "LC_ALL": "C.UTF-8",  # ansible-core refuses a non-UTF-8 locale
        }
        exports = " ".join(f"{k}={v}" for k, v in env.items())
        self.sh(f"cat >/tmp/play.yml <<'EOF'\n{PLAYBOOK}EOF")
        done = self.sh(
            f"env {exports} {VENV}/bin/ansible-playbook -i localhost, /tmp/play.yml", check=False, timeout=300
        )
        return parse_run(done.returncode, done.stdout + done.stderr)


def wait_booted(host: SystemdHost) -> None:
    deadline = time.monotonic() + BOOT_SECONDS
    state = ""
    while time.monotonic() < deadline:
        state = host.sh("systemctl is-system-running", check=False).stdout.strip()
        if state in ("running", "degraded"):
            return
        time.sleep(0.5)
    pytest.fail(f"systemd did not finish booting in {BOOT_SECONDS} s (state {state!r})")


@pytest.fixture
def gpu_host(docker_engine, systemd_image, request):
    """A booted Debian host with systemd as PID 1 and a stand-in driver that answers nvidia-smi."""
    name = f"whisper-systemd-{request.node.name[-40:].strip('_').replace('[', '-').replace(']', '')}"
    docker_engine.docker("rm", "-f", name, check=False)
    mounts = [f"{p}:{p}:ro" for p in MOUNTS]
    docker_engine.docker(
        "run", "-d", "--name", name, "--tmpfs", "/run", "--tmpfs", "/run/lock",
        "-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro", *[a for m in mounts for a in ("-v", m)], systemd_image,
    )  # fmt: skip
    host = SystemdHost(docker_engine, name)
    try:
        wait_booted(host)
        host.put("/usr/bin/nvidia-smi", FAKE_NVIDIA_SMI.encode())
        yield host
    finally:
        docker_engine.docker("rm", "-f", name, check=False)


def with_runfile_files(host: SystemdHost) -> None:
    """What the driver's runfile leaves: the daemon and the sample tarball, no unit."""
    host.put("/usr/bin/nvidia-persistenced", FAKE_DAEMON.encode())
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:bz2") as tar:
        info = tarfile.TarInfo("nvidia-persistenced-init/install.sh")
        info.size, info.mode = len(FAKE_INSTALL_SH), 0o755
        tar.addfile(info, io.BytesIO(FAKE_INSTALL_SH.encode()))
    host.put(SAMPLE, buffer.getvalue(), mode=0o644)


def test_without_the_unit_the_role_starts_nothing_and_says_so(gpu_host):
    run = gpu_host.run_role()
    assert run.returncode == 0, run.output[-3000:]
    assert f"persistence mode off: no {UNIT}" in run.output
    assert gpu_host.unit("is-active") != "active"


def test_the_startup_step_installs_enables_and_starts_the_unit_once(gpu_host):
    with_runfile_files(gpu_host)
    first = gpu_host.install_persistenced()
    assert "installing nvidia-persistenced.service" in first.stdout
    assert gpu_host.unit("is-enabled") == "enabled"
    assert gpu_host.unit("is-active") == "active"
    args = gpu_host.sh("cat /var/run/nvidia-persistenced/args").stdout.strip()
    assert args == "--user nvidia-persistenced"  # the daemon runs as its own user, as NVIDIA's unit says
    again = gpu_host.install_persistenced()
    assert "installing" not in again.stdout  # the unit exists: the step changes nothing


def test_without_the_runfile_files_the_startup_step_leaves_persistence_off(gpu_host):
    done = gpu_host.install_persistenced()
    assert "persistence mode stays off" in done.stdout
    assert gpu_host.unit("is-enabled") != "enabled"


def test_the_role_starts_and_enables_a_stopped_unit_and_a_second_run_changes_nothing(gpu_host):
    with_runfile_files(gpu_host)
    gpu_host.install_persistenced()
    gpu_host.sh(f"systemctl disable --now {UNIT}")
    assert gpu_host.unit("is-active") != "active"
    first = gpu_host.run_role()
    assert first.returncode == 0, first.output[-3000:]
    assert gpu_host.unit("is-active") == "active"
    assert gpu_host.unit("is-enabled") == "enabled"
    second = gpu_host.run_role()
    assert second.returncode == 0 and second.recap["changed"] == 0, second.output[-3000:]
