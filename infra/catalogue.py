"""The GPU catalogue: which GPUs Google offers, on which machine families and sizes, in which zones, and what
the image cannot drive. Facts about Google Cloud with their sources; config.py validates a stack against them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GpuSpec:
    family: str  # the machine family that can carry this GPU
    counts: tuple[int, ...]  # GPUs per VM that Google offers
    example_machine: str  # a machine type to suggest in errors


GPUS: dict[str, GpuSpec] = {
    # Attached GPUs: n1 machines take them as guest accelerators.
    "nvidia-tesla-t4": GpuSpec("n1", (1, 2, 4), "n1-standard-8"),
    # Bundled GPUs: the machine type itself carries them (see BUNDLED_MACHINES).
    "nvidia-l4": GpuSpec("g2", (1, 2, 4, 8), "g2-standard-8"),
    "nvidia-tesla-a100": GpuSpec("a2", (1, 2, 4, 8, 16), "a2-highgpu-1g"),
    "nvidia-a100-80gb": GpuSpec("a2", (1, 2, 4, 8), "a2-ultragpu-1g"),
    "nvidia-h100-80gb": GpuSpec("a3", (1, 2, 4, 8), "a3-highgpu-8g"),  # 1g/2g/4g: Spot only (below)
}
ATTACHED_FAMILIES = frozenset({"n1"})

# Each GPU's regional quota metric (Spot VMs count against PREEMPTIBLE_<metric>), on top of the project's
# global GPUS_ALL_REGIONS, which is 0 on a new project (https://cloud.google.com/compute/resource-usage, GPU
# quota; `gcloud compute regions describe REGION` lists them). deploy/cloudcheck.py reads both before a
# deploy.
GPU_QUOTA_METRICS: dict[str, str] = {
    "nvidia-tesla-t4": "NVIDIA_T4_GPUS",
    "nvidia-l4": "NVIDIA_L4_GPUS",
    "nvidia-tesla-a100": "NVIDIA_A100_GPUS",
    "nvidia-a100-80gb": "NVIDIA_A100_80GB_GPUS",
    "nvidia-h100-80gb": "NVIDIA_H100_GPUS",
}
GLOBAL_GPU_QUOTA = "GPUS_ALL_REGIONS"

# Google's A3 documentation (https://cloud.google.com/compute/docs/accelerator-optimized-machines, A3 High):
# A3 VMs use the gVNIC network interface (gpu_vm.py, fleet.py), and the 1, 2 and 4 GPU sizes of A3 High are
# offered as Spot or Flex-start only; on-demand or reserved A3 High is the 8 GPU size
# (https://cloud.google.com/compute/docs/instances/create-reservation-bound-vm). This program makes
# standard or Spot VMs, so those sizes need spot: true.
GVNIC_FAMILIES = frozenset({"a3"})
SPOT_ONLY_MACHINES = frozenset({"a3-highgpu-1g", "a3-highgpu-2g", "a3-highgpu-4g"})
A3_DOC = "https://cloud.google.com/compute/docs/accelerator-optimized-machines"

# GPUs Google offers that the image cannot drive: pre-Turing. PyTorch's CUDA 12.8+/13 builds target compute
# capability 7.5 and newer (pytorch/pytorch#157517), CUDA 13.0 dropped Maxwell, Pascal and Volta
# (NVIDIA/cuDecomp#97 quotes the release notes), and NVIDIA's open kernel modules need Turing or newer.
PRE_TURING_GPUS: dict[str, str] = {
    "nvidia-tesla-v100": "Volta",
    "nvidia-tesla-p100": "Pascal",
    "nvidia-tesla-p4": "Pascal",
}

# Machine type -> (GPU type, GPU count) for the families whose machine type fixes the GPUs.
# Declaring guest accelerators on these makes every `pulumi up` show a permanent diff.
BUNDLED_MACHINES: dict[str, tuple[str, int]] = {
    **{f"g2-standard-{cpus}": ("nvidia-l4", 1) for cpus in (4, 8, 12, 16, 32)},
    "g2-standard-24": ("nvidia-l4", 2),
    "g2-standard-48": ("nvidia-l4", 4),
    "g2-standard-96": ("nvidia-l4", 8),
    **{f"a2-highgpu-{n}g": ("nvidia-tesla-a100", n) for n in (1, 2, 4, 8)},
    "a2-megagpu-16g": ("nvidia-tesla-a100", 16),
    **{f"a2-ultragpu-{n}g": ("nvidia-a100-80gb", n) for n in (1, 2, 4, 8)},
    **{f"a3-highgpu-{n}g": ("nvidia-h100-80gb", n) for n in (1, 2, 4, 8)},
}

# Zones known to offer a GPU type, from Google's "GPU regions and zones" page as of 2025. Used only
# to reject a zone known to lack the GPU; regions missing here are not checked (the API will be).
# Check the live list with: gcloud compute accelerator-types list --filter="zone~REGION"
KNOWN_GPU_ZONES: dict[tuple[str, str], tuple[str, ...]] = {
    ("us-central1", "nvidia-tesla-t4"): ("us-central1-a", "us-central1-b", "us-central1-c",
                                         "us-central1-f"),
    ("us-central1", "nvidia-l4"): ("us-central1-a", "us-central1-b", "us-central1-c"),
    ("us-central1", "nvidia-tesla-a100"): ("us-central1-a", "us-central1-b", "us-central1-c",
                                           "us-central1-f"),
}  # fmt: skip
