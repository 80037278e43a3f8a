"""Typed stack configuration, validated before any resource is declared.

Every key the program reads is listed here with its default. A bad value stops `pulumi up` with one
line that names the key and a value that would work, before anything is created or billed.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi

from config_fleet import (  # noqa: F401 (re-exported: the fleet's budget lives in config_fleet.py)
    DEFAULT_AUTOHEAL_DELAY_SEC,
    FIRST_BOOT_BUDGET_SEC,
    FleetConfig,
    fleet_config,
)
from config_gpu import check_zone_has_gpu, gpu_host, zone_and_region
from config_values import (  # noqa: F401 (ConfigError re-exported: what every rule raises)
    ConfigError,
    bool_value,
    fail,
    float_value,
    int_value,
    list_value,
    str_value,
)

from catalogue import (  # noqa: F401 (re-exported: the GPU facts live in catalogue.py)
    A3_DOC,
    ATTACHED_FAMILIES,
    BUNDLED_MACHINES,
    GPUS,
    GVNIC_FAMILIES,
    KNOWN_GPU_ZONES,
    PRE_TURING_GPUS,
    SPOT_ONLY_MACHINES,
    GpuSpec,
)
from pricing import Price, vm_price

PROJECT_NAMESPACE = "whisper-gpu"  # the `name:` in Pulumi.yaml, prefix of every project config key


# ---------------------------------------------------------------- defaults

DEFAULT_IMAGE = "ubuntu-os-cloud/ubuntu-2204-lts"  # why: docs/provisioning.md, image choice
MIN_BOOT_DISK_GB = 50  # OS ~10 GB + CUDA image ~15 GB unpacked (x2 during an update) + models
DEFAULT_BOOT_DISK_GB = 100
IAP_SSH_RANGE = "35.235.240.0/20"  # Google's IAP TCP forwarding range: SSH without a public port
HEALTH_CHECK_RANGES = ("130.211.0.0/22", "35.191.0.0/16")  # Google front ends and health checkers
DEFAULT_LABELS = {"app": "whisper"}

# Idle stop (single VM): the VM stops itself after this many minutes without a request (infra/idle_stop.py).
# At least 10: the watch runs once a minute, and a first boot with its driver install takes ~15 minutes.
IDLE_STOP_MINUTES_RANGE = (10, 10_080)

LABEL_KEY_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE_RE = re.compile(r"^[a-z0-9_-]{0,63}$")
DOCKER_IMAGE_RE = re.compile(r"^[a-z0-9][A-Za-z0-9._/:@-]*$")
DOMAIN_RE = re.compile(r"^(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
API_KEY_FIX = 'pulumi config set --secret apiKey "$(openssl rand -hex 24)"'
# Keys this program no longer reads, and why: a stack that still sets one is told instead of ignored.
REMOVED_KEYS = {
    "monitoringSourceRanges": (
        "Grafana and Prometheus listen on the VM's loopback only, so a firewall rule cannot reach them",
        "remove it (pulumi config rm monitoringSourceRanges); make dashboards tunnels to them over IAP",
    ),
}


# ---------------------------------------------------------------- the typed config


@dataclass(frozen=True)
class StackConfig:
    stack: str
    project: str
    zone: str
    region: str
    # GPU host
    machine_type: str
    gpu_type: str
    gpu_count: int
    spot: bool
    boot_disk_gb: int
    image: str
    # network exposure
    ssh_source_ranges: tuple[str, ...]
    http_source_ranges: tuple[str, ...]
    # HTTPS: the name clients use (its DNS A record points at the `ip` output). None: plain HTTP on 80.
    domain: str | None
    # what runs on it
    docker_image: str | None
    api_key: Any = field(default=None, repr=False)  # Output[str] secret, never printed
    # Fleet: Docker Hub login for the VMs' pulls (anonymous pulls are limited per IP, and the VMs share NAT's)
    dockerhub_username: str | None = None
    dockerhub_token: Any = field(default=None, repr=False)  # Output[str] secret, never printed
    labels: Mapping[str, str] = field(default_factory=dict)
    fleet: FleetConfig | None = None  # None: one GPU VM (the default)
    allow_unauthenticated: bool = False  # True: serving without any API key is intended
    # What the VM costs per running hour (pricing.py's table, or pricePerHour); None: unknown to both.
    price: Price | None = None
    idle_stop_minutes: int | None = None  # None: the VM never stops itself (the default)

    @property
    def mode(self) -> str:
        return "fleet" if self.fleet else "vm"

    @property
    def has_gpu(self) -> bool:
        """False for a CPU-only host (gpuType: none): no accelerator, no driver, docker run without --gpus."""
        return bool(self.gpu_type)

    @property
    def attaches_gpus(self) -> bool:
        """True where GPUs are declared as guest accelerators (n1); False where bundled."""
        return self.machine_type.split("-")[0] in ATTACHED_FAMILIES

    @property
    def nic_type(self) -> str | None:
        """GVNIC where the machine series needs it (A3); None keeps Google's default (VIRTIO_NET)."""
        return "GVNIC" if self.machine_type.split("-")[0] in GVNIC_FAMILIES else None

    @property
    def name_prefix(self) -> str:
        """`whisper-<stack>`, cut to fit the shortest GCP name limit we use (service account)."""
        slug = re.sub(r"[^a-z0-9-]+", "-", self.stack.lower()).strip("-") or "stack"
        return f"whisper-{slug}"[:24].rstrip("-")

    @classmethod
    def from_mapping(
        cls,
        values: Mapping[str, Any],
        gcp: Mapping[str, Any],
        stack: str,
        api_key: Any = None,
        dockerhub_token: Any = None,
    ) -> StackConfig:
        """Build from raw config strings (project keys in `values`, `gcp:*` keys in `gcp`)."""
        project = _require_project(gcp)
        zone, region = zone_and_region(gcp)
        machine_type, gpu_type, gpu_count = gpu_host(values)
        check_zone_has_gpu("gcp:zone", zone, region, gpu_type)
        fleet = fleet_config(values, region, gpu_type, gpu_count)
        docker_image = _docker_image(values, required=fleet is not None)
        allow_unauthenticated = bool_value(values, "allowUnauthenticated", False)
        if fleet is not None and api_key is None and not allow_unauthenticated:
            raise fail(
                "apiKey",
                "not set, so the fleet would serve anyone",
                f"set one: {API_KEY_FIX} (or allowUnauthenticated: true)",
            )
        dockerhub_username = _dockerhub_username(values, dockerhub_token)
        spot = bool_value(values, "spot", False)
        if machine_type in SPOT_ONLY_MACHINES and not spot:
            raise fail(
                "spot",
                f"{machine_type} is offered as Spot or Flex-start only ({A3_DOC}, A3 High)",
                "set spot: true (or machineType: a3-highgpu-8g)",
            )
        return cls(
            stack=stack,
            project=project,
            zone=zone,
            region=region,
            machine_type=machine_type,
            gpu_type=gpu_type,
            gpu_count=gpu_count,
            spot=spot,
            boot_disk_gb=_boot_disk_gb(values),
            image=str_value(values, "image", DEFAULT_IMAGE),
            ssh_source_ranges=_cidrs(values, "sshSourceRanges", (IAP_SSH_RANGE,)),
            http_source_ranges=_cidrs(values, "httpSourceRanges", ("0.0.0.0/0",)),
            domain=_domain(values),
            docker_image=docker_image,
            api_key=api_key,
            dockerhub_username=dockerhub_username,
            dockerhub_token=dockerhub_token,
            labels=_labels(values),
            fleet=fleet,
            allow_unauthenticated=allow_unauthenticated,
            price=_price(values, machine_type, gpu_type, gpu_count, spot),
            idle_stop_minutes=_idle_stop_minutes(values, fleet is not None),
        )

    @classmethod
    def from_pulumi(cls) -> StackConfig:
        """Read the current stack's config, as `pulumi up` and the unit tests provide it."""
        reject_unknown_keys(_configured_project_keys())
        project_cfg = pulumi.Config(PROJECT_NAMESPACE)
        gcp_cfg = pulumi.Config("gcp")
        values = {key: project_cfg.get(key) for key in (*PROJECT_KEYS, "dockerhubUsername")}
        gcp = {key: gcp_cfg.get(key) for key in ("project", "zone", "region")}
        return cls.from_mapping(
            values,
            gcp,
            pulumi.get_stack(),
            api_key=project_cfg.get_secret("apiKey"),
            dockerhub_token=project_cfg.get_secret("dockerhubToken"),
        )


