"""The results schema and the only reads and writes of result tables.

A results table is a CSV file, one row per evaluated configuration (a trained
baseline, a pruned network, one step of block pruning, one level of an elastic
model). Every number in it was measured by the run the row describes; the row
carries the command, seed, epochs, device, commit and date of that run.

Rows are appended with a write-then-rename under a lock, so a killed run never
leaves a half-written file and concurrent workers never lose each other's rows.
"""
from __future__ import annotations

import fcntl
import functools
import io
import json
import math
import os
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from elastic.atomic import replace_atomically
from elastic.errors import BadResults
from elastic.methods import METHODS

SCHEMA_VERSION = 2   # 2: run ids carry a precision-digest tag; precision and cpu columns
RESULTS_DIR = Path(__file__).resolve().parent.parent / "cached_results"


def results_dir() -> Path:
    """Where results are read from: cached_results/, or $ELASTIC_RESULTS_DIR
    (tests and other sweeps use it)."""
    return Path(os.environ.get("ELASTIC_RESULTS_DIR") or RESULTS_DIR)


@dataclass(frozen=True)
class Column:
    name: str
    kind: str          # "str", "int", "float", "json"
    required: bool     # must be present and non-empty in every row
    doc: str


COLUMNS: tuple[Column, ...] = (
    Column("run_id", "str", True, "unique key of the run's settings (elastic.identity); a rerun of the same "
                                  "settings replaces its row, any other setting adds a row"),
    Column("dataset", "str", True, "cifar10, cifar100 or imagenette"),
    Column("arch", "str", True, "registered architecture name"),
    Column("method", "str", True, ", ".join(METHODS.names())),
    Column("mode", "str", False, "PA / FA / MA for complexity pruning, else empty"),
    Column("target", "float", False, "the budget asked for, as a fraction kept of the mode's metric"),
    Column("level", "str", False, "step number (block pruning) or level (elastic), else empty"),
    Column("test_acc", "float", True, "top-1 accuracy on the test split, percent"),
    Column("val_acc", "float", False, "top-1 accuracy on the validation split, percent"),
    Column("acc_before_ft", "float", False, "validation accuracy before fine-tuning, where there is one"),
    Column("params", "int", True, "parameters"),
    Column("macs", "int", True, "multiply-accumulates for one image (FLOPs = 2 x MACs)"),
    Column("weight_bytes", "int", True, "parameter bytes at fp32"),
    Column("peak_act_bytes", "int", True, "peak bytes of live activations in one forward pass, fp32, batch 1"),
    Column("peak_mem_fp32", "int", True, "weights + peak activations at fp32"),
    Column("peak_mem_int8", "int", True, "weights + peak activations at int8"),
    Column("latency_ms", "float", False, "median CPU latency at batch 1, milliseconds"),
    Column("latency_host", "str", False, "the machine the latency was measured on"),
    Column("ort_latency_ms", "float", False, "median latency of the verified ONNX export in onnxruntime on the "
                                             "CPU, batch 1, one thread, milliseconds (measured beside latency_ms)"),
    Column("latency_detail", "json", False, "latency in PyTorch and onnxruntime at batch 1 and 8, one thread and "
                                            "all, measured interleaved: median, p10, p90 (ms) and passes of each"),
    Column("config", "json", True, "architecture config (elastic.models.arch_config) to rebuild the model"),
    Column("details", "json", False, "method-specific record, e.g. removed blocks and every candidate's measured accuracy"),
    Column("recipe", "json", False, "training recipe (elastic.train.Recipe) and method options"),
    Column("epochs", "int", True, "training epochs of this row's network (baseline or fine-tuning)"),
    Column("seed", "int", True, "random seed"),
    Column("device", "str", True, "device the training ran on"),
    Column("precision", "str", True, "arithmetic of the training: fp32, or bf16 (autocast, channels_last)"),
    Column("cpu", "str", True, "the CPU of the machine the run ran on (its model and core count)"),
    Column("commit", "str", True, "git commit of the code that made the row"),
    Column("date", "str", True, "UTC date and time the row was written"),
    Column("seconds", "float", True, "wall-clock seconds of the run"),
    Column("command", "str", True, "the command that reproduces the row"),
    Column("label", "str", False, "a note for readers, e.g. 'short CPU schedule'"),
    Column("schedule", "str", False, "the training schedule the row belongs to, e.g. '12 epochs': its own epochs "
                                     "when trained from scratch, else those of the baseline it started from; "
                                     "the explorer shows one schedule at a time"),
    Column("data_source", "str", False, "where the images came from (archive, torchvision, synthetic)"),
)
COLUMN_NAMES = [c.name for c in COLUMNS]


