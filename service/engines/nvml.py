"""GPU memory as the driver reports it (NVML), for an engine without torch's allocator figures."""

from __future__ import annotations

import ctypes


class _NvmlMemory(ctypes.Structure):
    _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]


def nvml_used_bytes(index: int) -> int | None:
    """Used memory of GPU `index` from the driver's NVML library; None where it cannot be read."""
    memory = _nvml_memory(index)
    return None if memory is None else int(memory.used)


def nvml_free_bytes(index: int) -> int | None:
    """Free memory of GPU `index` (what a new model may take); None where it cannot be read."""
    memory = _nvml_memory(index)
    return None if memory is None else int(memory.free)


def _nvml_memory(index: int) -> _NvmlMemory | None:
    try:
        nvml = ctypes.CDLL("libnvidia-ml.so.1")
        handle, memory = ctypes.c_void_p(), _NvmlMemory()
        if nvml.nvmlInit_v2() != 0 or nvml.nvmlDeviceGetHandleByIndex_v2(index, ctypes.byref(handle)) != 0:
            return None
        if nvml.nvmlDeviceGetMemoryInfo(handle, ctypes.byref(memory)) != 0:
            return None
        return memory
    except OSError:
        return None
