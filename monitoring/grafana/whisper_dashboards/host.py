"""The VM dashboard from node-exporter: CPU, memory, disk and network, following the $instance variable."""

from __future__ import annotations

from grafana_foundation_sdk.models import units

from .kit import RATE, build_dashboard, query_variable, rate_sum, target, timeseries_panel

NODE = 'job="node", instance=~"$instance"'
FS = f'{NODE}, fstype!~"tmpfs|overlay|squashfs|ramfs"'
NET = f'{NODE}, device!~"lo|veth.*|docker.*|br-.*"'


def cpu_and_memory():
    idle = f'rate(node_cpu_seconds_total{{{NODE}, mode="idle"}}[{RATE}])'
    busy_modes = f'rate(node_cpu_seconds_total{{{NODE}, mode!="idle"}}[{RATE}])'
    total, available = f"node_memory_MemTotal_bytes{{{NODE}}}", f"node_memory_MemAvailable_bytes{{{NODE}}}"
    return [
        timeseries_panel(
            "CPU busy", units.PercentUnit, target(f"1 - avg by (instance) ({idle})", "{{instance}}")
        )
        .min(0)
        .max(1),
        timeseries_panel(
            "CPU by mode",
            units.PercentUnit,
            target(f"avg by (mode) ({busy_modes})", "{{mode}}"),
            stacked=True,
        ),
        timeseries_panel(
            "Load average",
            units.Short,
            *(target(f"node_load{m}{{{NODE}}}", f"{m}m") for m in (1, 5, 15)),
        ),
        timeseries_panel(
            "Memory",
            units.BytesIEC,
            target(f"{total} - {available}", "used"),
            target(available, "available"),
            stacked=True,
        ),
    ]


def disk():
    return [
        timeseries_panel(
            "Disk space used",
            units.PercentUnit,
            target(
                f"1 - node_filesystem_avail_bytes{{{FS}}} / node_filesystem_size_bytes{{{FS}}}",
                "{{mountpoint}}",
            ),
        )
        .min(0)
        .max(1),
        timeseries_panel(
            "Disk throughput",
            units.BytesPerSecondSI,
            target(rate_sum("node_disk_read_bytes_total", NODE, "device"), "read {{device}}"),
            target(rate_sum("node_disk_written_bytes_total", NODE, "device"), "write {{device}}"),
        ),
        timeseries_panel(
            "Disk busy",
            units.PercentUnit,
            target(rate_sum("node_disk_io_time_seconds_total", NODE, "device"), "{{device}}"),
        ),
    ]


def network():
    def per_device(metric: str, legend: str):
        return target(rate_sum(metric, NET, "device"), legend)

    return [
        timeseries_panel(
            "Network traffic",
            units.BytesPerSecondSI,
            per_device("node_network_receive_bytes_total", "in {{device}}"),
            per_device("node_network_transmit_bytes_total", "out {{device}}"),
        ),
        timeseries_panel(
            "Network errors and drops",
            units.PacketsPerSecond,
            per_device("node_network_receive_errs_total", "rx errs"),
            per_device("node_network_transmit_errs_total", "tx errs"),
            per_device("node_network_receive_drop_total", "rx drop"),
        ),
    ]


def dashboard():
    return build_dashboard(
        uid="whisper-host",
        title="Whisper host",
        description="The VM from node-exporter: CPU, memory, disk and network.",
        variables=[query_variable("instance", "Instance", 'node_uname_info{job="node"}')],
        rows=[("CPU and memory", cpu_and_memory()), ("Disk", disk()), ("Network", network())],
    )
