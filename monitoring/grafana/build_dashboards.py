"""Builds the Grafana dashboards in monitoring/grafana/dashboards/ from the panel lists below.

    python monitoring/grafana/build_dashboards.py          # (re)write the JSON files
    python monitoring/grafana/build_dashboards.py --check  # exit 1 if a committed file differs

The JSON is generated so that a panel is one readable line of PromQL here, and committed so that Grafana's
file provisioning can load it as is. tests/monitoring checks that both agree and evaluates every query
against a real Prometheus.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}  # the uid provisioned in datasources/
RATE = "$__rate_interval"
PANEL_HEIGHT = 8  # grid units (30 px each)
GRID_WIDTH = 24


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str = ""
    instant: bool = False  # table panels read one instant value per series


@dataclass(frozen=True)
class Panel:
    title: str
    targets: tuple[Target, ...]
    unit: str = "short"
    kind: str = "timeseries"  # timeseries | stat | table
    description: str = ""
    stacked: bool = False


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Variable:
    name: str
    label: str
    metric: str  # a series selector; the variable lists the values of `name`'s label on it
    label_name: str = ""  # the label to list, when it differs from the variable's name

    @property
    def query(self) -> str:
        return f"label_values({self.metric}, {self.label_name or self.name})"


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    variables: tuple[Variable, ...]
    rows: tuple[Row, ...]
    tags: tuple[str, ...] = field(default=("whisper",))


# ---------------------------------------------------------------- query helpers
def quantiles(metric: str, selector: str, by: str = "", qs=(0.5, 0.95, 0.99)) -> tuple[Target, ...]:
    """histogram_quantile targets for one histogram, one per quantile, legend p50/p95/p99."""
    group = f"{by}, le" if by else "le"
    prefix = f"{{{{{by}}}}} " if by else ""
    return tuple(
        Target(
            f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{{{selector}}}[{RATE}])))",
            f"{prefix}p{round(q * 100)}",
        )
        for q in qs
    )


def rate_sum(metric: str, selector: str, by: str = "") -> str:
    grouping = f" by ({by}) " if by else ""
    return f"sum{grouping}(rate({metric}{{{selector}}}[{RATE}]))"


def mean(metric: str, selector: str, by: str = "") -> str:
    """Average observation of a histogram: rate of its sum over rate of its count."""
    return f"{rate_sum(metric + '_sum', selector, by)} / {rate_sum(metric + '_count', selector, by)}"


# ---------------------------------------------------------------- the Whisper service
SVC = 'job="whisper", instance=~"$instance"'
SVC_MODEL = f'{SVC}, model=~"$model"'
# Golden signals leave the probes out: /readyz answers 503 while the model loads, by design.
SVC_API = f'{SVC_MODEL}, endpoint!~"/healthz|/readyz"'
SVC_5XX = f'{SVC_API}, status=~"5.."'

SERVICE = Dashboard(
    uid="whisper-service",
    title="Whisper service",
    description="Golden signals, latency by stage, real-time factor, batching and queue of the service.",
    variables=(
        Variable("instance", "Instance", 'whisper_build_info{job="whisper"}'),
        Variable("model", "Model", 'whisper_build_info{job="whisper", instance=~"$instance"}'),
    ),
    rows=(
        Row(
            "Golden signals",
            (
                Panel(
                    "Requests per second by status",
                    (Target(rate_sum("whisper_requests_total", SVC_API, "status"), "{{status}}"),),
                    unit="reqps",
                ),
                Panel(
                    "Server error ratio (5xx)",
                    (
                        Target(
                            f"({rate_sum('whisper_requests_total', SVC_5XX)}"
                            f" or 0 * {rate_sum('whisper_requests_total', SVC_API)})"
                            f" / {rate_sum('whisper_requests_total', SVC_API)}",
                            "5xx",
                        ),
                    ),
                    unit="percentunit",
                ),
                Panel(
                    "Request latency (end to end)",
                    quantiles("whisper_request_duration_seconds", SVC_API),
                    unit="s",
                ),
                Panel(
                    "Requests in flight",
                    (Target(f"sum(whisper_requests_in_flight{{{SVC}}})", "in flight"),),
                ),
            ),
        ),
        Row(
            "Service state",
            (
                Panel(
                    "Workers with the model ready",
                    (Target(f"sum(whisper_model_ready{{{SVC}}})"),),
                    kind="stat",
                ),
                Panel(
                    "Model load time",
                    (Target(f"max(whisper_model_load_seconds{{{SVC}}})"),),
                    unit="s",
                    kind="stat",
                ),
                Panel(
                    "Build",
                    (
                        Target(
                            f"max by (instance, version, model, engine, device, precision) "
                            f"(whisper_build_info{{{SVC_MODEL}}})",
                            instant=True,
                        ),
                    ),
                    kind="table",
                ),
                Panel(
                    "Requests per second by endpoint",
                    (Target(rate_sum("whisper_requests_total", SVC_MODEL, "endpoint"), "{{endpoint}}"),),
                    unit="reqps",
                ),
            ),
        ),
        Row(
            "Latency by stage",
            (
                Panel(
                    "p95 by stage",
                    (
                        Target(
                            "histogram_quantile(0.95, sum by (stage, le) "
                            f"(rate(whisper_stage_duration_seconds_bucket{{{SVC_MODEL}}}[{RATE}])))",
                            "{{stage}}",
                        ),
                    ),
                    unit="s",
                ),
                Panel(
                    "Mean time per request by stage",
                    (Target(mean("whisper_stage_duration_seconds", SVC_MODEL, "stage"), "{{stage}}"),),
                    unit="s",
                    stacked=True,
                ),
                Panel(
                    "Inference latency (GPU)",
                    quantiles("whisper_stage_duration_seconds", f'{SVC_MODEL}, stage="inference"'),
                    unit="s",
                ),
                Panel(
                    "Queue wait",
                    quantiles("whisper_stage_duration_seconds", f'{SVC_MODEL}, stage="queue_wait"'),
                    unit="s",
                ),
            ),
        ),
        Row(
            "Throughput and batching",
            (
                Panel(
                    "Real-time factor (inference s per audio s)",
                    quantiles("whisper_real_time_factor", SVC_MODEL),
                    description="Lower is faster. A GPU stays far below 0.1; near 1 means CPU speed.",
                ),
                Panel(
                    "Audio seconds transcribed per second",
                    (Target(rate_sum("whisper_audio_seconds_total", SVC_MODEL), "audio s/s"),),
                ),
                Panel(
                    "Audio duration per request",
                    quantiles("whisper_audio_duration_seconds", SVC_MODEL, qs=(0.5, 0.95)),
                    unit="s",
                ),
                Panel(
                    "Batch size (windows per batch)",
                    (
                        *quantiles("whisper_batch_size", SVC_MODEL, qs=(0.5, 0.95)),
                        Target(mean("whisper_batch_size", SVC_MODEL), "mean"),
                    ),
                ),
                Panel(
                    "Requests sharing a batch",
                    (
                        *quantiles("whisper_batch_requests", SVC_MODEL, qs=(0.5, 0.95)),
                        Target(mean("whisper_batch_requests", SVC_MODEL), "mean"),
                    ),
                ),
                Panel(
                    "Batch duration p95 by kind",
                    quantiles("whisper_batch_duration_seconds", SVC_MODEL, by="kind", qs=(0.95,)),
                    unit="s",
                ),
            ),
        ),
        Row(
            "Queue and backpressure",
            (
                Panel(
                    "Queue depth (windows waiting)",
                    (Target(f"sum(whisper_queue_depth{{{SVC}}})", "windows"),),
                ),
                Panel(
                    "Queued audio",
                    (Target(f"sum(whisper_queue_audio_seconds{{{SVC}}})", "audio seconds"),),
                    unit="s",
                ),
                Panel(
                    "Rejected requests (429 and others) by reason",
                    (Target(rate_sum("whisper_rejected_requests_total", SVC, "reason"), "{{reason}}"),),
                    unit="reqps",
                ),
                Panel(
                    "Cancellations",
                    (
                        Target(
                            rate_sum("whisper_cancelled_requests_total", SVC, "reason"),
                            "requests: {{reason}}",
                        ),
                        Target(rate_sum("whisper_cancelled_windows_total", SVC), "windows"),
                    ),
                    unit="ops",
                ),
                Panel(
                    "Errors by type",
                    (Target(rate_sum("whisper_errors_total", SVC, "type"), "{{type}}"),),
                    unit="ops",
                ),
            ),
        ),
        Row(
            "GPU memory (as the service sees it)",
            (
                Panel(
                    "GPU memory by device",
                    (
                        Target(
                            f"sum by (instance, device) (whisper_gpu_memory_allocated_bytes{{{SVC}}})",
                            "{{device}} allocated",
                        ),
                        Target(
                            f"sum by (instance, device) (whisper_gpu_memory_reserved_bytes{{{SVC}}})",
                            "{{device}} reserved",
                        ),
                    ),
                    unit="bytes",
                    description="Allocated: tensors in use. Reserved: held by PyTorch's caching allocator.",
                ),
            ),
        ),
    ),
)

# ---------------------------------------------------------------- the GPU (dcgm-exporter 4.8.x)
GPU_SEL = 'job="dcgm", instance=~"$instance", gpu=~"$gpu"'
GPU_LEGEND = "GPU {{gpu}} {{modelName}}"
MIB = 1024 * 1024

GPU = Dashboard(
    uid="whisper-gpu",
    title="Whisper GPU",
    description="NVIDIA DCGM metrics of the VM's GPUs: utilisation, memory, temperature, power, XID errors.",
    variables=(
        Variable("instance", "Instance", 'DCGM_FI_DEV_GPU_UTIL{job="dcgm"}'),
        Variable("gpu", "GPU", 'DCGM_FI_DEV_GPU_UTIL{job="dcgm", instance=~"$instance"}'),
    ),
    rows=(
        Row(
            "Utilisation",
            (
                Panel("GPUs seen", (Target('count(DCGM_FI_DEV_GPU_UTIL{job="dcgm"})'),), kind="stat"),
                Panel(
                    "GPU utilisation",
                    (Target(f"DCGM_FI_DEV_GPU_UTIL{{{GPU_SEL}}}", GPU_LEGEND),),
                    unit="percent",
                ),
                Panel(
                    "Memory copy utilisation",
                    (Target(f"DCGM_FI_DEV_MEM_COPY_UTIL{{{GPU_SEL}}}", GPU_LEGEND),),
                    unit="percent",
                ),
            ),
        ),
        Row(
            "Memory",
            (
                Panel(
                    "Framebuffer memory",
                    (
                        Target(f"DCGM_FI_DEV_FB_USED{{{GPU_SEL}}} * {MIB}", "used: GPU {{gpu}}"),
                        Target(f"DCGM_FI_DEV_FB_FREE{{{GPU_SEL}}} * {MIB}", "free: GPU {{gpu}}"),
                    ),
                    unit="bytes",
                ),
                Panel(
                    "Framebuffer used ratio",
                    (
                        Target(
                            f"DCGM_FI_DEV_FB_USED{{{GPU_SEL}}} / "
                            f"(DCGM_FI_DEV_FB_USED{{{GPU_SEL}}} + DCGM_FI_DEV_FB_FREE{{{GPU_SEL}}})",
                            GPU_LEGEND,
                        ),
                    ),
                    unit="percentunit",
                ),
                Panel(
                    "Service's share: reserved by PyTorch",
                    (
                        Target(
                            'sum by (device) (whisper_gpu_memory_reserved_bytes{job="whisper"})',
                            "service reserved {{device}}",
                        ),
                    ),
                    unit="bytes",
                ),
            ),
        ),
        Row(
            "Health",
            (
                Panel(
                    "Temperature",
                    (Target(f"DCGM_FI_DEV_GPU_TEMP{{{GPU_SEL}}}", GPU_LEGEND),),
                    unit="celsius",
                ),
                Panel(
                    "Power draw",
                    (Target(f"DCGM_FI_DEV_POWER_USAGE{{{GPU_SEL}}}", GPU_LEGEND),),
                    unit="watt",
                ),
                Panel(
                    "SM clock",
                    (Target(f"DCGM_FI_DEV_SM_CLOCK{{{GPU_SEL}}} * 1000000", GPU_LEGEND),),
                    unit="hertz",
                ),
                Panel(
                    "Last XID error",
                    (Target(f"max by (gpu) (DCGM_FI_DEV_XID_ERRORS{{{GPU_SEL}}})", "GPU {{gpu}}"),),
                    kind="stat",
                    description="0 = none. Any other value is the XID code: see docs/runbook.md.",
                ),
            ),
        ),
    ),
)

# ---------------------------------------------------------------- the VM (node-exporter)
NODE = 'job="node", instance=~"$instance"'
FS = f'{NODE}, fstype!~"tmpfs|overlay|squashfs|ramfs"'
NET = f'{NODE}, device!~"lo|veth.*|docker.*|br-.*"'

HOST = Dashboard(
    uid="whisper-host",
    title="Whisper host",
    description="The VM from node-exporter: CPU, memory, disk and network.",
    variables=(Variable("instance", "Instance", 'node_uname_info{job="node"}'),),
    rows=(
        Row(
            "CPU and memory",
            (
                Panel(
                    "CPU busy",
                    (
                        Target(
                            "1 - avg by (instance) "
                            f'(rate(node_cpu_seconds_total{{{NODE}, mode="idle"}}[{RATE}]))',
                            "{{instance}}",
                        ),
                    ),
                    unit="percentunit",
                ),
                Panel(
                    "CPU by mode",
                    (
                        Target(
                            f'avg by (mode) (rate(node_cpu_seconds_total{{{NODE}, mode!="idle"}}[{RATE}]))',
                            "{{mode}}",
                        ),
                    ),
                    unit="percentunit",
                    stacked=True,
                ),
                Panel(
                    "Load average",
                    (
                        Target(f"node_load1{{{NODE}}}", "1m"),
                        Target(f"node_load5{{{NODE}}}", "5m"),
                        Target(f"node_load15{{{NODE}}}", "15m"),
                    ),
                ),
                Panel(
                    "Memory",
                    (
                        Target(
                            f"node_memory_MemTotal_bytes{{{NODE}}} - "
                            f"node_memory_MemAvailable_bytes{{{NODE}}}",
                            "used",
                        ),
                        Target(f"node_memory_MemAvailable_bytes{{{NODE}}}", "available"),
                    ),
                    unit="bytes",
                    stacked=True,
                ),
            ),
        ),
        Row(
            "Disk",
            (
                Panel(
                    "Disk space used",
                    (
                        Target(
                            f"1 - node_filesystem_avail_bytes{{{FS}}} / node_filesystem_size_bytes{{{FS}}}",
                            "{{mountpoint}}",
                        ),
                    ),
                    unit="percentunit",
                ),
                Panel(
                    "Disk throughput",
                    (
                        Target(rate_sum("node_disk_read_bytes_total", NODE, "device"), "read {{device}}"),
                        Target(
                            rate_sum("node_disk_written_bytes_total", NODE, "device"),
                            "write {{device}}",
                        ),
                    ),
                    unit="Bps",
                ),
                Panel(
                    "Disk busy",
                    (Target(rate_sum("node_disk_io_time_seconds_total", NODE, "device"), "{{device}}"),),
                    unit="percentunit",
                ),
            ),
        ),
        Row(
            "Network",
            (
                Panel(
                    "Network traffic",
                    (
                        Target(
                            rate_sum("node_network_receive_bytes_total", NET, "device"),
                            "in {{device}}",
                        ),
                        Target(
                            rate_sum("node_network_transmit_bytes_total", NET, "device"),
                            "out {{device}}",
                        ),
                    ),
                    unit="Bps",
                ),
                Panel(
                    "Network errors and drops",
                    (
                        Target(rate_sum("node_network_receive_errs_total", NET, "device"), "rx errs"),
                        Target(rate_sum("node_network_transmit_errs_total", NET, "device"), "tx errs"),
                        Target(rate_sum("node_network_receive_drop_total", NET, "device"), "rx drop"),
                    ),
                    unit="pps",
                ),
            ),
        ),
    ),
)

DASHBOARDS = (SERVICE, GPU, HOST)


# ---------------------------------------------------------------- Grafana JSON
def variable_json(var: Variable) -> dict:
    return {
        "name": var.name,
        "label": var.label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": var.query,
        "query": var.query,  # the classic string form, which every Grafana since 7 reads
        "refresh": 2,  # on time range change, so new instances and models appear
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def target_json(target: Target, ref_id: str) -> dict:
    out = {"refId": ref_id, "datasource": DATASOURCE, "expr": target.expr}
    out["legendFormat"] = target.legend or "__auto"
    if target.instant:
        out.update(instant=True, range=False, format="table")
    else:
        out.update(instant=False, range=True)
    return out


def panel_options(panel: Panel) -> dict:
    if panel.kind == "stat":
        return {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "textMode": "auto",
        }
    if panel.kind == "table":
        return {"showHeader": True}
    return {
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }


def panel_json(panel: Panel, panel_id: int, grid: dict) -> dict:
    defaults: dict = {"unit": panel.unit}
    if panel.kind == "timeseries":
        defaults["custom"] = {"fillOpacity": 30 if panel.stacked else 10, "showPoints": "never"}
        if panel.stacked:
            defaults["custom"]["stacking"] = {"mode": "normal", "group": "A"}
    out = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": grid,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": panel_options(panel),
        "targets": [target_json(t, chr(ord("A") + i)) for i, t in enumerate(panel.targets)],
    }
    if panel.kind == "table":
        # One row per series: hide the timestamp and the constant value of an info metric.
        out["transformations"] = [
            {"id": "organize", "options": {"excludeByName": {"Time": True, "Value": True}}}
        ]
    return out


def panels_json(rows: tuple[Row, ...]) -> list[dict]:
    """Rows top to bottom; a row's panels share the width equally."""
    out, y, panel_id = [], 0, 1
    for row in rows:
        out.append(
            {
                "id": panel_id,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y},
                "panels": [],
            }
        )
        panel_id, y = panel_id + 1, y + 1
        width = GRID_WIDTH // len(row.panels)
        for i, panel in enumerate(row.panels):
            grid = {"h": PANEL_HEIGHT, "w": width, "x": i * width, "y": y}
            out.append(panel_json(panel, panel_id, grid))
            panel_id += 1
        y += PANEL_HEIGHT
    return out


def dashboard_json(dash: Dashboard) -> dict:
    return {
        "uid": dash.uid,
        "title": dash.title,
        "description": dash.description,
        "tags": list(dash.tags),
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,  # shared crosshair across panels
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "schemaVersion": 39,
        "version": 1,
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": [variable_json(v) for v in dash.variables]},
        "panels": panels_json(dash.rows),
    }


def render(dash: Dashboard) -> str:
    return json.dumps(dashboard_json(dash), indent=2) + "\n"


def dashboard_path(dash: Dashboard) -> Path:
    return OUT_DIR / f"{dash.uid}.json"


def iter_exprs(dashboard: dict) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL) for every target of a dashboard JSON, as Grafana would run them."""
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def stale_files() -> list[Path]:
    return [p for d in DASHBOARDS if not (p := dashboard_path(d)).exists() or p.read_text() != render(d)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed file is stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for path in stale:
            print(f"{path} is stale: run python monitoring/grafana/build_dashboards.py", file=sys.stderr)
        return 1 if stale else 0
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for dash in DASHBOARDS:
        dashboard_path(dash).write_text(render(dash))
        print(dashboard_path(dash))
    return 0


if __name__ == "__main__":
    sys.exit(main())
