"""`prune`: complexity-driven filter pruning (and uniform thinning) or block pruning."""
from __future__ import annotations

import argparse

from elastic.commands import blocks, complexity
from elastic.commands.options import (add_data_args, add_model_args, add_recipe_args, check_arch_fits, check_outputs,
                                      positive_fraction, results_path)
from elastic.methods import METHODS, selected_by
from elastic.train import pick_device

DRIVERS = {"filters": complexity.run, "blocks": blocks.run}     # a method's family -> its driver


def add_prune(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", required=True, choices=selected_by("prune"),
                   help="; ".join(f"{name}: {METHODS.get(name).label}" for name in selected_by("prune")))
    p.add_argument("--target", type=positive_fraction, default=0.5,
                   help="fraction of the budget metric to keep, in (0, 1] (default: %(default)s)")
    p.add_argument("--dry-run", action="store_true", help="show the pruned architecture, do not train")
    p.add_argument("--baseline", default=None,
                   help="checkpoint of the trained network that block pruning and --init finetune start from "
                        "(default: the trained baseline of --arch on --dataset recorded in the results)")
    add_model_args(p)
    add_data_args(p)
    add_recipe_args(p)
    complexity.add_options(p)
    blocks.add_options(p)


def run_prune(args: argparse.Namespace) -> None:
    check_arch_fits(args.arch, args.dataset)
    if not args.dry_run:
        check_outputs(results_path(args))
        pick_device(args.device)
    DRIVERS[METHODS.get(args.method).family](args)
