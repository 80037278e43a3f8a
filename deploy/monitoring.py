"""The monitoring stack's ports (monitoring/), filled in from their one owner: the deploy's knobs (config.py);
and the host's path it reads, from deploy/paths.py.

Tools read the stack's files, not this code, so each file takes them the way its tool can:
- compose.yml interpolates ${PROMETHEUS_PORT} & co. and ${TEXTFILE_DIR} from HOST_ENV, an env file beside it
  (compose's own `--env-file`); Grafana's data source reads PROMETHEUS_PORT from its container's environment;
- prometheus.yml scrapes the targets listed in its jobs' file_sd files (prometheus/targets/<job>.json).
Ansible's monitoring role writes these files on the host (ansible/inventory.py gives them as variables);
for a stack elsewhere, `python -m deploy.monitoring DIR` writes them into a copy of monitoring/.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from deploy import paths
from deploy.config import ROOT, DeployConfig

MONITORING = ROOT / "monitoring"
PROMETHEUS_CONFIG = Path("prometheus") / "prometheus.yml"  # relative to monitoring/, as on the host
HOST_ENV = "host.env"  # compose's variables, beside compose.yml


def compose_ports(cfg: DeployConfig) -> dict[str, int]:
    """The variables compose.yml interpolates: each of the stack's own listeners."""
    return {
        "PROMETHEUS_PORT": cfg.prometheus_port,
        "GRAFANA_PORT": cfg.grafana_port,
        "NODE_EXPORTER_PORT": cfg.node_exporter_port,
        "DCGM_EXPORTER_PORT": cfg.dcgm_exporter_port,
    }


def compose_env(cfg: DeployConfig) -> dict[str, str]:
    """Every variable compose.yml interpolates (but the Grafana password, which the host keeps in .env)."""
    return {
        **{name: str(port) for name, port in compose_ports(cfg).items()},
        "TEXTFILE_DIR": str(paths.TEXTFILE_DIR),
    }


def job_ports(cfg: DeployConfig) -> dict[str, tuple[int, ...]]:
    """What each of prometheus.yml's jobs scrapes on the loopback: blue and green, the exporters, itself."""
    return {
        "whisper": (cfg.blue_metrics_port, cfg.green_metrics_port),
        "node": (cfg.node_exporter_port,),
        "dcgm": (cfg.dcgm_exporter_port,),
        "prometheus": (cfg.prometheus_port,),
    }


def target_files(cfg: DeployConfig, monitoring: Path = MONITORING) -> dict[str, str]:
    """Each job's file_sd file (its path relative to monitoring/, as prometheus.yml names it) and its JSON."""
    config = yaml.safe_load((monitoring / PROMETHEUS_CONFIG).read_text())
    ports = job_ports(cfg)
    files = {}
    for job in config["scrape_configs"]:
        (listed,) = [name for sd in job["file_sd_configs"] for name in sd["files"]]
        targets = [f"127.0.0.1:{port}" for port in ports[job["job_name"]]]
        files[str(PROMETHEUS_CONFIG.parent / listed)] = json.dumps([{"targets": targets}]) + "\n"
    return files


def host_files(cfg: DeployConfig, monitoring: Path = MONITORING) -> dict[str, str]:
    """Every file the stack needs beside the repo's: path relative to monitoring/ -> text."""
    env = "".join(f"{name}={value}\n" for name, value in compose_env(cfg).items())
    return {HOST_ENV: env, **target_files(cfg, monitoring)}


def ansible_vars(cfg: DeployConfig) -> dict:
    """What ansible/inventory.py gives the monitoring role: the files to write, the ports kept on loopback."""
    return {
        "monitoring_generated_files": host_files(cfg),
        "monitoring_loopback_ports": sorted(compose_ports(cfg).values()),
    }


def main(argv: list[str]) -> int:
    """`python -m deploy.monitoring DIR`: write host_files() there, for this environment's DEPLOY_* ports."""
    if len(argv) != 1:
        print("usage: python -m deploy.monitoring DIR  (a copy of monitoring/)", file=sys.stderr)
        return 2
    directory = Path(argv[0])
    for name, text in host_files(DeployConfig.from_env(), directory).items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text)
        print(directory / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
