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


class ConfigError(pulumi.RunError):
    """A stack config value that cannot work. RunError: Pulumi prints the message, no traceback."""


# ---------------------------------------------------------------- defaults

DEFAULT_ZONE = "us-central1-a"
DEFAULT_MACHINE = "n1-standard-8"  # 8 vCPU / 30 GB: ffmpeg decoding in parallel beside one T4
DEFAULT_GPU = "nvidia-tesla-t4"
DEFAULT_IMAGE = "ubuntu-os-cloud/ubuntu-2204-lts"  # why: docs/provisioning.md, image choice
MIN_BOOT_DISK_GB = 50  # OS ~10 GB + CUDA image ~15 GB unpacked (x2 during an update) + models
DEFAULT_BOOT_DISK_GB = 100
IAP_SSH_RANGE = "35.235.240.0/20"  # Google's IAP TCP forwarding range: SSH without a public port
HEALTH_CHECK_RANGES = ("130.211.0.0/22", "35.191.0.0/16")  # Google front ends and health checkers
DEFAULT_LABELS = {"app": "whisper"}

# A new fleet VM's first boot, step by step (startup.sh), until /readyz answers. Estimates, not measurements,
# except the image: 7.7 GB unpacked, ~4 GB compressed (measured on the built image).
FIRST_BOOT_BUDGET_SEC = {
    "boot": 60,  # VM start, guest agent, the startup script begins
    "docker and toolkit": 240,  # two apt repositories, apt-get update, Docker + NVIDIA Container Toolkit
    "driver install": 600,  # Google's installer: prerequisites, then the 580 runfile and its DKMS build
    "reboot": 120,  # the installer reboots once; the script runs again from the top
    "image pull": 480,  # ~4 GB from Docker Hub through Cloud NAT, then unpacking 7.7 GB onto pd-balanced
    "model load": 180,  # container start, weights onto the GPU, warm-up, /readyz 200
}  # 1680 s = 28 min
# Before auto-healing may judge a new VM by /readyz: the budget plus 40 % margin (a slow mirror, a second
# reboot), rounded up to whole minutes: 2400 s = 40 min. Too short and the group recreates VMs mid-install,
# in a loop; too long only delays replacing a VM that is truly broken.
DEFAULT_AUTOHEAL_DELAY_SEC = -(-int(sum(FIRST_BOOT_BUDGET_SEC.values()) * 1.4) // 60) * 60
DEFAULT_COOLDOWN_SEC = 900  # autoscaler ignores a new VM's load this long
DEFAULT_REQUEST_TIMEOUT_SEC = 1800  # load balancer -> backend; long files take minutes
DEFAULT_MAX_RATE_PER_INSTANCE = 1.0  # requests/s one GPU VM serves at full load (tune per GPU)
DEFAULT_TARGET_UTILIZATION = 0.8  # autoscale when traffic passes 80 % of that rate
# Idle stop (single VM): the VM stops itself after this many minutes without a request (infra/idle_stop.py).
# At least 10: the watch runs once a minute, and a first boot with its driver install takes ~15 minutes.
IDLE_STOP_MINUTES_RANGE = (10, 10_080)

ZONE_RE = re.compile(r"^(?P<region>[a-z]+-[a-z]+[0-9]+)-[a-z]$")
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
class FleetConfig:
    """A regional managed instance group behind the global HTTP load balancer."""

    min_replicas: int
    max_replicas: int  # equal to min_replicas: a fixed size, no autoscaler
    zones: tuple[str, ...]  # the region's zones that offer the GPU type
    max_rate_per_instance: float
    target_utilization: float
    autoheal_delay_sec: int
    cooldown_sec: int
    request_timeout_sec: int

    @property
    def autoscaled(self) -> bool:
        return self.max_replicas > self.min_replicas


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
        zone, region = _zone_and_region(gcp)
        machine_type, gpu_type, gpu_count = _gpu_host(values)
        _check_zone_has_gpu("gcp:zone", zone, region, gpu_type)
        fleet = _fleet(values, region, gpu_type)
        docker_image = _docker_image(values, required=fleet is not None)
        allow_unauthenticated = _bool(values, "allowUnauthenticated", False)
        if fleet is not None and api_key is None and not allow_unauthenticated:
            raise _fail(
                "apiKey",
                "not set, so the fleet would serve anyone",
                f"set one: {API_KEY_FIX} (or allowUnauthenticated: true)",
            )
        dockerhub_username = _dockerhub_username(values, dockerhub_token)
        spot = _bool(values, "spot", False)
        if machine_type in SPOT_ONLY_MACHINES and not spot:
            raise _fail(
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
            image=_str(values, "image", DEFAULT_IMAGE),
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
            raise _fail(key, *REMOVED_KEYS[key])
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}?" if close else f"known keys: {', '.join(known)}"
            raise _fail(key, "is not a setting of this program", hint)


# ---------------------------------------------------------------- one helper per rule


def _fail(key: str, problem: str, fix: str) -> ConfigError:
    return ConfigError(f"config {key}: {problem}; {fix}")


def _str(values: Mapping[str, Any], key: str, default: str) -> str:
    raw = values.get(key)
    return default if raw in (None, "") else str(raw)


def _int(values: Mapping[str, Any], key: str, default: int | None, example: int) -> int | None:
    raw = values.get(key)
    if raw in (None, ""):
        return default
    try:
        return int(str(raw))
    except ValueError:
        raise _fail(key, f"{raw!r} is not a whole number", f"e.g. {key}: {example}") from None


def _float(values: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    raw = values.get(key)
    if raw in (None, ""):
        return default
    try:
        number = float(str(raw))
    except ValueError:
        number = float("nan")
    if not low < number <= high:
        raise _fail(key, f"{raw!r} is not a number in ({low}, {high}]", f"e.g. {key}: {default}")
    return number


def _bool(values: Mapping[str, Any], key: str, default: bool) -> bool:
    raw = values.get(key)
    if raw in (None, ""):
        return default
    text = str(raw).strip().lower()
    if text not in ("true", "false"):
        raise _fail(key, f"{raw!r} is not true or false", f"e.g. {key}: true")
    return text == "true"


def _list(values: Mapping[str, Any], key: str) -> list[str] | None:
    """A list given as YAML list (arrives as JSON) or as a comma-separated string."""
    raw = values.get(key)
    if raw is None:
        return None
    if isinstance(raw, (list, tuple)):
        return [str(item) for item in raw]
    text = str(raw).strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, list):
            raise _fail(key, f"{raw!r} is not a list", f'e.g. {key}: ["10.0.0.0/8"]')
        return [str(item) for item in parsed]
    return [item.strip() for item in text.split(",") if item.strip()]


def _require_project(gcp: Mapping[str, Any]) -> str:
    project = gcp.get("project")
    if not project:
        raise _fail("gcp:project", "not set", "run: pulumi config set gcp:project my-project-id")
    return str(project)


def _zone_and_region(gcp: Mapping[str, Any]) -> tuple[str, str]:
    zone = str(gcp.get("zone") or DEFAULT_ZONE)
    match = ZONE_RE.match(zone)
    if not match:
        raise _fail("gcp:zone", f"{zone!r} is not a zone name", f"e.g. gcp:zone: {DEFAULT_ZONE}")
    region = match["region"]
    if gcp.get("region") and gcp["region"] != region:
        raise _fail(
            "gcp:region",
            f"{gcp['region']!r} does not contain zone {zone}",
            f"use gcp:region: {region} or remove it",
        )
    return zone, region


def _gpu_host(values: Mapping[str, Any]) -> tuple[str, str, int]:
    """Machine type, GPU type and count, checked against each other."""
    machine_type = _str(values, "machineType", DEFAULT_MACHINE)
    bundled = BUNDLED_MACHINES.get(machine_type)
    gpu_type = _str(values, "gpuType", bundled[0] if bundled else DEFAULT_GPU)
    spec = GPUS.get(gpu_type)
    if gpu_type in PRE_TURING_GPUS:
        raise _fail(
            "gpuType",
            f"{gpu_type} ({PRE_TURING_GPUS[gpu_type]}) is older than Turing, which the image's CUDA 13 "
            "PyTorch and NVIDIA's open kernel modules need",
            f"use one of {', '.join(GPUS)}",
        )
    if spec is None:
        raise _fail("gpuType", f"{gpu_type!r} is not supported", f"use one of {', '.join(GPUS)}")
    family = machine_type.split("-")[0]
    if family != spec.family:
        raise _fail(
            "machineType",
            f"{machine_type!r} cannot carry {gpu_type}, which runs only on {spec.family} machines",
            f"e.g. machineType: {spec.example_machine}",
        )
    gpu_count = _int(values, "gpuCount", None, 1)
    if bundled is None and family not in ATTACHED_FAMILIES:
        raise _fail(
            "machineType",
            f"{machine_type!r} is not a known {family} GPU machine type",
            f"e.g. machineType: {spec.example_machine}",
        )
    if bundled is None:
        return machine_type, gpu_type, _attached_count(gpu_type, spec, gpu_count)
    return machine_type, gpu_type, _bundled_count(machine_type, bundled, gpu_type, gpu_count)


def _attached_count(gpu_type: str, spec: GpuSpec, gpu_count: int | None) -> int:
    count = 1 if gpu_count is None else gpu_count
    if count not in spec.counts:
        choices = ", ".join(map(str, spec.counts))
        raise _fail("gpuCount", f"{count} is not offered for {gpu_type}", f"use one of {choices}")
    return count


def _bundled_count(machine_type: str, bundled: tuple[str, int], gpu_type: str, gpu_count: int | None) -> int:
    carried_type, carried = bundled
    if carried_type != gpu_type:
        raise _fail(
            "gpuType",
            f"{machine_type} carries {carried_type}, not {gpu_type}",
            f"use gpuType: {carried_type} or remove it",
        )
    if gpu_count is not None and gpu_count != carried:
        matching = [m for m, (t, n) in BUNDLED_MACHINES.items() if t == gpu_type and n == gpu_count]
        fix = f"use machineType: {matching[0]}" if matching else f"use gpuCount: {carried}"
        raise _fail(
            "gpuCount",
            f"{gpu_count} does not match {machine_type}, which carries {carried} {gpu_type}",
            f"{fix} (or remove gpuCount)",
        )
    return carried


def _check_zone_has_gpu(key: str, zone: str, region: str, gpu_type: str) -> None:
    known = KNOWN_GPU_ZONES.get((region, gpu_type))
    if known is not None and zone not in known:
        raise _fail(
            key,
            f"{zone} offers no {gpu_type}",
            f"use one of {', '.join(known)} (live list: gcloud compute accelerator-types list "
            f'--filter="name={gpu_type}")',
        )


def _boot_disk_gb(values: Mapping[str, Any]) -> int:
    size = _int(values, "bootDiskGb", DEFAULT_BOOT_DISK_GB, DEFAULT_BOOT_DISK_GB)
    if size < MIN_BOOT_DISK_GB:
        raise _fail(
            "bootDiskGb",
            f"{size} GB is too small for the OS, the CUDA image (twice during an update) and models",
            f"use at least {MIN_BOOT_DISK_GB}, e.g. bootDiskGb: {DEFAULT_BOOT_DISK_GB}",
        )
    return size


def _cidrs(values: Mapping[str, Any], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    ranges = _list(values, key)
    if ranges is None:
        return default
    for cidr in ranges:
        try:
            ipaddress.ip_network(cidr, strict=True)
        except ValueError:
            raise _fail(key, f"{cidr!r} is not a CIDR range", f'e.g. {key}: ["203.0.113.7/32"]') from None
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
        raise _fail("labels", f"{raw!r} is not a map", "e.g. labels: {team: speech}")
    for key, value in given.items():
        if not LABEL_KEY_RE.match(str(key)) or not LABEL_VALUE_RE.match(str(value)):
            raise _fail(
                "labels",
                f"{key}={value} breaks GCP's label rules (lowercase letters, digits, _ and -)",
                "e.g. labels: {team: speech}",
            )
    return {**DEFAULT_LABELS, **{str(k): str(v) for k, v in given.items()}}


def _domain(values: Mapping[str, Any]) -> str | None:
    domain = values.get("domain") or None
    if domain is not None and not DOMAIN_RE.match(str(domain)):
        raise _fail("domain", f"{domain!r} is not a DNS name", "e.g. domain: whisper.example.com")
    return domain


def _dockerhub_username(values: Mapping[str, Any], token: Any) -> str | None:
    """The fleet's Docker Hub login: a user and a secret token (Secret Manager), both or neither."""
    username = values.get("dockerhubUsername") or None
    if token is not None and username is None:
        raise _fail(
            "dockerhubUsername", "not set, but dockerhubToken is", "pulumi config set dockerhubUsername USER"
        )
    if username is not None and token is None:
        raise _fail(
            "dockerhubToken",
            "not set, but dockerhubUsername is",
            "pulumi config set --secret dockerhubToken <Docker Hub access token> (read-only scope)",
        )
    return None if username is None else str(username)


def _docker_image(values: Mapping[str, Any], required: bool) -> str | None:
    image = values.get("dockerImage") or None
    if image is None and required:
        raise _fail(
            "dockerImage",
            "fleet mode starts the service from an image and none is set",
            "e.g. pulumi config set dockerImage myuser/whisper-gpu:1a2b3c4",
        )
    if image is not None and not DOCKER_IMAGE_RE.match(str(image)):
        raise _fail("dockerImage", f"{image!r} is not an image reference", "e.g. user/repo:tag")
    return image


# ---------------------------------------------------------------- fleet mode


def _fleet(values: Mapping[str, Any], region: str, gpu_type: str) -> FleetConfig | None:
    """Fleet mode is on when `replicas` (fixed size) or `min/maxReplicas` (autoscaled) is set."""
    replicas = _int(values, "replicas", None, 2)
    low = _int(values, "minReplicas", None, 1)
    high = _int(values, "maxReplicas", None, 4)
    if replicas is None and low is None and high is None:
        return None
    low, high = _replica_bounds(replicas, low, high)
    zones = _fleet_zones(values, region, gpu_type)
    return FleetConfig(
        min_replicas=low,
        max_replicas=high,
        zones=zones,
        max_rate_per_instance=_float(
            values, "maxRatePerInstance", DEFAULT_MAX_RATE_PER_INSTANCE, 0.0, 10_000.0
        ),
        target_utilization=_float(values, "targetUtilization", DEFAULT_TARGET_UTILIZATION, 0.0, 1.0),
        autoheal_delay_sec=_bounded(values, "autohealInitialDelaySec", DEFAULT_AUTOHEAL_DELAY_SEC, 0, 3600),
        cooldown_sec=_bounded(values, "cooldownSec", DEFAULT_COOLDOWN_SEC, 15, 3600),
        request_timeout_sec=_bounded(values, "requestTimeoutSec", DEFAULT_REQUEST_TIMEOUT_SEC, 30, 86_400),
    )


def _replica_bounds(replicas: int | None, low: int | None, high: int | None) -> tuple[int, int]:
    if replicas is not None:
        if low is not None or high is not None:
            raise _fail(
                "replicas",
                "set together with minReplicas/maxReplicas",
                "set replicas for a fixed size or minReplicas and maxReplicas to autoscale, not both",
            )
        if replicas < 1:
            raise _fail("replicas", f"{replicas} serves nobody", "e.g. replicas: 2")
        return replicas, replicas
    low = 1 if low is None else low
    if low < 1:
        # The autoscaler's signal here is the load balancer's utilisation of the group's serving capacity
        # (maxRatePerInstance x VMs): with no VM there is no capacity, the load balancer answers 502 and
        # reports nothing to scale on, so a group of zero would stay at zero (docs/provisioning.md).
        raise _fail(
            "minReplicas",
            f"{low} cannot scale up from zero: the load balancer's utilisation needs a VM to measure",
            "e.g. minReplicas: 1 (for a GPU that stops when idle, use one VM with idleStopMinutes)",
        )
    if high is None or high < low:
        raise _fail(
            "maxReplicas",
            f"{high} is below minReplicas {low}",
            f"use maxReplicas >= {low}, e.g. maxReplicas: {max(low, 1) * 2}",
        )
    return low, high


def _fleet_zones(values: Mapping[str, Any], region: str, gpu_type: str) -> tuple[str, ...]:
    zones = _list(values, "fleetZones")
    known = KNOWN_GPU_ZONES.get((region, gpu_type))
    if not zones:
        if known is None:
            raise _fail(
                "fleetZones",
                f"no built-in list of {region} zones with {gpu_type}",
                f'list them, e.g. fleetZones: ["{region}-a", "{region}-b"] (check with: gcloud '
                f'compute accelerator-types list --filter="name={gpu_type} AND zone~{region}")',
            )
        return known
    for zone in zones:
        match = ZONE_RE.match(zone)
        if not match or match["region"] != region:
            raise _fail("fleetZones", f"{zone!r} is not a zone of {region}", f'e.g. ["{region}-a"]')
        _check_zone_has_gpu("fleetZones", zone, region, gpu_type)
    return tuple(dict.fromkeys(zones))


def _price(values: Mapping[str, Any], machine: str, gpu: str, count: int, spot: bool) -> Price | None:
    """pricePerHour when set (any machine, any negotiated price), else pricing.py's list price."""
    override = values.get("pricePerHour")
    if override not in (None, ""):
        per_hour = _float(values, "pricePerHour", 1.0, 0.0, 1000.0)
        return Price(per_hour, "override", "spot" if spot else "on-demand")
    boot_disk_gb = _int(values, "bootDiskGb", DEFAULT_BOOT_DISK_GB, DEFAULT_BOOT_DISK_GB)
    return vm_price(machine, gpu, count, machine.split("-")[0] in ATTACHED_FAMILIES, spot, boot_disk_gb)


def _idle_stop_minutes(values: Mapping[str, Any], is_fleet: bool) -> int | None:
    minutes = _int(values, "idleStopMinutes", None, 60)
    if minutes is None:
        return None
    if is_fleet:
        raise _fail(
            "idleStopMinutes",
            "applies to the single VM only: the group would recreate a VM that stopped itself",
            "remove it (pulumi config rm idleStopMinutes); the autoscaler sizes a fleet",
        )
    low, high = IDLE_STOP_MINUTES_RANGE
    if not low <= minutes <= high:
        raise _fail("idleStopMinutes", f"{minutes} is outside {low}..{high}", "e.g. idleStopMinutes: 60")
    return minutes


def _bounded(values: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    number = _int(values, key, default, default)
    if not low <= number <= high:
        raise _fail(key, f"{number} is outside {low}..{high}", f"e.g. {key}: {default}")
    return number
