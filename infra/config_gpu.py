"""Where the GPU host runs and what it is: zone and region, machine type, GPU type and count, checked against
each other and against catalogue.py's facts."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from config_values import fail, int_value, str_value

from catalogue import ATTACHED_FAMILIES, BUNDLED_MACHINES, GPUS, KNOWN_GPU_ZONES, PRE_TURING_GPUS, GpuSpec

DEFAULT_ZONE = "us-central1-a"
DEFAULT_MACHINE = "n1-standard-8"  # 8 vCPU / 30 GB: ffmpeg decoding in parallel beside one T4
DEFAULT_GPU = "nvidia-tesla-t4"
# gpuType: none makes a CPU-only host (a small model on a cheap VM): no accelerator, no driver install.
NO_GPU = "none"
DEFAULT_CPU_MACHINE = "e2-standard-8"  # 8 vCPU / 32 GB: a small model's decode threads beside ffmpeg
CPU_FAMILIES = frozenset({"e2", "n2", "n2d", "n4", "c3", "c3d", "c4", "t2d"})  # general purpose, no GPUs
ZONE_RE = re.compile(r"^(?P<region>[a-z]+-[a-z]+[0-9]+)-[a-z]$")


def zone_and_region(gcp: Mapping[str, Any]) -> tuple[str, str]:
    zone = str(gcp.get("zone") or DEFAULT_ZONE)
    match = ZONE_RE.match(zone)
    if not match:
        raise fail("gcp:zone", f"{zone!r} is not a zone name", f"e.g. gcp:zone: {DEFAULT_ZONE}")
    region = match["region"]
    if gcp.get("region") and gcp["region"] != region:
        raise fail(
            "gcp:region",
            f"{gcp['region']!r} does not contain zone {zone}",
            f"use gcp:region: {region} or remove it",
        )
    return zone, region


def cpu_host(values: Mapping[str, Any]) -> tuple[str, str, int]:
    """gpuType: none: a general-purpose machine type, no GPU type, zero GPUs."""
    machine_type = str_value(values, "machineType", DEFAULT_CPU_MACHINE)
    if machine_type.split("-")[0] not in CPU_FAMILIES:
        raise fail(
            "machineType",
            f"{machine_type!r} is not a general-purpose machine type for a CPU-only host (gpuType: none)",
            f"e.g. machineType: {DEFAULT_CPU_MACHINE} (families: {', '.join(sorted(CPU_FAMILIES))})",
        )
    if int_value(values, "gpuCount", None, 1) not in (None, 0):
        raise fail("gpuCount", "set with gpuType: none", "remove gpuCount (a CPU-only host has no GPU)")
    return machine_type, "", 0


def gpu_host(values: Mapping[str, Any]) -> tuple[str, str, int]:
    """Machine type, GPU type and count, checked against each other. GPU type "" and count 0: CPU only."""
    if str_value(values, "gpuType", DEFAULT_GPU) == NO_GPU:
        return cpu_host(values)
    machine_type = str_value(values, "machineType", DEFAULT_MACHINE)
    bundled = BUNDLED_MACHINES.get(machine_type)
    gpu_type = str_value(values, "gpuType", bundled[0] if bundled else DEFAULT_GPU)
    spec = GPUS.get(gpu_type)
    if gpu_type in PRE_TURING_GPUS:
        raise fail(
            "gpuType",
            f"{gpu_type} ({PRE_TURING_GPUS[gpu_type]}) is older than Turing, which the image's CUDA 13 "
            "PyTorch and NVIDIA's open kernel modules need",
            f"use one of {', '.join(GPUS)}",
        )
    if spec is None:
        raise fail("gpuType", f"{gpu_type!r} is not supported", f"use one of {', '.join(GPUS)}")
    family = machine_type.split("-")[0]
    if family != spec.family:
        raise fail(
            "machineType",
            f"{machine_type!r} cannot carry {gpu_type}, which runs only on {spec.family} machines",
            f"e.g. machineType: {spec.example_machine}",
        )
    gpu_count = int_value(values, "gpuCount", None, 1)
    if bundled is None and family not in ATTACHED_FAMILIES:
        raise fail(
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
        raise fail("gpuCount", f"{count} is not offered for {gpu_type}", f"use one of {choices}")
    return count


def _bundled_count(machine_type: str, bundled: tuple[str, int], gpu_type: str, gpu_count: int | None) -> int:
    carried_type, carried = bundled
    if carried_type != gpu_type:
        raise fail(
            "gpuType",
            f"{machine_type} carries {carried_type}, not {gpu_type}",
            f"use gpuType: {carried_type} or remove it",
        )
    if gpu_count is not None and gpu_count != carried:
        matching = [m for m, (t, n) in BUNDLED_MACHINES.items() if t == gpu_type and n == gpu_count]
        fix = f"use machineType: {matching[0]}" if matching else f"use gpuCount: {carried}"
        raise fail(
            "gpuCount",
            f"{gpu_count} does not match {machine_type}, which carries {carried} {gpu_type}",
            f"{fix} (or remove gpuCount)",
        )
    return carried


def check_zone_has_gpu(key: str, zone: str, region: str, gpu_type: str) -> None:
    known = KNOWN_GPU_ZONES.get((region, gpu_type))
    if known is not None and zone not in known:
        raise fail(
            key,
            f"{zone} offers no {gpu_type}",
            f"use one of {', '.join(known)} (live list: gcloud compute accelerator-types list "
            f'--filter="name={gpu_type}")',
        )
