"""Run identity: the one place where run ids are built and taken apart.

A run id names everything that changes a result, so that two different runs never
share a row, a checkpoint or a resume file:

    <readable part>/<precision>-<digest>[/step<N> | /level<N>]

The readable part holds what the explorer groups by: dataset, architecture,
method, mode, target, epochs, seed and the method's own options (as
`cifar10/resnet20/complexity/FA/t0.5/r1/scratch/e12/s0`). The tag after it holds
the arithmetic (`fp32`, `bf16`) and an 8-digit digest of the other settings: batch
size, learning rate, weight decay, train subset, the data the run read, and the
network it started from (the run id of a baseline, or a digest of a foreign
checkpoint file). One run of block pruning or prune-and-grow writes several rows:
its steps or levels share the run and differ in the last part.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_PART = re.compile(r"^(?P<run>.+)/(?P<kind>step|level)(?P<number>\d+)$")
_TAG = re.compile(r"^(fp32|bf16)-[0-9a-f]{8}$")


@dataclass(frozen=True)
class RunId:
    """A run id taken apart: `run` is everything before the step or level."""
    run: str
    kind: str = ""          # "step", "level" or ""
    number: int | None = None

    def __str__(self) -> str:
        return self.run if self.kind == "" else f"{self.run}/{self.kind}{self.number}"


def step(run: str, number: int) -> str:
    """The id of step `number` of a block pruning run."""
    return str(RunId(run, "step", number))


def level(run: str, number: int) -> str:
    """The id of level `number` of an elastic run."""
    return str(RunId(run, "level", number))


def is_level_of(run_id: str, run: str) -> bool:
    """Is `run_id` one of the levels of the elastic run `run`?"""
    part = parse(run_id)
    return part.kind == "level" and part.run == run


def parse(run_id: str) -> RunId:
    match = _PART.match(run_id)
    if match is None:
        return RunId(run_id)
    return RunId(match["run"], match["kind"], int(match["number"]))


def readable(run: str) -> str:
    """A run (id without step or level) without its precision-digest tag."""
    head, _, last = run.rpartition("/")
    return head if _TAG.match(last) else run


def untagged(run_id: str) -> str:
    """A run id without its precision-digest tag, step or level kept:
    'cifar10/resnet20/block/t0.5/ft1/s0/step2'."""
    parsed = parse(run_id)
    return str(RunId(readable(parsed.run), parsed.kind, parsed.number))


_ROUNDING = re.compile(r"^r(\d+)$")


def rounding(run_id: str) -> int:
    """The multiple a run rounded its channel counts to (an `r<N>` after the
    dataset, architecture and method; 1 where it did not round)."""
    options = readable(parse(run_id).run).split("/")[3:]
    found = [int(m[1]) for part in options if (m := _ROUNDING.match(part))]
    return found[0] if found else 1


def on_synthetic(run_id: str) -> bool:
    """True for runs on synthetic images (their readable part ends in /synthetic)."""
    return readable(parse(run_id).run).endswith("/synthetic")


def is_current(run_id: str) -> bool:
    """True for ids of this scheme (a precision-digest tag before the step or level)."""
    return bool(_TAG.match(parse(run_id).run.rsplit("/", 1)[-1]))


def data_kind(source: str) -> str:
    """The part of a data source that changes results: which kind of source and,
    for an archive, its file name (not the folder it sits in on this machine)."""
    kind, _, where = source.partition(":")
    if kind == "archive":
        return f"archive:{Path(where).name}"
    return kind


def settings(*, batch_size: int, lr: float, weight_decay: float, train_subset: int, data_source: str,
             start: str = "", **options: Any) -> dict[str, Any]:
    """Every setting a run's tag covers, with canonical values."""
    return {"batch_size": int(batch_size), "lr": float(lr), "weight_decay": float(weight_decay),
            "train_subset": int(train_subset), "data": data_kind(data_source), "start": start, **options}


def tag(precision: str, run_settings: dict[str, Any]) -> str:
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"a run's precision is fp32 or bf16, not {precision!r}")
    text = json.dumps(run_settings, sort_keys=True, separators=(",", ":"))
    return f"{precision}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def run(readable: str, precision: str, run_settings: dict[str, Any]) -> str:
    """The run id (without a step or level) of `readable` under these settings."""
    return f"{readable}/{tag(precision, run_settings)}"


# ---- the readable part of each method's runs ------------------------------------

def _synthetic(parts: list[str], data_source: str) -> str:
    return "/".join(parts + (["synthetic"] if data_source == "synthetic" else []))


def baseline_name(dataset: str, arch: str, *, epochs: int, seed: int, data_source: str) -> str:
    return _synthetic([dataset, arch, "baseline", f"e{epochs}", f"s{seed}"], data_source)


