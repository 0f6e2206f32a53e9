"""The logic behind the explorer: metrics and their units, Pareto fronts, the best
configuration under a budget, device presets and whether a configuration fits one.

Pure: result tables (as `elastic.results.load_all` returns them) go in, tables,
rows and text come out. No Streamlit, no torch, so the first page loads fast and
every rule here is tested on its own.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from elastic.methods import METHODS

DEVICES_FILE = Path(__file__).resolve().parent / "devices.json"
CLAIMS_FILE = Path(__file__).resolve().parent / "claims.json"
MODES = ("PA", "FA", "MA")
MODE_METRIC = {"PA": "params", "FA": "macs", "MA": "memory"}   # what each mode's target is a fraction of
PRECISIONS = ("int8", "fp32")
ALL_ARCHS = "all"          # the architecture choice that compares every architecture
NOT_MEASURED = "not measured yet"


# ---- metrics and units ------------------------------------------------------------

@dataclass(frozen=True)
class Unit:
    name: str          # what the user reads after a number, e.g. "M MACs", "KB"
    scale: float       # base units (MACs, parameters, bytes, ms) in one of these


@dataclass(frozen=True)
class Metric:
    key: str
    column: str        # the results column holding the measurement
    label: str
    kind: str          # "count", "bytes" or "ms": how to pick units
    noun: str = ""     # said after count prefixes: "MACs", "params"


METRICS: dict[str, Metric] = {m.key: m for m in (
    Metric("macs", "macs", "MACs", "count", "MACs"),
    Metric("params", "params", "Parameters", "count", "params"),
    Metric("memory", "peak_mem_fp32", "Peak memory (fp32)", "bytes"),
    Metric("memory_int8", "peak_mem_int8", "Peak memory (int8)", "bytes"),
    Metric("latency", "latency_ms", "Latency (PyTorch)", "ms"),        # both: CPU, batch 1, one thread
    Metric("latency_ort", "ort_latency_ms", "Latency (onnxruntime)", "ms"),
)}
# The four resources every configuration is plotted against (memory at fp32 unless
# the budget is on int8 memory; latency in PyTorch unless the budget is on onnxruntime).
PLOTTED = ("macs", "params", "memory", "latency")
# Speed-up / MAC ratio under which a configuration is flagged: its MAC cut buys little speed.
INEFFICIENT_BELOW = 0.7


def plotted(budget_key: str) -> list[Metric]:
    """The four plotted metrics for a budget on `budget_key`: the budget's own
    variant of memory (fp32 / int8) and latency (PyTorch / onnxruntime)."""
    swap = {"memory_int8": "memory", "latency_ort": "latency"}
    return [METRICS[budget_key if swap.get(budget_key) == key else key] for key in PLOTTED]


def efficiency(row: dict[str, Any], baseline: dict[str, Any] | None, column: str = "ort_latency_ms") -> float | None:
    """Measured speed-up over the baseline divided by the MAC ratio (1.0: the
    latency falls in proportion to the MACs; below INEFFICIENT_BELOW the cut buys
    little speed), in the runtime of `column`; None where a figure is missing or
    the row is the baseline's size."""
    if baseline is None or row.get("run_id") == baseline.get("run_id"):
        return None
    values = [row.get(column), baseline.get(column), row.get("macs"), baseline.get("macs")]
    if not all(present(v) and v > 0 for v in values) or row["macs"] >= baseline["macs"]:
        return None
    return (baseline[column] / row[column]) / (baseline["macs"] / row["macs"])

_COUNT_PREFIXES = (("", 1.0), ("K", 1e3), ("M", 1e6), ("G", 1e9))
# Binary kilobytes, as microcontroller datasheets count SRAM and flash.
_BYTE_UNITS = (("B", 1.0), ("KB", 1024.0), ("MB", 1024.0 ** 2), ("GB", 1024.0 ** 3))


def choose_unit(metric: Metric, value: float) -> Unit:
    """The largest unit in which `value` is at least 1 (K params for 270,000
    parameters, M MACs for 41 million, MB for 1.2 million bytes)."""
    if metric.kind == "ms":
        return Unit("ms", 1.0)
    ladder = _BYTE_UNITS if metric.kind == "bytes" else _COUNT_PREFIXES
    chosen = ladder[0]
    for step in ladder:
        if abs(value) >= step[1]:
            chosen = step
    prefix, scale = chosen
    if metric.kind == "bytes":
        return Unit(prefix, scale)
    return Unit(f"{prefix} {metric.noun}".strip(), scale)


