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

from deploy import engine, nginx
from deploy.config import ROOT, SERVICE_DEFAULTS, SERVICE_ENV_KEYS, DeployConfig, Slot

SMOKE_SCRIPT = ROOT / "scripts" / "smoke.py"
CONTAINER_API_PORT = SERVICE_DEFAULTS.port  # PORT inside the image: the service's default
CONTAINER_METRICS_PORT = SERVICE_DEFAULTS.metrics_port  # METRICS_PORT inside the image
CONTAINER_JOBS_DIR = "/data/jobs"  # JOBS_DIR inside the image (Dockerfile)
CONTAINER_UID = 10001  # the image's user, owner of the jobs directory
PUBLIC_CHECK_SECONDS = 30.0  # how long the proxy may take to answer after a start or reload
LOG_LINES = 30  # log lines of a failed container quoted in the error


class DeployError(Exception):
    """The deploy stopped; the message says why and what still serves traffic."""


NO_KEY = (
    'no API key: export API_KEYS="$(openssl rand -hex 24)" and deploy again '
    "(or, to serve without keys on purpose: pulumi config set allowUnauthenticated true)"
)


STARTED = time.monotonic()


def log(message: str) -> None:
    print(f"==> [{time.monotonic() - STARTED:5.1f} s] {message}", flush=True)


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


