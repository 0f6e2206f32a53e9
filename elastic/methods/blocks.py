"""Block pruning for residual networks (Wu, Davoodi, Hu).

Instead of trusting a proxy score, each removable residual block is taken out
in turn and the validation accuracy measured without it; the least harmful one
goes, the smaller network is fine-tuned, and the loop repeats until the budget
is met. Two proxy orders (L1 norm of the block's last BatchNorm scale, and a
seeded random order) are the baselines it is compared with.

The core is pure: `candidate_blocks`, `remove`, `block_scan` and the loop
`prune_blocks` take models and callables (evaluate, fine-tune, budget) and
return models and numbers. `run_cli` is the edge: data, checkpoints, results rows.
"""
from __future__ import annotations

import argparse
import copy
import math
import operator
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping, Sequence

import torch
from torch import fx, nn
from torch.nn.modules.batchnorm import _BatchNorm

from elastic.argtypes import integer, number
from elastic.errors import BadBudget, BadCheckpoint, ElasticError
from elastic.profile import symbolic_trace

PROXY_METHODS = ("block-l1", "block-random")
BUDGET_COLUMNS = {"macs": "macs", "params": "params", "memory": "peak_mem_fp32"}  # --budget-metric -> column

EvaluateFn = Callable[[nn.Module], float]
# (model, remaining candidates) -> (block to remove, the scores recorded for this step)
Chooser = Callable[[nn.Module, list[str]], tuple[str, dict[str, float]]]
# (done, total, block about to be evaluated or None at the end)
ScanProgress = Callable[[int, int, "str | None"], None]


# ---- finding and removing blocks (pure) -------------------------------------------

def candidate_blocks(model: nn.Module, input_shape: tuple[int, int, int] = (3, 32, 32)) -> list[str]:
    """Names of the residual blocks that can be removed, in model order.

    A candidate is an element of an nn.Sequential other than its first (so the
    first block of each stage, which changes width or resolution, stays), whose
    torch.fx graph adds its input to a branch computed from that input, and
    whose output has the input's shape on a probe input of `input_shape`
    (C, H, W). Taking it out leaves the identity path. Blocks that torch.fx
    cannot trace are not candidates. `model` is not changed.
    """
    probe = copy.deepcopy(model).eval()
    io_shapes = _element_shapes(probe, input_shape)
    return [name for name, (shape_in, shape_out) in io_shapes.items()
            if shape_in == shape_out and _adds_input(probe.get_submodule(name))]


def remove(model: nn.Module, names: Sequence[str]) -> nn.Module:
    """A deep copy of `model` with the blocks `names` deleted (siblings keep
    their names, so `arch_config` + `build_model` rebuild it)."""
    from elastic.models import remove_blocks
    return remove_blocks(copy.deepcopy(model), list(names))


def block_scan(model: nn.Module, candidates: Sequence[str], evaluate_fn: EvaluateFn, *,
               on_progress: ScanProgress | None = None) -> dict[str, float]:
    """Accuracy measured with each candidate removed on its own: {name: evaluate_fn(model without it)}."""
    scores: dict[str, float] = {}
    for done, name in enumerate(candidates):
        if on_progress:
            on_progress(done, len(candidates), name)
        scores[name] = float(evaluate_fn(remove(model, [name])))
    if on_progress:
        on_progress(len(candidates), len(candidates), None)
    return scores


def l1_scores(model: nn.Module, candidates: Sequence[str]) -> dict[str, float]:
    """L1 norm of the scale (weight) of each block's last BatchNorm, in execution order."""
    scores = {}
    for name in candidates:
        block = model.get_submodule(name)
        bns = [node.target for node in symbolic_trace(block).graph.nodes
               if node.op == "call_module" and isinstance(block.get_submodule(node.target), _BatchNorm)]
        if not bns:
            raise ElasticError(f"block {name} has no BatchNorm, so it has no L1 proxy score")
        scores[name] = float(block.get_submodule(bns[-1]).weight.detach().abs().sum())
    return scores


def proxy_order(method: str, model: nn.Module, candidates: Sequence[str],
                seed: int = 0) -> tuple[list[str], dict[str, float]]:
    """The fixed removal order of a proxy method and the scores it came from
    (block-l1: smallest L1 first; block-random: a permutation fixed by `seed`, no scores)."""
    if method == "block-l1":
        scores = l1_scores(model, candidates)
        return sorted(candidates, key=lambda n: scores[n]), scores   # stable: ties keep model order
    if method == "block-random":
        perm = torch.randperm(len(candidates), generator=torch.Generator().manual_seed(seed))
        return [candidates[i] for i in perm.tolist()], {}
    raise ValueError(f"{method!r} is not a proxy method; use one of {PROXY_METHODS}")