def format_quantity(value: float | None, metric: Metric, unit: Unit | None = None) -> str:
    """`value` (in base units) for a reader: "40.8 M MACs", "272 K params",
    "1.09 MB", "3.2 ms"; "not measured yet" for a missing value."""
    if not present(value):
        return NOT_MEASURED
    unit = unit or choose_unit(metric, float(value))
    return f"{_significant(float(value) / unit.scale)} {unit.name}"


def format_bytes(value: float) -> str:
    return format_quantity(value, METRICS["memory"])


def as_shown(values: pd.Series, digits: int = 3) -> pd.Series:
    """Values rounded to `digits` significant digits, as format_quantity shows
    them (40,813,184 -> 40,800,000); zero and NaN stay as they are."""
    x = values.astype(float)
    magnitude = np.floor(np.log10(np.abs(x.where(x != 0, 1.0))))
    scale = 10.0 ** (magnitude - digits + 1)
    return (x / scale).round() * scale


def _significant(x: float, digits: int = 3) -> str:
    """Three significant digits without scientific notation: 40.8, 272, 1.09, 0.5."""
    if x == 0:
        return "0"
    decimals = max(digits - 1 - int(math.floor(math.log10(abs(x)))), 0)
    text = f"{x:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(frozen=True)
class SliderSpec:
    """A budget slider in human units: from 0 to a round number above the largest
    configuration, in 100 to 250 round steps."""
    unit: Unit
    low: float
    high: float
    step: float

    def to_base(self, value: float) -> float:
        return value * self.unit.scale

    def from_base(self, value: float) -> float:
        """A budget in base units as a slider position: rounded down to a step (a
        shared budget never lets in more than it said) and clamped to the range."""
        steps = math.floor(value / self.unit.scale / self.step + 1e-9)
        return float(min(max(steps * self.step, self.low), self.high))

    @property
    def format(self) -> str:
        decimals = max(0, -int(math.floor(math.log10(self.step))))
        return f"%.{decimals}f"


def slider_spec(metric: Metric, values: Iterable[float]) -> SliderSpec | None:
    """The slider for budgets on `metric` over these measured values (base
    units); None when none is measured."""
    finite = [float(v) for v in values if present(v) and math.isfinite(float(v))]
    if not finite:
        return None
    largest = max(finite)
    unit = choose_unit(metric, largest)
    top = largest / unit.scale * 1.05
    step = _nice_below(top / 100)
    high = math.ceil(top / step) * step
    return SliderSpec(unit, 0.0, float(round(high, 10)), step)


def _nice_below(x: float) -> float:
    """The largest of 1, 2 or 5 times a power of ten that is at most x."""
    if x <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(x))
    factor = max(f for f in (1, 2, 5) if f * power <= x * (1 + 1e-9))
    return float(round(factor * power, 12))


def plain_number(value: float) -> str:
    """Six significant digits without an exponent, for URLs: 21200000, 0.35."""
    return np.format_float_positional(value, precision=6, unique=False, fractional=False, trim="-")


