"""Every deploy knob in one place, read once from the environment and the Pulumi stack's outputs.

The service's own settings (API_KEYS, WHISPER_ENGINE, ...) are not knobs of the deploy: they are copied
from the operator's environment into the host's env file (see SERVICE_ENV_KEYS) and read by the service.
Where the deploy needs one of their values (the proxy's body limit, docker stop's timeout, the container's
ports), it takes the service's default from service/settings, its one owner, which imports no Flask.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from service.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUTS = ROOT / ".deploy" / "outputs.json"  # written by `make outputs` (Pulumi stack outputs)

# Service settings copied from the operator's environment into the host's 0600 env file when set.
SERVICE_ENV_KEYS = (
    "API_KEYS",
    "WHISPER_ENGINE",
    "WHISPER_DEVICE",
    "WORKERS",
    "GRACEFUL_TIMEOUT",
    "MAX_UPLOAD_MB",  # the proxy's client_max_body_size too
)
SERVICE_DEFAULTS = Settings()  # what the service runs with where the host's env file does not say
STOP_MARGIN_SECONDS = 15  # docker stop waits GRACEFUL_TIMEOUT + this before it kills


class ConfigError(Exception):
    """A deploy setting is missing or wrong; the message says how to fix it."""


@dataclass(frozen=True)
class Slot:
    """One colour of the blue/green pair: its container and its loopback-only host ports."""

    color: str  # blue | green
    app_port: int  # 127.0.0.1:<app_port> -> the container's PORT, what the proxy forwards to
    metrics_port: int  # 127.0.0.1:<metrics_port> -> the container's METRICS_PORT, scraped by Prometheus

    @property
    def container(self) -> str:
        return f"whisper-{self.color}"


@dataclass(frozen=True)
class DeployConfig:
    # --- the image
    image: str  # Docker Hub repository, e.g. alice/whisper-gpu-service
    whisper_model: str = SERVICE_DEFAULTS.whisper_model  # baked into the image at build time
    whisper_engine: str = SERVICE_DEFAULTS.whisper_engine  # whose weights are baked (the container's engine)
    # --- the host
    host: str = ""  # user@address; empty = the stack's `ip` output
    gpus: str = "all"  # docker run --gpus; "none" on a CPU-only host (a small model on a cheap VM)
    public_port: int = 80  # the proxy's port, the only public one
    blue: Slot = Slot("blue", 5001, 9101)
    green: Slot = Slot("green", 5002, 9102)
    grafana_port: int = 3000  # the monitoring stack on the host's loopback (monitoring/compose.yml)
    prometheus_port: int = 9090
    proxy_image: str = "nginx:1.30"  # the official image carries ngx_http_acme_module (HTTPS, nginx.py)
    proxy_container: str = "whisper-proxy"
    # --- HTTPS and authentication (the stack's `domain` and `allowUnauthenticated` outputs)
    domain: str = ""  # empty: plain HTTP on public_port
    https_port: int = 443
    acme_dir: str = "/var/lib/whisper/acme"  # the proxy's ACME state (account key, certificates), mode 0700
    allow_unauthenticated: bool = False  # False: a deploy without API_KEYS (here or on the host) is refused
    # --- files on the host
    state_file: str = "/var/lib/whisper/deploy.json"  # current and previous tag
    env_file: str = "/etc/whisper/whisper.env"  # service settings and API keys, mode 0600
    proxy_dir: str = "/etc/whisper/proxy"  # mounted as the proxy's /etc/nginx/conf.d
    jobs_dir: str = "/var/lib/whisper/jobs"  # background jobs: mounted into both colours as /data/jobs
    # --- timing
    ready_timeout: float = 600.0  # seconds for a new container to load its model and pass /readyz
    poll_interval: float = 2.0  # seconds between readiness probes
    graceful_timeout: int = int(SERVICE_DEFAULTS.graceful_timeout)  # in-flight requests get this long
    drain_delay: float = 2.0  # seconds between the proxy switch and stopping the old colour
    # --- the proxy
    max_upload_mb: float = SERVICE_DEFAULTS.max_upload_mb  # nginx refuses bigger bodies itself

    @property
    def stop_timeout(self) -> int:
        return self.graceful_timeout + STOP_MARGIN_SECONDS

    def slot(self, color: str) -> Slot:
        return {"blue": self.blue, "green": self.green}[color]

    def other(self, color: str | None) -> Slot:
        return self.green if color == "blue" else self.blue

    @classmethod
    def from_env(cls, env: os._Environ[str] | dict[str, str] = os.environ) -> DeployConfig:
        def num(name: str, default: float) -> float:
            try:
                return float(env.get(name) or default)  # unset or empty: the default
            except ValueError:
                raise ConfigError(f"{name} must be a number, got {env[name]!r}") from None

        return cls(
            image=image_repository(env),
            whisper_model=env.get("WHISPER_MODEL", cls.whisper_model),
            whisper_engine=env.get("WHISPER_ENGINE", cls.whisper_engine),
            host=env.get("DEPLOY_HOST", ""),
            gpus=env.get("DEPLOY_GPUS") or cls.gpus,
            public_port=int(num("DEPLOY_PUBLIC_PORT", cls.public_port)),
            blue=Slot(
                "blue",
                int(num("DEPLOY_BLUE_PORT", cls.blue.app_port)),
                int(num("DEPLOY_BLUE_METRICS_PORT", cls.blue.metrics_port)),
            ),
            green=Slot(
                "green",
                int(num("DEPLOY_GREEN_PORT", cls.green.app_port)),
                int(num("DEPLOY_GREEN_METRICS_PORT", cls.green.metrics_port)),
            ),
            grafana_port=int(num("DEPLOY_GRAFANA_PORT", cls.grafana_port)),
            prometheus_port=int(num("DEPLOY_PROMETHEUS_PORT", cls.prometheus_port)),
            proxy_image=env.get("DEPLOY_PROXY_IMAGE", cls.proxy_image),
            domain=env.get("DEPLOY_DOMAIN", ""),
            allow_unauthenticated=env.get("DEPLOY_ALLOW_UNAUTHENTICATED", "").lower() == "true",
            state_file=env.get("DEPLOY_STATE_FILE", cls.state_file),
            env_file=env.get("DEPLOY_ENV_FILE", cls.env_file),
            proxy_dir=env.get("DEPLOY_PROXY_DIR", cls.proxy_dir),
            jobs_dir=env.get("DEPLOY_JOBS_DIR", cls.jobs_dir),
            ready_timeout=num("DEPLOY_READY_TIMEOUT", cls.ready_timeout),
            poll_interval=num("DEPLOY_POLL_INTERVAL", cls.poll_interval),
            graceful_timeout=int(num("GRACEFUL_TIMEOUT", cls.graceful_timeout)),
            drain_delay=num("DEPLOY_DRAIN_DELAY", cls.drain_delay),
            max_upload_mb=num("MAX_UPLOAD_MB", cls.max_upload_mb),
        )


def image_repository(env: os._Environ[str] | dict[str, str] = os.environ) -> str:
    """IMAGE if set, else <DOCKERHUB_USERNAME>/whisper-gpu-service; empty when neither is known."""
    if env.get("IMAGE"):
        return env["IMAGE"]
    user = env.get("DOCKERHUB_USERNAME", "")
    return f"{user}/whisper-gpu-service" if user else ""


def with_stack_outputs(
    cfg: DeployConfig, outputs: Mapping, env: Mapping[str, str] = os.environ
) -> DeployConfig:
    """What the stack decides for a deploy to its own VM: HTTPS, serving without a key on purpose, and
    `docker run --gpus` (none on a CPU-only host, gpuType: none). DEPLOY_GPUS still wins when set."""
    return replace(
        cfg,
        domain=outputs.get("domain") or cfg.domain,
        allow_unauthenticated=bool(outputs.get("allowUnauthenticated")) or cfg.allow_unauthenticated,
        gpus=env.get("DEPLOY_GPUS") or outputs.get("gpus") or cfg.gpus,
    )


def stack_outputs(path: str | Path | None = None) -> dict:
    """The Pulumi stack outputs that `make outputs` wrote (keys ip, url, mode, instanceName, zone)."""
    path = Path(path or os.environ.get("DEPLOY_OUTPUTS") or DEFAULT_OUTPUTS)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path} not found; run: make outputs (or pass --host)") from None


def git_tag(repo: str | Path = ROOT) -> str:
    """The image tag: the 12-digit commit id, with -dirty when the tree has uncommitted changes."""
    out = subprocess.run(
        ["git", "describe", "--always", "--dirty", "--abbrev=12", "--exclude", "*"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise ConfigError(f"cannot read the commit id in {repo}: {out.stderr.strip()}")
    return out.stdout.strip()


def main(argv: list[str]) -> int:
    """`python -m deploy.config output KEY`: print one stack output ('' when absent) for the Makefile."""
    if len(argv) != 2 or argv[0] != "output":
        print("usage: python -m deploy.config output KEY", file=sys.stderr)
        return 2
    try:
        print(stack_outputs().get(argv[1], ""))
    except ConfigError:
        print("")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
