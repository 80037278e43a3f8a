"""`make cost` end to end: a real Prometheus with the committed whisper.cost rules, recorded samples, a real
node-exporter reading the price file the VM's startup script writes, and a real sshd on loopback standing in
for the VM (the route of `make dashboards`).

The service's audio counter is recorded, not produced by a model: five hours are backfilled into the TSDB
with promtool (three hours at 60 audio seconds per second, then two at 30), and a small HTTP target goes on
serving the same series live at 30 per second. So the figures are known in advance: the VM's $0.75/h
(pricePerHour) over 30x realtime is $0.025 per audio hour now, and over 60x it is $0.0125 at the best hour.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import yaml

from .conftest import ROOT, free_port, running_node_exporter, started, wait_until
from .test_make_dashboards import vm  # noqa: F401 (the sshd fixture)

PRICE = 0.75
BUSY, NOW_RATE = 60.0, 30.0  # audio seconds per second: the busy hours, and since
BUSY_S, QUIET_S = 3 * 3600, 2 * 3600
SERIES = (
    'whisper_audio_seconds_total{job="whisper",instance="recorded",model="turbo",engine="openai-whisper"}'
)
LABELS = (
    'machine_type="n1-standard-8",gpu_type="nvidia-tesla-t4",gpu_count="1",'
    'provisioning="on-demand",basis="override"'
)


def audio_seconds(t: float, start: float) -> float:
    """The recorded counter: BUSY per second for the first BUSY_S seconds after start, NOW_RATE after."""
    elapsed = t - start
    return BUSY * min(elapsed, BUSY_S) + NOW_RATE * max(elapsed - BUSY_S, 0.0)


def backfill(tmp: Path, start: float, end: float) -> Path:
    """The recorded history as TSDB blocks (promtool tsdb create-blocks-from openmetrics), every 15 s."""
    lines = ["# TYPE whisper_audio_seconds counter"]
    t = start
    while t <= end:
        lines.append(f"{SERIES} {audio_seconds(t, start):.3f} {t:.3f}")
        t += 15
    source = tmp / "history.om"
    source.write_text("\n".join([*lines, "# EOF", ""]))
    tsdb = tmp / "tsdb"
    subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(source), str(tsdb)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return tsdb


def write_price_file(textfile: Path) -> None:
    """The VM's own function (infra/startup.sh write_price_metric), run with the stack's metadata stubbed."""
    script = (ROOT / "infra" / "startup.sh").read_text()
    function = re.search(r"^write_price_metric\(\) \{.*?^\}$", script, re.S | re.M).group(0)
    stub = (
        'metadata() { case "$1" in\n'
        f"  */whisper-price-per-hour) echo '{PRICE}' ;;\n"
        f"  */whisper-price-labels) echo '{LABELS}' ;;\n"
        "esac; }\n"
    )
    subprocess.run(
        ["bash", "-euc", f"{stub}{function}\nwrite_price_metric"],
        env={**os.environ, "TEXTFILE_DIR": str(textfile)},
        check=True,
        timeout=30,
    )


def live_target(start: float) -> ThreadingHTTPServer:
    """The service's /metrics from now on: the same series, counting on at NOW_RATE."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = (
                f"# TYPE whisper_audio_seconds_total counter\n{SERIES} {audio_seconds(time.time(), start)}\n"
            )
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def prometheus_config(tmp: Path, whisper: str, node: str) -> Path:
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ROOT / "monitoring" / "prometheus" / "rules" / "whisper-cost.yml")],
        "scrape_configs": [
            # honor_labels: the live target continues the backfilled series (instance="recorded").
            {"job_name": "whisper", "honor_labels": True, "static_configs": [{"targets": [whisper]}]},
            {"job_name": "node", "static_configs": [{"targets": [node]}]},
        ],
    }
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def vm_prometheus(tmp_path, prometheus_binary):
    """A Prometheus on a loopback port holding the recorded history and scraping price and audio live."""
    now = time.time()
    start = now - BUSY_S - QUIET_S
    tsdb = backfill(tmp_path, start, now - 30)
    write_price_file(tmp_path / "textfile")
    server = live_target(start)
    node_flags = f"--collector.textfile.directory={tmp_path / 'textfile'}"
    try:
        with running_node_exporter(tmp_path, node_flags) as node:
            port = free_port()
            config = prometheus_config(tmp_path, f"127.0.0.1:{server.server_address[1]}", node)
            command = [
                prometheus_binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tsdb}",
                f"--web.listen-address=127.0.0.1:{port}",
            ]
            with started(command, tmp_path / "prometheus.log") as process:
                base = f"http://127.0.0.1:{port}"

                def both_costs() -> bool:
                    found = [
                        requests.get(f"{base}/api/v1/query", params={"query": q}, timeout=5).json()["data"][
                            "result"
                        ]
                        for q in (
                            "job:whisper_cost_dollars_per_audio_hour:rate5m",
                            "job:whisper_cost_dollars_per_audio_hour:best1h_1d",
                        )
                    ]
                    return all(found)

                wait_until(both_costs, 60, "the cost records", details=process.log_text)
                yield port
    finally:
        server.shutdown()
        server.server_close()


