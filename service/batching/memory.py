"""Whether a model fits before it is loaded: what its weights need against the device's free memory.

A GPU's free memory is the driver's figure (NVML: what no process holds, torch's cache included); a CPU's is
the kernel's MemAvailable. A model needs its weights' size times NEED_FACTOR: on a CPU openai-whisper holds
float16 weights as float32 (twice the file), and on a GPU the batch's activations and CTranslate2's or
torch's caches come on top of the weights. The weights' size is the file's (a checkpoint, or a CTranslate2
directory's files); for an official name, its parameter count in float16.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from ..engines.nvml import nvml_free_bytes
from ..errors import Unavailable

NEED_FACTOR = 2.0
# parameters of OpenAI's official models (openai-whisper's README), for names not yet on disk
OFFICIAL_PARAMETERS = {
    "tiny": 39e6,
    "base": 74e6,
    "small": 244e6,
    "medium": 769e6,
    "large": 1550e6,
    "turbo": 809e6,
}


def weights_bytes(source: str) -> int:
    """Bytes of the weights a source names: a file, a directory's files, or an official name's."""
    path = Path(source)
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    family = source.split(".")[0].split("-")[0]  # tiny.en -> tiny, large-v3 -> large
    return int(OFFICIAL_PARAMETERS.get(family, OFFICIAL_PARAMETERS["large"]) * 2)


def needed_bytes(source: str) -> int:
    return int(weights_bytes(source) * NEED_FACTOR)


def free_bytes(device: str) -> int | None:
    """Free memory of "cpu" or "cuda:N"; None where it cannot be read (the load is then tried)."""
    if device.startswith("cuda"):
        return nvml_free_bytes(int(device.partition(":")[2] or 0))
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_fits(name: str, source: str, device: str, free: int | None) -> None:
    """503 `model_does_not_fit` when the free memory reading is below what the model needs."""
    need = needed_bytes(source)
    if free is not None and free < need:
        raise Unavailable(
            f"The model {name!r} needs about {need / 2**20:.0f} MiB on {device} and {free / 2**20:.0f} MiB "
            "are free: it is not loaded. Use another model, or retry once idle models are unloaded "
            "(MODEL_TTL).",
            code="model_does_not_fit",
            retry_after=30,
        )


def give_back() -> None:
    """Return the C heap's free pages to the system (glibc's malloc_trim). After a first free, glibc raises
    its mmap threshold, so a model loaded again sits on the heap, whose freed pages stay with the process:
    measured, a second load and unload of base on openai-whisper kept 177 MiB resident without this."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def rss_bytes() -> int:
    """This process's resident memory (for the registry's log line and the tests)."""
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
