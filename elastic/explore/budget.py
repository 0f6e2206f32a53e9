"""Pareto fronts, the best configuration under a budget, and a row's reductions against its baseline."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from elastic.explore.devices import Device, device_fit
from elastic.explore.table import UNRECORDED, describe, schedule_of
from elastic.explore.units import Metric, NOT_MEASURED, as_shown, format_quantity, present

def pareto_front(rows: pd.DataFrame, x: str, y: str = "test_acc") -> pd.DataFrame:
    """The rows no other row beats: none has x at most as large and y at least as
    large with one of them strictly better. Sorted by x; rows missing x or y are
    left out. Of exact duplicates, the first row (by run_id) is kept."""
    valid = rows.dropna(subset=[x, y])
    return valid.iloc[front_indices(valid[x].to_numpy(float), valid[y].to_numpy(float), valid["run_id"].to_numpy())]


def front_indices(xs: np.ndarray, ys: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Positions of the Pareto front (lower x, higher y) in order of x; points
    with NaN are never on it; of exact duplicates the smallest id is kept."""
    ok = np.flatnonzero(~(np.isnan(xs) | np.isnan(ys)))
    order = ok[np.lexsort((ids[ok], -ys[ok], xs[ok]))]     # by x, then best y, then id
    ordered = ys[order]
    best_before = np.maximum.accumulate(np.concatenate([[-np.inf], ordered[:-1]]))
    return order[ordered > best_before]


@dataclass(frozen=True)
class Pick:
    """The best configuration under a budget, and what the decision saw."""
    row: dict[str, Any] | None
    metric: Metric
    budget: float
    considered: int            # rows with the budget metric measured
    under_budget: int
    fitting: int               # under the budget and fitting the device
    unmeasured: int            # rows without the metric (latency not measured yet)
    smallest: dict[str, Any] | None   # the row needing the least of the metric
    device: "Device | None" = None
    precision: str = "int8"

    @property
    def chosen_by(self) -> str:
        """How the row was chosen, for the card ("" when nothing was)."""
        if self.row is None:
            return ""
        if present(self.row.get("val_acc")):
            return (f"by validation accuracy ({self.row['val_acc']:.2f}%, on a split held out of "
                    f"the training data); the accuracy shown is on the test split")
        return "by test accuracy, as this run recorded no validation accuracy"

    @property
    def reason(self) -> str:
        """Why nothing was picked ("" when something was)."""
        if self.row is not None:
            return ""
        if self.considered == 0:
            if self.unmeasured:
                return f"{self.metric.label}: {NOT_MEASURED} for any configuration here."
            return "No results for this selection yet."
        if self.under_budget == 0:
            need = format_quantity(self.smallest[self.metric.column], self.metric)
            return (f"The budget of {format_quantity(self.budget, self.metric)} is below every configuration: "
                    f"the smallest needs {need} ({describe(self.smallest)}). Raise the budget.")
        return (f"{self.under_budget} configuration(s) are under the budget, but none fits the "
                f"{self.device.name if self.device else 'device'} at {self.precision}.")


BUDGET_TOLERANCE = 1e-9    # relative: a row at exactly the budget is never lost to float rounding


def best_under_budget(rows: pd.DataFrame, metric: Metric, budget: float, *,
                      device: "Device | None" = None, precision: str = "int8") -> Pick:
    """The row with the best validation accuracy whose `metric` is at most `budget`
    (and that fits `device` at `precision`, if one is given): the choice is made on
    the validation split, and the card reports the row's test accuracy. Rows that
    recorded no validation accuracy rank after those that did, by test accuracy.
    Ties on validation accuracy go to the lower cost (the metric, then MACs), then
    the run_id, never to the better test accuracy, so the test split plays no part
    in the choice and the choice never depends on row order. A configuration at
    exactly the budget is under it: its cost is compared as the page shows it
    (three significant digits, so a 40.8 M budget takes the network shown as
    40.8 M MACs), with a relative tolerance for float rounding."""
    # On a few numpy columns, and only the chosen rows become dicts: a slider
    # move runs this, and filtering or sorting the whole frame costs ten times more.
    cost = rows[metric.column].to_numpy(dtype=float, na_value=np.nan)
    test = rows["test_acc"].to_numpy(dtype=float, na_value=np.nan)
    val = (rows["val_acc"].to_numpy(dtype=float, na_value=np.nan) if "val_acc" in rows
           else np.full(len(rows), np.nan))
    macs = rows["macs"].to_numpy(dtype=float, na_value=np.nan)
    run_ids = rows["run_id"].astype(str).to_numpy(dtype=str)
    measured = ~(np.isnan(cost) | np.isnan(test))
    under = measured & (as_shown(pd.Series(cost)).to_numpy() <= budget * (1 + BUDGET_TOLERANCE))
    fitting = under.copy()
    if device is not None:
        for i in np.flatnonzero(under):
            fitting[i] = device_fit(rows.iloc[i].to_dict(), device)[precision].fits
    smallest = None
    if measured.any():
        order = np.lexsort((run_ids, cost))                 # the last key sorts first
        smallest = rows.iloc[order[measured[order]][0]].to_dict()
    best = None
    if fitting.any():
        no_val = np.isnan(val)
        neg_val = -np.where(no_val, 0.0, val)
        neg_test = -np.where(no_val, test, 0.0)
        order = np.lexsort((run_ids, macs, cost, neg_test, neg_val, no_val))
        best = rows.iloc[order[fitting[order]][0]].to_dict()
    return Pick(best, metric, float(budget), int(measured.sum()), int(under.sum()), int(fitting.sum()),
                len(rows) - int(measured.sum()), smallest, device, precision)


def baseline_for(frame: pd.DataFrame, row: dict[str, Any]) -> dict[str, Any] | None:
    """The baseline a row is compared with: same dataset and architecture, the
    row's training schedule first, real data before synthetic, the row's own
    precision (a bf16 row against the bf16 baseline), then the most epochs, then
    the newest."""
    # Ranked on numpy columns and only the chosen row taken (the card runs this on every slider move).
    index = np.flatnonzero(((frame["dataset"] == row["dataset"]) & (frame["arch"] == row["arch"])
                            & (frame["method"] == "baseline")).to_numpy(dtype=bool))
    if not len(index):
        return None
    rows = frame.iloc[index]
    own = row.get("schedule") or UNRECORDED
    other = (schedule_of(rows) != own).to_numpy(dtype=bool)
    synthetic = (rows["data_source"] == "synthetic").to_numpy(dtype=bool)
    precision = (rows["precision"] != row.get("precision")).to_numpy(dtype=bool)
    neg_epochs = -rows["epochs"].to_numpy(dtype=float, na_value=np.nan)
    # Newest first: the dates' descending rank, ties kept in row order.
    newest = -pd.Series(rows["date"].astype(str).to_numpy()).rank(method="dense").to_numpy()
    order = np.lexsort((np.arange(len(index)), newest, neg_epochs, precision, synthetic, other))
    return frame.iloc[index[order[0]]].to_dict()


def reductions(row: dict[str, Any], baseline: dict[str, Any]) -> dict[str, float]:
    """Fraction of the baseline's parameters, MACs and fp32 peak memory removed
    (0.6 = 60% smaller; negative if larger), and the accuracy change in points."""
    out = {}
    for key, column in (("params", "params"), ("macs", "macs"), ("memory", "peak_mem_fp32")):
        base = baseline.get(column)
        out[key] = 1 - row[column] / base if present(base) and base else math.nan
    out["accuracy"] = row["test_acc"] - baseline["test_acc"]
    return out