# ---- the greedy loop (pure: everything with side effects comes in as a callable) ----

def measured_choice(evaluate_fn: EvaluateFn, on_progress: ScanProgress | None = None) -> Chooser:
    """Direct block pruning: remove the block whose removal keeps the highest
    measured accuracy (the first in model order on ties); record every score."""
    def choose(model: nn.Module, remaining: list[str]) -> tuple[str, dict[str, float]]:
        scores = block_scan(model, remaining, evaluate_fn, on_progress=on_progress)
        return max(remaining, key=lambda n: scores[n]), scores
    return choose


def proxy_choice(order: Sequence[str], scores: Mapping[str, float] | None = None) -> Chooser:
    """Proxy block pruning: the first remaining block of a fixed order; records
    the proxy scores of the remaining blocks (none for a random order)."""
    def choose(model: nn.Module, remaining: list[str]) -> tuple[str, dict[str, float]]:
        name = next(n for n in order if n in remaining)
        return name, {n: float(scores[n]) for n in remaining} if scores else {}
    return choose


@dataclass
class BlockStep:
    """One step of the loop: the network after removing `removed_now` and fine-tuning."""
    step: int                       # 1-based; equals len(removed)
    removed_now: str
    removed: list[str]              # every block removed so far, in order
    scores: dict[str, float]        # what the choice was based on, per remaining candidate
    acc_before_ft: float            # evaluate(model) right after the removal
    model: nn.Module = field(repr=False)
    seconds: float = 0.0


def prune_blocks(model: nn.Module, candidates: Sequence[str], choose: Chooser, *,
                 evaluate: EvaluateFn, finetune: Callable[[nn.Module, int], None],
                 budget_met: Callable[[nn.Module], bool], max_blocks: int | None = None,
                 removed: Sequence[str] = ()) -> Iterator[BlockStep]:
    """Remove blocks one at a time until `budget_met(model)` or `max_blocks`
    blocks are gone (counting `removed`) or no candidate is left.

    Each step: `choose` picks a block among the remaining candidates, a copy
    without it is made, `evaluate` gives its accuracy before fine-tuning, then
    `finetune(model, step)` trains it in place. `model` is the starting network
    with `removed` already taken out (to resume); it is not changed.
    """
    removed = list(removed)
    remaining = [c for c in candidates if c not in removed]
    current = model
    while remaining and not budget_met(current) and (max_blocks is None or len(removed) < max_blocks):
        started = time.perf_counter()
        name, scores = choose(current, remaining)
        current = remove(current, [name])
        removed.append(name)
        remaining.remove(name)
        before = float(evaluate(current))
        finetune(current, len(removed))
        yield BlockStep(len(removed), name, list(removed), scores, before, current,
                        time.perf_counter() - started)


def budget_check(reference: nn.Module, metric: str, target: float,
                 input_size: int) -> Callable[[nn.Module], bool]:
    """A predicate: does a model keep at most `target` of the reference's
    `metric` (macs, params, memory = peak fp32 memory)?"""
    limit = target * _metric(reference, metric, input_size)
    return lambda model: _metric(model, metric, input_size) <= limit


def _metric(model: nn.Module, metric: str, input_size: int) -> int:
    from elastic.runs import complexity_columns
    return complexity_columns(model, input_size)[BUDGET_COLUMNS[metric]]


def _element_shapes(model: nn.Module, input_shape: tuple[int, int, int]
                    ) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    """(input shape, output shape) of every non-first element of every
    nn.Sequential that runs on a probe batch; elements that take or return
    something other than one tensor are left out."""
    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    handles = []

    def record(name: str):
        def hook(module: nn.Module, args: tuple, output: object) -> None:
            if len(args) == 1 and isinstance(args[0], torch.Tensor) and isinstance(output, torch.Tensor):
                shapes[name] = (tuple(args[0].shape), tuple(output.shape))
        return hook

    for parent, container in model.named_modules():
        if isinstance(container, nn.Sequential):
            for child, module in list(container.named_children())[1:]:
                handles.append(module.register_forward_hook(record(f"{parent}.{child}" if parent else child)))
    param = next(model.parameters(), None)
    probe = torch.zeros(1, *input_shape, device=param.device if param is not None else "cpu")
    try:
        with torch.no_grad():
            model(probe)
    finally:
        for handle in handles:
            handle.remove()
    return shapes


