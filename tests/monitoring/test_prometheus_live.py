"""A real Prometheus (Debian package) scrapes the real service under gunicorn, and node-exporter, with the
committed prometheus.yml (its targets files listing free loopback ports, 1 s intervals) and recording
rules. After real transcriptions, every dashboard query and every rule evaluates through the HTTP API
without error."""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

from tests.helpers import free_port

from .conftest import (
    DASHBOARD_DIR,
    PROMETHEUS_DIR,
    load_build_dashboards,
    load_yaml,
    running_node_exporter,
    running_service,
    started,
    transcribe,
    wait_until,
)

build = load_build_dashboards()
ENDPOINT = "/v1/audio/transcriptions"
TRANSCRIPTIONS = 3
# Grafana fills these in; `All` is the regex .* and the rate window spans several 1 s scrapes.
GRAFANA_VARIABLES = {"__rate_interval": "1m", "instance": ".*", "model": ".*", "gpu": ".*"}


@dataclass(frozen=True)
class Stack:
    prometheus: str  # base URL
    service_target: str
    node_target: str
    all_scraped_at: float  # Unix time by which Prometheus had stored a scrape counting every request sent


def substitute(expr: str) -> str:
    def value(match: re.Match) -> str:
        assert match.group(1) in GRAFANA_VARIABLES, f"unknown dashboard variable {match.group(0)}"
        return GRAFANA_VARIABLES[match.group(1)]

    return re.sub(r"\$(\w+)", value, expr)


def api(prometheus: str, path: str, **params) -> dict:
    """GET a Prometheus API path; the parsed JSON body whatever the status (errors carry `error`)."""
    return requests.get(f"{prometheus}/api/v1/{path}", params=params, timeout=10).json()


def query(prometheus: str, expr: str) -> list[dict]:
    body = api(prometheus, "query", query=expr)
    assert body["status"] == "success", f"{expr}: {body.get('error')}"
    return body["data"]["result"]


def scalar(prometheus: str, expr: str) -> float | None:
    result = query(prometheus, expr)
    return float(result[0]["value"][1]) if result else None


def live_config(tmp: Path, targets: dict[str, str]) -> Path:
    """The committed prometheus.yml with 1 s intervals and absolute rule paths, its jobs' file_sd files
    (beside it, where the config names them) listing loopback test ports."""
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(PROMETHEUS_DIR / "rules" / "*.yml")]
    for job in config["scrape_configs"]:
        for name in (name for sd in job["file_sd_configs"] for name in sd["files"]):
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(json.dumps([{"targets": [targets[job["job_name"]]]}]))
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def first_scrape_counting(prometheus: str, selector: str, total: float) -> float:
    """Timestamp of the first scrape whose samples of `selector` add up to `total`."""
    by_time: dict[float, float] = {}
    for series in query(prometheus, f"{selector}[15m]"):
        for timestamp, value in series["values"]:
            by_time[timestamp] = by_time.get(timestamp, 0) + float(value)
    return min(t for t, value in by_time.items() if value == total)


def recorded_after(prometheus: str, record: str, after: float) -> float:
    """What a recording rule stored at its first evaluation after `after` (Unix time): an evaluation that
    began once the data was stored, and read a window that holds all of it, however slow the tests after."""

    def first_value() -> tuple[float] | None:
        series = query(prometheus, f"{record}[15m]")
        assert len(series) <= 1, f"{record}: {len(series)} series"
        later = [float(v) for t, v in (series[0]["values"] if series else []) if t > after]
        return (later[0],) if later else None

    return wait_until(first_value, 30, f"an evaluation of {record} after the traffic")[0]


