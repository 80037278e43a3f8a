"""What `make loadtest` (bench/loadtest.py) reports: the outcome of each request, the run's figures, the
checks that judge them, and the Markdown table that docs/reliability.md quotes."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.loadtest import Client, LoadConfig

RSS_TOLERANCE = 0.10  # RSS after --rss-late requests may exceed RSS after --rss-early by this fraction


@dataclass
class Outcome:
    status: int | None  # None: no HTTP answer (timeout, reset)
    seconds: float
    retry_after: str | None = None
    error: str | None = None


@dataclass
class Report:
    machine: str
    capacity_rps: float = 0.0
    offered_rps: float = 0.0
    sent: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    p50_seconds: float | None = None
    p99_seconds: float | None = None
    max_seconds: float | None = None
    rss_early_mib: float | None = None
    rss_late_mib: float | None = None
    probe_max_seconds: float | None = None  # slowest /readyz answer during the overload
    probe_failures: int = 0  # /readyz probes without a 200 within PROBE_TIMEOUT
    answered: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def judge(report: Report, outcomes: list[Outcome], cfg: LoadConfig, client: Client) -> None:
    statuses: dict[str, int] = {}
    for o in outcomes:
        key = str(o.status) if o.status is not None else (o.error or "no answer")
        statuses[key] = statuses.get(key, 0) + 1
    report.statuses = dict(sorted(statuses.items()))
    accepted = sorted(o.seconds for o in outcomes if o.status == 200)
    report.p50_seconds, report.p99_seconds = percentile(accepted, 50), percentile(accepted, 99)
    report.max_seconds = accepted[-1] if accepted else None
    report.answered = client.answered
    report.rss_early_mib, report.rss_late_mib = client.rss.get(cfg.rss_early), client.rss.get(cfg.rss_late)
    if any(o.status is not None and o.status >= 500 for o in outcomes):
        report.failures.append("5xx answers")
    if set(report.statuses) - {"200", "429"}:
        report.failures.append(f"answers other than 200/429: {report.statuses}")
    if any(o.status == 429 and not (o.retry_after or "").isdigit() for o in outcomes):
        report.failures.append("429 without a Retry-After")
    if report.rss_early_mib and report.rss_late_mib:
        if report.rss_late_mib > report.rss_early_mib * (1 + RSS_TOLERANCE):
            report.failures.append(
                f"RSS grew from {report.rss_early_mib:.0f} to {report.rss_late_mib:.0f} MiB"
            )


def markdown(report: Report, cfg: LoadConfig) -> str:
    def fmt(value: float | None, unit: str = "") -> str:
        return "n/a" if value is None else f"{value:.2f}{unit}"

    latency = (
        f"p50 {fmt(report.p50_seconds, ' s')}, p99 {fmt(report.p99_seconds, ' s')}, "
        f"max {fmt(report.max_seconds, ' s')}"
    )
    offered = f"{report.offered_rps:.2f} requests/s for {cfg.duration:g} s ({report.sent} requests)"
    rows = [
        ("machine", report.machine),
        (
            f"capacity (closed loop, {cfg.clients} clients, {cfg.capacity_seconds:g} s)",
            f"{report.capacity_rps:.2f} requests/s",
        ),
        ("offered load", offered),
        ("answers", ", ".join(f"{k}: {v}" for k, v in report.statuses.items())),
        ("latency of accepted requests", latency),
        (
            f"worker RSS after {cfg.rss_early} / {cfg.rss_late} requests",
            f"{fmt(report.rss_early_mib, ' MiB')} / {fmt(report.rss_late_mib, ' MiB')}",
        ),
        (
            "/readyz during the overload (1/s)",
            f"slowest {fmt(report.probe_max_seconds, ' s')}, {report.probe_failures} without 200",
        ),
        ("requests answered in all", str(report.answered)),
        ("verdict", "PASS" if report.ok else "FAIL: " + "; ".join(report.failures)),
    ]
    return "| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
