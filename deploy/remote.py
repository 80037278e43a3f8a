"""Blue/green deploy of one image tag on one host, over one SSH connection (Fabric).

The host runs at most two service containers, whisper-blue and whisper-green, each on its own loopback port,
and one proxy container on the public port that forwards to the live colour (see nginx.py). A deploy starts
the new tag in the idle colour, waits for /readyz, smoke-tests one transcription against it, switches the
proxy, records the release and stops the old colour. Until the switch nothing touches the live colour; any
failure stops the new container and leaves (or puts) the proxy on the old one.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import posixpath
import shlex
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime

from deploy import engine
from deploy.config import ROOT, SERVICE_DEFAULTS, SERVICE_ENV_KEYS, DeployConfig, Slot
from deploy.proxy_ops import DeployError, ProxyOps, last_line  # noqa: F401 (DeployError: remote's own)

SMOKE_SCRIPT = ROOT / "scripts" / "smoke.py"
CONTAINER_API_PORT = SERVICE_DEFAULTS.port  # PORT inside the image: the service's default
CONTAINER_METRICS_PORT = SERVICE_DEFAULTS.metrics_port  # METRICS_PORT inside the image
LOG_LINES = 30  # log lines of a failed container quoted in the error


NO_KEY = (
    'no API key: export API_KEYS="$(openssl rand -hex 24)" and deploy again '
    "(or, to serve without keys on purpose: pulumi config set allowUnauthenticated true)"
)


STARTED = time.monotonic()


def log(message: str) -> None:
    print(f"==> [{time.monotonic() - STARTED:5.1f} s] {message}", flush=True)


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Host(ProxyOps):  # the proxy's operations: proxy_ops.py
    """One deploy host: docker, files and HTTP probes through a Fabric connection."""

    def __init__(self, conn, cfg: DeployConfig):
        self.conn = conn
        self.cfg = cfg
        # Non-root users reach docker and /etc through passwordless sudo (GCE's default for SSH users).
        self.sudo = "" if self.sh("id -u").stdout.strip() == "0" else "sudo -n "

    # --- primitives
    def sh(self, command: str, *, warn: bool = False):
        """Run a remote command quietly, without forwarding our stdin."""
        return self.conn.run(command, hide=True, warn=warn, pty=False, in_stream=False)

    def docker(self, *args: str, warn: bool = False):
        return self.sh(self.sudo + shlex.join(["docker", *args]), warn=warn)

    def read_file(self, path: str) -> str | None:
        result = self.sh(f"{self.sudo}cat {shlex.quote(path)}", warn=True)
        return result.stdout if result.ok else None

    def write_file(self, path: str, content: str, mode: str = "600") -> None:
        """Write atomically with `mode`. The content travels by SFTP into a fresh 0600 mktemp file, so
        secrets never appear in a command line and are never readable by other users on the way."""
        upload = self.sh("mktemp -t whisper-upload.XXXXXX").stdout.strip()
        try:
            self.conn.put(io.BytesIO(content.encode()), upload)
            tmp = shlex.quote(path + ".tmp")
            script = (
                f"umask 077 && mkdir -p {shlex.quote(posixpath.dirname(path))}"
                f" && install -m {mode} {shlex.quote(upload)} {tmp} && mv {tmp} {shlex.quote(path)}"
            )
            self.sh(f"{self.sudo}sh -c {shlex.quote(script)}")
        finally:
            self.sh(f"rm -f {shlex.quote(upload)}", warn=True)

    def http_get(self, port: int, path: str) -> tuple[int, str]:
        """(status, body) of GET http://127.0.0.1:<port><path> on the host; status 0 = no answer."""
        url = f"http://127.0.0.1:{port}{path}"
        result = self.sh(f"curl -s --max-time 5 -w '\\n%{{http_code}}' {url}", warn=True)
        body, _, code = result.stdout.rpartition("\n")
        return (int(code) if code.strip().isdigit() else 0), body.strip()

    def inspect(self, container: str) -> dict | None:
        result = self.docker("inspect", container, warn=True)
        if result.failed:
            return None
        items = json.loads(result.stdout or "[]")
        return items[0] if items else None

    def running(self, container: str) -> bool:
        info = self.inspect(container)
        return bool(info and info["State"].get("Running"))

    # --- pulls
    @contextlib.contextmanager
    def pull_login(self, image: str, env: Mapping[str, str] = os.environ) -> Iterator[list[str]]:
        """docker's global options for this deploy's pulls. With DOCKERHUB_USERNAME and DOCKERHUB_PULL_TOKEN
        (a read-only access token) set, the host logs in to the image's registry in a throwaway config (the
        token on stdin, the directory removed afterwards): pulls then count against the account, not the
        anonymous per-IP limit that VMs behind one NAT share. Without it, pulls are anonymous (a public
        repository). The push token (DOCKERHUB_TOKEN) never goes to a host: a VM's compromise must not let
        anyone push images."""
        user, token = env.get("DOCKERHUB_USERNAME"), env.get("DOCKERHUB_PULL_TOKEN")
        if not (user and token):
            yield []
            return
        config = self.sh(f"{self.sudo}mktemp -d -t whisper-pull.XXXXXX").stdout.strip()
        try:
            result = self.conn.run(
                self.sudo + shlex.join(["docker", "--config", config, *engine.login_args(image, user)]),
                hide=True,
                warn=True,
                pty=False,
                in_stream=io.StringIO(token),
            )
            if result.failed:
                reason = last_line(result.stderr).replace(token, "***")
                registry = engine.registry_of(image) or "Docker Hub"
                raise DeployError(f"docker login to {registry} on the host failed: {reason}")
            yield ["--config", config]
        finally:
            self.sh(f"{self.sudo}rm -rf {shlex.quote(config)}", warn=True)

    def pull(self, image: str, options: list[str], only_if_missing: bool = False) -> None:
        if only_if_missing and not self.docker("image", "inspect", image, warn=True).failed:
            return
        log(f"pulling {image}")
        pulled = self.docker(*options, "pull", image, warn=True)
        if pulled.failed:
            hint = "" if options else " (a private repository? set DOCKERHUB_PULL_TOKEN, a read-only token)"
            raise DeployError(f"docker pull {image} failed: {last_line(pulled.stderr)}{hint}")

    # --- one deploy at a time
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """A lock directory beside the state file: mkdir is atomic, so two deploys cannot both start."""
        path = shlex.quote(self.cfg.state_file + ".lock")
        parent = shlex.quote(posixpath.dirname(self.cfg.state_file))
        script = f"umask 077 && mkdir -p {parent} && mkdir {path}"
        taken = self.sh(f"{self.sudo}sh -c {shlex.quote(script)}", warn=True)
        if taken.failed:
            raise DeployError(
                f"another deploy holds {self.cfg.state_file}.lock; if none runs, remove it:"
                f" sudo rmdir {self.cfg.state_file}.lock"
            )
        try:
            yield
        finally:
            self.sh(f"{self.sudo}rmdir {path}", warn=True)

    # --- the release record
    def read_state(self) -> dict:
        text = self.read_file(self.cfg.state_file)
        return json.loads(text) if text else {}

    def write_state(self, state: dict) -> None:
        self.write_file(self.cfg.state_file, json.dumps(state, indent=2) + "\n", mode="644")

    # --- the service's env file
    def planned_env(self, env: Mapping[str, str] = os.environ) -> dict[str, str]:
        """The settings the env file will hold after update_env_file: the host's, overridden by ours."""
        wanted = {key: env[key] for key in SERVICE_ENV_KEYS if env.get(key)}
        return {**parse_env_file(self.read_file(self.cfg.env_file) or ""), **wanted}

    def update_env_file(self, env: Mapping[str, str] = os.environ) -> dict[str, str]:
        """Merge the operator's service settings into the host's 0600 env file (created if missing);
        return the merged settings."""
        wanted = {key: env[key] for key in SERVICE_ENV_KEYS if env.get(key)}  # empty = keep the host's
        current = self.read_file(self.cfg.env_file)
        existing = parse_env_file(current or "")
        merged = {**existing, **wanted}
        if current is None or merged != existing:
            log(f"writing {self.cfg.env_file} (mode 0600): {', '.join(sorted(merged)) or 'no settings'}")
            self.write_file(self.cfg.env_file, render_env_file(merged), mode="600")
        return merged

    # --- containers
    def start(self, slot: Slot, image: str, tag: str) -> None:
        self.docker("rm", "--force", slot.container, warn=True)  # the stopped leftover of a deploy ago
        result = self.docker(
            "run", "--detach", "--name", slot.container,
            *(["--gpus", self.cfg.gpus] if self.cfg.gpus != "none" else []),
            "--restart", "unless-stopped",
            "--env-file", self.cfg.env_file,
            "--publish", f"127.0.0.1:{slot.app_port}:{CONTAINER_API_PORT}",
            "--publish", f"127.0.0.1:{slot.metrics_port}:{CONTAINER_METRICS_PORT}",
            "--stop-timeout", str(self.cfg.stop_timeout),
            "--label", f"whisper.tag={tag}",
            image,
            warn=True,
        )  # fmt: skip
        if result.failed:
            raise DeployError(f"docker run {image} failed: {last_line(result.stderr)}")

    def stop(self, container: str, timeout: int) -> None:
        self.docker("stop", "--time", str(timeout), container, warn=True)

    def logs_tail(self, container: str, lines: int = LOG_LINES) -> str:
        result = self.docker("logs", "--tail", str(lines), container, warn=True)
        return (result.stdout + result.stderr).strip()

    def wait_ready(self, slot: Slot) -> None:
        """Poll the new colour's /readyz until 200, its container dies, the service gives up (a model that
        cannot load: no wait helps), or the timeout passes."""
        deadline = time.monotonic() + self.cfg.ready_timeout
        last = "no answer"
        for _ in range(int(self.cfg.ready_timeout / self.cfg.poll_interval) + 2):
            code, body = self.http_get(slot.app_port, "/readyz")
            if code == 200:
                return
            if reason := gave_up(code, body):
                raise DeployError(f"{slot.container} cannot become ready: {reason}")
            last = f"{code} {body[:300]}" if code else "no answer"
            state = (self.inspect(slot.container) or {}).get("State", {})
            if state.get("Status") in ("exited", "dead") or state.get("Restarting"):
                raise DeployError(
                    f"{slot.container} exited (code {state.get('ExitCode')}) before it became ready"
                )
            if time.monotonic() >= deadline:
                break
            time.sleep(self.cfg.poll_interval)
        raise DeployError(
            f"{slot.container} did not pass /readyz within {self.cfg.ready_timeout:g} s (last answer: {last})"
        )

    def smoke(self, port: int) -> None:
        """Transcribe one generated clip through port; the API key comes from the env file via stdin."""
        remote = self.sh("mktemp -t whisper-smoke.XXXXXX").stdout.strip()
        self.conn.put(str(SMOKE_SCRIPT), remote)
        try:
            result = self.sh(
                f"{self.sudo}cat {shlex.quote(self.cfg.env_file)}"
                f" | python3 {shlex.quote(remote)} --url http://127.0.0.1:{port} --env-file -",
                warn=True,
            )
        finally:
            self.sh(f"rm -f {shlex.quote(remote)}", warn=True)
        if result.failed:
            raise DeployError(f"smoke test on port {port} failed: {last_line(result.stdout)}")


def parse_env_file(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {key.strip(): value for key, value in pairs if not key.lstrip().startswith("#")}


def render_env_file(settings: Mapping[str, str]) -> str:
    for key, value in settings.items():
        if "\n" in value:
            raise DeployError(f"{key} must be one line (docker env files have no multi-line values)")
    header = "# Service settings for the whisper containers, written by `fab deploy`. Mode 0600.\n"
    return header + "".join(f"{key}={settings[key]}\n" for key in sorted(settings))


# --- the tasks' flows
def gave_up(code: int | None, body: str) -> str | None:
    """The reason when /readyz answers 503 with the code `failed` (the service's Health.FAILED: the model
    could not load, and the process will not try again), else None."""
    if code != 503:
        return None
    try:
        error = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return None
    return str(error.get("message")) if isinstance(error, dict) and error.get("code") == "failed" else None
