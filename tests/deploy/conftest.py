"""A deploy "host" on loopback: a real OpenSSH server, a stand-in `docker` first on its PATH, real nginx.

The sshd runs as the current user (root here) with host and user keys generated in a temp dir. Its sessions
get PATH=<tmp>/bin:... (sshd_config SetEnv), so the Fabric tasks' `docker` is standin_docker.py, which runs
the real service (gunicorn + the random checkpoint) and the real nginx. `fab` runs as a subprocess with a
temp HOME whose ~/.ssh/config maps 127.0.0.1 to the sshd's port and key, and with the stack outputs file
pointing at 127.0.0.1, so `fab deploy` finds its host the way it does in production.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
# deploy/, fabfile.py and scripts/ run from the checkout (as `fab` and make run them), not from the venv.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
STANDIN = Path(__file__).with_name("standin_docker.py")
SSHD = "/usr/sbin/sshd"
FAB = str(Path(sys.executable).with_name("fab"))
IMAGE = "test/whisper"
API_KEY = "sk-test-deploy-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {seconds} s")


def keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


def write_standin_bin(bin_dir: Path, state: Path) -> None:
    bin_dir.mkdir(parents=True)
    docker = bin_dir / "docker"
    docker.write_text(f'#!/bin/sh\nSTANDIN_DOCKER_STATE={state} exec {sys.executable} {STANDIN} "$@"\n')
    docker.chmod(0o755)


def write_sshd_config(d: Path, port: int, bin_dir: Path) -> Path:
    config = d / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n"
        f"AuthorizedKeysFile {d}/user_key.pub\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nUsePAM no\n"
        "StrictModes no\nSubsystem sftp internal-sftp\nLogLevel ERROR\n"
        f"SetEnv PATH={bin_dir}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin\n"
    )
    return config


@dataclass
class DeployHost:
    """The loopback host and everything a test needs to drive `fab` against it."""

    dir: Path
    ssh_port: int
    env: dict[str, str]
    ports: dict[str, int] = field(default_factory=dict)
    image: str = IMAGE
    api_key: str = API_KEY

    @property
    def state_dir(self) -> Path:  # the stand-in docker's state
        return self.dir / "docker-state"

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['public']}"

    def fab(self, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [FAB, "-r", str(ROOT), *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def release_state(self) -> dict:
        path = Path(self.env["DEPLOY_STATE_FILE"])
        return json.loads(path.read_text()) if path.exists() else {}

    def registry_add(self, tag: str, **image_env: str) -> None:
        """Put an image in the stand-in registry, with the settings its build baked in."""
        path = self.state_dir / "registry.json"
        registry = json.loads(path.read_text()) if path.exists() else {}
        registry[f"{IMAGE}:{tag}"] = {"env": image_env}
        self.state_dir.mkdir(exist_ok=True)
        path.write_text(json.dumps(registry))

    def container(self, name: str) -> dict:
        path = self.state_dir / "containers" / f"{name}.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def container_running(self, name: str) -> bool:
        pid = self.container(name).get("pid")
        try:
            return bool(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def docker_calls(self) -> list[list[str]]:
        path = self.state_dir / "calls.log"
        lines = path.read_text().splitlines() if path.exists() else []
        return [json.loads(line)["argv"] for line in lines]


def kill_containers(state_dir: Path) -> None:
    """Kill what the stand-in started (each container is its own process group), by recorded pid."""
    for record in (state_dir / "containers").glob("*.json"):
        pid = json.loads(record.read_text()).get("pid")
        if pid:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


@pytest.fixture(scope="module")
def deploy_host(tmp_path_factory, checkpoint) -> DeployHost:
    d = tmp_path_factory.mktemp("host")
    keygen(d / "host_key")
    keygen(d / "user_key")
    bin_dir = d / "bin"
    write_standin_bin(bin_dir, d / "docker-state")
    ssh_port = free_port()
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    sshd = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(write_sshd_config(d, ssh_port, bin_dir))],
        stderr=open(d / "sshd.log", "w"),  # noqa: SIM115
    )
    home = d / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(
        f"Host 127.0.0.1\n  Port {ssh_port}\n  User {os.environ.get('USER', 'root')}\n"
        f"  IdentityFile {d}/user_key\n  IdentitiesOnly yes\n"
    )
    (d / "outputs.json").write_text(json.dumps({"ip": "127.0.0.1", "url": "http://127.0.0.1", "mode": "vm"}))
    ports = {k: free_port() for k in ("public", "blue", "green", "blue_metrics", "green_metrics")}
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "IMAGE": IMAGE,
        "API_KEYS": API_KEY,
        "WHISPER_DEVICE": "cpu",
        "GRACEFUL_TIMEOUT": "10",
        "DEPLOY_OUTPUTS": str(d / "outputs.json"),
        "DEPLOY_STATE_FILE": str(d / "var/lib/whisper/deploy.json"),
        "DEPLOY_ENV_FILE": str(d / "etc/whisper/whisper.env"),
        "DEPLOY_PROXY_DIR": str(d / "etc/whisper/proxy"),
        "DEPLOY_PUBLIC_PORT": str(ports["public"]),
        "DEPLOY_BLUE_PORT": str(ports["blue"]),
        "DEPLOY_GREEN_PORT": str(ports["green"]),
        "DEPLOY_BLUE_METRICS_PORT": str(ports["blue_metrics"]),
        "DEPLOY_GREEN_METRICS_PORT": str(ports["green_metrics"]),
        "DEPLOY_READY_TIMEOUT": "90",
        "DEPLOY_POLL_INTERVAL": "0.5",
        "DEPLOY_DRAIN_DELAY": "1",
    }
    host = DeployHost(dir=d, ssh_port=ssh_port, env=env, ports=ports)
    try:
        wait_for_port(ssh_port)
        yield host
    finally:
        kill_containers(host.state_dir)
        sshd.terminate()
        sshd.wait(timeout=10)
