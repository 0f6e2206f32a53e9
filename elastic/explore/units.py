"""Metrics and their units: formatting, the budget slider's scale, efficiency, and what counts as an empty cell."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
import pandas as pd


NOT_MEASURED = "not measured yet"



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


def axis_title(metric: Metric, unit: Unit) -> str:
    """An axis title that names the unit once: 'MACs (M)', 'Parameters (K)',
    'Peak memory (fp32, MB)', 'Latency (PyTorch, ms)'."""
    short = unit.name.removesuffix(f" {metric.noun}") if metric.noun else unit.name
    if short == metric.noun:                                  # no prefix: plain MACs or parameters
        return metric.label
    if metric.label.endswith(")"):
        return f"{metric.label[:-1]}, {short})"
    return f"{metric.label} ({short})"


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


def format_quantity(value: float | None, metric: Metric, unit: Unit | None = None, *, noun: bool = True) -> str:
    """`value` (in base units) for a reader: "40.8 M MACs", "272 K params",
    "1.09 MB", "3.2 ms"; "not measured yet" for a missing value. Without the
    `noun` ("14.7 M" for parameters): under a label that names the metric, where
    the long form would not fit (a metric tile a quarter of the page wide)."""
    if not present(value):
        return NOT_MEASURED
    unit = unit or choose_unit(metric, float(value))
    name = unit.name.removesuffix(metric.noun).strip() if metric.noun and not noun else unit.name
    return f"{_significant(float(value) / unit.scale)} {name}".strip()


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



def present(value: Any) -> bool:
    """False for the ways a results cell can be empty: None, NaN, pandas NA, ""."""
    if value is None or value is pd.NA:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    return value != ""
