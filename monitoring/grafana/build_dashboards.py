"""Writes the Grafana dashboards in monitoring/grafana/dashboards/ from their definitions in
whisper_dashboards/ (grafana-foundation-sdk builders).

    python monitoring/grafana/build_dashboards.py          # (re)write the JSON files
    python monitoring/grafana/build_dashboards.py --check  # exit 1 if a committed file differs

The JSON is committed so that Grafana's file provisioning loads it as is. tests/monitoring checks that both
agree and evaluates every query against a real Prometheus.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # whisper_dashboards sits next to this script (monitoring/ is not a package)
    sys.path.insert(0, str(HERE))

from whisper_dashboards import Dashboard, dashboards, iter_exprs, render  # noqa: E402

__all__ = ["DASHBOARDS", "OUT_DIR", "dashboard_path", "iter_exprs", "main", "render", "stale_files"]

OUT_DIR = HERE / "dashboards"
DASHBOARDS = dashboards()


def dashboard_path(dashboard: Dashboard) -> Path:
    return OUT_DIR / f"{dashboard.uid}.json"


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
    for dashboard in DASHBOARDS:
        dashboard_path(dashboard).write_text(render(dashboard))
        print(dashboard_path(dashboard))
    return 0


if __name__ == "__main__":
    sys.exit(main())
