"""Typed stack configuration, validated before any resource is declared.

Every key the program reads is listed here with its default. A bad value stops `pulumi up` with one
line that names the key and a value that would work, before anything is created or billed.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi

import config_keys as keys
from config_fleet import (  # noqa: F401 (re-exported: the fleet's budget lives in config_fleet.py)
    DEFAULT_AUTOHEAL_DELAY_SEC,
    FIRST_BOOT_BUDGET_SEC,
    FleetConfig,
    fleet_config,
)
from config_gpu import check_zone_has_gpu, gpu_host, zone_and_region
from config_keys import (  # noqa: F401 (re-exported: the defaults the rules apply)
    DEFAULT_BOOT_DISK_GB,
    DEFAULT_LABELS,
    IDLE_STOP_MINUTES_RANGE,
    MIN_BOOT_DISK_GB,
)
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
from pricing import Price

PROJECT_NAMESPACE = "whisper-gpu"  # the `name:` in Pulumi.yaml, prefix of every project config key


# ---------------------------------------------------------------- defaults

DEFAULT_IMAGE = "ubuntu-os-cloud/ubuntu-2204-lts"  # why: docs/provisioning.md, image choice
IAP_SSH_RANGE = "35.235.240.0/20"  # Google's IAP TCP forwarding range: SSH without a public port
HEALTH_CHECK_RANGES = ("130.211.0.0/22", "35.191.0.0/16")  # Google front ends and health checkers
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
        project = keys.require_project(gcp)
        zone, region = zone_and_region(gcp)
        machine_type, gpu_type, gpu_count = gpu_host(values)
        check_zone_has_gpu("gcp:zone", zone, region, gpu_type)
        fleet = fleet_config(values, region, gpu_type)
        docker_image = keys.docker_image(values, required=fleet is not None)  # checked before apiKey
        spot = keys.spot(values, machine_type)
        return cls(
            stack=stack,
            project=project,
            zone=zone,
            region=region,
            machine_type=machine_type,
            gpu_type=gpu_type,
            gpu_count=gpu_count,
            spot=spot,
            boot_disk_gb=keys.boot_disk_gb(values),
            image=str_value(values, "image", DEFAULT_IMAGE),
            ssh_source_ranges=keys.cidrs(values, "sshSourceRanges", (IAP_SSH_RANGE,)),
            http_source_ranges=keys.cidrs(values, "httpSourceRanges", ("0.0.0.0/0",)),
            domain=keys.domain(values),
            docker_image=docker_image,
            api_key=api_key,
            dockerhub_username=keys.dockerhub_username(values, dockerhub_token),
            dockerhub_token=dockerhub_token,
            labels=keys.labels(values),
            fleet=fleet,
            allow_unauthenticated=keys.allow_unauthenticated(values, fleet is not None, api_key),
            price=keys.price(values, machine_type, gpu_type, gpu_count, spot),
            idle_stop_minutes=keys.idle_stop_minutes(values, fleet is not None),
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
    "pricePerHour", "idleStopMinutes",
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
