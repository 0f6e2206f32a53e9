"""`prune --method block|block-l1|block-random`: options and the driver (data,
fine-tuning, one checkpoint and results row per step, resume) around
elastic.methods.blocks."""
from __future__ import annotations

import argparse
import math
import sys
from typing import Mapping

from torch import nn
from tqdm import tqdm

from elastic import identity
from elastic.argtypes import integer, number
from elastic.checkpoints import load_model, save_model
from elastic.commands.options import (baseline_for, load_data, precision_for, progress_bar, recipe_from, results_path,
                                      run_settings)
from elastic.data import DATASETS
from elastic.errors import BadBudget, BadCheckpoint, ElasticError
from elastic.methods import in_family, METHODS
from elastic.methods.blocks import (BUDGET_COLUMNS, budget_check, candidate_blocks, measured_choice, metric_value,
                                    proxy_choice, prune_blocks, remove, ScanProgress)
from elastic.models import build_model
from elastic.profile import profile_model
from elastic.results import append_row, done_ids
from elastic.runs import checkpoint_path, load_start, result_row
from elastic.train import evaluate, pick_device, train


def add_options(parser: argparse.ArgumentParser) -> None:
    """Block pruning options of `python -m elastic prune` (--method block, block-l1, block-random)."""
    group = parser.add_argument_group("block pruning (--method block, block-l1, block-random)")
    group.add_argument("--budget-metric", choices=list(BUDGET_COLUMNS), default="macs",
                       help="what --target is a fraction of (memory: peak fp32 memory) (default: %(default)s)")
    group.add_argument("--max-blocks", type=integer(0), default=0,
                       help="stop after this many blocks are removed, budget met or not (0: no limit)")
    group.add_argument("--ft-epochs", type=integer(0), default=2,
                       help="fine-tuning epochs after each removal; replaces --epochs (default: %(default)s)")
    group.add_argument("--ft-lr", type=number(above=0), default=0.02,
                       help="peak one-cycle learning rate of the fine-tuning; replaces --lr (default: %(default)s)")
    group.add_argument("--scan-subset", type=integer(0), default=0,
                       help="measure candidates on a fixed subset of this many validation images (0: all)")