def send_traffic(p: str, service, wav: Path) -> float:
    """One transcription, scraped; then the rest and a bad request. A series that appears with its
    first request has no earlier sample, so rate() sees only increases scraped after it. Returns the Unix
    time by which Prometheus had stored a scrape counting every request."""
    sent_ok = f'sum(whisper_requests_total{{endpoint="{ENDPOINT}", status="200"}})'
    assert transcribe(service, wav).status_code == 200
    wait_until(lambda: scalar(p, sent_ok) == 1, 30, "Prometheus to scrape the first transcription")
    scrapes = f'sum(count_over_time(whisper_requests_total{{endpoint="{ENDPOINT}", status="200"}}[1m]))'
    wait_until(lambda: (scalar(p, scrapes) or 0) >= 3, 30, "3 scrapes of the first request")
    for _ in range(TRANSCRIPTIONS - 1):
        assert transcribe(service, wav).status_code == 200
    bad = requests.post(f"{service.url}{ENDPOINT}", data={"model": "whisper-1"}, timeout=30)
    assert bad.status_code == 400  # no file: a client error, counted but not a server error
    answered = f'sum(whisper_requests_total{{endpoint="{ENDPOINT}"}})'
    wait_until(lambda: scalar(p, answered) == TRANSCRIPTIONS + 1, 30, "Prometheus to scrape all requests")
    return time.time()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, checkpoint, speech_wav, prometheus_binary):
    tmp = tmp_path_factory.mktemp("live")
    with running_node_exporter(tmp) as node_target, running_service(checkpoint, tmp, 1) as service:
        port = free_port()
        targets = {
            "whisper": service.metrics_target,
            "node": node_target,
            "dcgm": f"127.0.0.1:{free_port()}",  # nothing listens: a machine without a GPU
            "prometheus": f"127.0.0.1:{port}",
        }
        cmd = [
            prometheus_binary,
            f"--config.file={live_config(tmp, targets)}",
            f"--storage.tsdb.path={tmp / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        with started(cmd, tmp / "prometheus.log") as process:
            url = f"http://127.0.0.1:{port}"
            wait_until(
                lambda: requests.get(f"{url}/-/ready", timeout=5).ok,
                60,
                "Prometheus to be ready",
                details=process.log_text,
            )
            wait_until(lambda: scalar(url, 'sum(up{job=~"whisper|node"})') == 2, 30, "first scrapes")
            all_scraped_at = send_traffic(url, service, speech_wav)
            yield Stack(url, service.metrics_target, node_target, all_scraped_at)


def dashboard_queries() -> list[tuple[str, str, str]]:
    out = []
    for path in sorted(DASHBOARD_DIR.glob("*.json")):
        dash = yaml.safe_load(path.read_text())  # JSON is YAML
        out += [(dash["uid"], title, expr) for title, expr in build.iter_exprs(dash)]
    return out


def recording_rules() -> list[dict]:
    rules = []
    for path in sorted((PROMETHEUS_DIR / "rules").glob("*.yml")):
        rules += [r for g in load_yaml(path)["groups"] for r in g["rules"] if "record" in r]
    return rules


def test_every_dashboard_query_evaluates(stack):
    failures = []
    for uid, title, expr in dashboard_queries():
        body = api(stack.prometheus, "query", query=substitute(expr))
        if body["status"] != "success":
            failures.append(f"{uid} / {title}: {body.get('error')}")
    assert not failures, "\n".join(failures)


def test_p95_inference_latency_is_a_number(stack):
    """Evaluated as Grafana would show it at the first scrape that counted the last inference: the scrape
    before counted fewer, so the 1m window holds an increase however long the tests before this one took."""
    service_dash = yaml.safe_load((DASHBOARD_DIR / "whisper-service.json").read_text())
    panel = next(p for p in service_dash["panels"] if p["title"] == "Inference latency (GPU)")
    p95 = next(t["expr"] for t in panel["targets"] if t["legendFormat"] == "p95")
    inferences = 'whisper_stage_duration_seconds_count{job="whisper", stage="inference"}'
    at = first_scrape_counting(stack.prometheus, inferences, TRANSCRIPTIONS)
    body = api(stack.prometheus, "query", query=substitute(p95), time=at)
    assert body["status"] == "success" and len(body["data"]["result"]) == 1, body
    value = float(body["data"]["result"][0]["value"][1])
    assert math.isfinite(value) and value > 0


def test_requests_sum_to_what_was_sent(stack):
    by_status = {
        r["metric"]["status"]: float(r["value"][1])
        for r in query(stack.prometheus, f'sum by (status) (whisper_requests_total{{endpoint="{ENDPOINT}"}})')
    }
    assert by_status == {"200": TRANSCRIPTIONS, "400": 1}


def test_every_recording_rule_is_loaded_and_healthy(stack):
    expected = {r["record"] for r in recording_rules()}

    def evaluated() -> dict[str, dict]:
        groups = api(stack.prometheus, "rules", type="record")["data"]["groups"]
        rules = {r["name"]: r for g in groups for r in g["rules"]}
        return rules if all(not r["lastEvaluation"].startswith("0001") for r in rules.values()) else {}

    rules = wait_until(evaluated, 30, "every rule to be evaluated once")
    assert set(rules) == expected
    unhealthy = {name: r.get("lastError") for name, r in rules.items() if r["health"] != "ok"}
    assert not unhealthy


def test_recording_rules_evaluate_and_carry_the_traffic(stack):
    for rule in recording_rules():
        query(stack.prometheus, rule["expr"])  # raises on an evaluation error
    p, after = stack.prometheus, stack.all_scraped_at
    p95 = recorded_after(p, 'model_stage:whisper_stage_duration_seconds:p95_5m{stage="inference"}', after)
    assert math.isfinite(p95) and p95 > 0
    for record in (
        "model:whisper_real_time_factor:p95_5m",
        f'model_endpoint:whisper_request_duration_seconds:p95_5m{{endpoint="{ENDPOINT}"}}',
    ):
        assert math.isfinite(recorded_after(p, record, after)), record
    assert recorded_after(p, "job:whisper_request_errors:ratio_rate5m", after) == 0  # 400: not a 5xx


def test_template_variables_list_the_running_targets(stack):
    def values(variable: dict) -> set[str]:
        metric, label = re.fullmatch(r"label_values\((.*), (\w+)\)", variable["query"]).groups()
        series = api(stack.prometheus, "series", **{"match[]": substitute(metric)})["data"]
        return {s[label] for s in series if label in s}

    dashboards = {
        path.stem: yaml.safe_load(path.read_text())["templating"]["list"]
        for path in DASHBOARD_DIR.glob("*.json")
    }
    service_vars = {v["name"]: v for v in dashboards["whisper-service"]}
    assert values(service_vars["instance"]) == {stack.service_target}
    build_info = query(stack.prometheus, 'whisper_build_info{job="whisper"}')
    assert values(service_vars["model"]) == {s["metric"]["model"] for s in build_info}
    assert values(dashboards["whisper-host"][0]) == {stack.node_target}
    assert values(dashboards["whisper-gpu"][0]) == set()  # no GPU here


def test_alerts_see_a_machine_without_a_gpu(stack):
    expected = {"GPUNotSeen", "WhisperNotOnGPU"}

    def active() -> dict[str, str] | None:
        alerts = api(stack.prometheus, "alerts")["data"]["alerts"]
        states = {a["labels"]["alertname"]: a["state"] for a in alerts}
        return states if expected <= states.keys() else None

    states = wait_until(active, 30, "GPUNotSeen and WhisperNotOnGPU to be active")
    assert states["GPUNotSeen"] == states["WhisperNotOnGPU"] == "pending"  # `for` has not elapsed
    assert "WhisperServiceDown" not in states and "WhisperErrorRatioHigh" not in states