PROJECT_KEYS = (
    "machineType", "gpuType", "gpuCount", "spot", "bootDiskGb", "image",
    "sshSourceRanges", "httpSourceRanges", "domain", "allowUnauthenticated",
    "dockerImage", "labels",
    "replicas", "minReplicas", "maxReplicas", "fleetZones", "maxRatePerInstance",
    "targetUtilization", "autohealInitialDelaySec", "cooldownSec", "requestTimeoutSec",
    "pricePerHour", "idleStopMinutes", "jobsDatabaseTier", "jobsTtlDays",
)  # fmt: skip


# The fleet's credentials, read apart from PROJECT_KEYS (secrets: get_secret); docs/provisioning.md has them.
LOGIN_KEYS = ("apiKey", "dockerhubUsername", "dockerhubToken")


def _configured_project_keys() -> list[str]:
    """Project keys the stack sets. Pulumi offers no public listing; its runtime keeps them here."""
    everything = getattr(pulumi.runtime.config, "CONFIG", None)
    keys = everything.get() if everything is not None else {}
    return [key.split(":", 1)[1] for key in keys if key.startswith(f"{PROJECT_NAMESPACE}:")]


def reject_unknown_keys(keys: list[str]) -> None:
    """A misspelt key (`gputype`) would otherwise be ignored and the default silently used."""
    known = (*PROJECT_KEYS, *LOGIN_KEYS)
    for key in keys:
        if key in REMOVED_KEYS:
            raise fail(key, *REMOVED_KEYS[key])
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}?" if close else f"known keys: {', '.join(known)}"
            raise fail(key, "is not a setting of this program", hint)


