"""A real Docker engine for the tests, and the images built from the real Dockerfile (a pytest plugin).

- `docker_engine`: the engine the `docker` client on PATH talks to. When none answers, the session starts
  `dockerd` itself (as root, in the background; no systemd here), waits for it, and stops it at the end.
  When it cannot, the test fails with one line naming what is missing.
- `service_image`: `whisper-service:test`, built from the repository's Dockerfile exactly as `fab build`
  builds it (deploy/engine.py), CUDA torch wheels and all, with the embedded tiny.en baked in. Only the base
  differs: Docker Hub is out of reach here, so BASE_IMAGE is a Debian 12 bootstrapped locally
  (scripts/base-image.sh). The machine's CA bundle goes in as the `ca` build secret, as it would behind any
  TLS-intercepting proxy; it never enters a layer (tests/image checks).
- `local_registry`: Debian's docker-registry (the CNCF distribution registry) on loopback, standing in for
  Docker Hub. Its storage outlives the session (REGISTRY_DIR), so the multi-GB layers of the image are
  compressed and uploaded once per machine, not once per run.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploy import engine
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[1]
SERVICE_IMAGE = "whisper-service:test"
BASE_IMAGE = "whisper-local/debian:bookworm"
CA_BUNDLE = Path(os.environ.get("EXTRA_CA", "/etc/ssl/certs/ca-certificates.crt"))
REGISTRY_DIR = Path(os.environ.get("WHISPER_TEST_REGISTRY_DIR", "/var/tmp/whisper-test-registry"))
ENGINE_START_SECONDS = 60
BUILD_SECONDS = 2400  # a cold build downloads ~4 GB of wheels; a cached one takes seconds
PUSH_SECONDS = 1800  # a cold push compresses ~7 GB; later pushes find every layer in the registry
BUILD_CACHE_KEEP = "12GB"  # the most recently used build cache kept: this build's, and a little more


def fail(message: str) -> None:
    pytest.fail(message, pytrace=False)


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Engine:
    """The docker client for everyday commands, and the one that builds with BuildKit."""

    builder: str  # deploy.engine.buildkit_client()

    def docker(
        self, *args: str, timeout: float = 120, check: bool = True, **kw
    ) -> subprocess.CompletedProcess:
        result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, **kw)
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed: {result.stderr.strip()[-2000:]}")
        return result

    def inspect(self, name: str) -> dict | None:
        result = self.docker("inspect", name, check=False)
        return json.loads(result.stdout)[0] if result.returncode == 0 else None

    def running(self, name: str) -> bool:
        info = self.inspect(name)
        return bool(info and info["State"]["Running"])

    def image_exists(self, ref: str) -> bool:
        return self.docker("image", "inspect", ref, check=False).returncode == 0

    def build(self, tags: list[str], context: Path, log: Path, build_args: dict | None = None, **kw) -> None:
        """A BuildKit build through the product's own command (deploy/engine.py); fails with the log's end."""
        command = engine.build_command(self.builder, context, tags, build_args or {}, **kw)
        with open(log, "w") as out:
            done = subprocess.run(
                [*command, "--progress", "plain"],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env={**os.environ, **engine.BUILDKIT_ENV},
                timeout=BUILD_SECONDS,
            )
        if done.returncode != 0:
            fail(f"docker build of {tags[0]} failed:\n{log.read_text()[-4000:]}")


def engine_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def start_dockerd(log: Path) -> subprocess.Popen:
    dockerd = shutil.which("dockerd")
    if shutil.which("docker") is None or dockerd is None:
        fail("no Docker engine: install it (scripts/system-deps.sh test installs Debian's docker.io)")
    if os.geteuid() != 0:
        fail("no Docker engine answers and dockerd needs root: start it (sudo dockerd &) and run again")
    process = subprocess.Popen(
        [dockerd],
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # noqa: SIM115
    )
    deadline = time.monotonic() + ENGINE_START_SECONDS
    while time.monotonic() < deadline:
        if engine_answers():
            return process
        if process.poll() is not None:
            fail(f"dockerd exited ({process.returncode}): {log.read_text()[-1500:]}")
        time.sleep(0.5)
    process.kill()
    fail(f"dockerd did not answer within {ENGINE_START_SECONDS} s: {log.read_text()[-1500:]}")


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory) -> Engine:
    started = None if engine_answers() else start_dockerd(tmp_path_factory.mktemp("dockerd") / "dockerd.log")
    try:
        builder = engine.buildkit_client()
    except engine.EngineError as error:
        fail(str(error))
    try:
        yield Engine(builder=builder)
    finally:
        if started is not None:  # the session's own daemon: stop it (it stops its containers first)
            started.send_signal(signal.SIGTERM)
            try:
                started.wait(timeout=60)
            except subprocess.TimeoutExpired:
                started.kill()


@pytest.fixture(scope="session")
def base_image(docker_engine) -> str:
    done = subprocess.run(
        [str(ROOT / "scripts/base-image.sh"), BASE_IMAGE], capture_output=True, text=True, timeout=900
    )
    if done.returncode != 0:
        fail(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "scripts/base-image.sh failed")
    return BASE_IMAGE


def image_build_args(base: str, tag: str = "test") -> dict[str, str]:
    """What the tests build: the embedded tiny.en for openai-whisper on the local base."""
    return {
        "BASE_IMAGE": base,
        "WHISPER_MODEL": "build/tiny.en.pt",
        "WHISPER_ENGINE": "openai-whisper",
        "WHISPER_BUILD": tag,
    }


@pytest.fixture(scope="session")
def service_image(docker_engine, base_image, tiny_en, tmp_path_factory) -> str:
    """whisper-service:test from the real Dockerfile (cached layers make a rebuild take seconds)."""
    assert tiny_en == (ROOT / "build/tiny.en.pt").resolve()  # baked from the build context
    log = tmp_path_factory.mktemp("image") / "build.log"
    ca = str(CA_BUNDLE) if CA_BUNDLE.is_file() else ""
    before = (docker_engine.inspect(SERVICE_IMAGE) or {}).get("Id")
    docker_engine.build([SERVICE_IMAGE], ROOT, log, image_build_args(base_image), extra_ca=ca)
    # 7.6 GB a build: drop the image this one replaced and keep only recent build cache, or a machine that
    # runs the suite after each dependency change fills its disk
    if before and before != docker_engine.inspect(SERVICE_IMAGE)["Id"]:
        docker_engine.docker("rmi", before, check=False)  # refused while a container uses it: fine
    docker_engine.docker("builder", "prune", "--force", "--keep-storage", BUILD_CACHE_KEEP, check=False)
    return SERVICE_IMAGE


@dataclass
class Registry:
    """The loopback registry, with its one account (htpasswd) and a docker config logged in to it."""

    host: str  # 127.0.0.1:<port>
    user: str
    password: str
    docker_config: Path  # DOCKER_CONFIG for the tests' own pushes

    def push(self, engine_: Engine, source: str, ref: str) -> None:
        """Tag `source` as `ref`, push it, and drop the local tag: a host must pull it back, as a VM would."""
        env = {**os.environ, "DOCKER_CONFIG": str(self.docker_config)}
        engine_.docker("tag", source, ref)
        engine_.docker("push", ref, timeout=PUSH_SECONDS, env=env)
        engine_.docker("rmi", ref)


def write_registry_config(d: Path, port: int, user: str, password: str) -> Path:
    """The registry's config.yml in `d`: its storage under REGISTRY_DIR, HTTP on loopback, basic auth with
    one account (an htpasswd beside it)."""
    import bcrypt  # paramiko's dependency (Fabric): the registry reads bcrypt htpasswd entries only

    (d / "htpasswd").write_text(f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()}\n")
    REGISTRY_DIR.mkdir(parents=True, exist_ok=True)
    config = d / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\n"
        f"storage:\n  filesystem:\n    rootdirectory: {REGISTRY_DIR}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
        f"auth:\n  htpasswd:\n    realm: whisper-test\n    path: {d / 'htpasswd'}\n"
    )
    return config


def wait_listening(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
    while not listening(port):
        if time.monotonic() > deadline or process.poll() is not None:
            fail(f"docker-registry did not start: {log.read_text()[-1000:]}")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def local_registry(docker_engine, tmp_path_factory) -> Registry:
    """docker-registry on loopback with basic auth (plain HTTP: the engine treats 127.0.0.0/8 registries as
    insecure), standing in for Docker Hub."""
    binary = shutil.which("docker-registry")
    if binary is None:
        fail("no docker-registry: apt-get install docker-registry (scripts/system-deps.sh test)")
    port, d = free_port(), tmp_path_factory.mktemp("registry")
    user, password = "alice", secrets.token_hex(16)
    config = write_registry_config(d, port, user, password)
    log = d / "log"
    # Tags the tests push again each run leave the older manifests untagged: collect their blobs first, so
    # the storage holds about one image, not one per dependency change.
    subprocess.run(
        [binary, "garbage-collect", "--delete-untagged", str(config)],
        stdout=open(d / "gc.log", "w"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        timeout=600,
    )
    process = subprocess.Popen(
        [binary, "serve", str(config)], stdout=open(log, "w"), stderr=subprocess.STDOUT
    )  # noqa: SIM115
    registry = Registry(f"127.0.0.1:{port}", user, password, d / "docker-config")
    try:
        wait_listening(port, process, log)
        env = {**os.environ, "DOCKER_CONFIG": str(registry.docker_config)}
        docker_engine.docker(
            "login", registry.host, "--username", user, "--password-stdin", input=password, env=env
        )
        yield registry
    finally:
        process.terminate()
        process.wait(timeout=30)
