"""Glue between the pure core and the outside world: turn a trained model into a
results row (measured complexity, accuracy, provenance), and find the checkpoint
that goes with a row or that a method starts from (elastic.checkpoints writes
and reads it). The commands and the app use it."""
from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from elastic.checkpoints import load_model
from elastic.data import DataSplits, cache_dir
from elastic.errors import BadCheckpoint
from elastic.models import ARCHS, arch_config
from elastic.profile import profile_model
from elastic.train import evaluate


def complexity_columns(model: nn.Module, input_size: int) -> dict[str, int]:
    """The schema's complexity columns, measured on the live model."""
    prof = profile_model(model, (3, input_size, input_size))
    return {"params": prof.params, "macs": prof.macs, "weight_bytes": prof.weight_bytes,
            "peak_act_bytes": prof.peak_activation_bytes,
            "peak_mem_fp32": prof.peak_memory_bytes(4), "peak_mem_int8": prof.peak_memory_int8()}


def command_line() -> str:
    """The command that started this process, for the row's provenance."""
    return "python -m elastic " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def result_row(model: nn.Module, arch: str, data: DataSplits, *, run_id: str, method: str,
               device: torch.device | str, seed: int, epochs: int, seconds: float, precision: str,
               recipe: dict[str, Any] | None = None, command: str | None = None,
               **extra: Any) -> dict[str, Any]:
    """A complete results row for `model`: test and validation accuracy measured
    now, complexity profiled now, provenance from git, the CPU and the clock."""
    from elastic.precision import cpu_name
    from elastic.results import provenance

    row = {
        "run_id": run_id, "dataset": data.spec.name, "arch": arch, "method": method,
        "test_acc": evaluate(model, data.test, data.spec, device=device),
        "val_acc": evaluate(model, data.val, data.spec, device=device),
        **complexity_columns(model, data.spec.input_size),
        "config": arch_config(model, arch, data.num_classes), "recipe": recipe or {},
        "epochs": epochs, "seed": seed, "device": str(torch.device(device)), "precision": precision,
        "cpu": cpu_name() + _threads_note(),
        "seconds": round(seconds, 1), "command": command or command_line(),
        "data_source": data.source, **provenance(),
    }
    row.update(extra)
    return row


def _threads_note() -> str:
    """', 1 thread' when this run trained on fewer threads than the machine has
    cores (one of several sweep jobs side by side), so its seconds read right."""
    threads = torch.get_num_threads()
    return f", {threads} thread{'s' if threads > 1 else ''}" if threads < (os.cpu_count() or threads) else ""


def checkpoint_path(run_id: str) -> Path:
    from elastic.identity import checkpoint_name
    return cache_dir() / "checkpoints" / checkpoint_name(run_id)


def shipped_checkpoint_path(run_id: str) -> Path:
    """Where a checkpoint that ships with the repository lies (cached_results/checkpoints):
    the trained baselines later runs start from, on a machine whose cache is empty."""
    from elastic.identity import checkpoint_name
    from elastic.results import results_dir
    return results_dir() / "checkpoints" / checkpoint_name(run_id)


def trained_model(run_id: str, *, arch: str | None = None, num_classes: int | None = None
                  ) -> tuple[nn.Module, Path] | None:
    """The trained network of a results row and the file it came from, or None
    when no checkpoint of it is on this machine. Looked for in the cache, then
    among the shipped checkpoints: a model checkpoint named after the row, or,
    for an elastic level row (<run>/levelK), level K taken out of the run's
    elastic checkpoint as a plain network. A file that is there but unusable
    (or for another arch / class count) raises BadCheckpoint."""
    from elastic.identity import parse
    part = parse(run_id)
    for path in (checkpoint_path(run_id), shipped_checkpoint_path(run_id)):
        if path.is_file():
            return load_model(path, arch=arch, num_classes=num_classes)[0].eval(), path
    if part.kind != "level":
        return None
    for path in (checkpoint_path(part.run), shipped_checkpoint_path(part.run)):
        if path.is_file():
            from elastic.methods.elastic_net import extract, load_elastic
            net = load_elastic(path)
            if (arch is not None and net.arch != arch) or (num_classes is not None and net.num_classes != num_classes):
                raise BadCheckpoint(f"{path} holds a {net.arch} for {net.num_classes} classes, "
                                    f"expected {arch} for {num_classes}")
            if part.number >= net.num_levels:
                raise BadCheckpoint(f"{path} has {net.num_levels} levels; the row asks for level {part.number}")
            return extract(net, part.number), path
    return None


def arch_for(dataset_family: str) -> list[str]:
    """Architectures that take this dataset's image size."""
    return [name for name in ARCHS if ARCHS.get(name).family == dataset_family]


def find_baseline(dataset: str, arch: str, results: Path | None = None,
                  synthetic: bool = False) -> tuple[Path, dict[str, Any]]:
    """The checkpoint and row of the trained baseline for (dataset, arch) whose
    checkpoint is on disk (in the cache folder, else shipped in
    cached_results/checkpoints), looked up in the `results` file (if given) and in
    cached_results/: of those trained on the whole training split, the one with
    the most epochs, then the best validation accuracy (a short test run on a
    subset is never chosen over a full one). A baseline trained on synthetic data
    only serves runs on synthetic data, and the other way round. Methods that start
    from a trained network (block pruning, prune-and-grow, fine-tuning) use it."""
    from elastic.errors import ElasticError
    from elastic.results import load_all, read_results, results_dir

    frames = [load_all(results_dir())[0]]
    if results is not None and Path(results).is_file():
        frames.append(read_results(results))
    rows = [r for frame in frames for r in frame.to_dict("records")
            if r["dataset"] == dataset and r["arch"] == arch and r["method"] == "baseline"
            and (r["data_source"] == "synthetic") == synthetic]
    def rank(row: dict[str, Any]) -> tuple:
        subset = json.loads(row["recipe"] or "{}").get("train_subset", 0)
        return (not subset, row["epochs"], -1.0 if pd.isna(row["val_acc"]) else float(row["val_acc"]))
    for row in sorted(rows, key=rank, reverse=True):
        for path in (checkpoint_path(row["run_id"]), shipped_checkpoint_path(row["run_id"])):
            if path.is_file():
                return path, row
    data = " --data synthetic" if synthetic else ""
    raise ElasticError(f"no trained {arch} baseline on {dataset}{' (synthetic)' if synthetic else ''} with its "
                       f"checkpoint in {cache_dir()}. Train one first: python -m elastic train --arch {arch} "
                       f"--dataset {dataset}{data}, or pass --baseline PATH")


def load_start(path: Path | str, arch: str, num_classes: int,
               device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any], str]:
    """The network a method starts from, its checkpoint state, and the identity a
    run records for it (elastic.identity.start_of). The state's `schedule` is the
    baseline's (or "unrecorded" for a checkpoint from elsewhere)."""
    from elastic.identity import start_of
    model, state = load_model(path, arch=arch, num_classes=num_classes, device=device)
    state.setdefault("schedule", "unrecorded")
    return model, state, start_of(path, state)
