"""The Explorer's trade-off panels as Vega-Lite specs. Tables in, specs out; no Streamlit.

Why Vega-Lite and not Plotly here: the budget slider moves many times a
second. A Plotly figure that changes is drawn anew in the browser; a Vega-Lite
spec that stays the same while only its named datasets change is updated in
place (Streamlit replaces the datasets in the existing view). So everything the
slider moves (the budget line, its label, the ringed configuration) is data:
the datasets "budget" and "best", always present, empty when there is nothing
to draw. `benchmarks/bench_chart_update.py` measures the difference: slider to
card and four panels p50 209 / p95 317 ms against 643 / 884 ms with Plotly.

Datasets are pandas frames: Streamlit sends them beside the spec, so the spec
text is the same from one slider position to the next.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from elastic import explore
from elastic.explore import Metric
from elastic.ui.figures import BEST_COLOR, BUDGET_COLOR, MODE_SYMBOLS, draw_order, method_colors

_AXIS = {"labelFontSize": 11, "titleFontSize": 12, "titleFontWeight": "normal", "gridColor": "#eeeeee"}
_BUDGET = ("x", "label", "side")
_BEST = ("x", "y", "what", "label", "accuracy", "cost")
# The columns a point reads (explore.describe, _described, _symbol), besides its metric's.
_DESCRIBED = ("run_id", "method", "mode", "target", "level", "arch", "epochs", "precision", "unpruned", "label",
              "test_acc")


def tradeoff_chart(rows: pd.DataFrame, metric: Metric, *, budget: float | None = None,
                   best: dict[str, Any] | None = None, height: int = 300) -> dict[str, Any]:
    """Test accuracy against one metric: every method in its colour (the mode as
    the marker on complexity rows, the baseline drawn last and larger), each
    method's Pareto front as a step line, the budget as a dashed line labelled
    inside the plot on the side with room, the chosen configuration ringed.
    A Vega-Lite spec whose "datasets" hold the data; only "budget" and "best"
    depend on the budget."""
    values = rows[metric.column].to_numpy(dtype=float)
    acc = rows["test_acc"].to_numpy(dtype=float)
    measured = ~(np.isnan(values) | np.isnan(acc))
    base = {"$schema": "https://vega.github.io/schema/vega-lite/v5.json", "height": height,
            "title": {"text": metric.label, "fontSize": 14, "fontWeight": "bold"},
            "usermeta": {"embedOptions": {"renderer": "svg", "actions": False}},
            "config": {"font": "sans-serif", "axis": _AXIS, "view": {"stroke": None}}}
    if not measured.any():
        note = explore.NOT_MEASURED if len(values) else "no results"
        return {**base, "datasets": {"note": pd.DataFrame({"text": [note]})},
                "data": {"name": "note"}, "mark": {"type": "text", "fontSize": 14, "color": "#888888"},
                "encoding": {"text": {"field": "text"}}}
    unit = explore.choose_unit(metric, float(values[measured].max()))
    low, high = values[measured].min() / unit.scale, values[measured].max() / unit.scale
    log = low > 0 and high / low > 30
    x = {"field": "x", "type": "quantitative", "title": explore.axis_title(metric, unit),
         "scale": {"type": "log"} if log else {"zero": True}}
    # Ticks at no more than four digits (76.38, not 76.382166); a span under a point
    # (one configuration) gets a point's room, so the axis is not a single tick.
    y = {"field": "y", "type": "quantitative", "title": "test accuracy (%)", "axis": {"format": ".4~g"},
         "scale": {"zero": False}}
    accs = acc[measured]
    if accs.max() - accs.min() < 1.0:
        middle = float(accs.max() + accs.min()) / 2
        y["scale"]["domain"] = [middle - 0.5, middle + 0.5]
    tooltip = [{"field": "what", "title": "configuration"}, {"field": "label", "title": "label"},
               {"field": "accuracy", "title": "accuracy"}, {"field": "cost", "title": metric.label}]
    points, fronts = _points(rows[measured], metric, unit.scale)
    methods = list(dict.fromkeys(points["method"]))
    colors = method_colors()
    color = {"field": "method", "type": "nominal", "legend": None,
             "scale": {"domain": methods, "range": [colors.get(m, "#7f7f7f") for m in methods]}}
    at = None if budget is None else budget / unit.scale
    budget_rows = pd.DataFrame(columns=list(_BUDGET))
    if at is not None:
        side = "left" if _fraction(at, low, high, log) < 0.5 else "right"
        budget_rows = pd.DataFrame({"x": [at], "label": [f"budget {explore.format_quantity(budget, metric, unit)}"],
                                    "side": [side]})
    best_rows = pd.DataFrame(columns=list(_BEST))
    if best is not None and explore.present(best[metric.column]):
        best_rows = pd.DataFrame([_described(best, metric, unit.scale)])[list(_BEST)]
    label = {"type": "text", "baseline": "top", "y": 4, "fontSize": 11, "color": BUDGET_COLOR}
    return {**base,
            "datasets": {"fronts": fronts, "points": points, "budget": budget_rows, "best": best_rows},
            "encoding": {"x": x, "y": y},
            "layer": [
                {"data": {"name": "fronts"}, "mark": {"type": "line", "interpolate": "step-after", "strokeWidth": 2},
                 "encoding": {"color": color, "detail": {"field": "method"}, "order": {"field": "x"}}},
                {"data": {"name": "points"},
                 "mark": {"type": "point", "filled": True, "opacity": 0.9, "stroke": "white", "strokeWidth": 0.5},
                 "encoding": {"color": color, "tooltip": tooltip,
                              "shape": {"field": "symbol", "type": "nominal", "legend": None, "scale": None},
                              "size": {"field": "size", "type": "quantitative", "legend": None, "scale": None},
                              "order": {"field": "order"}}},
                {"data": {"name": "budget"}, "mark": {"type": "rule", "strokeDash": [5, 4], "strokeWidth": 1.5,
                                                      "color": BUDGET_COLOR},
                 "encoding": {"y": None}},
                {"data": {"name": "budget"}, "transform": [{"filter": "datum.side === 'left'"}],
                 "mark": {**label, "align": "left", "dx": 4}, "encoding": {"y": None, "text": {"field": "label"}}},
                {"data": {"name": "budget"}, "transform": [{"filter": "datum.side === 'right'"}],
                 "mark": {**label, "align": "right", "dx": -4}, "encoding": {"y": None, "text": {"field": "label"}}},
                {"data": {"name": "best"}, "mark": {"type": "point", "filled": False, "size": 380, "strokeWidth": 3,
                                                    "color": BEST_COLOR},
                 "encoding": {"tooltip": tooltip}},
            ]}


def _points(rows: pd.DataFrame, metric: Metric, scale: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per configuration (the baseline last, so it is drawn on top) and
    each method's Pareto front, in the unit's scale."""
    records, fronts = [], []
    # Plain dicts, built from whole columns: pandas' per-row access (to_dict,
    # boolean selections per method) took half of a slider move's server time.
    values = {c: rows[c].tolist() for c in dict.fromkeys((*_DESCRIBED, metric.column)) if c in rows}
    every = [dict(zip(values, row)) for row in zip(*values.values())]
    for order, method in enumerate(draw_order([row["method"] for row in every])):
        part = [row for row in every if row["method"] == method]
        for row in part:
            records.append({**_described(row, metric, scale), "method": method, "order": order,
                            "symbol": _symbol(row), "size": 130 if method == "baseline" else 80})
        cost = np.array([row[metric.column] for row in part], dtype=float)
        acc = np.array([row["test_acc"] for row in part], dtype=float)
        front = explore.front_indices(cost, acc, np.array([row["run_id"] for row in part]))
        if len(front) > 1:
            fronts += [{"method": method, "x": cost[i] / scale, "y": acc[i]} for i in front]
    columns = ["x", "y", "method", "order", "symbol", "size", "what", "label", "accuracy", "cost"]
    return pd.DataFrame(records, columns=columns), pd.DataFrame(fronts, columns=["method", "x", "y"])


def _described(row: dict[str, Any], metric: Metric, scale: float) -> dict[str, Any]:
    return {"x": float(row[metric.column]) / scale, "y": float(row["test_acc"]), "what": explore.describe(row),
            "label": row.get("label") or "no label", "accuracy": f"{row['test_acc']:.2f}%",
            "cost": explore.format_quantity(row[metric.column], metric)}


def _symbol(row: dict[str, Any]) -> str:
    mode = row.get("mode")
    shape = MODE_SYMBOLS.get(mode if isinstance(mode, str) else "", "circle")
    return shape if explore.has_modes(row["method"]) else "circle"


def _fraction(at: float, low: float, high: float, log: bool) -> float:
    """Where `at` lies across the x axis (0 left, 1 right)."""
    if log:
        return (math.log10(max(at, 1e-12)) - math.log10(low)) / max(math.log10(high) - math.log10(low), 1e-12)
    return at / high if high > 0 else 0.0


__all__ = ["tradeoff_chart"]