def run(args: argparse.Namespace) -> None:
    """Run block pruning from the command line, one results row and checkpoint per step."""

    if args.method not in in_family("blocks"):
        raise ElasticError(f"commands.blocks.run does not handle --method {args.method}")
    if args.max_blocks < 0 or args.ft_epochs < 0 or args.scan_subset < 0:
        raise ElasticError("--max-blocks, --ft-epochs and --scan-subset must be 0 or more")
    spec = DATASETS.get(args.dataset)
    shape = (3, spec.input_size, spec.input_size)
    if not candidate_blocks(build_model(args.arch, spec.num_classes), shape):
        raise ElasticError(f"{args.arch} has no removable residual blocks (no block whose input is added "
                           f"to its output with matching shapes), so block pruning does not apply; "
                           f"use a residual network such as resnet20, resnet56 or resnet50, "
                           f"or --method complexity")

    device = pick_device(args.device)
    try:
        baseline = baseline_for(args)
        base_model, base_state, origin = load_start(baseline, args.arch, spec.num_classes, device)
    except ElasticError:
        if not args.dry_run or args.baseline:
            raise
        print(f"no trained {args.arch} baseline found: showing the plan for an untrained network")
        baseline, base_model = None, build_model(args.arch, spec.num_classes)
    candidates = candidate_blocks(base_model, shape)
    if not candidates:
        raise ElasticError(f"the network in {baseline} has no removable residual blocks left")
    if not args.max_blocks:
        # Removing every candidate is the most block pruning can do: a target below that is out of reach.
        floor = metric_value(remove(base_model, candidates), args.budget_metric, spec.input_size)
        floor /= metric_value(base_model, args.budget_metric, spec.input_size)
        if args.target < floor:
            raise BadBudget(f"--target {args.target:g} of {args.budget_metric} is out of reach by block removal "
                            f"for {args.arch}: removing all {len(candidates)} removable blocks keeps {floor:.3f}; "
                            f"give --target {math.ceil(floor * 100) / 100:.2f} or more, or --max-blocks N to stop "
                            f"after N blocks")
    # The method's removal order, or None: measured at every step (elastic.methods, family "blocks").
    order, proxy = METHODS.get(args.method).implementation()(base_model, candidates, args.seed)

    if args.dry_run:
        _print_plan(base_model, candidates, order, proxy, shape)
        return

    data = load_data(args)
    out = results_path(args)
    precision = precision_for(args, device)
    recipe = recipe_from(args, precision, epochs=args.ft_epochs, lr=args.ft_lr)
    name = identity.block_name(args.dataset, args.arch, args.method, target=args.target, ft_epochs=args.ft_epochs,
                               seed=args.seed, budget_metric=args.budget_metric, data_source=data.source)
    prefix = identity.run(name, precision, run_settings(recipe, data.source, origin, scan_subset=args.scan_subset))
    options = {"budget_metric": args.budget_metric, "target": args.target, "max_blocks": args.max_blocks,
               "scan_subset": args.scan_subset, "baseline": str(baseline)}
    budget_met = budget_check(base_model, args.budget_metric, args.target, spec.input_size)
    reference = metric_value(base_model, args.budget_metric, spec.input_size)

    def write_row(model: nn.Module, step: int, seconds: float, details: dict, **extra) -> dict:
        row = result_row(model, args.arch, data, run_id=identity.step(prefix, step), method=args.method,
                         device=device, seed=args.seed, epochs=args.ft_epochs if step else 0,
                         seconds=seconds, precision=precision, recipe={**recipe.to_dict(), **options},
                         target=args.target,
                         level=str(step), label=args.label, schedule=base_state["schedule"],
                         details={**details, "budget_metric": args.budget_metric, "target": args.target},
                         **extra)
        append_row(out, row)
        return row

    # Resume: the last step whose row and checkpoint both exist.
    done = done_ids(out)
    start, model, removed = 0, base_model, []
    while identity.step(prefix, start + 1) in done:
        start += 1
    while start and not checkpoint_path(identity.step(prefix, start)).is_file():
        start -= 1
    if start:
        model, state = load_model(checkpoint_path(identity.step(prefix, start)), arch=args.arch,
                                  num_classes=spec.num_classes, device=device)
        removed = list(state.get("removed", []))
        if len(removed) != start:
            raise BadCheckpoint(f"{checkpoint_path(identity.step(prefix, start))} does not record step {start}'s "
                                f"removed blocks; delete it to start over")
        print(f"resuming {prefix} after step {start} (removed {', '.join(removed)})")
    elif identity.step(prefix, 0) not in done:
        write_row(base_model, 0, 0.0, {"removed": [], "removed_now": "", "candidates": {}})

    scan_set = data.val.head(args.scan_subset, args.seed) if args.scan_subset else data.val
    if order is None:
        choose = measured_choice(lambda m: evaluate(m, scan_set, data.spec, device=device),
                                 on_progress=_scan_bar("scan blocks"))
    else:
        choose = proxy_choice(order, proxy)

    def finetune(m: nn.Module, step: int) -> None:
        if args.ft_epochs:
            train(m, data.train, data.spec, recipe, device=device, seed=args.seed + step,
                  on_progress=progress_bar(f"step {step} fine-tune"))

    steps = prune_blocks(model, candidates, choose,
                         evaluate=lambda m: evaluate(m, data.val, data.spec, device=device),
                         finetune=finetune, budget_met=budget_met,
                         max_blocks=args.max_blocks or None, removed=removed)
    last = model
    for step in steps:
        run_id = identity.step(prefix, step.step)
        save_model(checkpoint_path(run_id), step.model, args.arch, spec.num_classes, args.dataset,
                   run_id=run_id, schedule=base_state["schedule"], removed=step.removed, step=step.step,
                   method=args.method, recipe=recipe.to_dict())
        row = write_row(step.model, step.step, step.seconds,
                        {"removed": step.removed, "removed_now": step.removed_now, "candidates": step.scores},
                        acc_before_ft=step.acc_before_ft)
        print(f"step {step.step}: removed {step.removed_now}; val {step.acc_before_ft:.2f}% before "
              f"fine-tuning, {row['val_acc']:.2f}% after (test {row['test_acc']:.2f}%); "
              f"{args.budget_metric} {row[BUDGET_COLUMNS[args.budget_metric]] / reference:.1%} of the baseline")
        last = step.model
    value = metric_value(last, args.budget_metric, spec.input_size)
    met = "met" if value <= args.target * reference else "not met"   # the test budget_check makes
    print(f"{prefix}: target {args.target:g} of {args.budget_metric} {met} "
          f"({value / reference:.1%} kept); rows in {out}")


def _scan_bar(desc: str) -> ScanProgress:
    """A tqdm bar for one candidate scan, driven by block_scan's callback."""
    bar = None

    def update(done: int, total: int, name: str | None) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=desc, leave=False, file=sys.stderr)
        bar.n = done
        bar.set_postfix(block=name or "", refresh=False)
        bar.refresh()
        if done == total:
            bar.close()
            bar = None
    return update


def _print_plan(model: nn.Module, candidates: list[str], order: list[str] | None,
                proxy: Mapping[str, float], shape: tuple[int, int, int]) -> None:
    prof = profile_model(model, shape)
    print(f"{len(candidates)} removable blocks ({prof.macs / 1e6:.1f} M MACs, {prof.params / 1e3:.1f} K params):")
    for name in order or candidates:
        macs = sum(layer.macs for layer in prof.layers if layer.name.startswith(name + "."))
        params = sum(p.numel() for p in model.get_submodule(name).parameters())
        score = f", score {proxy[name]:.3f}" if name in proxy else ""
        print(f"  {name}: {macs / prof.macs:.1%} of MACs, {params / prof.params:.1%} of params{score}")
    if order is not None:
        print("removal order: " + ", ".join(order))
    else:
        print("removal order: measured at each step (each candidate removed and the validation accuracy taken)")
