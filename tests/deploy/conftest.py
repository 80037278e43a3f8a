"""A deploy "host" on loopback: a real OpenSSH server, the real Docker engine, a real registry.

The sshd runs as the current user (root here) with host and user keys generated in a temp dir; its sessions
drive the machine's own Docker engine, so `fab deploy` pulls real images from a real registry
(docker-registry on loopback, with basic auth, standing in for Docker Hub) and runs real containers: the
service image built from the repository's Dockerfile (tests/docker_engine.py) and nginx from Debian's
package standing in for the official nginx image. `fab` runs as a subprocess with a temp HOME whose
~/.ssh/config maps 127.0.0.1 to the sshd's port and key, and with the stack outputs file pointing at
127.0.0.1, so `fab deploy` finds its host the way it does in production.

What stays a stand-in, and why: `--gpus all` needs NVIDIA's container runtime and a GPU, which this machine
lacks, so the host is deployed as a CPU-only host (DEPLOY_GPUS=none, a real setting for cheap CPU VMs); the
official nginx image (Docker Hub) is replaced by Debian's nginx in a local image.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from tests.docker_engine import Engine, Registry
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
# deploy/, fabfile.py and scripts/ run from the checkout (as `fab` and make run them), not from the venv.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
SSHD = "/usr/sbin/sshd"
FAB = str(Path(sys.executable).with_name("fab"))
REPOSITORY = "test/whisper"  # in the local registry
API_KEY = "sk-test-deploy-0123456789"
CONTAINERS = ("whisper-blue", "whisper-green", "whisper-proxy")  # DeployConfig's names
PROXY_DOCKERFILE = """\
FROM {base}
# Debian's nginx, laid out like the official image: conf.d included, logs to the container's output
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends nginx && rm -rf /var/lib/apt/lists/* \\
    && rm -f /etc/nginx/sites-enabled/default \\
    && ln -sf /dev/stdout /var/log/nginx/access.log && ln -sf /dev/stderr /var/log/nginx/error.log
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
"""


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


def write_sshd_config(d: Path, port: int) -> Path:
    config = d / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n"
        f"AuthorizedKeysFile {d}/user_key.pub\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nUsePAM no\n"
        "StrictModes no\nSubsystem sftp internal-sftp\nLogLevel ERROR\n"
        "SetEnv PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin\n"
    )
    return config


@dataclass
class DeployHost:
    """The loopback host and everything a test needs to drive `fab` against it."""

    dir: Path
    ssh_port: int
    env: dict[str, str]
    engine: Engine
    registry: Registry
    ports: dict[str, int] = field(default_factory=dict)
    api_key: str = API_KEY

    @property
    def image(self) -> str:  # IMAGE: the repository in the local registry
        return f"{self.registry.host}/{REPOSITORY}"

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['public']}"

    def fab(self, *args: str, timeout: float = 240, **env: str) -> subprocess.CompletedProcess:
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

    def publish(self, tag: str, dockerfile: str, files: dict[str, bytes] | None = None) -> None:
        """Build `dockerfile` (FROM the service image, a few lines on top) and push it as IMAGE:tag."""
        context = self.dir / "images" / tag
        context.mkdir(parents=True)
        (context / "Dockerfile").write_text(dockerfile)
        for name, data in (files or {}).items():
            (context / name).write_bytes(data)
        local = f"whisper-deploy-test:{tag}"
        self.engine.build([local], context, context / "build.log")
        self.registry.push(self.engine, local, f"{self.image}:{tag}")
        self.engine.docker("rmi", local)

    def container(self, name: str) -> dict:
        return self.engine.inspect(name) or {}

    def container_running(self, name: str) -> bool:
        return self.engine.running(name)

    def docker_events(self, since: float) -> list[dict]:
        """The engine's events (container, image) from `since` (epoch seconds) until now."""
        done = self.engine.docker(
            "events", "--since", f"{since:.3f}", "--until", f"{time.time():.3f}", "--format", "{{json .}}"
        )
        return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def remove_containers(engine: Engine, registry: Registry | None = None) -> None:
    """The deploy's containers, and (at the end) the images the host pulled from the registry."""
    engine.docker("rm", "--force", *CONTAINERS, check=False)
    if registry is not None:
        refs = engine.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
        pulled = [ref for ref in refs if ref.startswith(f"{registry.host}/{REPOSITORY}:")]
        if pulled:
            engine.docker("rmi", *pulled, check=False)


@pytest.fixture(scope="session")
def proxy_image(docker_engine, base_image, local_registry, tmp_path_factory) -> str:
    """Debian's nginx in an image, in the registry: what DEPLOY_PROXY_IMAGE points the deploy at."""
    context = tmp_path_factory.mktemp("proxy-image")
    (context / "Dockerfile").write_text(PROXY_DOCKERFILE.format(base=base_image))
    docker_engine.build(["whisper-local/nginx:test"], context, context / "build.log")
    ref = f"{local_registry.host}/library/nginx:debian"
    local_registry.push(docker_engine, "whisper-local/nginx:test", ref)
    return ref


def host_paths(d: Path) -> dict[str, str]:
    """The host's files and directories (deploy/config.py's defaults), under the test's directory."""
    return {
        "DEPLOY_STATE_FILE": str(d / "var/lib/whisper/deploy.json"),
        "DEPLOY_ENV_FILE": str(d / "etc/whisper/whisper.env"),
        "DEPLOY_PROXY_DIR": str(d / "etc/whisper/proxy"),
        "DEPLOY_JOBS_DIR": str(d / "var/lib/whisper/jobs"),
    }


def start_sshd(d: Path) -> tuple[subprocess.Popen, int]:
    """sshd on a free loopback port, with host and user keys generated in `d`; returns it and its port."""
    keygen(d / "host_key")
    keygen(d / "user_key")
    ssh_port = free_port()
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    sshd = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(write_sshd_config(d, ssh_port))],
        stderr=open(d / "sshd.log", "w"),  # noqa: SIM115
    )
    return sshd, ssh_port


def ssh_home(d: Path, ssh_port: int) -> Path:
    """`fab`'s HOME: ~/.ssh/config maps 127.0.0.1 to the sshd's port and the user key."""
    home = d / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(
        f"Host 127.0.0.1\n  Port {ssh_port}\n  User {os.environ.get('USER', 'root')}\n"
        f"  IdentityFile {d}/user_key\n  IdentitiesOnly yes\n"
    )
    return home


def host_env(
    d: Path, home: Path, registry: Registry, proxy_image: str, ports: dict[str, int]
) -> dict[str, str]:
    """`fab`'s environment: the stack outputs at 127.0.0.1, the local registry, a CPU-only host's settings."""
    (d / "outputs.json").write_text(json.dumps({"ip": "127.0.0.1", "url": "http://127.0.0.1", "mode": "vm"}))
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "IMAGE": f"{registry.host}/{REPOSITORY}",
        "DOCKERHUB_USERNAME": registry.user,  # the host logs in for its pulls (deploy/remote.py)
        # the registry's one account stands in for a read-only token; the push token must never be used
        "DOCKERHUB_PULL_TOKEN": registry.password,
        "DOCKERHUB_TOKEN": "push-token-never-sent-to-a-host",
        "API_KEYS": API_KEY,
        "DEPLOY_GPUS": "none",  # no NVIDIA runtime here: a CPU-only host
        "DEPLOY_PROXY_IMAGE": proxy_image,
        "GRACEFUL_TIMEOUT": "10",
        "DEPLOY_OUTPUTS": str(d / "outputs.json"),
        **host_paths(d),
        "DEPLOY_PUBLIC_PORT": str(ports["public"]),
        "DEPLOY_BLUE_PORT": str(ports["blue"]),
        "DEPLOY_GREEN_PORT": str(ports["green"]),
        "DEPLOY_BLUE_METRICS_PORT": str(ports["blue_metrics"]),
        "DEPLOY_GREEN_METRICS_PORT": str(ports["green_metrics"]),
        "DEPLOY_READY_TIMEOUT": "120",
        "DEPLOY_POLL_INTERVAL": "0.5",
        "DEPLOY_DRAIN_DELAY": "1",
    }


@pytest.fixture(scope="module")
def deploy_host(tmp_path_factory, docker_engine, local_registry, service_image, proxy_image) -> DeployHost:
    d = tmp_path_factory.mktemp("host")
    sshd, ssh_port = start_sshd(d)
    home = ssh_home(d, ssh_port)
    ports = {k: free_port() for k in ("public", "blue", "green", "blue_metrics", "green_metrics")}
    env = host_env(d, home, local_registry, proxy_image, ports)
    remove_containers(docker_engine)  # a previous run's, if it was killed
    host = DeployHost(
        dir=d, ssh_port=ssh_port, env=env, engine=docker_engine, registry=local_registry, ports=ports
    )
    try:
        wait_for_port(ssh_port)
        yield host
    finally:
        remove_containers(docker_engine, local_registry)
        sshd.terminate()
        sshd.wait(timeout=10)


@contextmanager
def watch_command_lines(secret: str, hits: list[str]) -> Iterator[None]:
    """Record every process whose command line holds `secret` while the block runs (/proc/*/cmdline)."""
    stop = threading.Event()

    def scan() -> None:
        for _ in range(100_000):  # bounded: the block ends long before
            if stop.is_set():
                return
            for proc in psutil.process_iter(["pid", "cmdline"]):
                cmdline = " ".join(proc.info["cmdline"] or [])
                if secret in cmdline:
                    hits.append(f"{proc.info['pid']}: {cmdline}")
            time.sleep(0.02)

    thread = threading.Thread(target=scan)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)
