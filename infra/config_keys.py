"""The stack config's keys, one rule each (the typed StackConfig in config.py calls them): every rule reads
its key and fails with one line naming the key, the problem and a value that works."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from typing import Any

from config_values import bool_value, fail, float_value, int_value, list_value

from catalogue import A3_DOC, ATTACHED_FAMILIES, SPOT_ONLY_MACHINES
from pricing import Price, vm_price

MIN_BOOT_DISK_GB = 50  # OS ~10 GB + CUDA image ~15 GB unpacked (x2 during an update) + models
DEFAULT_BOOT_DISK_GB = 100
DEFAULT_LABELS = {"app": "whisper"}

# Idle stop (single VM): the VM stops itself after this many minutes without a request (infra/idle_stop.py).
# At least 10: the watch runs once a minute, and a first boot with its driver install takes ~15 minutes.
IDLE_STOP_MINUTES_RANGE = (10, 10_080)

LABEL_KEY_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE_RE = re.compile(r"^[a-z0-9_-]{0,63}$")
DOCKER_IMAGE_RE = re.compile(r"^[a-z0-9][A-Za-z0-9._/:@-]*$")
DOMAIN_RE = re.compile(r"^(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
API_KEY_FIX = 'pulumi config set --secret apiKey "$(openssl rand -hex 24)"'


def require_project(gcp: Mapping[str, Any]) -> str:
    project = gcp.get("project")
    if not project:
        raise fail("gcp:project", "not set", "run: pulumi config set gcp:project my-project-id")
    return str(project)


def boot_disk_gb(values: Mapping[str, Any]) -> int:
    size = int_value(values, "bootDiskGb", DEFAULT_BOOT_DISK_GB, DEFAULT_BOOT_DISK_GB)
    if size < MIN_BOOT_DISK_GB:
        raise fail(
            "bootDiskGb",
            f"{size} GB is too small for the OS, the CUDA image (twice during an update) and models",
            f"use at least {MIN_BOOT_DISK_GB}, e.g. bootDiskGb: {DEFAULT_BOOT_DISK_GB}",
        )
    return size


def cidrs(values: Mapping[str, Any], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    ranges = list_value(values, key)
    if ranges is None:
        return default
    for cidr in ranges:
        try:
            ipaddress.ip_network(cidr, strict=True)
        except ValueError:
            raise fail(key, f"{cidr!r} is not a CIDR range", f'e.g. {key}: ["203.0.113.7/32"]') from None
    return tuple(ranges)


def labels(values: Mapping[str, Any]) -> dict[str, str]:
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


def domain(values: Mapping[str, Any]) -> str | None:
    domain = values.get("domain") or None
    if domain is not None and not DOMAIN_RE.match(str(domain)):
        raise fail("domain", f"{domain!r} is not a DNS name", "e.g. domain: whisper.example.com")
    return domain


def dockerhub_username(values: Mapping[str, Any], token: Any) -> str | None:
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


def docker_image(values: Mapping[str, Any], required: bool) -> str | None:
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


def price(values: Mapping[str, Any], machine: str, gpu: str, count: int, spot: bool) -> Price | None:
    """pricePerHour when set (any machine, any negotiated price), else pricing.py's list price."""
    override = values.get("pricePerHour")
    if override not in (None, ""):
        per_hour = float_value(values, "pricePerHour", 1.0, 0.0, 1000.0)
        return Price(per_hour, "override", "spot" if spot else "on-demand")
    boot_disk_gb = int_value(values, "bootDiskGb", DEFAULT_BOOT_DISK_GB, DEFAULT_BOOT_DISK_GB)
    return vm_price(machine, gpu, count, machine.split("-")[0] in ATTACHED_FAMILIES, spot, boot_disk_gb)


def idle_stop_minutes(values: Mapping[str, Any], is_fleet: bool) -> int | None:
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


def allow_unauthenticated(values: Mapping[str, Any], is_fleet: bool, api_key: Any) -> bool:
    """allowUnauthenticated; a fleet without an API key must say it on purpose."""
    allow = bool_value(values, "allowUnauthenticated", False)
    if is_fleet and api_key is None and not allow:
        raise fail(
            "apiKey",
            "not set, so the fleet would serve anyone",
            f"set one: {API_KEY_FIX} (or allowUnauthenticated: true)",
        )
    return allow


def spot(values: Mapping[str, Any], machine_type: str) -> bool:
    """spot; the machines offered as Spot or Flex-start only need it."""
    spot = bool_value(values, "spot", False)
    if machine_type in SPOT_ONLY_MACHINES and not spot:
        raise fail(
            "spot",
            f"{machine_type} is offered as Spot or Flex-start only ({A3_DOC}, A3 High)",
            "set spot: true (or machineType: a3-highgpu-8g)",
        )
    return spot