def provenance() -> dict[str, str]:
    """Commit and date for a new row. The commit is the one checked out when
    this process first asked (`code_commit`), not when the row is written: a
    long run records the code it runs even if the checkout moves on meanwhile."""
    return {"commit": code_commit(), "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


@functools.cache
def code_commit() -> str:
    """The checkout's commit, read once per process (the CLI reads it at start)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return commit or "unknown"


def host_name() -> str:
    """A short description of this machine's CPU, for latency rows."""
    from elastic.precision import cpu_name
    return cpu_name()


def validate_row(row: dict[str, Any], where: str = "row") -> dict[str, Any]:
    """Check one row against the schema; returns it with values coerced to their
    kinds. Raises BadResults naming `where` and the column."""
    unknown = set(row) - set(COLUMN_NAMES)
    if unknown:
        raise BadResults(f"{where}: unknown column(s) {sorted(unknown)}")
    out: dict[str, Any] = {}
    for col in COLUMNS:
        value = row.get(col.name)
        empty = value is None or (isinstance(value, float) and math.isnan(value)) or value == ""
        if empty:
            if col.required:
                raise BadResults(f"{where}: column {col.name!r} is missing ({col.doc})")
            out[col.name] = "" if col.kind in ("str", "json") else None
            continue
        try:
            if col.kind == "int":
                as_float = float(value)
                if not as_float.is_integer():
                    raise ValueError("not a whole number")
                out[col.name] = int(as_float)
            elif col.kind == "float":
                out[col.name] = float(value)
                if not math.isfinite(out[col.name]):
                    raise ValueError("not finite")
            elif col.kind == "json":
                text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
                json.loads(text)
                out[col.name] = text
            else:
                out[col.name] = str(value)
        except (TypeError, ValueError) as err:
            raise BadResults(f"{where}: column {col.name!r} has {value!r}, expected {col.kind} ({err})") from None
    for name in ("test_acc", "val_acc", "acc_before_ft"):
        if out[name] is not None and not 0 <= out[name] <= 100:
            raise BadResults(f"{where}: {name} = {out[name]} is not a percentage")
    for name in POSITIVE:
        if out[name] <= 0:
            raise BadResults(f"{where}: {name} = {out[name]} must be above 0")
    for name in ("latency_ms", "seconds", "epochs"):
        if out[name] is not None and out[name] < 0:
            raise BadResults(f"{where}: {name} = {out[name]} must be 0 or more")
    if out["target"] is not None and not 0 < out["target"] <= 1:
        raise BadResults(f"{where}: target = {out['target']} is not a fraction in (0, 1]")
    for name, known in _known().items():
        if out[name] not in known:
            raise BadResults(f"{where}: {name} {out[name]!r} is not known; known: {', '.join(sorted(known))}")
    return out


POSITIVE = ("params", "macs", "weight_bytes", "peak_act_bytes", "peak_mem_fp32", "peak_mem_int8")


def _known() -> dict[str, set[str]]:
    """The names a row's arch, method and dataset may take (without torch)."""
    from elastic.catalog import ARCH_NAMES, DATASET_NAMES
    return {"arch": set(ARCH_NAMES), "method": set(METHODS.names()), "dataset": set(DATASET_NAMES)}


def read_results(path: Path | str, problems: list[str] | None = None) -> pd.DataFrame:
    """Load and validate one results file. Raises BadResults naming the file and
    the first bad row (rows are numbered as lines of the file); with a list for
    `problems`, bad rows are left out instead and each is named there (the app
    shows the rest of the file)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if b"\x00" in raw or not _text(raw):
            raise BadResults(f"{path}: not a CSV results file (it holds binary data)")
        if raw and not raw.endswith(b"\n"):   # every row this module writes ends with a newline
            raise BadResults(f"{path}: the last row is incomplete (the file ends mid-line, as a write that was "
                             f"cut off leaves it); restore the file or rerun the job that wrote it")
        frame = pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise BadResults(f"{path}: file not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise BadResults(f"{path}: not a readable CSV results file ({str(err).splitlines()[0]})") from None
    records = frame.to_dict("records")
    schema_1 = [c.name for c in COLUMNS if c.required and c.name not in ("precision", "cpu")]
    if "precision" not in frame.columns and all(name in frame.columns for name in schema_1):
        records = migrate_rows(records)
        frame = pd.DataFrame(records, columns=list(records[0]) if records else COLUMN_NAMES)
    missing = [c.name for c in COLUMNS if c.required and c.name not in frame.columns]
    if missing:
        raise BadResults(f"{path}: missing column(s) {missing}; is this a results file?")
    rows, lines = [], []
    for i, record in enumerate(records):
        try:
            rows.append(validate_row(record, f"{path}, line {i + 2}"))
            lines.append(i + 2)
        except BadResults as err:
            if problems is None:
                raise
            problems.append(f"{err}; the row is left out")
    first: dict[str, int] = {}
    for row, line in zip(rows, lines):
        if row["run_id"] in first:
            raise BadResults(f"{path}: run_id {row['run_id']!r} appears twice, on lines {first[row['run_id']]} "
                             f"and {line}; keep one of them")
        first[row["run_id"]] = line
    return _frame(rows)


def _text(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def migrate_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of schema 1 in schema 2: ids with their tag (elastic.identity.migrate),
    precision fp32 (schema 1 trained in bf16 on CUDA only, and no row ran there),
    the CPU from the latency column (measured in the same session), elastic
    checkpoints under their new names. Baselines go first, so that the runs that
    started from them name their new ids."""
    from elastic import identity
    renamed: dict[str, str] = {}
    out = [dict(r) for r in rows]
    for row in sorted(out, key=lambda r: r.get("method") != "baseline"):
        old = row["run_id"]
        if identity.is_current(old):
            continue
        row["run_id"] = identity.migrate(row, renamed)
        renamed[old] = row["run_id"]
        row.setdefault("precision", "fp32")
        host = str(row.get("latency_host") or "").split(";")[0].strip()
        row.setdefault("cpu", host or "not recorded")
        row.setdefault("schedule", identity.migrated_schedule(row))
        details = json.loads(row.get("details") or "{}")
        if isinstance(details, dict) and details.get("checkpoint"):
            shipped = Path(details["checkpoint"])
            details["checkpoint"] = str(shipped.with_name(identity.checkpoint_name(
                identity.parse(row["run_id"]).run)))
            row["details"] = json.dumps(details, sort_keys=True)
    return out


def load_all(folder: Path | str | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Every results file in `folder` (default: `results_dir()`), concatenated,
    and a message for each file that could not be read (those are skipped, the
    rest still load)."""
    frames, problems = [], []
    for path in sorted(Path(folder or results_dir()).glob("*.csv")):
        try:
            frames.append(read_results(path, problems))
        except BadResults as err:
            problems.append(str(err))
    if not frames:
        return _frame([]), problems
    frame = pd.concat(frames, ignore_index=True).drop_duplicates("run_id", keep="last")
    return frame.reset_index(drop=True), problems


def append_row(path: Path | str, row: dict[str, Any]) -> None:
    """Add one validated row (replacing a row with the same run_id) atomically."""
    path = Path(path)
    clean = validate_row(row, f"new row for {path}")
    with _locked(path):
        rows = read_results(path).to_dict("records") if path.is_file() else []
        rows = [r for r in rows if r["run_id"] != clean["run_id"]] + [clean]
        text = _frame(rows).to_csv(index=False)
        replace_atomically(path, lambda f: f.write(text.encode()))


def done_ids(path: Path | str) -> set[str]:
    path = Path(path)
    return set(read_results(path)["run_id"]) if path.is_file() else set()


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=COLUMN_NAMES)
    for col in COLUMNS:
        if col.kind == "int":
            frame[col.name] = frame[col.name].astype("Int64")
        elif col.kind == "float":
            frame[col.name] = frame[col.name].astype("Float64")
    return frame


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def schema_markdown() -> str:
    """The schema as a Markdown table, for cached_results/README.md."""
    lines = ["| column | type | required | meaning |", "|---|---|---|---|"]
    lines += [f"| {c.name} | {c.kind} | {'yes' if c.required else 'no'} | {c.doc} |" for c in COLUMNS]
    return "\n".join(lines)
