"""Prometheus config, recording and alerting rules: promtool (Debian's 2.42) checks them and runs their unit
tests; these tests also prove that the unit tests would catch an alert that never fires or always fires."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .conftest import PROMETHEUS_DIR, ROOT, load_yaml

RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS_DIR / "tests").glob("*.yaml"))
RUNBOOK = ROOT / "docs" / "runbook.md"
RECORD_NAME = re.compile(r"^[a-z_]+:[a-z_]+:[a-z0-9_]+$")  # level:metric:operation
DURATION = re.compile(r"^(\d+)([smh])$")


def promtool(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: run `make system-deps` (Debian package prometheus)"
    return subprocess.run([binary, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=60)


def rules_of(path: Path) -> list[dict]:
    return [rule for group in load_yaml(path)["groups"] for rule in group["rules"]]


ALERTS = {rule["alert"]: (path, rule) for path in RULE_FILES for rule in rules_of(path) if "alert" in rule}
RECORDS = [rule for path in RULE_FILES for rule in rules_of(path) if "record" in rule]


def seconds(duration: str) -> int:
    value, unit = DURATION.match(duration).groups()
    return int(value) * {"s": 1, "m": 60, "h": 3600}[unit]


def runbook_anchors() -> set[str]:
    """GitHub's anchors for the runbook's headings: lower case, spaces to dashes, punctuation dropped."""
    headings = re.findall(r"^#+ (.+)$", RUNBOOK.read_text(), flags=re.M)
    return {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in headings}


def alert_tests(alert: str) -> list[dict]:
    """Every alert_rule_test entry about `alert` in the unit-test file of its group."""
    rule_file, _ = ALERTS[alert]
    tests = load_yaml(PROMETHEUS_DIR / "tests" / f"{rule_file.stem}.yaml")["tests"]
    return [t for test in tests for t in test.get("alert_rule_test", []) if t["alertname"] == alert]


# ---------------------------------------------------------------- promtool on the committed files
def test_prometheus_config_is_valid():
    result = promtool("check", "config", PROMETHEUS_DIR / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(RULE_FILES)} rule files found" in result.stdout + result.stderr


def test_rule_files_are_valid():
    result = promtool("check", "rules", *RULE_FILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass():
    result = promtool("test", "rules", *TEST_FILES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(TEST_FILES)


# ---------------------------------------------------------------- conventions
def test_the_expected_alerts_exist():
    assert set(ALERTS) >= {
        "WhisperServiceDown",
        "WhisperErrorRatioHigh",
        "WhisperLatencyHigh",
        "WhisperQueueWaitHigh",
        "WhisperRequestsRejected",
        "GPUMemoryNearFull",
        "GPUTemperatureHigh",
        "GPUXidError",
        "GPUNotSeen",
    }


# Records that keep a renamed metric's old name for older dashboards: the new metric, as it is.
OLD_NAMES = {"whisper_redecoded_pieces_total": 'whisper_redecoded_rests_total{job="whisper"}'}


def test_recording_rules_are_named_level_metric_operation():
    names = [r["record"] for r in RECORDS]
    bad = [name for name in names if not RECORD_NAME.match(name) and name not in OLD_NAMES]
    assert not bad
    assert {r["record"]: r["expr"] for r in RECORDS if r["record"] in OLD_NAMES} == OLD_NAMES
    names = {r["record"] for r in RECORDS}
    for quantile in ("p50", "p95", "p99"):
        assert f"model_endpoint:whisper_request_duration_seconds:{quantile}_5m" in names
        assert f"model_stage:whisper_stage_duration_seconds:{quantile}_5m" in names  # queue, inference
        assert f"model:whisper_real_time_factor:{quantile}_5m" in names


@pytest.mark.parametrize("alert", sorted(ALERTS))
def test_alert_has_summary_description_runbook_and_severity(alert):
    _, rule = ALERTS[alert]
    annotations = rule["annotations"]
    assert annotations["summary"].strip() and annotations["description"].strip()
    page, _, anchor = annotations["runbook_url"].partition("#")
    assert page == "docs/runbook.md"
    assert anchor in runbook_anchors(), f"docs/runbook.md has no heading for #{anchor}"
    assert rule["labels"]["severity"] in ("warning", "critical")


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda p: p.name)
def test_each_rule_group_has_its_own_unit_test_file(rule_file):
    test_file = PROMETHEUS_DIR / "tests" / f"{rule_file.stem}.yaml"
    assert test_file.exists()
    assert f"../rules/{rule_file.name}" in load_yaml(test_file)["rule_files"]


@pytest.mark.parametrize("alert", sorted(ALERTS))
def test_alert_is_tested_firing_and_silent_past_its_for_duration(alert):
    _, rule = ALERTS[alert]
    wait = seconds(rule.get("for", "0s"))
    cases = alert_tests(alert)
    assert any(case.get("exp_alerts") for case in cases), f"{alert} is never tested firing"
    assert any(not case.get("exp_alerts") and seconds(case["eval_time"]) >= wait for case in cases), (
        f"{alert} is never tested silent after its `for` of {wait}s"
    )


# ---------------------------------------------------------------- the unit tests can fail
def mutated_copy(tmp_path: Path, alert: str, expr: str) -> Path:
    """A copy of monitoring/prometheus with `alert`'s expression replaced; returns its test file."""
    copy = tmp_path / "prometheus"
    shutil.copytree(PROMETHEUS_DIR, copy)
    rule_file, _ = ALERTS[alert]
    target = copy / "rules" / rule_file.name
    doc = load_yaml(target)
    for group in doc["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert:
                rule["expr"] = expr
    target.write_text(yaml.safe_dump(doc, sort_keys=False))
    return copy / "tests" / f"{rule_file.stem}.yaml"


@pytest.mark.parametrize("expr", ["vector(1) < 0", "vector(1)"], ids=["never-fires", "always-fires"])
@pytest.mark.parametrize("alert", sorted(ALERTS))
def test_unit_tests_catch_a_broken_alert(tmp_path, alert, expr):
    test_file = mutated_copy(tmp_path, alert, expr)
    result = promtool("test", "rules", test_file.name, cwd=test_file.parent)
    assert result.returncode != 0, f"the unit tests still pass with {alert}: expr {expr!r}"
    assert alert in result.stdout + result.stderr
