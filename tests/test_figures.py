"""The explorer's figures are valid plotly figures: the page hands them to
plotly unchecked (figures.unchecked), so plotly's own validation runs here."""
import math

import plotly.graph_objects as go
import pytest

from elastic import explore
from elastic.results import RESULTS_DIR, load_all
from elastic.ui import figures


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