def parse_number(text: Any) -> float | None:
    """A number from a query parameter, or None for anything else."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


# ---- what the user chose, and the URL that shares it ---------------------------------

@dataclass(frozen=True)
class Choices:
    """The explorer's view. Empty strings and None mean "not chosen yet": the page
    fills in defaults from the data."""
    dataset: str = ""
    arch: str = ""
    methods: tuple[str, ...] | None = None    # None: every method that has rows
    modes: tuple[str, ...] = MODES
    metric: str = "macs"
    budget: float | None = None               # in base units of `metric`; None: no limit
    device: str = ""
    precision: str = "int8"
    schedule: str = ""                        # "": the one covering the most architectures

    def to_query(self) -> dict[str, str]:
        """Query parameters for a shareable URL (only what was chosen)."""
        out = {"dataset": self.dataset, "arch": self.arch, "metric": self.metric,
               "budget": "" if self.budget is None else plain_number(self.budget),
               "methods": "" if self.methods is None else ",".join(self.methods),
               "modes": "" if self.modes == MODES else ",".join(self.modes),
               "device": self.device, "precision": "" if self.precision == "int8" else self.precision,
               "schedule": self.schedule}
        return {k: v for k, v in out.items() if v}

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> "Choices":
        """Choices from query parameters; unknown or malformed values are ignored."""
        def items(key: str) -> tuple[str, ...] | None:
            text = params.get(key, "")
            return tuple(x for x in text.split(",") if x) or None
        metric = params.get("metric", "macs")
        modes = tuple(m for m in (items("modes") or MODES) if m in MODES) or MODES
        precision = params.get("precision", "int8")
        return cls(dataset=params.get("dataset", ""), arch=params.get("arch", ""),
                   methods=items("methods"), modes=modes,
                   metric=metric if metric in METRICS else "macs",
                   budget=_budget(params.get("budget")) if metric in METRICS else None,
                   device=params.get("device", ""),
                   precision=precision if precision in PRECISIONS else "int8",
                   schedule=params.get("schedule", ""))

    def update(self, **changes: Any) -> "Choices":
        """A copy with `changes`; a new metric forgets the budget (its units differ)."""
        if "metric" in changes and changes["metric"] != self.metric and "budget" not in changes:
            changes["budget"] = None
        return replace(self, **changes)


def _budget(text: Any) -> float | None:
    """A budget from a link: a finite number of at least 0, else None (no limit)."""
    value = parse_number(text)
    return value if value is not None and value >= 0 else None


# ---- the results table for exploring ------------------------------------------------

_NUMERIC = ("test_acc", "val_acc", "acc_before_ft", "params", "macs", "weight_bytes", "peak_act_bytes",
            "peak_mem_fp32", "peak_mem_int8", "latency_ms", "ort_latency_ms", "target", "epochs", "seed", "seconds")


def prepare(frame: pd.DataFrame) -> pd.DataFrame:
    """The results with numbers as plain floats (NaN where missing) and text as
    str, so filtering and plotting need no special cases for pandas' NA."""
    out = frame.copy()
    for col in _NUMERIC:
        if col in out:
            out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64")
    for col in out.columns.difference(_NUMERIC):
        out[col] = [str(v) if present(v) else "" for v in out[col]]
    if "level" in out:        # "1.0" from a float column reads as step 1
        out["level"] = [str(int(float(v))) if v.replace(".", "", 1).isdigit() else v for v in out["level"]]
    out["unpruned"] = unpruned(out) if len(out) else pd.Series(dtype=bool)
    return out.reset_index(drop=True)


def unpruned(frame: pd.DataFrame) -> pd.Series:
    """True for rows of a method that hold the unpruned network itself: the same
    parameters and MACs as a baseline row of their dataset and architecture (a
    block-pruning run's step 0, an elastic model at full width). Such a row is
    the baseline: never a method's configuration, its best, or an export entry."""
    base = frame[frame["method"] == "baseline"][["dataset", "arch", "params", "macs"]].drop_duplicates()
    key = pd.MultiIndex.from_frame(frame[["dataset", "arch", "params", "macs"]])
    same = key.isin(pd.MultiIndex.from_frame(base)) if len(base) else np.zeros(len(frame), dtype=bool)
    return pd.Series(same & (frame["method"] != "baseline").to_numpy(), index=frame.index)


