"""The commands of `python -m elastic`, at the edge of the package: options,
data loading, progress bars, results rows and checkpoints around the pure
methods and the core. Nothing in elastic/ outside this package (and cli.py)
imports it.

Each command is a pair of functions, `add_<name>(parser)` and `run_<name>(args)`,
listed in COMMANDS with a one-line help."""
from __future__ import annotations

from typing import Callable

from elastic.commands.deploy import add_bench, add_export, run_bench, run_export
from elastic.commands.files import add_check, add_ship, run_check, run_ship
from elastic.commands.grow import add_grow, run_grow
from elastic.commands.prune import add_prune, run_prune
from elastic.commands.results import add_table, run_table
from elastic.commands.train import add_evaluate, add_profile, add_train, run_evaluate, run_profile, run_train

# name -> (add options, run, help). `sweep` runs its jobs through the command line's
# main, so elastic.cli adds it (its run takes `main` too).
COMMANDS: dict[str, tuple[Callable, Callable, str]] = {
    "profile": (add_profile, run_profile, "per-layer parameters, MACs and memory of a model"),
    "train": (add_train, run_train, "train a baseline and record it in the results"),
    "evaluate": (add_evaluate, run_evaluate, "accuracy of a checkpoint on a split"),
    "prune": (add_prune, run_prune, "complexity-driven filter pruning or block pruning"),
    "grow": (add_grow, run_grow, "elastic prune-and-grow: one model with nested widths"),
    "bench": (add_bench, run_bench, "measure inference latency"),
    "export": (add_export, run_export, "export a model to ONNX and TorchScript"),
    "ship": (add_ship, run_ship, "copy a row's trained checkpoint into cached_results, checked against its row"),
    "check": (add_check, run_check, "say what a file is: checkpoint, resume file, elastic checkpoint or export"),
    "table": (add_table, run_table, "the measured rows of each architecture, as Markdown tables"),
}
__all__ = ["COMMANDS"]
