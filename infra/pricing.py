"""What one running GPU VM costs per hour, and what an hour of audio costs on it.

ONE price table: on-demand and Spot $/hour per machine type and per attached GPU, us-central1, with where
the figures come from and their date. `pricePerHour` in the stack overrides the result (config.py), because
these are outside facts this program cannot check:

- Source: Google's price pages, https://cloud.google.com/compute/vm-instance-pricing (machine types),
  https://cloud.google.com/compute/gpus-pricing (attached GPUs), https://cloud.google.com/spot-vms/pricing
  (Spot), https://cloud.google.com/compute/disks-image-pricing (pd-balanced) and
  https://cloud.google.com/vpc/network-pricing (static external address in use).
- Date: list prices as of 2025, written down from those pages from memory. They were NOT re-read when this
  table was written (the machine that wrote it had no internet), so check them before relying on them.
- Spot prices change (Google may change them up to once a day; see the Spot page), so the Spot column is a
  rough figure; a Spot stack that cares should set pricePerHour.

Pure Python, no Pulumi: the Pulumi program imports it as `pricing`, `make bench` as `infra.pricing`.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

PRICES_AS_OF = "2025"
SOURCES = (
    "https://cloud.google.com/compute/vm-instance-pricing",
    "https://cloud.google.com/compute/gpus-pricing",
    "https://cloud.google.com/spot-vms/pricing",
)
VERIFIED = False  # the figures below were not re-read from the pages above when written (no internet)
REGION = "us-central1"


@dataclass(frozen=True)
class HourlyPrice:
    on_demand: float
    spot: float

    def get(self, spot: bool) -> float:
        return self.spot if spot else self.on_demand


# Machine types, USD per hour in us-central1. g2/a2 prices include the GPUs the type carries.
MACHINES: dict[str, HourlyPrice] = {
    "n1-standard-4": HourlyPrice(0.189999, 0.0401),
    "n1-standard-8": HourlyPrice(0.379998, 0.0802),
    "n1-standard-16": HourlyPrice(0.759996, 0.1604),
    # CPU-only hosts (gpuType: none)
    "e2-standard-4": HourlyPrice(0.134012, 0.0402),
    "e2-standard-8": HourlyPrice(0.268024, 0.0804),
    "e2-standard-16": HourlyPrice(0.536048, 0.1608),
    "g2-standard-4": HourlyPrice(0.706832, 0.2827),
    "g2-standard-8": HourlyPrice(0.853532, 0.3414),
    "a2-highgpu-1g": HourlyPrice(3.673385, 1.4694),
    "a2-ultragpu-1g": HourlyPrice(5.068800, 2.0275),
}
# Attached GPUs (n1 only), USD per GPU per hour in us-central1.
GPUS: dict[str, HourlyPrice] = {
    "nvidia-tesla-t4": HourlyPrice(0.35, 0.14),
}
PD_BALANCED_PER_GB_MONTH = 0.10  # the boot disk; Spot does not discount disks
STATIC_ADDRESS_PER_HOUR = 0.005  # a static external IPv4 address in use
HOURS_PER_MONTH = 730
# Where a VM of the stack finds its own price: the attribute the stack sets (host.vm_metadata).
METADATA_PRICE_URL = (
    "http://metadata.google.internal/computeMetadata/v1/instance/attributes/whisper-price-per-hour"
)


@dataclass(frozen=True)
class Price:
    """A VM's price per running hour and what it is made of (for the metric's labels and the docs)."""

    per_hour: float
    basis: str  # "list" (this table) or "override" (pricePerHour)
    provisioning: str  # "spot" or "on-demand"


def vm_price(
    machine_type: str, gpu_type: str, gpu_count: int, attached: bool, spot: bool, boot_disk_gb: int
) -> Price | None:
    """The table's price of one running VM (machine + attached GPUs + boot disk + address), or None when the
    table lacks the machine type or the GPU (then the stack needs pricePerHour)."""
    machine = MACHINES.get(machine_type)
    gpu = GPUS.get(gpu_type) if attached else HourlyPrice(0.0, 0.0)
    if machine is None or gpu is None:
        return None
    disk = boot_disk_gb * PD_BALANCED_PER_GB_MONTH / HOURS_PER_MONTH
    total = machine.get(spot) + gpu_count * gpu.get(spot) + disk + STATIC_ADDRESS_PER_HOUR
    return Price(round(total, 4), "list", "spot" if spot else "on-demand")


def dollars_per_audio_hour(price_per_hour: float, audio_seconds_per_second: float) -> float | None:
    """$ per hour of audio: the VM's hourly price over the hours of audio it transcribes per hour, which is
    its throughput in audio seconds per wall second (its "x realtime"). None without throughput."""
    if audio_seconds_per_second <= 0:
        return None
    return price_per_hour / audio_seconds_per_second


def cost_line(price_per_hour: float, audio_seconds_per_second: float, what: str) -> str:
    """The one line `make cost` and `make bench` print."""
    cost = dollars_per_audio_hour(price_per_hour, audio_seconds_per_second)
    if cost is None:
        return (
            f"{what}: no audio transcribed, so no cost per audio hour (the VM costs ${price_per_hour:.3f}/h)"
        )
    return (
        f"{what}: ${cost:.4f} per audio hour at {audio_seconds_per_second:.1f}x realtime "
        f"(VM ${price_per_hour:.3f}/h)"
    )


def price_here(environ: Mapping[str, str] = os.environ, timeout: float = 1.0) -> float | None:
    """This machine's price per hour for `make bench`: PRICE_PER_HOUR if set, else the stack's price from the
    VM's metadata server (whisper-price-per-hour), else None (not on a VM of a stack with a price)."""
    if environ.get("PRICE_PER_HOUR"):
        return float(environ["PRICE_PER_HOUR"])
    url = environ.get("METADATA_PRICE_URL", METADATA_PRICE_URL)
    request = urllib.request.Request(url, headers={"Metadata-Flavor": "Google"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            return float(answer.read().decode().strip())
    except (OSError, ValueError, urllib.error.URLError):
        return None