_ADDS = {operator.add, operator.iadd, torch.add}


def _adds_input(block: nn.Module) -> bool:
    """Does the block's graph add its input to something computed from its input?"""
    try:
        graph = symbolic_trace(block).graph
    except Exception:  # fx raises several types; all mean "not traceable"
        return False
    inputs = [node for node in graph.nodes if node.op == "placeholder"]
    if len(inputs) != 1:
        return False
    x = inputs[0]
    for node in graph.nodes:
        is_add = ((node.op == "call_function" and node.target in _ADDS)
                  or (node.op == "call_method" and node.target in ("add", "add_")))
        if is_add and x in node.args:
            others = [a for a in node.args if isinstance(a, fx.Node) and a is not x]
            if any(_depends_on(other, x) for other in others):
                return True
    return False


def _depends_on(node: fx.Node, source: fx.Node) -> bool:
    seen, stack = set(), [node]
    while stack:
        current = stack.pop()
        if current is source:
            return True
        if current not in seen:
            seen.add(current)
            stack.extend(current.all_input_nodes)
    return False


# ---- command line (the edge: data, checkpoints, results) ---------------------------

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
    # The complexity method defines --baseline on the same parser too; argparse refuses a second one.
    if not any("--baseline" in action.option_strings for action in parser._actions):
        parser.add_argument("--baseline", default=None,
                            help="checkpoint of the trained network to start from "
                                 "(default: the trained baseline of --arch on --dataset)")


def run_cli(args: argparse.Namespace) -> None:
    """Run block pruning from the command line, one results row and checkpoint per step."""
    from elastic import identity
    from elastic.cli import load_data, precision_for, progress_bar, recipe_from, results_path, run_settings
    from elastic.data import DATASETS
    from elastic.models import build_model
    from elastic.results import append_row, done_ids
    from elastic.runs import checkpoint_path, baseline_for, load_model, load_start, result_row, save_model
    from elastic.train import evaluate, pick_device, train

    if args.method not in ("block", *PROXY_METHODS):
        raise ElasticError(f"blocks.run_cli does not handle --method {args.method}")
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
        floor = _metric(remove(base_model, candidates), args.budget_metric, spec.input_size)
        floor /= _metric(base_model, args.budget_metric, spec.input_size)
        if args.target < floor:
            raise BadBudget(f"--target {args.target:g} of {args.budget_metric} is out of reach by block removal "
                            f"for {args.arch}: removing all {len(candidates)} removable blocks keeps {floor:.3f}; "
                            f"give --target {math.ceil(floor * 100) / 100:.2f} or more, or --max-blocks N to stop "
                            f"after N blocks")
    if args.method == "block":
        order, proxy = None, {}
    else:
        order, proxy = proxy_order(args.method, base_model, candidates, args.seed)

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
    reference = _metric(base_model, args.budget_metric, spec.input_size)

    def write_row(model: nn.Module, step: int, seconds: float, details: dict, **extra) -> dict:
        row = result_row(model, args.arch, data, run_id=f"{prefix}/step{step}", method=args.method,
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
    while f"{prefix}/step{start + 1}" in done:
        start += 1
    while start and not checkpoint_path(f"{prefix}/step{start}").is_file():
        start -= 1
    if start:
        model, state = load_model(checkpoint_path(f"{prefix}/step{start}"), arch=args.arch,
                                  num_classes=spec.num_classes, device=device)
        removed = list(state.get("removed", []))
        if len(removed) != start:
            raise BadCheckpoint(f"{checkpoint_path(f'{prefix}/step{start}')} does not record step {start}'s "
                                f"removed blocks; delete it to start over")
        print(f"resuming {prefix} after step {start} (removed {', '.join(removed)})")
    elif f"{prefix}/step0" not in done:
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
        run_id = f"{prefix}/step{step.step}"
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
    value = _metric(last, args.budget_metric, spec.input_size)
    met = "met" if value <= args.target * reference else "not met"   # the test budget_check makes
    print(f"{prefix}: target {args.target:g} of {args.budget_metric} {met} "
          f"({value / reference:.1%} kept); rows in {out}")


def _scan_bar(desc: str) -> ScanProgress:
    """A tqdm bar for one candidate scan, driven by block_scan's callback."""
    import sys
    from tqdm import tqdm
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
    from elastic.profile import profile_model
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


__all__ = ["BlockStep", "block_scan", "budget_check", "candidate_blocks", "l1_scores", "measured_choice",
           "proxy_choice", "proxy_order", "prune_blocks", "remove", "add_options", "run_cli"]
