"""Grafana provisioning and dashboards: the committed JSON is what build_dashboards.py generates with
grafana-foundation-sdk, uids are stable, panels are laid out and wired to the provisioned data source, and
every service metric is shown."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from .conftest import DASHBOARD_DIR, MONITORING, load_build_dashboards, load_yaml

build = load_build_dashboards()
DASHBOARDS = {path.stem: json.loads(path.read_text()) for path in sorted(DASHBOARD_DIR.glob("*.json"))}
PROVISIONING = MONITORING / "grafana" / "provisioning"
# A metric name, not part of a recording rule's level:metric:operation name.
METRIC_NAME = re.compile(r"(?<![\w:])(whisper_[a-z_]+|DCGM_FI_[A-Z_]+|node_[a-zA-Z0-9_]+)(?![\w:])")


def service_metric_names() -> set[str]:
    """Names as exposed by the service: counters with _total, histograms as _bucket/_sum/_count."""
    from prometheus_client import Counter, Gauge, Histogram

    from service import metrics

    names = set()
    for obj in vars(metrics).values():
        if isinstance(obj, Counter):
            names.add(f"{obj._name}_total")
        elif isinstance(obj, Histogram):
            names |= {f"{obj._name}_{suffix}" for suffix in ("bucket", "sum", "count")}
        elif isinstance(obj, Gauge):
            names.add(obj._name)
    return names


def test_committed_json_matches_the_generator():
    assert build.stale_files() == []
    result = subprocess.run(
        [sys.executable, str(MONITORING / "grafana" / "build_dashboards.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_check_mode_reports_a_hand_edited_file(tmp_path, monkeypatch):
    monkeypatch.setattr(build, "OUT_DIR", tmp_path)
    for dash in build.DASHBOARDS:
        (tmp_path / f"{dash.uid}.json").write_text(build.render(dash))
    assert build.main(["--check"]) == 0
    edited = tmp_path / "whisper-service.json"
    edited.write_text(edited.read_text().replace("Queue wait", "Queue"))
    assert build.main(["--check"]) == 1


def test_dashboards_are_built_with_grafanas_sdk():
    from grafana_foundation_sdk.models.dashboard import Dashboard

    assert all(isinstance(dash, Dashboard) for dash in build.DASHBOARDS)
    assert [dash.uid for dash in build.DASHBOARDS] == ["whisper-service", "whisper-gpu", "whisper-host"]


def test_dashboards_have_stable_unique_uids_matching_their_file_names():
    assert set(DASHBOARDS) == {"whisper-service", "whisper-gpu", "whisper-host"}
    for name, dash in DASHBOARDS.items():
        assert dash["uid"] == name


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_panels_have_unique_ids_and_do_not_overlap(name):
    panels = DASHBOARDS[name]["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    cells = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24
        area = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & area, f"{panel['title']} overlaps another panel"
        cells |= area


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_each_row_of_panels_spans_the_full_width(name):
    rows: dict[int, int] = {}
    for panel in DASHBOARDS[name]["panels"]:
        rows[panel["gridPos"]["y"]] = rows.get(panel["gridPos"]["y"], 0) + panel["gridPos"]["w"]
    assert set(rows.values()) == {24}, rows


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_query_uses_the_provisioned_data_source(name):
    datasources = load_yaml(PROVISIONING / "datasources" / "prometheus.yml")["datasources"]
    uid = datasources[0]["uid"]
    dash = DASHBOARDS[name]
    for panel in dash["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid and target["expr"].strip()
    for variable in dash["templating"]["list"]:
        assert variable["datasource"]["uid"] == uid


def test_template_variables_select_instance_and_model():
    service_vars = {v["name"]: v for v in DASHBOARDS["whisper-service"]["templating"]["list"]}
    assert set(service_vars) == {"instance", "model"}
    for name in ("whisper-gpu", "whisper-host"):
        assert "instance" in {v["name"] for v in DASHBOARDS[name]["templating"]["list"]}
    # Every service query that reads a series with a model label filters on the variables.
    for _, expr in build.iter_exprs(DASHBOARDS["whisper-service"]):
        assert 'instance=~"$instance"' in expr


def test_service_dashboard_shows_every_service_metric():
    exported = service_metric_names()
    shown = {
        m for _, expr in build.iter_exprs(DASHBOARDS["whisper-service"]) for m in METRIC_NAME.findall(expr)
    }
    # A histogram counts as shown through any of its series.
    shown_bases = {re.sub(r"_(bucket|sum|count)$", "", m) for m in shown}
    missing = {m for m in exported if re.sub(r"_(bucket|sum|count)$", "", m) not in shown_bases}
    assert not missing, f"not on the service dashboard: {sorted(missing)}"


def test_dashboards_and_rules_only_use_metrics_the_service_exports():
    exported = service_metric_names()
    exprs = [expr for dash in DASHBOARDS.values() for _, expr in build.iter_exprs(dash)]
    for path in (MONITORING / "prometheus" / "rules").glob("*.yml"):
        exprs += [r["expr"] for g in load_yaml(path)["groups"] for r in g["rules"]]
    used = {m for expr in exprs for m in METRIC_NAME.findall(expr) if m.startswith("whisper_")}
    assert used and used <= exported, f"unknown service metrics: {sorted(used - exported)}"


def test_gpu_dashboard_covers_the_dcgm_fields_the_brief_names():
    shown = {m for _, expr in build.iter_exprs(DASHBOARDS["whisper-gpu"]) for m in METRIC_NAME.findall(expr)}
    assert shown >= {
        "DCGM_FI_DEV_GPU_UTIL",
        "DCGM_FI_DEV_FB_USED",
        "DCGM_FI_DEV_FB_FREE",
        "DCGM_FI_DEV_GPU_TEMP",
        "DCGM_FI_DEV_POWER_USAGE",
        "DCGM_FI_DEV_XID_ERRORS",
    }


def test_dashboard_provider_reads_the_folder_compose_mounts():
    provider = load_yaml(PROVISIONING / "dashboards" / "whisper.yml")["providers"][0]
    grafana = load_yaml(MONITORING / "compose.yml")["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"] if v.startswith("./"))
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