class Host:
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
        # one job store for both colours: a job outlives the colour that took it (docs/deploy.md)
        jobs_dir = shlex.quote(self.cfg.jobs_dir)
        self.sh(f"{self.sudo}install -d -m 0700 -o {CONTAINER_UID} -g {CONTAINER_UID} {jobs_dir}")
        result = self.docker(
            "run", "--detach", "--name", slot.container,
            *(["--gpus", self.cfg.gpus] if self.cfg.gpus != "none" else []),
            "--restart", "unless-stopped",
            "--env-file", self.cfg.env_file,
            "--volume", f"{self.cfg.jobs_dir}:{CONTAINER_JOBS_DIR}",
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

    # --- the proxy
    def point_proxy(self, slot: Slot) -> None:
        """Send the public port to `slot`: start the proxy on first use, else rewrite + graceful reload."""
        cfg = self.cfg
        path = posixpath.join(cfg.proxy_dir, nginx.CONF_NAME)
        before = self.read_file(path)
        conf = nginx.render(
            slot, cfg.public_port, cfg.max_upload_mb, domain=cfg.domain, https_port=cfg.https_port
        )
        self.write_file(path, conf, mode="644")
        if cfg.domain:
            self.write_file(posixpath.join(cfg.proxy_dir, nginx.MAIN_CONF_NAME), nginx.MAIN_CONF, mode="644")
        if self.running(cfg.proxy_container) and self.proxy_mounts_match():
            check = self.docker("exec", cfg.proxy_container, "nginx", "-t", warn=True)
            if check.failed:
                if before is not None:
                    self.write_file(path, before, mode="644")
                raise DeployError(f"nginx rejected the new config: {last_line(check.stderr)}")
            self.docker("exec", cfg.proxy_container, "nginx", "-s", "reload")
        else:
            self.start_proxy()
        self.wait_public()

    def proxy_target(self) -> str | None:
        """The colour the proxy config sends traffic to (None before the first deploy)."""
        conf = self.read_file(posixpath.join(self.cfg.proxy_dir, nginx.CONF_NAME)) or ""
        for slot in (self.cfg.blue, self.cfg.green):
            if f"server 127.0.0.1:{slot.app_port};" in conf:
                return slot.color
        return None

    def proxy_mounts_match(self) -> bool:
        """Whether the running proxy has the mounts HTTPS needs exactly when a domain is set (a stack that
        gains or loses `domain` gets a new proxy container once: a reload cannot add a mount)."""
        mounts = (self.inspect(self.cfg.proxy_container) or {}).get("Mounts") or []
        has_main = any(m.get("Destination") == "/etc/nginx/nginx.conf" for m in mounts)
        return has_main == bool(self.cfg.domain)

    def start_proxy(self) -> None:
        cfg = self.cfg
        self.docker("rm", "--force", cfg.proxy_container, warn=True)
        https = []
        if cfg.domain:  # nginx.conf with load_module, and the ACME state kept across restarts
            self.sh(f"{self.sudo}install -d -m 0700 -o 101 -g 101 {shlex.quote(cfg.acme_dir)}")
            https = [
                "--volume", f"{posixpath.join(cfg.proxy_dir, nginx.MAIN_CONF_NAME)}:/etc/nginx/nginx.conf:ro",
                "--volume", f"{cfg.acme_dir}:{nginx.ACME_STATE}",
            ]  # fmt: skip
        result = self.docker(
            "run", "--detach", "--name", cfg.proxy_container,
            "--network", "host", "--restart", "unless-stopped",
            "--volume", f"{cfg.proxy_dir}:/etc/nginx/conf.d:ro",
            *https,
            cfg.proxy_image,
            warn=True,
        )  # fmt: skip
        if result.failed:
            raise DeployError(f"the proxy did not start: {last_line(result.stderr)}")

    def wait_public(self) -> None:
        last = "no answer"
        for _ in range(int(PUBLIC_CHECK_SECONDS / 0.5)):
            code, body = self.http_get(self.cfg.public_port, "/readyz")
            if code == 200:
                return
            last = f"{code} {body[:200]}" if code else "no answer"
            time.sleep(0.5)
        raise DeployError(f"port {self.cfg.public_port} did not answer /readyz with 200 ({last})")


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
def deploy(host: Host, tag: str, image: str = "") -> dict:
    """Blue/green deploy of `tag` (of IMAGE, or the full `image` reference); returns the new state.
    Raises DeployError with the live colour intact."""
    with host.lock():
        return switch_to(host, tag, image or f"{host.cfg.image}:{tag}")


def switch_to(host: Host, tag: str, image: str) -> dict:
    """The deploy itself, under the host's lock."""
    cfg = host.cfg
    live = host.read_state().get("current")
    slot = cfg.other(live["color"] if live else None)
    if not cfg.allow_unauthenticated and not host.planned_env().get("API_KEYS"):
        raise DeployError(NO_KEY)
    with host.pull_login(image) as options:
        host.pull(image, options)
        host.pull(cfg.proxy_image, options, only_if_missing=True)
    settings = host.update_env_file()
    if settings.get("GRACEFUL_TIMEOUT"):  # the host's value, even when this shell does not set it
        try:
            host.cfg = cfg = cfg.replace(graceful_timeout=int(float(settings["GRACEFUL_TIMEOUT"])))
        except ValueError:
            raise DeployError(f"GRACEFUL_TIMEOUT={settings['GRACEFUL_TIMEOUT']!r} is not a number") from None
    beside = f" beside {live['color']} ({live['tag']})" if live else ""
    log(f"starting {slot.container} ({tag}){beside}")
    host.start(slot, image, tag)
    try:
        log(f"waiting up to {cfg.ready_timeout:g} s for {slot.container} to pass /readyz")
        host.wait_ready(slot)
        log(f"smoke test: one transcription on {slot.container}")
        host.smoke(slot.app_port)
        log(f"switching port {cfg.public_port} to {slot.container}")
        host.point_proxy(slot)
    except Exception as err:  # any failure, SSH errors included, must leave the live colour serving
        raise DeployError(abandon(host, slot, live, err)) from err
    release = {"tag": tag, "color": slot.color, "image": image, "deployed_at": now_utc()}
    state = {"current": release, "previous": live}
    host.write_state(state)
    if live:
        time.sleep(cfg.drain_delay)  # let the proxy's old workers hand their requests over
        log(f"stopping {cfg.slot(live['color']).container} (up to {cfg.stop_timeout} s to drain)")
        host.stop(cfg.slot(live["color"]).container, cfg.stop_timeout)
    log(f"{tag} is live on port {cfg.public_port} ({slot.container})")
    return state


def abandon(host: Host, slot: Slot, live: dict | None, err: BaseException) -> str:
    """Stop the failed new colour, keep or put the proxy on the live one; return the reason."""
    logs = host.logs_tail(slot.container)
    host.stop(slot.container, timeout=10)
    if live and host.proxy_target() != live["color"] and host.running(host.cfg.proxy_container):
        host.point_proxy(host.cfg.slot(live["color"]))
    still = f"{live['color']} ({live['tag']}) keeps serving" if live else "nothing was serving"
    reason = str(err) if isinstance(err, DeployError) else f"{type(err).__name__}: {err}"
    return (
        f"{reason}; {still} port {host.cfg.public_port}.\n"
        f"last {LOG_LINES} log lines of {slot.container}:\n{logs}"
    )


def rollback(host: Host) -> dict:
    """Deploy the recorded previous tag through the same blue/green path."""
    previous = host.read_state().get("previous")
    if not previous:
        raise DeployError(f"no previous release recorded in {host.cfg.state_file}")
    log(f"rolling back to {previous['tag']}")
    return deploy(host, previous["tag"], previous["image"])


def status_lines(host: Host) -> list[str]:
    """Tag, health and uptime of the live colour, and the recorded previous tag."""
    cfg = host.cfg
    state = host.read_state()
    current, previous = state.get("current"), state.get("previous")
    if not current:
        return [f"nothing deployed (no {cfg.state_file})"]
    container = cfg.slot(current["color"]).container
    info = host.inspect(container) or {"State": {"Status": "missing"}}
    code, body = host.http_get(cfg.public_port, "/readyz")
    return [
        f"live:      {current['tag']} ({container}, image {current['image']})",
        f"deployed:  {current['deployed_at']}",
        f"container: {info['State']['Status']}, up {uptime(info['State'].get('StartedAt'))}",
        f"readyz:    {code or 'no answer'} on port {cfg.public_port} {body[:200]}".rstrip(),
        f"previous:  {previous['tag'] if previous else '-'}",
    ]


def uptime(started_at: str | None) -> str:
    """'3h 12m 5s' since docker's StartedAt (RFC 3339 with nanoseconds)."""
    if not started_at:
        return "-"
    started = datetime.strptime(started_at[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    seconds = max(0, int((datetime.now(UTC) - started).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h {rest // 60}m {rest % 60}s"


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
