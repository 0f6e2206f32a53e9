"""Plotly figure builders for the pages. Tables in, figures out; no Streamlit."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
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


_HOVER_COLUMNS = ("method", "arch", "mode", "target", "level", "epochs", "label", "test_acc", "unpruned")


def hover_texts(rows: dict[str, np.ndarray], metric: Metric, index: Sequence[int]) -> list[str]:
    """What each point is, in the words of `explore.describe` (the mode only on
    complexity rows, "step" for block pruning, "level" for elastic), its label
    and its numbers."""
    out = []
    for i in index:
        r = {name: rows[name][i] for name in _HOVER_COLUMNS}
        out.append(f"<b>{explore.describe(r)}</b><br>{r['label'] or 'no label'}<br>"
                   f"accuracy {r['test_acc']:.2f}% · {explore.format_quantity(rows[metric.column][i], metric)}")
    return out


def symbols(methods: np.ndarray, modes: np.ndarray) -> list[str]:
    """The marker of each point: its complexity mode's shape on complexity rows, else a circle."""
    return [MODE_SYMBOLS.get(mode, "circle") if explore.has_modes(method) else "circle"
            for method, mode in zip(methods, modes)]


def draw_order(methods: Sequence[str]) -> list[str]:
    """Methods in the order their points are drawn: the baseline last, so its
    marker is on top of the methods' rows of the same network."""
    return sorted(dict.fromkeys(methods), key=lambda m: m == "baseline")


def tradeoff_figure(rows: pd.DataFrame, metric: Metric, *, budget: float | None = None,
                    best: dict[str, Any] | None = None, legend: bool = True, height: int = 340) -> dict[str, Any]:
    """Test accuracy against one metric: every method in its colour (the mode as
    the marker on complexity rows), each method's Pareto front as a step line,
    the budget as a dashed line with its label inside the plot, the chosen
    configuration ringed. A plain plotly figure dict built from numpy arrays, so
    moving the budget slider stays fast. One figure per metric, so the page can
    lay the panels out in columns that stack on a narrow screen."""
    colors = method_colors()
    cols = {name: rows[name].to_numpy() for name in {*_HOVER_COLUMNS, "run_id", metric.column}}
    acc = cols["test_acc"].astype(float)
    methods = cols["method"]
    values = cols[metric.column].astype(float)
    measured = ~(np.isnan(values) | np.isnan(acc))
    data: list[dict[str, Any]] = []
    layout: dict[str, Any] = {"annotations": [], "shapes": []}
    xaxis: dict[str, Any] = {"zeroline": False}
    yaxis: dict[str, Any] = {"title": {"text": "test accuracy (%)"}}
    if not measured.any():
        layout["annotations"].append(_text(explore.NOT_MEASURED if len(values) else "no results",
                                           "x domain", "y domain", 0.5, 0.5, size=14, color="#888888"))
        xaxis.update(showticklabels=False, showgrid=False, range=[0, 1], title={"text": metric.label})
        # An empty trace makes plotly draw the axes, so the note has a place.
        data.append({"type": "scatter", "x": [], "y": [], "showlegend": False, "hoverinfo": "skip"})
    else:
        unit = explore.choose_unit(metric, float(values[measured].max()))
        for rank, method in enumerate(draw_order(methods[measured])):
            index = np.flatnonzero(measured & (methods == method))
            color = colors.get(method, "#7f7f7f")
            data.append({
                "type": "scatter", "mode": "markers",
                "x": (values[index] / unit.scale).tolist(), "y": acc[index].tolist(),
                "name": explore.method_label(method), "legendgroup": method, "showlegend": legend,
                "legendrank": 0 if method == "baseline" else rank + 1,
                "marker": {"color": color, "size": 11 if method == "baseline" else 9, "opacity": 0.9,
                           "line": {"width": 1.5 if method == "baseline" else 0.5, "color": "white"},
                           "symbol": symbols(methods[index], cols["mode"][index])},
                "hovertext": hover_texts(cols, metric, index), "hoverinfo": "text"})
            front = index[explore.front_indices(values[index], acc[index], cols["run_id"][index])]
            if len(front) > 1:
                data.insert(0, {
                    "type": "scatter", "mode": "lines",
                    "x": (values[front] / unit.scale).tolist(), "y": acc[front].tolist(),
                    "line": {"color": color, "width": 2, "shape": "hv"}, "legendgroup": method,
                    "showlegend": False, "hoverinfo": "skip"})
        low, high = values[measured].min(), values[measured].max()
        log = low > 0 and high / low > 30
        if budget is not None:
            at = budget / unit.scale
            layout["shapes"].append({"type": "line", "xref": "x", "yref": "y domain", "x0": at, "x1": at,
                                     "y0": 0, "y1": 1, "line": {"color": BUDGET_COLOR, "dash": "dash",
                                                                 "width": 1.5}})
            # Inside the plot on the side with room: right of the line in the left half.
            left_half = _fraction(at, low / unit.scale, high / unit.scale, log) < 0.5
            layout["annotations"].append(_text(
                f"budget {explore.format_quantity(budget, metric, unit)}", "x", "y domain", at, 1.0, size=11,
                xanchor="left" if left_half else "right", yanchor="top", color=BUDGET_COLOR,
                xshift=4 if left_half else -4))
        if best is not None and explore.present(best[metric.column]):
            best_cols = {k: np.array([best[k]]) for k in cols}
            data.append({
                "type": "scatter", "mode": "markers",
                "x": [best[metric.column] / unit.scale], "y": [best["test_acc"]],
                "name": "best under budget", "legendgroup": "best", "showlegend": legend, "legendrank": 1000,
                "marker": {"size": 20, "color": "rgba(0,0,0,0)", "line": {"color": BEST_COLOR, "width": 3}},
                "hovertext": hover_texts(best_cols, metric, [0]), "hoverinfo": "text"})
        xaxis.update(title={"text": explore.axis_title(metric, unit)}, type="log" if log else "linear",
                     rangemode="normal" if log else "tozero")
        if log:
            xaxis["dtick"] = 1          # one tick per decade: 0.1, 1, 10
    layout.update(xaxis=xaxis, yaxis=yaxis, height=height, showlegend=legend,
                  title={"text": metric.label, "x": 0.5, "xanchor": "center", "font": {"size": 14}},
                  margin={"l": 10, "r": 10, "t": 40, "b": 10},
                  legend={"orientation": "h", "yanchor": "top", "y": -0.25, "x": 0},
                  hoverlabel={"align": "left"}, font=_FONT)
    return {"data": data, "layout": layout}


