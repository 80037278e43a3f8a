"""The three Grafana dashboards, written with grafana-foundation-sdk (Grafana's own typed builders): one
module per dashboard, helpers for what their panels share in `kit`."""

from __future__ import annotations

import json
from collections.abc import Iterator

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from . import gpu, host, service


def dashboards() -> tuple[Dashboard, ...]:
    """Freshly built each call: the SDK's builders keep layout state, so they are not shared."""
    return service.dashboard(), gpu.dashboard(), host.dashboard()


def render(dashboard: Dashboard) -> str:
    """The dashboard as Grafana's file provisioning reads it."""
    return json.dumps(dashboard, cls=JSONEncoder, indent=2) + "\n"


def iter_exprs(dashboard: dict) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL) for every target of a dashboard JSON, as Grafana would run them."""
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]