def configurations(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows a user chooses among: every baseline and every compressed
    network, without the methods' own rows of the unpruned network."""
    return frame[~frame["unpruned"]] if "unpruned" in frame else frame


def datasets(frame: pd.DataFrame) -> list[str]:
    return sorted(frame["dataset"].unique()) if len(frame) else []


def archs(frame: pd.DataFrame, dataset: str) -> list[str]:
    """Architectures with rows for `dataset`, most rows first."""
    rows = frame[frame["dataset"] == dataset]
    return list(rows["arch"].value_counts(sort=True).index) if len(rows) else []


UNRECORDED = "unrecorded"


def schedule_of(frame: pd.DataFrame) -> pd.Series:
    """Each row's training schedule ('unrecorded' where a file does not say)."""
    column = frame["schedule"] if "schedule" in frame else pd.Series("", index=frame.index)
    return column.where(column != "", UNRECORDED)


def schedules(frame: pd.DataFrame, dataset: str) -> list[str]:
    """The training schedules with rows for `dataset`: the one that covers the
    most architectures first (then the most rows), so the default view compares
    the most networks under one schedule."""
    rows = frame[frame["dataset"] == dataset]
    if rows.empty:
        return []
    counts = pd.DataFrame({"schedule": schedule_of(rows), "arch": rows["arch"]}).groupby("schedule")
    order = sorted(counts.groups, key=lambda s: (-counts.get_group(s)["arch"].nunique(),
                                                 -len(counts.get_group(s)), s))
    return order


def select(frame: pd.DataFrame, *, dataset: str, arch: str = ALL_ARCHS,
           methods: Iterable[str] | None = None, modes: Iterable[str] | None = None,
           schedule: str | None = None) -> pd.DataFrame:
    """Rows of one dataset, one architecture (or all), the chosen methods, the
    chosen complexity modes (rows of other methods always stay) and one training
    schedule (None: every schedule)."""
    keep = frame["dataset"] == dataset
    if schedule is not None:
        keep &= schedule_of(frame) == schedule
    if arch != ALL_ARCHS:
        keep &= frame["arch"] == arch
    if methods is not None:
        keep &= frame["method"].isin(list(methods))
    if modes is not None:        # only complexity-driven rows are told apart by their mode
        keep &= ~frame["method"].map(has_modes).astype(bool) | frame["mode"].isin(list(modes))
    return frame[keep]


def missing_methods(frame: pd.DataFrame, *, dataset: str, arch: str = ALL_ARCHS) -> list[str]:
    """Registered methods with no rows for this dataset and architecture: shown
    as "not yet run", never filled in."""
    present = set(select(frame, dataset=dataset, arch=arch)["method"])
    return [name for name in METHODS.names() if name not in present]


GRID_DATASETS = ("cifar10", "imagenette")     # the datasets `sweep --grid cpu` covers


def run_commands(dataset: str, arch: str) -> list[str]:
    """The commands that make rows for an architecture and dataset that has none:
    its baseline, then (where the CPU grid covers the dataset) every method."""
    commands = [f"python -m elastic train --arch {arch} --dataset {dataset} --epochs 12"]
    if dataset in GRID_DATASETS:
        commands.append(f"python -m elastic sweep --grid cpu --archs {arch}")
    return commands


def method_label(name: str) -> str:
    return METHODS.get(name).label if name in METHODS else name


def describe(row: dict[str, Any]) -> str:
    """One line saying which configuration a row is: method, mode (complexity
    rows only), target, step (block pruning) or level (elastic), architecture,
    epochs. The unpruned network is "Baseline" whichever run measured it."""
    if row.get("unpruned"):
        parts = [f"Baseline (the unpruned network, measured by {method_label(row['method'])})"]
    else:
        parts = [method_label(row["method"])]
        if row.get("mode") and has_modes(row["method"]):
            parts.append(str(row["mode"]))
        if present(row.get("target")):
            parts.append(f"target {row['target']:g}")
        if row.get("level"):
            parts.append(f"{stage_word(row['method'])} {row['level']}")
    parts.append(row["arch"])
    if present(row.get("epochs")):
        parts.append(epochs_text(row["epochs"]))
    return " · ".join(parts)


def has_modes(method: str) -> bool:
    """Whether the method's rows are told apart by a complexity mode (PA/FA/MA)."""
    return method in METHODS and METHODS.get(method).modes


def stage_word(method: str) -> str:
    """What a method's "level" column counts: "step" for block pruning, "level" for elastic."""
    return (METHODS.get(method).stage if method in METHODS else "") or "level"


def epochs_text(epochs: float) -> str:
    return f"{int(epochs)} epoch{'' if int(epochs) == 1 else 's'}"


def how_made(rows: pd.DataFrame) -> pd.DataFrame:
    """How the numbers on screen were made: one line per (label, data source,
    epochs) with the number of rows, so a short CPU schedule or synthetic data is
    never mistaken for a full result."""
    if rows.empty:
        return pd.DataFrame(columns=["label", "data", "epochs", "rows"])
    table = rows.assign(
        label=rows["label"].replace("", "(no label)"),
        data=rows["data_source"].map(data_kind),
        epochs=rows["epochs"].astype("Int64"))
    return (table.groupby(["label", "data", "epochs"], dropna=False).size()
            .rename("rows").reset_index().sort_values("rows", ascending=False, kind="stable")
            .reset_index(drop=True))


def data_kind(source: str) -> str:
    """'archive:/path/cifar10.tar.gz' -> 'archive'; 'synthetic' is called out."""
    if not source:
        return "unknown"
    kind = source.split(":", 1)[0]
    return "synthetic (not real images)" if kind == "synthetic" else kind


PROVENANCE = ["run_id", "command", "seed", "epochs", "device", "commit", "date", "seconds", "data_source", "label"]


# ---- Pareto fronts and the best configuration under a budget -----------------------

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
    row's training schedule first, real data before synthetic, then the most
    epochs, then the newest."""
    # Ranked on numpy columns and only the chosen row taken (the card runs this on every slider move).
    index = np.flatnonzero(((frame["dataset"] == row["dataset"]) & (frame["arch"] == row["arch"])
                            & (frame["method"] == "baseline")).to_numpy(dtype=bool))
    if not len(index):
        return None
    rows = frame.iloc[index]
    own = row.get("schedule") or UNRECORDED
    other = (schedule_of(rows) != own).to_numpy(dtype=bool)
    synthetic = (rows["data_source"] == "synthetic").to_numpy(dtype=bool)
    neg_epochs = -rows["epochs"].to_numpy(dtype=float, na_value=np.nan)
    # Newest first: the dates' descending rank, ties kept in row order.
    newest = -pd.Series(rows["date"].astype(str).to_numpy()).rank(method="dense").to_numpy()
    order = np.lexsort((np.arange(len(index)), newest, neg_epochs, synthetic, other))
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


# ---- devices -----------------------------------------------------------------------

@dataclass(frozen=True)
class Device:
    """A deployment target. memory_bytes is SRAM (microcontrollers) or RAM
    (boards, shared with the operating system); flash_bytes holds the weights
    (None where weights live on a card or disk that is never the limit)."""
    key: str
    name: str
    kind: str
    memory_bytes: int
    flash_bytes: int | None
    notes: str
    sources: tuple[str, ...]


@dataclass(frozen=True)
class Fit:
    precision: str
    memory_needed: float       # weights + peak activations at this precision
    memory_limit: int
    weights_needed: float      # weight bytes at this precision
    flash_limit: int | None

    @property
    def memory_ok(self) -> bool:
        return self.memory_needed <= self.memory_limit

    @property
    def flash_ok(self) -> bool:
        return self.flash_limit is None or self.weights_needed <= self.flash_limit

    @property
    def fits(self) -> bool:
        return self.memory_ok and self.flash_ok

    def explain(self) -> str:
        """'fits: peak 310 KB <= 512 KB SRAM, weights 266 KB <= 2 MB flash'."""
        mem = (f"peak {format_bytes(self.memory_needed)} {'≤' if self.memory_ok else '>'} "
               f"{format_bytes(self.memory_limit)} memory")
        if self.flash_limit is None:
            flash = f"weights {format_bytes(self.weights_needed)} (no flash limit)"
        else:
            flash = (f"weights {format_bytes(self.weights_needed)} {'≤' if self.flash_ok else '>'} "
                     f"{format_bytes(self.flash_limit)} flash")
        return f"{'fits' if self.fits else 'does not fit'}: {mem}, {flash}"


def device_fit(row: dict[str, Any], device: Device) -> dict[str, Fit]:
    """Whether a configuration fits `device` at int8 and at fp32: peak memory
    (weights + live activations, the conservative case of weights held in RAM)
    against memory, weight bytes against flash."""
    fp32_weights = float(row["weight_bytes"])
    return {
        "int8": Fit("int8", float(row["peak_mem_int8"]), device.memory_bytes, fp32_weights / 4,
                    device.flash_bytes),
        "fp32": Fit("fp32", float(row["peak_mem_fp32"]), device.memory_bytes, fp32_weights,
                    device.flash_bytes),
    }


def parse_devices(data: dict[str, Any]) -> list[Device]:
    """Device presets from the JSON structure of devices.json; raises ValueError
    naming the bad entry."""
    devices = []
    for i, entry in enumerate(data.get("devices", [])):
        try:
            flash = entry.get("flash_bytes")
            device = Device(str(entry["key"]), str(entry["name"]), str(entry["kind"]),
                            int(entry["memory_bytes"]), None if flash is None else int(flash),
                            str(entry.get("notes", "")), tuple(str(s) for s in entry["sources"]))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"device entry {i} is malformed ({err!r})") from None
        if device.memory_bytes <= 0 or not device.sources:
            raise ValueError(f"device {device.key!r} needs a positive memory size and a source")
        devices.append(device)
    keys = [d.key for d in devices]
    if len(set(keys)) != len(keys):
        raise ValueError("device keys must be unique")
    return devices


def load_devices(path: Path = DEVICES_FILE) -> list[Device]:
    return parse_devices(json.loads(Path(path).read_text()))


# ---- papers' claims next to our measurements ---------------------------------------

def load_claims(path: Path = CLAIMS_FILE) -> list[dict[str, Any]]:
    """The papers' headline claims (text, optional numbers, source), as written
    in claims.json. These are the papers' statements, never our measurements."""
    claims = json.loads(Path(path).read_text())["claims"]
    for claim in claims:
        if not claim.get("claim") or not claim.get("source"):
            raise ValueError(f"claim for {claim.get('method')!r} needs a claim text and a source")
    return claims


def measured_summary(frame: pd.DataFrame, rows: pd.DataFrame, max_drop: float = 1.0) -> pd.DataFrame:
    """Per method, what we measured: row count, best test accuracy, and the
    largest parameter and MAC reductions (against each row's baseline) among rows
    that lose at most `max_drop` accuracy points."""
    out = []
    for method, group in rows.groupby("method", sort=False):
        best_params = best_macs = math.nan
        for row in group.to_dict("records"):
            base = baseline_for(frame, row)
            if base is None or row["run_id"] == base["run_id"]:
                continue
            red = reductions(row, base)
            if red["accuracy"] >= -max_drop:
                best_params = np.nanmax([best_params, red["params"]])
                best_macs = np.nanmax([best_macs, red["macs"]])
        out.append({"method": method, "label": method_label(method), "rows": len(group),
                    "best_test_acc": group["test_acc"].max(),
                    "params_reduction": best_params, "macs_reduction": best_macs})
    return pd.DataFrame(out, columns=["method", "label", "rows", "best_test_acc",
                                      "params_reduction", "macs_reduction"])


def present(value: Any) -> bool:
    """False for the ways a results cell can be empty: None, NaN, pandas NA, ""."""
    if value is None or value is pd.NA:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    return value != ""


# ---- query parameters of a shared link -----------------------------------------------

def query_problems(params: Mapping[str, Any], datasets: Iterable[str], archs: Iterable[str], *,
                   where: str = "") -> list[str]:
    """One message per query parameter a page cannot use (it falls back to a
    default for it): a dataset outside `datasets`, an architecture outside
    `archs` (those that take the images of the dataset `where`), an unknown
    budget metric, and a budget that is not a finite number >= 0."""
    def value(key: str) -> str:
        got = params.get(key, "")
        return str(got[0] if isinstance(got, (list, tuple)) and got else got)

    datasets, archs = list(datasets), list(archs)
    problems = []
    dataset, arch, metric, budget = value("dataset"), value("arch"), value("metric"), value("budget")
    if dataset and dataset not in datasets:
        problems.append(f"Dataset {dataset!r} from the link is not available here; choices: {', '.join(datasets)}.")
    if arch and arch not in archs and arch != ALL_ARCHS:
        takes = f" for {where}" if where else ""
        problems.append(f"Architecture {arch!r} from the link is not available{takes}; showing {archs[0]} "
                        f"instead. Choices: {', '.join(archs)}." if archs else
                        f"Architecture {arch!r} from the link is not available{takes}.")
    if metric and metric not in METRICS:
        problems.append(f"Unknown budget metric {metric!r} in the link; known: {', '.join(METRICS)}.")
    if budget and _budget(budget) is None:
        problems.append(f"The budget {budget!r} in the link is not a number of at least 0; it is ignored.")
    return problems