def make_cost(tmp: Path, ssh_port: int, key: Path, prometheus_port: int) -> subprocess.CompletedProcess:
    outputs = tmp / "outputs.json"
    outputs.write_text(json.dumps({"ip": "127.0.0.1", "url": "http://127.0.0.1"}))
    ssh = (
        f"ssh -p {ssh_port} -i {key} -o BatchMode=yes -o StrictHostKeyChecking=no "
        "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
    )
    return subprocess.run(
        ["make", "-s", "cost", f"DEPLOY_OUTPUTS={outputs}", f"TUNNEL_SSH={ssh}"]
        + [f"PROMETHEUS_REMOTE_PORT={prometheus_port}"],
        cwd=ROOT,
        env={**os.environ, "SSH_USER": getpass.getuser()},
        capture_output=True,
        text=True,
        timeout=120,
    )


def figures(printed: str, title: str) -> tuple[float, float]:
    match = re.search(rf"{re.escape(title)}\s+\$([0-9.]+) per audio hour at ([0-9.]+)x realtime", printed)
    assert match, printed
    return float(match[1]), float(match[2])


def test_make_cost_prints_the_cost_per_audio_hour_through_the_tunnel(tmp_path, vm, vm_prometheus):  # noqa: F811
    ssh_port, key = vm
    result = make_cost(tmp_path, ssh_port, key, vm_prometheus)
    assert result.returncode == 0, result.stdout + result.stderr
    printed = result.stdout
    assert "VM price           $0.7500/h  n1-standard-8 with 1 x nvidia-tesla-t4, on-demand" in printed
    assert "the stack's pricePerHour" in printed
    now_cost, now_realtime = figures(printed, "now (5 min)")
    assert now_realtime == pytest.approx(NOW_RATE, rel=0.02)
    assert now_cost == pytest.approx(PRICE / NOW_RATE, rel=0.02)
    best_cost, best_realtime = figures(printed, "best hour, 1 day")
    assert best_realtime == pytest.approx(BUSY, rel=0.01)  # a whole clock hour inside the busy three
    assert best_cost == pytest.approx(PRICE / BUSY, rel=0.01)


def test_make_cost_without_a_price_says_how_to_set_one(tmp_path, prometheus_binary):
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({"global": {"scrape_interval": "1s"}, "scrape_configs": []}))
    command = [
        prometheus_binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with started(command, tmp_path / "prometheus.log") as process:
        base = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: requests.get(f"{base}/-/ready", timeout=5).ok, 30, "prometheus", details=process.log_text
        )
        result = subprocess.run(
            ["make", "-s", "cost", f"PROMETHEUS_URL={base}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode != 0
    assert "pulumi config set pricePerHour" in result.stderr