def unchecked(figure: dict[str, Any]) -> go.Figure:
    """A plotly Figure of a dict built here, without plotly validating every
    property again (st.plotly_chart validates a dict: two thirds of a slider
    move's plotting time). tests/test_figures.py validates what this module builds."""
    return go.Figure(figure, _validate=False)


def _fraction(at: float, low: float, high: float, log: bool) -> float:
    """Where `at` lies across the x axis (0 left, 1 right), as plotly ranges it."""
    if log:
        return (math.log10(max(at, 1e-12)) - math.log10(low)) / max(math.log10(high) - math.log10(low), 1e-12)
    return at / (high * 1.05) if high > 0 else 0.0


def legend_html(methods: Sequence[str], *, best: bool) -> str:
    """One legend for a row of panels drawn without their own: each method's
    colour, the baseline first."""
    colors = method_colors()
    names = METHODS.names()
    order = sorted(dict.fromkeys(methods), key=lambda m: names.index(m) if m in names else len(names))
    items = [f'<span style="white-space:nowrap;margin-right:1.1em"><span style="color:{colors.get(m, "#7f7f7f")};'
             f'font-size:1.2em">●</span> {explore.method_label(m)}</span>' for m in order]
    if best:
        items.append(f'<span style="white-space:nowrap"><span style="color:{BEST_COLOR};font-size:1.2em">◯</span> '
                     "best under budget</span>")
    return f'<div class="elastic-legend" style="font-size:0.85em;line-height:1.9">{" ".join(items)}</div>'


def _text(text: str, xref: str, yref: str, x: float, y: float, *, size: int, color: str | None = None,
          **anchors: Any) -> dict[str, Any]:
    font: dict[str, Any] = {"size": size}
    if color:
        font["color"] = color
    return {"text": text, "xref": xref, "yref": yref, "x": x, "y": y, "showarrow": False, "font": font,
            **anchors}


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


def quick_run_figure(losses: Sequence[tuple[float, float]], history: Sequence[dict[str, float]],
                     val_before: float) -> go.Figure:
    """A quick run's training loss after every step, and its validation accuracy
    before training and after each epoch, against epochs, both axes titled."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=[x for x, _ in losses], y=[y for _, y in losses], name="training loss",
                             mode="lines", line={"color": "#1f77b4"}))
    epochs = [0.0] + [float(h["epoch"]) for h in history if "val_acc" in h]
    val = [val_before] + [float(h["val_acc"]) for h in history if "val_acc" in h]
    fig.add_trace(go.Scatter(x=epochs, y=val, name="validation accuracy (%)", mode="lines+markers",
                             line={"color": BEST_COLOR}), secondary_y=True)
    fig.update_xaxes(title_text="epoch", rangemode="tozero")
    fig.update_yaxes(title_text="training loss", secondary_y=False, rangemode="tozero")
    fig.update_yaxes(title_text="validation accuracy (%)", secondary_y=True, range=[0, 100], dtick=20, showgrid=False)
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=30, b=10), font=_FONT, template="plotly_white",
                      legend=dict(orientation="h", y=1.12, x=0))
    return fig
