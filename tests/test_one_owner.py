"""One owner for each port, uid and path (#35): the literal is written in its owner's file only, and every
other file renders or reads it from there (deploy/monitoring.py, infra/host.py's @NAME@, the inventory's
variables, compose's ${VAR}). Tests and the docs (prose, *.md) may repeat a value; nothing else may.

A port counts where its line speaks of ports (port, listen, 127.0.0.1, localhost, `:PORT`), so that the
3000 mel frames of a Whisper window or a 3000 ms pause are not ports."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOT_SCANNED = ("tests/", "docs/", "monitoring/prometheus/tests/")  # tests, promtool's tests, prose
PORT_LINE = re.compile(r"\bports?\b|_ports?\b|127\.0\.0\.1|localhost|listen", re.IGNORECASE)


def port(number: int) -> Callable[[str], bool]:
    token = re.compile(rf"(?<![\w.\\-]){number}(?![\w.])")
    return lambda line: bool(token.search(line)) and (f":{number}" in line or bool(PORT_LINE.search(line)))


def literal(pattern: str) -> Callable[[str], bool]:
    regex = re.compile(pattern)
    return lambda line: bool(regex.search(line))


# fact -> (what finds it on a line, the one file that writes it)
FACTS = {
    "blue's metrics port (the service's METRICS_PORT)": (port(9101), "service/settings/__init__.py"),
    "green's metrics port": (port(9102), "deploy/config.py"),
    "blue's API port on the host": (port(5001), "deploy/config.py"),
    "green's API port on the host": (port(5002), "deploy/config.py"),
    "Grafana's port": (port(3000), "deploy/config.py"),
    "Prometheus' port": (port(9090), "deploy/config.py"),
    "node-exporter's port": (port(9100), "deploy/config.py"),
    "dcgm-exporter's port": (port(9400), "deploy/config.py"),
    "the service account's uid": (literal(r"(?<!\d)10001(?!\d)"), "Dockerfile"),
    "the oldest driver branch": (literal(r"(?<![\w.])580(?![\w.-])"), "Dockerfile"),
    "the stack outputs file": (literal(r"outputs\.json"), "deploy/paths.py"),
    "the service account's home on the host": (literal(r"/var/lib/whisper\b"), "deploy/paths.py"),
    "the host's tmpfs files": (literal(r"/run/whisper\b"), "deploy/paths.py"),
    "the host's settings files": (literal(r"/etc/whisper\b"), "deploy/config.py"),
}


def scanned() -> list[Path]:
    """The repo's files (tracked, and new ones not ignored), less tests and prose."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return [
        ROOT / name
        for name in listed
        if not name.startswith(NOT_SCANNED) and not name.endswith(".md") and (ROOT / name).is_file()
    ]


def writers(found: Callable[[str], bool]) -> set[str]:
    names = set()
    for path in scanned():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # a binary file (a wav, an image) holds no setting
        if any(found(line) for line in text.splitlines()):
            names.add(str(path.relative_to(ROOT)))
    return names


@pytest.mark.parametrize("fact", sorted(FACTS))
def test_each_fact_is_written_by_its_owner_only(fact):
    found, owner = FACTS[fact]
    where = writers(found)
    assert owner in where, f"{fact}: its owner {owner} no longer writes it: update FACTS"
    others = sorted(where - {owner})
    assert not others, f"{fact} is written in {others} too: render or read it from {owner}"


def test_the_scan_sees_a_port_written_twice(tmp_path):
    """The rule's own check: a copied port is caught, a window's 3000 mel frames are not."""
    grafana = FACTS["Grafana's port"][0]
    assert grafana("      GF_SERVER_HTTP_PORT: 3000")
    assert grafana('    url: "http://127.0.0.1:3000"')
    assert not grafana("WINDOW_FRAMES = WINDOW_SAMPLES // HOP_LENGTH  # 3000 mel frames in a window")
    assert not grafana("    return text[-3000:]  # the port's last log lines")