# ---------------------------------------------------------------- one helper per rule


def _require_project(gcp: Mapping[str, Any]) -> str:
    project = gcp.get("project")
    if not project:
        raise fail("gcp:project", "not set", "run: pulumi config set gcp:project my-project-id")
    return str(project)


def _boot_disk_gb(values: Mapping[str, Any]) -> int:
    size = int_value(values, "bootDiskGb", DEFAULT_BOOT_DISK_GB, DEFAULT_BOOT_DISK_GB)
    if size < MIN_BOOT_DISK_GB:
        raise fail(
            "bootDiskGb",
            f"{size} GB is too small for the OS, the CUDA image (twice during an update) and models",
            f"use at least {MIN_BOOT_DISK_GB}, e.g. bootDiskGb: {DEFAULT_BOOT_DISK_GB}",
        )
    return size


def _cidrs(values: Mapping[str, Any], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    ranges = list_value(values, key)
    if ranges is None:
        return default
    for cidr in ranges:
        try:
            ipaddress.ip_network(cidr, strict=True)
        except ValueError:
            raise fail(key, f"{cidr!r} is not a CIDR range", f'e.g. {key}: ["203.0.113.7/32"]') from None
    return tuple(ranges)


def _labels(values: Mapping[str, Any]) -> dict[str, str]:
    raw = values.get("labels")
    given: Any = raw
    if isinstance(raw, str):
        try:
            given = json.loads(raw)
        except json.JSONDecodeError:
            given = None
    if raw is None:
        given = {}
    if not isinstance(given, Mapping):
        raise fail("labels", f"{raw!r} is not a map", "e.g. labels: {team: speech}")
    for key, value in given.items():
        if not LABEL_KEY_RE.match(str(key)) or not LABEL_VALUE_RE.match(str(value)):
            raise fail(
                "labels",
                f"{key}={value} breaks GCP's label rules (lowercase letters, digits, _ and -)",
                "e.g. labels: {team: speech}",
            )
    return {**DEFAULT_LABELS, **{str(k): str(v) for k, v in given.items()}}


def _domain(values: Mapping[str, Any]) -> str | None:
    domain = values.get("domain") or None
    if domain is not None and not DOMAIN_RE.match(str(domain)):
        raise fail("domain", f"{domain!r} is not a DNS name", "e.g. domain: whisper.example.com")
    return domain


def _dockerhub_username(values: Mapping[str, Any], token: Any) -> str | None:
    """The fleet's Docker Hub login: a user and a secret token (Secret Manager), both or neither."""
    username = values.get("dockerhubUsername") or None
    if token is not None and username is None:
        raise fail(
            "dockerhubUsername", "not set, but dockerhubToken is", "pulumi config set dockerhubUsername USER"
        )
    if username is not None and token is None:
        raise fail(
            "dockerhubToken",
            "not set, but dockerhubUsername is",
            "pulumi config set --secret dockerhubToken <Docker Hub access token> (read-only scope)",
        )
    return None if username is None else str(username)


def _docker_image(values: Mapping[str, Any], required: bool) -> str | None:
    image = values.get("dockerImage") or None
    if image is None and required:
        raise fail(
            "dockerImage",
            "fleet mode starts the service from an image and none is set",
            "e.g. pulumi config set dockerImage myuser/whisper-gpu:1a2b3c4",
        )
    if image is not None and not DOCKER_IMAGE_RE.match(str(image)):
        raise fail("dockerImage", f"{image!r} is not an image reference", "e.g. user/repo:tag")
    return image


def _price(values: Mapping[str, Any], machine: str, gpu: str, count: int, spot: bool) -> Price | None:
    """pricePerHour when set (any machine, any negotiated price), else pricing.py's list price."""
    override = values.get("pricePerHour")
    if override not in (None, ""):
        per_hour = float_value(values, "pricePerHour", 1.0, 0.0, 1000.0)
        return Price(per_hour, "override", "spot" if spot else "on-demand")
    boot_disk_gb = int_value(values, "bootDiskGb", DEFAULT_BOOT_DISK_GB, DEFAULT_BOOT_DISK_GB)
    return vm_price(machine, gpu, count, machine.split("-")[0] in ATTACHED_FAMILIES, spot, boot_disk_gb)


def _idle_stop_minutes(values: Mapping[str, Any], is_fleet: bool) -> int | None:
    minutes = int_value(values, "idleStopMinutes", None, 60)
    if minutes is None:
        return None
    if is_fleet:
        raise fail(
            "idleStopMinutes",
            "applies to the single VM only: the group would recreate a VM that stopped itself",
            "remove it (pulumi config rm idleStopMinutes); the autoscaler sizes a fleet",
        )
    low, high = IDLE_STOP_MINUTES_RANGE
    if not low <= minutes <= high:
        raise fail("idleStopMinutes", f"{minutes} is outside {low}..{high}", "e.g. idleStopMinutes: 60")
    return minutes
