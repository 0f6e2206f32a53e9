"""Plotly figure builders for the pages. Tables in, figures out; no Streamlit."""
from __future__ import annotations

import math
from typing import Any, Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from elastic import explore
from elastic.explore import Metric
from elastic.methods import METHODS

MODE_SYMBOLS = {"": "circle", "PA": "square", "FA": "diamond", "MA": "triangle-up"}
BEST_COLOR = "#d62728"
BUDGET_COLOR = "#444444"
_FONT = dict(family="sans-serif", size=12)


def method_colors() -> dict[str, str]:
    """One stable colour per registered method, the same on every page."""
    palette = qualitative.D3
    return {name: palette[i % len(palette)] for i, name in enumerate(METHODS.names())}


def hover_text(row: dict[str, Any], metric: Metric) -> str:
    """What a point is: method, mode, target, level, epochs, label, and its numbers."""
    def opt(value: Any, fmt: str = "{}") -> str:
        return fmt.format(value) if explore.present(value) else "–"
    return (f"<b>{explore.method_label(row['method'])}</b> · {row['arch']}<br>"
            f"mode {opt(row['mode'])} · target {opt(row['target'], '{:g}')} · level {opt(row['level'])}<br>"
            f"{explore.epochs_text(row['epochs']) if explore.present(row['epochs']) else '–'} · "
            f"{row['label'] or 'no label'}<br>"
            f"accuracy {row['test_acc']:.2f}% · {explore.format_quantity(row[metric.column], metric)}<br>"
            f"<span style='font-size:10px'>{row['run_id']}</span>")


def tradeoff_figure(rows: pd.DataFrame, metrics: Sequence[Metric], *,
                    budget_metric: Metric | None = None, budget: float | None = None,
                    best: dict[str, Any] | None = None, columns: int = 2,
                    height: int | None = None) -> go.Figure:
    """Accuracy against each metric, one panel per metric: every method in its
    colour (mode as the marker), each method's Pareto front as a step line, the
    budget as a dashed line on its metric's panel, the chosen configuration
    ringed."""
    columns = min(columns, len(metrics))
    nrows = math.ceil(len(metrics) / columns)
    fig = make_subplots(rows=nrows, cols=columns, shared_yaxes=True,
                        horizontal_spacing=0.06, vertical_spacing=0.16,
                        subplot_titles=[m.label for m in metrics])
    colors = method_colors()
    shown: set[str] = set()
    for i, metric in enumerate(metrics):
        r, c = divmod(i, columns)
        where = dict(row=r + 1, col=c + 1)
        measured = rows.dropna(subset=[metric.column, "test_acc"])
        if measured.empty:
            _note(fig, explore.NOT_MEASURED if len(rows) else "no results", i)
            fig.update_xaxes(showticklabels=False, **where)
            continue
        unit = explore.choose_unit(metric, float(measured[metric.column].max()))
        for method, group in measured.groupby("method", sort=False):
            color = colors.get(method, "#7f7f7f")
            label = explore.method_label(method)
            records = group.to_dict("records")
            fig.add_trace(go.Scatter(
                x=group[metric.column] / unit.scale, y=group["test_acc"], mode="markers", name=label,
                legendgroup=method, showlegend=method not in shown,
                marker=dict(color=color, size=9, opacity=0.85, line=dict(width=0.5, color="white"),
                            symbol=[MODE_SYMBOLS.get(m, "circle") for m in group["mode"]]),
                hovertext=[hover_text(row, metric) for row in records], hoverinfo="text"), **where)
            shown.add(method)
            front = explore.pareto_front(group, metric.column)
            if len(front) > 1:
                fig.add_trace(go.Scatter(
                    x=front[metric.column] / unit.scale, y=front["test_acc"], mode="lines",
                    line=dict(color=color, width=2, shape="hv"), legendgroup=method,
                    showlegend=False, hoverinfo="skip"), **where)
        if budget_metric is not None and budget is not None and metric.key == budget_metric.key:
            fig.add_vline(x=budget / unit.scale, line=dict(color=BUDGET_COLOR, dash="dash", width=1.5),
                          annotation_text=f"budget {explore.format_quantity(budget, metric, unit)}",
                          annotation_position="top left", annotation_font_size=11, **where)
        if best is not None and explore.present(best.get(metric.column)):
            fig.add_trace(go.Scatter(
                x=[best[metric.column] / unit.scale], y=[best["test_acc"]], mode="markers",
                name="best under budget", legendgroup="best", showlegend="best" not in shown,
                marker=dict(size=20, color="rgba(0,0,0,0)", line=dict(color=BEST_COLOR, width=3)),
                hovertext=[hover_text(best, metric)], hoverinfo="text"), **where)
            shown.add("best")
        values = measured[metric.column]
        log = values.min() > 0 and values.max() / values.min() > 30
        fig.update_xaxes(title_text=f"{metric.label} ({unit.name})", type="log" if log else "linear",
                         rangemode="tozero" if not log else "normal", **where)
    for r in range(nrows):
        fig.update_yaxes(title_text="test accuracy (%)", row=r + 1, col=1)
    fig.update_layout(height=height or 330 * nrows + 40, margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", yanchor="bottom", y=1.06, x=0),
                      hoverlabel=dict(align="left"), font=_FONT, template="plotly_white")
    return fig


