"""monitoring/compose.yml read as YAML: pinned images, loopback-only listeners, persistent volumes, the
Grafana password required from the environment, and ports that agree with prometheus.yml and Grafana.

There is no Docker engine or compose plugin here (`docker compose config` is unavailable), so the file is
checked structurally, the way compose would interpret it: its ${VAR} from the host.env and targets files
that deploy.monitoring renders from the deploy's knobs (what Ansible writes beside it on the VM)."""

from __future__ import annotations

import json
import re

import pytest

from deploy import monitoring, paths
from deploy.config import DeployConfig

from .conftest import MONITORING, PROMETHEUS_DIR, load_yaml

COMPOSE_PATH = MONITORING / "compose.yml"
PORTS = DeployConfig()
HOST_FILES = monitoring.host_files(PORTS)
HOST_ENV = dict(line.split("=", 1) for line in HOST_FILES[monitoring.HOST_ENV].splitlines())
VARIABLE = re.compile(r"\$\{(\w+)(?::\?[^}]*)?\}")


def interpolated(value, env: dict[str, str]):
    """compose's ${VAR} and ${VAR:?message} in every string of a YAML tree (GRAFANA_ADMIN_PASSWORD kept)."""
    if isinstance(value, dict):
        return {key: interpolated(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolated(item, env) for item in value]
    if isinstance(value, str):
        return VARIABLE.sub(lambda m: env.get(m[1], m[0]), value)
    return value


COMPOSE = interpolated(load_yaml(COMPOSE_PATH), HOST_ENV)
SERVICES = COMPOSE["services"]
PINNED = re.compile(r"^[\w./-]+:(v?\d+\.\d+\.\d+)([\w.-]*)$")  # name:1.2.3[-variant], never latest

# Where each container is told its listen address (host networking: no port mappings to restrict).
LISTEN = {
    "prometheus": lambda s: [
        a.split("=", 1)[1] for a in s["command"] if a.startswith("--web.listen-address=")
    ],
    "node-exporter": lambda s: [
        a.split("=", 1)[1] for a in s["command"] if a.startswith("--web.listen-address=")
    ],
    "dcgm-exporter": lambda s: [s["environment"]["DCGM_EXPORTER_LISTEN"]],
    "grafana": lambda s: [
        f"{s['environment']['GF_SERVER_HTTP_ADDR']}:{s['environment']['GF_SERVER_HTTP_PORT']}"
    ],
}


def scrape_targets() -> dict[str, list[str]]:
    """Each job's targets, from the file_sd files prometheus.yml names (paths relative to it)."""
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    return {
        job["job_name"]: [
            target
            for sd in job["file_sd_configs"]
            for name in sd["files"]
            for group in json.loads(HOST_FILES[f"prometheus/{name}"])
            for target in group["targets"]
        ]
        for job in config["scrape_configs"]
    }


def test_the_stack_has_the_four_services():
    assert set(SERVICES) == {"prometheus", "grafana", "node-exporter", "dcgm-exporter"}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_image_is_pinned_to_a_release(name):
    image = SERVICES[name]["image"]
    assert PINNED.match(image), f"{name}: {image} is not pinned to a release tag"
    assert "latest" not in image


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_listens_on_loopback_only(name):
    service = SERVICES[name]
    for mapping in service.get("ports", []):
        assert str(mapping).startswith("127.0.0.1:"), f"{name} publishes {mapping} beyond loopback"
    if service.get("network_mode") == "host":
        addresses = LISTEN[name](service)
        assert addresses and all(a.startswith("127.0.0.1:") for a in addresses), addresses
    assert "0.0.0.0" not in str(service)


def test_no_port_is_published_to_all_interfaces():
    text = COMPOSE_PATH.read_text()
    assert "0.0.0.0" not in text
    assert not re.search(r"^\s*-\s*\"?\d+:\d+", text, flags=re.M), "a port mapping without 127.0.0.1"


def test_grafana_password_is_required_from_the_environment():
    env = SERVICES["grafana"]["environment"]
    assert env["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    # Nothing else in the file sets a password or a secret literally.
    for line in COMPOSE_PATH.read_text().splitlines():
        if re.search(r"password|secret|token", line, flags=re.I) and ":" in line:
            value = line.split(":", 1)[1].strip()
            assert not value or value.startswith("${") or line.strip().startswith("#"), line


def test_data_lives_in_named_volumes():
    declared = set(COMPOSE["volumes"])
    assert declared == {"prometheus-data", "grafana-data"}
    assert "prometheus-data:/prometheus" in SERVICES["prometheus"]["volumes"]
    assert "grafana-data:/var/lib/grafana" in SERVICES["grafana"]["volumes"]
    assert "--storage.tsdb.path=/prometheus" in SERVICES["prometheus"]["command"]


def test_bind_mounted_config_exists():
    for service in SERVICES.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (MONITORING / source).exists(), f"{source} is mounted but missing"


def test_every_port_and_path_comes_from_the_rendered_env_file_without_a_default():
    """No port or host path is written in compose.yml: each ${VAR} is required (`:?`) and host.env sets it."""
    text = COMPOSE_PATH.read_text()
    names = {m[1] for m in VARIABLE.finditer(text)} - {"GRAFANA_ADMIN_PASSWORD"}
    assert names == set(HOST_ENV)
    assert all(f"${{{name}:?" in text for name in names)
    assert not re.search(r"127\.0\.0\.1:\d", text), "a literal loopback port"


def test_node_exporter_reads_the_price_where_the_startup_script_writes_it():
    """deploy/paths.py's TEXTFILE_DIR: infra/host.py writes it into startup.sh, host.env into compose.yml."""
    command = SERVICES["node-exporter"]["command"]
    assert f"--collector.textfile.directory=/host{paths.TEXTFILE_DIR}" in command
    assert "/:/host:ro,rslave" in SERVICES["node-exporter"]["volumes"]


def test_prometheus_scrapes_what_the_stack_listens_on():
    targets = scrape_targets()
    slots = (PORTS.blue, PORTS.green)
    assert targets["whisper"] == [f"127.0.0.1:{slot.metrics_port}" for slot in slots]  # what Fabric publishes
    assert targets["node"] == LISTEN["node-exporter"](SERVICES["node-exporter"])
    assert targets["dcgm"] == LISTEN["dcgm-exporter"](SERVICES["dcgm-exporter"])
    assert targets["prometheus"] == LISTEN["prometheus"](SERVICES["prometheus"])


def test_grafana_data_source_points_at_prometheus():
    """Grafana fills the data source's $VAR from its own environment, which compose.yml gives it."""
    datasource = load_yaml(MONITORING / "grafana/provisioning/datasources/prometheus.yml")["datasources"][0]
    listen = LISTEN["prometheus"](SERVICES["prometheus"])[0]
    assert interpolated(datasource["url"], SERVICES["grafana"]["environment"]) == f"http://{listen}"


def test_dcgm_exporter_stays_on_the_metric_names_the_rules_use():
    # dcgm-exporter 4.9 renames DCGM_FI_DEV_FB_USED & co. and changes units; rules assume 4.8.x.
    assert re.search(r":[\d.]+-4\.8\.\d+-", SERVICES["dcgm-exporter"]["image"])
    devices = SERVICES["dcgm-exporter"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