def pruned_name(dataset: str, arch: str, method: str, *, mode: str, target: float, round_to: int | str,
                step: float | None, min_width: int | None, init: str, epochs: int, seed: int,
                data_source: str) -> str:
    """Complexity-driven and uniform pruning; `step` and `min_width` are given
    only where they differ from the defaults."""
    parts = [dataset, arch, method, mode, f"t{target:g}", f"r{round_to}"]
    if step is not None:
        parts.append(f"step{step:g}")
    if min_width is not None:
        parts.append(f"min{min_width}")
    return _synthetic(parts + [init, f"e{epochs}", f"s{seed}"], data_source)


def block_name(dataset: str, arch: str, method: str, *, target: float, ft_epochs: int, seed: int,
               budget_metric: str, data_source: str) -> str:
    parts = [dataset, arch, method, f"t{target:g}", f"ft{ft_epochs}", f"s{seed}"]
    if budget_metric != "macs":
        parts.append(budget_metric)
    return _synthetic(parts, data_source)


def elastic_name(dataset: str, arch: str, *, joint: bool, epochs: int, core: int, grow: int, seed: int,
                 levels: str, importance: str, data_source: str, round_to: int = 1) -> str:
    """`levels` is '' for the default levels, else e.g. '1-0.75-0.5'; the
    rounding appears only when it is not 1 (so earlier runs keep their ids)."""
    parts = ([dataset, arch, "elastic-joint", f"e{epochs}", f"s{seed}"] if joint
             else [dataset, arch, "elastic", f"c{core}g{grow}", f"s{seed}"])
    if levels:
        parts.append(f"levels{levels}")
    if round_to != 1:
        parts.append(f"r{round_to}")
    if importance != "l2":
        parts.append(importance)
    return _synthetic(parts, data_source)


def start_of(path: Path | str, state: dict[str, Any]) -> str:
    """What a run that starts from the checkpoint at `path` records as its start:
    the run id the checkpoint was saved under, else a digest of the file."""
    recorded = state.get("run_id")
    if isinstance(recorded, str) and recorded:
        return recorded
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    return f"file:{digest}"


def checkpoint_name(run_id: str) -> str:
    return run_id.replace("/", "__") + ".pt"


# ---- ids written before this scheme (schema 1) ----------------------------------

def migrate(row: dict[str, Any], renamed: dict[str, str] | None = None) -> str:
    """The current id of a row written before run ids carried a tag. Its settings
    come from the row itself: recipe, data source and the baseline it started
    from (recorded as a checkpoint path named after the baseline's old id, looked
    up in `renamed`, old id -> new id, when that baseline's row was migrated too).
    Those rows were all trained in fp32 (bf16 was used on CUDA only, and none ran
    there)."""
    old = parse(row["run_id"])
    recipe = json.loads(row.get("recipe") or "{}")
    start_path = _start_path(row)
    start = ""
    if start_path:
        old_start = Path(start_path).name.removesuffix(".pt").replace("__", "/")
        start = (renamed or {}).get(old_start) or migrate_baseline_id(old_start, row)
    options = {"scan_subset": int(recipe.get("scan_subset", 0))} if row["method"].startswith("block") else {}
    new = run(old.run, "fp32", settings(batch_size=recipe.get("batch_size", 256), lr=recipe.get("lr", 0.2),
                                        weight_decay=recipe.get("weight_decay", 5e-4),
                                        train_subset=recipe.get("train_subset", 0),
                                        data_source=row.get("data_source", ""), start=start, **options))
    return str(RunId(new, old.kind, old.number))


def schedule(epochs: int) -> str:
    """The schedule of a run trained from scratch for `epochs` (the `schedule`
    column); runs that start from a trained network take their baseline's."""
    return f"{epochs} epochs"


def migrated_schedule(row: dict[str, Any]) -> str:
    """The schedule of an old row: its own epochs when it was trained from
    scratch, else the epochs in the name of the baseline it started from."""
    start_path = _start_path(row)
    if not start_path:
        return schedule(int(float(row["epochs"])))
    epochs = re.search(r"__e(\d+)__", Path(start_path).name)
    return schedule(int(epochs[1])) if epochs else "unrecorded"


def _start_path(row: dict[str, Any]) -> str:
    """The checkpoint path an old row recorded as the network it started from
    (in its recipe or its details), or "" when it was trained from scratch."""
    recipe = json.loads(row.get("recipe") or "{}")
    details = json.loads(row.get("details") or "{}")
    return recipe.get("baseline") or (details.get("baseline") if isinstance(details, dict) else "") or ""


def migrate_baseline_id(old_id: str, row: dict[str, Any]) -> str:
    """The current id of the baseline an old row started from; the baseline was
    trained with the default recipe on the same data as the row."""
    return run(old_id, "fp32", settings(batch_size=256, lr=0.2, weight_decay=5e-4, train_subset=0,
                                        data_source=row.get("data_source", "")))