def _note(fig: go.Figure, text: str, panel: int) -> None:
    suffix = "" if panel == 0 else str(panel + 1)
    fig.add_annotation(text=text, xref=f"x{suffix} domain", yref=f"y{suffix} domain", x=0.5, y=0.5,
                       showarrow=False, font=dict(size=14, color="#888888"))


def layer_shares_figure(layers: pd.DataFrame) -> go.Figure:
    """Each layer's share of the parameters, MACs and memory, as grouped bars."""
    fig = go.Figure()
    for column, name, color in (("params_share", "parameters", "#1f77b4"),
                                ("macs_share", "MACs", "#ff7f0e"),
                                ("memory_share", "memory", "#2ca02c")):
        fig.add_trace(go.Bar(x=layers["name"], y=layers[column] * 100, name=name, marker_color=color,
                             hovertemplate="%{x}: %{y:.1f}% of " + name + "<extra></extra>"))
    fig.update_layout(barmode="group", height=380, yaxis_title="share of the model (%)",
                      xaxis_tickangle=-60, margin=dict(l=10, r=10, t=30, b=10),
                      legend=dict(orientation="h", y=1.1, x=0), font=_FONT, template="plotly_white")
    return fig


def plan_figure(kept: pd.DataFrame) -> go.Figure:
    """Fraction of filters kept per layer, one bar colour per mode (PA/FA/MA).
    `kept` has columns layer, mode, kept, original."""
    fig = go.Figure()
    for mode, color in zip(explore.MODES, ("#1f77b4", "#ff7f0e", "#2ca02c")):
        part = kept[kept["mode"] == mode]
        if part.empty:
            continue
        fig.add_trace(go.Bar(
            x=part["layer"], y=part["kept"] / part["original"] * 100, name=mode, marker_color=color,
            customdata=part[["kept", "original"]].to_numpy(),
            hovertemplate="%{x}: keeps %{customdata[0]} of %{customdata[1]} (%{y:.0f}%)<extra>" + mode + "</extra>"))
    fig.update_layout(barmode="group", height=380, yaxis=dict(title="filters kept (%)", range=[0, 105]),
                      xaxis_tickangle=-60, margin=dict(l=10, r=10, t=30, b=10),
                      legend=dict(orientation="h", y=1.1, x=0), font=_FONT, template="plotly_white")
    return fig


def history_figure(history: list[dict[str, float]]) -> go.Figure:
    """Loss per epoch (and validation accuracy where measured) of a quick run."""
    frame = pd.DataFrame(history)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=frame["epoch"], y=frame["loss"], name="train loss", mode="lines+markers"))
    if "val_acc" in frame:
        fig.add_trace(go.Scatter(x=frame["epoch"], y=frame["val_acc"], name="val accuracy (%)",
                                 mode="lines+markers"), secondary_y=True)
    fig.update_layout(height=260, margin=dict(l=10, r=10, t=30, b=10), font=_FONT, template="plotly_white")
    return fig
