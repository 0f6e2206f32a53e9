"""Shipping trained checkpoints with the repository (cached_results/checkpoints),
so that a fresh clone explores, exports and prunes live from trained weights.

`ship` takes a results row's trained checkpoint (a model checkpoint, or the
elastic checkpoint of a run's levels) from the cache, writes a compact copy
(optionally with its weights stored in half precision), loads that copy back
and evaluates it on the whole test split: it ships only if it reproduces the
accuracy of every row it belongs to. `manifest.json` beside the checkpoints ties
each file to its rows: run ids, recorded test accuracy, storage, size, SHA-256.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd
from torch import Tensor

from elastic.atomic import replace_atomically
from elastic.checkpoints import load_checkpoint, save_checkpoint
from elastic.data import DataSplits
from elastic.errors import ElasticError
from elastic.identity import checkpoint_name, is_level_of, parse
from elastic.train import evaluate

MANIFEST = "manifest.json"
TOLERANCE = 0.05          # percentage points: at most 5 of 10,000 test images may change
HALF = "fp16 weights, fp32 vectors"   # what --half stores (see compact); files shipped before 2026-12-03 say "fp16"


def manifest_path(folder: Path) -> Path:
    return Path(folder) / MANIFEST


def read_manifest(folder: Path) -> dict[str, dict[str, Any]]:
    path = manifest_path(folder)
    return json.loads(path.read_text()) if path.is_file() else {}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def rows_of(run_id: str, frame: pd.DataFrame) -> tuple[str, list[dict[str, Any]]]:
    """The checkpoint's run (the run id it is named after) and the results rows
    it holds: one row for a model checkpoint, every level row for an elastic run
    (given as the run or as one of its level ids)."""
    part = parse(run_id)
    by_id = {str(r["run_id"]): r for r in frame.to_dict("records")}
    if part.kind == "level" or any(is_level_of(k, run_id) for k in by_id):
        run = part.run if part.kind == "level" else run_id
        rows = sorted((r for k, r in by_id.items() if is_level_of(k, run)),
                      key=lambda r: parse(str(r["run_id"])).number)
        return run, rows
    return run_id, [by_id[run_id]] if run_id in by_id else []


def accuracies(path: Path, rows: list[dict[str, Any]], data: DataSplits) -> dict[str, float]:
    """Test accuracy of the checkpoint at `path` for each row (each level of an
    elastic checkpoint), on the whole test split."""
    state = load_checkpoint(path)
    if state.get("format") == "elastic-net":
        from elastic.methods.elastic_net import load_elastic
        model = load_elastic(path)
        return {str(r["run_id"]): evaluate(lambda x, k=parse(str(r["run_id"])).number: model(x, k), data.test,
                                           data.spec) for r in rows}
    from elastic.checkpoints import load_model
    model, _ = load_model(path)
    return {str(rows[0]["run_id"]): evaluate(model, data.test, data.spec)}


def storage(half: bool) -> str:
    return HALF if half else "fp32"


def compact(state: dict[str, Any], half: bool) -> dict[str, Any]:
    """The checkpoint without its training-only parts; with `half`, its
    convolution kernels and weight matrices (every float tensor of two or more
    dimensions, nearly all of the bytes) stored as float16, loading casts them
    back. Vectors (biases, norm scales and running statistics) stay float32:
    rounding them moved a ResNet-20 elastic level by 5 test images, rounding the
    kernels alone by 2."""
    def small(tensors: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {k: v.half() if half and v.is_floating_point() and v.dim() >= 2 else v for k, v in tensors.items()}
    out = {k: v for k, v in state.items() if k not in ("optimizer", "scheduler")}
    key = "state" if state.get("format") == "elastic-net" else "model"
    out[key] = small(state[key])
    out["storage"] = storage(half)
    return out


def ship(run_id: str, frame: pd.DataFrame, data: DataSplits, folder: Path, *, sources: list[Path], half: bool,
         on_line: Callable[[str], None] = print) -> dict[str, Any]:
    """Ship the checkpoint of `run_id` into `folder` (see the module docstring);
    `sources` are the folders searched for it, in order. Returns its manifest
    entry. Raises ElasticError, leaving `folder` as it was, when there is no such
    row or checkpoint, or when the compact copy does not reproduce every row."""
    run, rows = rows_of(run_id, frame)
    if not rows:
        raise ElasticError(f"no results row has run id {run_id!r}")
    name = checkpoint_name(run)
    source = next((Path(s) / name for s in sources if (Path(s) / name).is_file()), None)
    if source is None:
        raise ElasticError(f"no checkpoint {name} in {', '.join(map(str, sources))}; run the row's command first: "
                           f"{rows[0]['command']}")
    target = Path(folder) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_suffix(".staged.pt")
    save_checkpoint(staged, compact(load_checkpoint(source), half))
    try:
        measured = accuracies(staged, rows, data)
        for row in rows:
            got, recorded = measured[str(row["run_id"])], float(row["test_acc"])
            on_line(f"  {row['run_id']}: {got:.2f}% on {len(data.test):,} test images (row {recorded:.2f}%)")
            if abs(got - recorded) > TOLERANCE:
                raise ElasticError(f"{name} gives {got:.2f}% for {row['run_id']}, its row recorded {recorded:.2f}%"
                                   + ("; ship it without --half" if half else "; it is not the row's checkpoint"))
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    staged.replace(target)
    entry = {"rows": [str(r["run_id"]) for r in rows],
             "test_acc": {str(r["run_id"]): float(r["test_acc"]) for r in rows},
             "storage": storage(half), "bytes": target.stat().st_size, "sha256": sha256(target),
             "checked_on": data.source.split(":")[0] + f", {len(data.test)} test images",
             "shipped": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    manifest = read_manifest(folder)
    manifest[name] = entry
    text = json.dumps(dict(sorted(manifest.items())), indent=2) + "\n"
    replace_atomically(manifest_path(folder), lambda f: f.write(text.encode()))
    return entry


__all__ = ["MANIFEST", "TOLERANCE", "accuracies", "compact", "read_manifest", "rows_of", "sha256", "ship"]
