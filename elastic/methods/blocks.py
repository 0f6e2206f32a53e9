"""Block pruning for residual networks (Wu, Davoodi, Hu).

Instead of trusting a proxy score, each removable residual block is taken out
in turn and the validation accuracy measured without it; the least harmful one
goes, the smaller network is fine-tuned, and the loop repeats until the budget
is met. Two proxy orders (L1 norm of the block's last BatchNorm scale, and a
seeded random order) are the baselines it is compared with.

The core is pure: `candidate_blocks`, `remove`, `block_scan` and the loop
`prune_blocks` take models and callables (evaluate, fine-tune, budget) and
return models and numbers. elastic.commands.blocks is the edge: data, checkpoints, results rows.
"""
from __future__ import annotations

import copy
import operator
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
from torch import fx, nn
from torch.nn.modules.batchnorm import _BatchNorm

from elastic.errors import ElasticError
from elastic.profile import symbolic_trace

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


def block_scan(model: nn.Module, candidates: Sequence[str], evaluate_fn: Callable[[Any], float], *,
               on_progress: ScanProgress | None = None,
               remover: Callable[[nn.Module, list[str]], Any] = remove) -> dict[str, float]:
    """Accuracy measured with each candidate removed on its own: {name:
    evaluate_fn(remover(model, [name]))}; `remover` makes the network without
    it (default: `remove`, a smaller copy of the model)."""
    scores: dict[str, float] = {}
    for done, name in enumerate(candidates):
        if on_progress:
            on_progress(done, len(candidates), name)
        scores[name] = float(evaluate_fn(remover(model, [name])))
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


# A block pruning method (family "blocks", registered in elastic.methods) is its
# removal order: (model, candidates, seed) -> (order, scores), or (None, {}) for
# an order measured at every step (measured_choice) instead of fixed up front.

def measured_order(model: nn.Module, candidates: Sequence[str], seed: int = 0) -> tuple[None, dict[str, float]]:
    """The method "block": no fixed order; each step removes the block whose
    removal keeps the highest measured accuracy."""
    return None, {}


def l1_order(model: nn.Module, candidates: Sequence[str], seed: int = 0) -> tuple[list[str], dict[str, float]]:
    """The method "block-l1": the smallest L1 score first (ties keep model order)."""
    scores = l1_scores(model, candidates)
    return sorted(candidates, key=lambda n: scores[n]), scores


def random_order(model: nn.Module, candidates: Sequence[str], seed: int = 0) -> tuple[list[str], dict[str, float]]:
    """The method "block-random": a permutation fixed by `seed`, no scores."""
    perm = torch.randperm(len(candidates), generator=torch.Generator().manual_seed(seed))
    return [candidates[i] for i in perm.tolist()], {}


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
    limit = target * metric_value(reference, metric, input_size)
    return lambda model: metric_value(model, metric, input_size) <= limit


def metric_value(model: nn.Module, metric: str, input_size: int) -> int:
    """The model's `metric` (a key of BUDGET_COLUMNS) as the results' column measures it."""
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


__all__ = ["BlockStep", "block_scan", "budget_check", "candidate_blocks", "l1_order", "l1_scores", "measured_choice",
           "measured_order", "metric_value", "proxy_choice", "prune_blocks", "random_order", "remove"]
