"""The GPU dashboard from dcgm-exporter 4.8.x: utilisation, framebuffer memory, temperature, power, clocks and
the last XID error, per GPU, following the $instance and $gpu variables."""

from __future__ import annotations

from grafana_foundation_sdk.models import units

from .kit import build_dashboard, query_variable, stat_panel, target, thresholds, timeseries_panel

GPU_SEL = 'job="dcgm", instance=~"$instance", gpu=~"$gpu"'
GPU_LEGEND = "GPU {{gpu}} {{modelName}}"
MIB = 1024 * 1024  # dcgm reports framebuffer memory in MiB


def utilisation():
    return [
        stat_panel(
            "GPUs seen",
            units.Short,
            target('count(DCGM_FI_DEV_GPU_UTIL{job="dcgm"})'),
            description="No value: dcgm-exporter is down or sees no GPU (alert GPUNotSeen).",
        ),
        timeseries_panel(
            "GPU utilisation", units.Percent, target(f"DCGM_FI_DEV_GPU_UTIL{{{GPU_SEL}}}", GPU_LEGEND)
        ).max(100),
        timeseries_panel(
            "Memory copy utilisation",
            units.Percent,
            target(f"DCGM_FI_DEV_MEM_COPY_UTIL{{{GPU_SEL}}}", GPU_LEGEND),
        ).max(100),
    ]


def memory():
    used, free = f"DCGM_FI_DEV_FB_USED{{{GPU_SEL}}}", f"DCGM_FI_DEV_FB_FREE{{{GPU_SEL}}}"
    return [
        timeseries_panel(
            "Framebuffer memory",
            units.BytesIEC,
            target(f"{used} * {MIB}", "used: GPU {{gpu}}"),
            target(f"{free} * {MIB}", "free: GPU {{gpu}}"),
        ),
        timeseries_panel(
            "Framebuffer used ratio", units.PercentUnit, target(f"{used} / ({used} + {free})", GPU_LEGEND)
        )
        .min(0)
        .max(1),
        timeseries_panel(
            "Service's share: reserved by PyTorch",
            units.BytesIEC,
            target(
                'sum by (device) (whisper_gpu_memory_reserved_bytes{job="whisper"})',
                "service reserved {{device}}",
            ),
        ),
    ]


def health():
    return [
        timeseries_panel(
            "Temperature", units.Celsius, target(f"DCGM_FI_DEV_GPU_TEMP{{{GPU_SEL}}}", GPU_LEGEND)
        ),
        timeseries_panel(
            "Power draw", units.Watt, target(f"DCGM_FI_DEV_POWER_USAGE{{{GPU_SEL}}}", GPU_LEGEND)
        ),
        timeseries_panel(
            "SM clock", units.Hertz, target(f"DCGM_FI_DEV_SM_CLOCK{{{GPU_SEL}}} * 1000000", GPU_LEGEND)
        ),
        stat_panel(
            "Last XID error",
            units.Short,
            target(f"max by (gpu) (DCGM_FI_DEV_XID_ERRORS{{{GPU_SEL}}})", "GPU {{gpu}}"),
            description="0 = none. Any other value is the XID code: see docs/runbook.md.",
        ).thresholds(thresholds((None, "green"), (1, "red"))),
    ]


def dashboard():
    return build_dashboard(
        uid="whisper-gpu",
        title="Whisper GPU",
        description="NVIDIA DCGM metrics of the VM's GPUs: utilisation, memory, temperature, power, XID "
        "errors.",
        variables=[
            query_variable("instance", "Instance", 'DCGM_FI_DEV_GPU_UTIL{job="dcgm"}'),
            query_variable("gpu", "GPU", 'DCGM_FI_DEV_GPU_UTIL{job="dcgm", instance=~"$instance"}'),
        ],
        rows=[("Utilisation", utilisation()), ("Memory", memory()), ("Health", health())],
    )
