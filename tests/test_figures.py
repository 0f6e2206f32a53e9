"""The pages' figures: the plotly ones are valid plotly figures (pages hand them to
plotly unchecked, figures.unchecked, so plotly's own validation runs here), and the
Explorer's Vega-Lite panels keep their spec while the budget moves."""
import json
import math

import plotly.graph_objects as go
import pytest

from elastic import explore
from elastic.results import RESULTS_DIR, load_all
from elastic.ui import charts, figures


@pytest.fixture(scope="module")
def rows():
    frame = explore.configurations(explore.prepare(load_all(RESULTS_DIR)[0]))
    return explore.select(frame, dataset="cifar10", arch="resnet20")


@pytest.mark.parametrize("key", [m.key for m in explore.plotted("macs")])
def test_tradeoff_figure_passes_plotly_validation(rows, key):
    metric = explore.METRICS[key]
    budget = float(rows[metric.column].median())
    pick = explore.best_under_budget(rows, metric, budget)
    figure = figures.tradeoff_figure(rows, metric, budget=budget, best=pick.row, legend=False)
    checked = go.Figure(figure)              # raises on any invalid property
    assert checked.layout.shapes[0].x0 == pytest.approx(budget / explore.choose_unit(
        metric, float(rows[metric.column].max())).scale)
    assert any(a.text.startswith("budget ") for a in checked.layout.annotations)
    ring = [t for t in checked.data if t.name == "best under budget"]
    assert len(ring) == 1 and ring[0].y[0] == pytest.approx(pick.row["test_acc"])
    # The unchecked figure is the same figure, property for property.
    assert figures.unchecked(figure).to_plotly_json() == checked.to_plotly_json()


def test_figure_without_measurements_is_valid(rows):
    metric = explore.METRICS["latency_ort"]
    figure = figures.tradeoff_figure(rows.assign(**{metric.column: math.nan}), metric, budget=1.0)
    checked = go.Figure(figure)
    assert [a.text for a in checked.layout.annotations] == [explore.NOT_MEASURED]


# ---- the Explorer's panels (Vega-Lite, elastic.ui.charts) --------------------------------

def _spec_text(chart: dict) -> str:
    return json.dumps({k: v for k, v in chart.items() if k != "datasets"}, sort_keys=True)


@pytest.mark.parametrize("key", [m.key for m in explore.plotted("macs")])
def test_a_budget_move_changes_only_the_budget_and_best_datasets(rows, key):
    metric = explore.METRICS[key]
    low, high = float(rows[metric.column].min()) * 1.01, float(rows[metric.column].quantile(0.9))
    charts_at = {}
    for budget in (low, high):
        pick = explore.best_under_budget(rows, metric, budget)
        charts_at[budget] = (charts.tradeoff_chart(rows, metric, budget=budget, best=pick.row), pick)
    (a, pick_a), (b, pick_b) = charts_at[low], charts_at[high]
    assert _spec_text(a) == _spec_text(b)              # the browser updates the view in place
    for name in ("points", "fronts"):
        assert a["datasets"][name].equals(b["datasets"][name])
    unit = explore.choose_unit(metric, float(rows[metric.column].max()))
    scale = unit.scale
    for chart, budget, pick in ((a, low, pick_a), (b, high, pick_b)):
        line = chart["datasets"]["budget"]
        assert line["x"].tolist() == pytest.approx([budget / scale])
        assert line["label"].iloc[0] == f"budget {explore.format_quantity(budget, metric, unit)}"
        ring = chart["datasets"]["best"]
        assert ring["y"].tolist() == pytest.approx([pick.row["test_acc"]])
        assert ring["x"].tolist() == pytest.approx([pick.row[metric.column] / scale])
        # The label sits inside the plot on the side with room: right of a line in the axis's left half.
        half = float(rows[metric.column].max()) / 2
        assert line["side"].iloc[0] == ("left" if budget < half else "right")


def test_every_configuration_is_a_point_and_the_baseline_is_drawn_last(rows):
    metric = explore.METRICS["macs"]
    chart = charts.tradeoff_chart(rows, metric)
    points = chart["datasets"]["points"]
    assert len(points) == len(rows) and points["method"].iloc[-1] == "baseline"
    assert chart["datasets"]["budget"].empty and chart["datasets"]["best"].empty     # no budget: nothing drawn
    complexity = points[points["method"] == "complexity"]
    assert set(complexity["symbol"]) <= {"square", "diamond", "triangle-up"}
    assert set(points[points["method"] != "complexity"]["symbol"]) == {"circle"}


def test_the_accuracy_axis_has_short_ticks_and_room_around_a_single_configuration(rows):
    metric = explore.METRICS["macs"]
    one = charts.tradeoff_chart(rows.head(1).assign(test_acc=76.382166), metric)
    y = one["encoding"]["y"]
    assert y["axis"]["format"] == ".4~g" and y["scale"]["domain"] == pytest.approx([75.882166, 76.882166])
    spread = charts.tradeoff_chart(rows, metric)["encoding"]["y"]
    assert "domain" not in spread["scale"]        # several points a few points apart: the data's own range


def test_chart_without_measurements_says_so(rows):
    metric = explore.METRICS["latency_ort"]
    chart = charts.tradeoff_chart(rows.assign(**{metric.column: math.nan}), metric, budget=1.0)
    assert chart["datasets"]["note"]["text"].tolist() == [explore.NOT_MEASURED]
