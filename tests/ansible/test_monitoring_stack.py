"""The monitoring files the role installed work as they are, on the loopback ports compose.yml gives the
VM (the deploy's knobs): in a private network namespace (so they are free whatever runs here) the test
starts node-exporter and Prometheus with the installed prometheus.yml, targets and rules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRAPE_DEADLINE_S = 45  # the first scrape comes within one 15 s interval of the start
SCRIPT = Path(__file__).with_name("netns_scrape.py")


def test_installed_prometheus_scrapes_node_exporter_on_loopback(sandbox, first_run, tmp_path):
    assert first_run.returncode == 0, first_run.output[-4000:]
    config = sandbox.monitoring_dir / "prometheus" / "prometheus.yml"
    done = subprocess.run(
        ["unshare", "-n", sys.executable, str(SCRIPT), str(config), str(tmp_path), str(SCRAPE_DEADLINE_S)],
        capture_output=True,
        text=True,
        timeout=SCRAPE_DEADLINE_S + 30,
    )
    assert done.returncode == 0, done.stderr
    up = json.loads(done.stdout)
    assert up["node"] == [1.0], up
    assert up["prometheus"] == [1.0], up
    # The service's two blue/green metrics ports and dcgm-exporter have nothing behind them here.
    assert up["whisper"] == [0.0, 0.0], up
    assert up["dcgm"] == [0.0], up
