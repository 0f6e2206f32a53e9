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


_HOVER_COLUMNS = ("method", "arch", "mode", "target", "level", "epochs", "label", "test_acc")


def hover_texts(rows: dict[str, np.ndarray], metric: Metric, index: Sequence[int]) -> list[str]:
    """What each point is: method, mode, target, level, epochs, label, and its numbers."""
    def opt(value: Any, fmt: str = "{}") -> str:
        return fmt.format(value) if explore.present(value) else "–"
    out = []
    for i in index:
        r = {name: rows[name][i] for name in _HOVER_COLUMNS}
        out.append(f"<b>{explore.method_label(r['method'])}</b> · {r['arch']}<br>"
                   f"mode {opt(r['mode'])} · target {opt(r['target'], '{:g}')} · level {opt(r['level'])}<br>"
                   f"{explore.epochs_text(r['epochs']) if explore.present(r['epochs']) else '–'} · "
                   f"{r['label'] or 'no label'}<br>"
                   f"accuracy {r['test_acc']:.2f}% · {explore.format_quantity(rows[metric.column][i], metric)}")
    return out


def tradeoff_figure(rows: pd.DataFrame, metrics: Sequence[Metric], *,
                    budget_metric: Metric | None = None, budget: float | None = None,
                    best: dict[str, Any] | None = None, columns: int = 2,
                    height: int | None = None) -> dict[str, Any]:
    """Accuracy against each metric, one panel per metric: every method in its
    colour (mode as the marker), each method's Pareto front as a step line, the
    budget as a dashed line on its metric's panel, the chosen configuration
    ringed. A plain plotly figure dict built from numpy arrays, so moving the
    budget slider stays fast."""
    columns = min(columns, len(metrics))
    nrows = math.ceil(len(metrics) / columns)
    gap_x, gap_y = 0.06, 0.16
    width, tall = (1 - gap_x * (columns - 1)) / columns, (1 - gap_y * (nrows - 1)) / nrows
    colors = method_colors()
    cols = {name: rows[name].to_numpy() for name in {*_HOVER_COLUMNS, "run_id", *(m.column for m in metrics)}}
    acc = cols["test_acc"].astype(float)
    methods = cols["method"]
    best_cols = {k: np.array([best[k]]) for k in cols} if best is not None else None
    data: list[dict[str, Any]] = []
    layout: dict[str, Any] = {"annotations": [], "shapes": []}
    shown: set[str] = set()
    for i, metric in enumerate(metrics):
        r, c = divmod(i, columns)
        x, y = ("x", "y") if i == 0 else (f"x{i + 1}", f"y{i + 1}")
        x0, y1 = c * (width + gap_x), 1 - r * (tall + gap_y)
        xaxis: dict[str, Any] = {"domain": [x0, x0 + width], "anchor": y, "zeroline": False}
        yaxis: dict[str, Any] = {"domain": [y1 - tall, y1], "anchor": x, "showticklabels": c == 0}
        if i:
            yaxis["matches"] = "y"
        if c == 0:
            yaxis["title"] = {"text": "test accuracy (%)"}
        layout["annotations"].append(_text(metric.label, f"{x} domain", f"{y} domain", 0.5, 1.0, size=14,
                                           yanchor="bottom", xanchor="center"))
        values = cols[metric.column].astype(float)
        measured = ~(np.isnan(values) | np.isnan(acc))
        if not measured.any():
            layout["annotations"].append(_text(explore.NOT_MEASURED if len(values) else "no results",
                                               f"{x} domain", f"{y} domain", 0.5, 0.5, size=14, color="#888888"))
            xaxis.update(showticklabels=False, showgrid=False, range=[0, 1])
            # An empty trace makes plotly draw this panel's axes, so the note has a place.
            data.append({"type": "scatter", "x": [], "y": [], "xaxis": x, "yaxis": y, "showlegend": False,
                         "hoverinfo": "skip"})
        else:
            unit = explore.choose_unit(metric, float(values[measured].max()))
            for method in dict.fromkeys(methods[measured]):
                index = np.flatnonzero(measured & (methods == method))
                color = colors.get(method, "#7f7f7f")
                data.append({
                    "type": "scatter", "mode": "markers", "xaxis": x, "yaxis": y,
                    "x": (values[index] / unit.scale).tolist(), "y": acc[index].tolist(),
                    "name": explore.method_label(method), "legendgroup": method, "showlegend": method not in shown,
                    "marker": {"color": color, "size": 9, "opacity": 0.85, "line": {"width": 0.5, "color": "white"},
                               "symbol": [MODE_SYMBOLS.get(m, "circle") for m in cols["mode"][index]]},
                    "hovertext": hover_texts(cols, metric, index), "hoverinfo": "text"})
                shown.add(method)
                front = index[explore.front_indices(values[index], acc[index], cols["run_id"][index])]
                if len(front) > 1:
                    data.append({
                        "type": "scatter", "mode": "lines", "xaxis": x, "yaxis": y,
                        "x": (values[front] / unit.scale).tolist(), "y": acc[front].tolist(),
                        "line": {"color": color, "width": 2, "shape": "hv"}, "legendgroup": method,
                        "showlegend": False, "hoverinfo": "skip"})
            if budget_metric is not None and budget is not None and metric.key == budget_metric.key:
                at = budget / unit.scale
                layout["shapes"].append({"type": "line", "xref": x, "yref": f"{y} domain", "x0": at, "x1": at,
                                         "y0": 0, "y1": 1, "line": {"color": BUDGET_COLOR, "dash": "dash",
                                                                     "width": 1.5}})
                layout["annotations"].append(_text(f"budget {explore.format_quantity(budget, metric, unit)}",
                                                   x, f"{y} domain", at, 1.0, size=11, xanchor="right",
                                                   yanchor="top", color=BUDGET_COLOR))
            if best_cols is not None and explore.present(best[metric.column]):
                data.append({
                    "type": "scatter", "mode": "markers", "xaxis": x, "yaxis": y,
                    "x": [best[metric.column] / unit.scale], "y": [best["test_acc"]],
                    "name": "best under budget", "legendgroup": "best", "showlegend": "best" not in shown,
                    "marker": {"size": 20, "color": "rgba(0,0,0,0)", "line": {"color": BEST_COLOR, "width": 3}},
                    "hovertext": hover_texts(best_cols, metric, [0]), "hoverinfo": "text"})
                shown.add("best")
            low, high = values[measured].min(), values[measured].max()
            log = low > 0 and high / low > 30
            xaxis.update(title={"text": f"{metric.label} ({unit.name})"}, type="log" if log else "linear",
                         rangemode="normal" if log else "tozero")
            if log:
                xaxis["dtick"] = 1          # one tick per decade: 0.1, 1, 10

        layout["xaxis" if i == 0 else f"xaxis{i + 1}"] = xaxis
        layout["yaxis" if i == 0 else f"yaxis{i + 1}"] = yaxis
    layout.update(height=height or 330 * nrows + 60, margin={"l": 10, "r": 10, "t": 50, "b": 10},
                  legend={"orientation": "h", "yanchor": "bottom", "y": 1.08, "x": 0},
                  hoverlabel={"align": "left"}, font=_FONT)
    return {"data": data, "layout": layout}


def _text(text: str, xref: str, yref: str, x: float, y: float, *, size: int, color: str | None = None,
          **anchors: str) -> dict[str, Any]:
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
