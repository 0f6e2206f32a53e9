"""The results table for exploring: prepared columns, selections, labels and how each row was made."""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import pandas as pd

from elastic.explore.units import present
from elastic.identity import parse, rounding
from elastic.methods import METHODS, applies

MODE_METRIC = {"PA": "params", "FA": "macs", "MA": "memory"}   # what each mode's target is a fraction of
ALL_ARCHS = "all"          # the architecture choice that compares every architecture



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
    """Registered methods with no rows for this dataset and architecture that
    could have some (`not_applicable` leaves out the rest): shown as "not yet
    run", never filled in."""
    present = set(select(frame, dataset=dataset, arch=arch)["method"])
    return [name for name in METHODS.names() if name not in present and name not in not_applicable(arch)]


def not_applicable(arch: str) -> list[str]:
    """Registered methods that cannot run on this architecture (block pruning on
    a network without residual blocks); none for every architecture at once."""
    if arch == ALL_ARCHS:
        return []
    return [name for name in METHODS.names() if not applies(name, arch)]


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
    rows only), target, step (block pruning) or level (elastic), the multiple
    the widths were rounded to (when above 1), architecture, epochs, and the
    arithmetic when it is not fp32 (a bf16 run of the same command is another
    network). The unpruned network is "Baseline" whichever
    run measured it."""
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
        if (multiple := rounding(str(row.get("run_id", "")))) > 1:
            parts.append(f"widths rounded to {multiple}")
    parts.append(row["arch"])
    if present(row.get("epochs")):
        parts.append(epochs_text(row["epochs"]))
    if row.get("precision") and row["precision"] != "fp32":
        parts.append(str(row["precision"]))
    return " · ".join(parts)


def measured_table(frame: pd.DataFrame, *, dataset: str, arch: str) -> pd.DataFrame:
    """The measured rows of one architecture on one dataset as a table to read
    or print: the methods in registry order (the baseline first), each one's
    rows by mode, target, run and step or level; accuracy in %, MACs in millions, parameters in
    thousands, latency in ms (batch 1, one thread; empty where not measured).
    `frame` is prepared (`prepare`)."""
    rows = select(frame, dataset=dataset, arch=arch)
    order = {name: i for i, name in enumerate(METHODS.names())}
    rows = rows.assign(_method=rows["method"].map(order).fillna(len(order)),
                       _run=[parse(str(r)).run for r in rows["run_id"]],      # step 2 before step 10
                       _level=pd.to_numeric(rows["level"], errors="coerce") if "level" in rows else 0.0)
    rows = rows.sort_values(["_method", "mode", "target", "_run", "_level"], kind="stable")

    def number(value: float, digits: int) -> str:
        return f"{value:.{digits}f}" if present(value) else ""

    table = pd.DataFrame({
        "configuration": [describe(r) for r in rows.to_dict("records")],
        "MACs (M)": [number(v / 1e6, 1) for v in rows["macs"]],
        "params (K)": [number(v / 1e3, 0) for v in rows["params"]],
        "val acc (%)": [number(v, 2) for v in rows["val_acc"]],
        "test acc (%)": [number(v, 2) for v in rows["test_acc"]],
        "PyTorch (ms)": [number(v, 2) for v in rows["latency_ms"]],
        "onnxruntime (ms)": [number(v, 2) for v in rows["ort_latency_ms"]],
    })
    return table.reset_index(drop=True)


def markdown(table: pd.DataFrame) -> str:
    """A table of strings as Markdown (GitHub's pipe tables)."""
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


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
    epochs, arithmetic, CPU) with the number of rows, so a short CPU schedule or
    synthetic data is never mistaken for a full result."""
    columns = ["label", "data", "epochs", "precision", "cpu"]
    if rows.empty:
        return pd.DataFrame(columns=[*columns, "rows"])
    table = rows.assign(
        label=rows["label"].replace("", "(no label)"),
        data=rows["data_source"].map(data_kind),
        epochs=rows["epochs"].astype("Int64"),
        precision=rows["precision"].replace("", UNRECORDED),
        cpu=rows["cpu"].replace("", UNRECORDED))
    return (table.groupby(columns, dropna=False).size()
            .rename("rows").reset_index().sort_values("rows", ascending=False, kind="stable")
            .reset_index(drop=True))


def data_kind(source: str) -> str:
    """'archive:/path/cifar10.tar.gz' -> 'archive'; 'synthetic' is called out."""
    if not source:
        return "unknown"
    kind = source.split(":", 1)[0]
    return "synthetic (not real images)" if kind == "synthetic" else kind


PROVENANCE = ["run_id", "command", "seed", "epochs", "precision", "device", "cpu", "commit", "date", "seconds",
              "data_source", "label"]
