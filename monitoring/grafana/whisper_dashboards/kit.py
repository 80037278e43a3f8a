"""Thin helpers over grafana-foundation-sdk's builders, for what every panel here repeats: a Prometheus target
on the provisioned data source, the three panel kinds used (time series, stat, table), a multi-value query
variable, and a dashboard laid out row by row. Each helper returns an SDK builder, so a dashboard module can
chain further SDK calls (thresholds, min/max) onto a panel."""

from __future__ import annotations

import itertools

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import prometheus as prometheus_model

DATASOURCE = model.DataSourceRef(
    type_val="prometheus", uid="prometheus"
)  # the uid provisioned in datasources/
RATE = "$__rate_interval"
PANEL_HEIGHT = 8  # grid units (30 px each)
GRID_WIDTH = 24

Panel = timeseries.Panel | stat.Panel | table.Panel


# ---------------------------------------------------------------- PromQL
def quantiles(metric: str, selector: str, by: str = "", qs=(0.5, 0.95, 0.99)) -> list[prometheus.Dataquery]:
    """histogram_quantile targets for one histogram, one per quantile, legend p50/p95/p99."""
    group = f"{by}, le" if by else "le"
    prefix = f"{{{{{by}}}}} " if by else ""
    return [
        target(
            f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{{{selector}}}[{RATE}])))",
            f"{prefix}p{round(q * 100)}",
        )
        for q in qs
    ]


def rate_sum(metric: str, selector: str, by: str = "") -> str:
    grouping = f" by ({by}) " if by else ""
    return f"sum{grouping}(rate({metric}{{{selector}}}[{RATE}]))"


def mean(metric: str, selector: str, by: str = "") -> str:
    """Average observation of a histogram: rate of its sum over rate of its count."""
    return f"{rate_sum(metric + '_sum', selector, by)} / {rate_sum(metric + '_count', selector, by)}"


# ---------------------------------------------------------------- targets and panels
def target(expr: str, legend: str = "") -> prometheus.Dataquery:
    """A range query, as time series and stat panels run it."""
    return prometheus.Dataquery().expr(expr).legend_format(legend or "__auto").range().datasource(DATASOURCE)


def instant_table_target(expr: str) -> prometheus.Dataquery:
    """One instant value per series, as a table reads it."""
    query = prometheus.Dataquery().expr(expr).legend_format("__auto").instant()
    return query.format(prometheus_model.PromQueryFormat.TABLE).datasource(DATASOURCE)


def _with_targets(panel: Panel, title: str, unit: str, targets, description: str) -> Panel:
    panel.title(title).description(description).datasource(DATASOURCE).unit(unit)
    for i, query in enumerate(targets):
        panel.with_target(query.ref_id(chr(ord("A") + i)))
    return panel


def timeseries_panel(
    title: str, unit: str, *targets: prometheus.Dataquery, description: str = "", stacked: bool = False
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .fill_opacity(30 if stacked else 10)
        .show_points(common.VisibilityMode.NEVER)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .tooltip(
            common_builders.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
    )
    if stacked:
        panel.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL).group("A"))
    return _with_targets(panel, title, unit, targets, description)


def stat_panel(title: str, unit: str, query: prometheus.Dataquery, description: str = "") -> stat.Panel:
    panel = (
        stat.Panel()
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .color_mode(common.BigValueColorMode.VALUE)
        .graph_mode(common.BigValueGraphMode.AREA)
        .text_mode(common.BigValueTextMode.AUTO)
    )
    return _with_targets(panel, title, unit, (query,), description)


def table_panel(title: str, query: prometheus.Dataquery, description: str = "") -> table.Panel:
    """One row per series: the timestamp and the constant value of an info metric are hidden."""
    hide = model.DataTransformerConfig(
        id_val="organize", options={"excludeByName": {"Time": True, "Value": True}}
    )
    panel = table.Panel().show_header(True).with_transformation(hide)
    return _with_targets(panel, title, "short", (query,), description)


def thresholds(*steps: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    """Absolute thresholds: (None, base colour), then (value, colour from that value up)."""
    return (
        dashboard.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=color) for value, color in steps])
    )


# ---------------------------------------------------------------- variables and layout
def query_variable(name: str, label: str, metric: str) -> dashboard.QueryVariable:
    """A multi-value variable listing the values of label `name` on the series `metric`; All is `.*`."""
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(f"label_values({metric}, {name})")
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)  # new instances and models appear
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(model.VariableOption(selected=True, text=["All"], value=["$__all"]))
        .sort(model.VariableSort.ALPHABETICAL_ASC)
    )


def widths(count: int) -> list[int]:
    """A row's panels share the grid's width; the first ones take the remainder."""
    return [GRID_WIDTH // count + (i < GRID_WIDTH % count) for i in range(count)]


def build_dashboard(
    uid: str,
    title: str,
    description: str,
    variables: list[dashboard.QueryVariable],
    rows: list[tuple[str, list[Panel]]],
) -> model.Dashboard:
    """Rows top to bottom (the SDK places each panel after the previous one); panel ids in reading order."""
    board = (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["whisper"])
        .timezone("utc")
        .editable()
        .tooltip(model.DashboardCursorSync.CROSSHAIR)  # shared crosshair across panels
        .refresh("30s")
        .time("now-3h", "now")
        .variables(variables)
    )
    ids = itertools.count(1)
    for row_title, panels in rows:
        board.with_row(dashboard.Row(row_title).id(next(ids)))
        for panel, width in zip(panels, widths(len(panels)), strict=True):
            board.with_panel(panel.id(next(ids)).height(PANEL_HEIGHT).span(width))
    return board.build()
