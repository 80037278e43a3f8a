"""Every deploy knob in one place, read once from the environment and the Pulumi stack's outputs.

The service's own settings (API_KEYS, WHISPER_ENGINE, ...) are not knobs of the deploy: they are copied
from the operator's environment into the host's env file (see SERVICE_ENV_KEYS) and read by the service.
Where the deploy needs one of their values (the proxy's body limit, docker stop's timeout, the container's
ports), it takes the service's default from service/settings, its one owner, which imports no Flask.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from pydantic_settings import SettingsConfigDict

from deploy.paths import HOST_HOME
from deploy.paths import OUTPUTS as DEFAULT_OUTPUTS
from service.settings import STOP_MARGIN_SECONDS, Settings, SettingsError, stop_timeout
from service.settings.knobs import Knobs, knob
from service.settings.parse import boolean, number, tcp_port, text

ROOT = Path(__file__).resolve().parent.parent

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


class DeployConfig(Knobs):
    """The deploy's knobs: DEPLOY_<FIELD> in the environment (docs/deploy.md's table is generated from here:
    `python -m tools.configuration_docs`), beside the few service settings the deploy reads too."""

    model_config = SettingsConfigDict(env_prefix="DEPLOY_", case_sensitive=False)

    # --- the image
    image: str = knob(
        "IMAGE",
        "",
        text,
        "The repository (Docker Hub, or `host/repo` of another registry).",
        "$DOCKERHUB_USERNAME/whisper-gpu-service",
    )
    whisper_model: str = knob(
        "WHISPER_MODEL", SERVICE_DEFAULTS.whisper_model, text, "Weights baked into the image at build time."
    )
    whisper_engine: str = knob(
        "WHISPER_ENGINE", SERVICE_DEFAULTS.whisper_engine, text, "The engine whose weights are baked."
    )
    # --- the host
    host: str = knob(
        None, "", text, "`user@address` where `fab` deploys (or `--host`).", "the stack's ip output"
    )
    gpus: str = knob(
        None,
        "all",
        text,
        "`docker run --gpus`; `none` for a CPU-only host (a stack with `gpuType: none` says so itself).",
        "the stack's gpus output, else all",
    )
    public_port: int = knob(None, 80, tcp_port, "The proxy's port, the only public one.")
    blue_port: int = knob(
        None, 5001, tcp_port, "Blue's API on the host's loopback (the proxy forwards to it)."
    )
    green_port: int = knob(None, 5002, tcp_port, "Green's API on the host's loopback.")
    blue_metrics_port: int = knob(
        None,
        SERVICE_DEFAULTS.metrics_port,
        tcp_port,
        "Blue's /metrics on the host's loopback, scraped by Prometheus (default: the service's own).",
    )
    green_metrics_port: int = knob(None, 9102, tcp_port, "Green's /metrics on the host's loopback.")
    # the monitoring stack's listeners on the host's loopback (deploy/monitoring.py fills its files with them)
    grafana_port: int = knob(None, 3000, tcp_port, "Grafana on the host's loopback (monitoring/compose.yml).")
    prometheus_port: int = knob(None, 9090, tcp_port, "Prometheus on the host's loopback.")
    node_exporter_port: int = knob(None, 9100, tcp_port, "node-exporter (the host's metrics) on loopback.")
    dcgm_exporter_port: int = knob(None, 9400, tcp_port, "dcgm-exporter (the GPUs' metrics) on loopback.")
    proxy_image: str = knob(
        None, "nginx:1.30", text, "The proxy; the official image carries ngx_http_acme_module (HTTPS)."
    )
    proxy_container: str = knob(None, "whisper-proxy", text, "The proxy's container name.")
    # --- HTTPS and authentication (the stack's `domain` and `allowUnauthenticated` outputs)
    domain: str = knob(None, "", text, "HTTPS name; empty: plain HTTP.", "the stack's domain output")
    https_port: int = knob(None, 443, tcp_port, "The proxy's HTTPS port, with a domain.")
    acme_dir: str = knob(
        None, str(HOST_HOME / "acme"), text, "The proxy's ACME state (account key, certificates), mode 0700."
    )
    allow_unauthenticated: bool = knob(
        None,
        False,
        boolean,
        "Deploy without `API_KEYS` (here or on the host) on purpose; false: such a deploy is refused.",
        "the stack's allowUnauthenticated output",
    )
    # --- files on the host
    state_file: str = knob(None, str(HOST_HOME / "deploy.json"), text, "The current and previous tag.")
    env_file: str = knob(None, "/etc/whisper/whisper.env", text, "Service settings and API keys, mode 0600.")
    proxy_dir: str = knob(None, "/etc/whisper/proxy", text, "Mounted as the proxy's /etc/nginx/conf.d.")
    jobs_dir: str = knob(
        None,
        str(HOST_HOME / "jobs"),
        text,
        "Background jobs' data directory, mounted as /data/jobs into both colours.",
    )
    # --- timing
    ready_timeout: float = knob(
        None,
        600.0,
        number(float, 1, "600"),
        "Seconds a new container gets to load its model and pass /readyz.",
    )
    poll_interval: float = knob(None, 2.0, number(float, 0.1, "2"), "Seconds between readiness probes.")
    graceful_timeout: int = knob(
        "GRACEFUL_TIMEOUT",
        int(SERVICE_DEFAULTS.graceful_timeout),
        number(int, 1, "120"),
        f"The service's: in-flight time on stop; `docker stop -t` adds {STOP_MARGIN_SECONDS}.",
    )
    drain_delay: float = knob(
        None, 2.0, number(float, 0, "2"), "Seconds between the proxy switch and stopping the old colour."
    )
    # --- the proxy
    max_upload_mb: float = knob(
        "MAX_UPLOAD_MB",
        SERVICE_DEFAULTS.max_upload_mb,
        number(float, 0.001, "100"),
        "The service's: nginx refuses bigger bodies itself.",
    )

    @property
    def blue(self) -> Slot:
        return Slot("blue", self.blue_port, self.blue_metrics_port)

    @property
    def green(self) -> Slot:
        return Slot("green", self.green_port, self.green_metrics_port)

    @property
    def stop_timeout(self) -> int:
        return stop_timeout(self.graceful_timeout)

    def slot(self, color: str) -> Slot:
        return {"blue": self.blue, "green": self.green}[color]

    def other(self, color: str | None) -> Slot:
        return self.green if color == "blue" else self.blue

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """The knobs from the environment; IMAGE falls back to DOCKERHUB_USERNAME's repository."""
        environ = os.environ if environ is None else environ
        try:
            return super().from_env({**environ, "IMAGE": image_repository(environ)})
        except SettingsError as error:
            raise ConfigError(str(error)) from None


def image_facts(dockerfile: Path = ROOT / "Dockerfile") -> dict[str, int]:
    """What the image decides for its hosts, from the Dockerfile's ARG defaults (their one owner): the
    service account's uid (WHISPER_UID) and the oldest NVIDIA driver branch it runs on (MIN_DRIVER_MAJOR)."""
    text = dockerfile.read_text()
    return {name: int(re.search(rf"^ARG {name}=(\d+)$", text, re.M).group(1)) for name in IMAGE_FACTS}


IMAGE_FACTS = ("WHISPER_UID", "MIN_DRIVER_MAJOR")


def image_repository(env: Mapping[str, str] = os.environ) -> str:
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
    return cfg.replace(
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
