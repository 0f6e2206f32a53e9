"""Complexity-driven filter pruning (Zawish, Davy, Abraham) and uniform thinning.

A layer is picked for filter pruning with probability proportional to its share
of the network's complexity in one of three modes, a step of its filters is
removed, the shares are recomputed, and this repeats until the mode's own metric
is down to the target fraction. The pruned architecture is then trained from
scratch (the paper's way) or from the trained baseline's kept filters.

    PA  parameters share        -> thins the parameter-heavy late layers
    FA  MACs share              -> thins the layers at high resolution
    MA  memory share            -> weight bytes + output activation bytes
                                   (the profiler's `memory_bytes`)

How it works, and why it is fast enough to call live from the app:
1. `_structure(arch, num_classes)` (cached: pure data) takes the *groups* from
   `elastic.methods.channels.channel_structure`, the analysis prune-and-grow uses
   too: sets of convolutions / linears / BNs whose output channels must be pruned
   together (in a ResNet every layer that writes into one residual stream), plus
   the layers that read those channels (tests/test_models.py checks that it agrees
   with Torch-Pruning's dependency graph on every registered architecture). One
   profile gives each layer's output resolution.
2. The sampling loop works on plain integer widths, one per group, with
   analytic per-layer formulas (conv params = in*out*k*k (+bias), MACs = weights
   * H_out*W_out, activations = out*H*W*4 bytes, BN 2*C, linear in*out).
3. The result is checked once against `elastic.profile.profile_model` on the
   rebuilt model; `build(plan)` prunes a real model with Torch-Pruning.

A group's share is the complexity of the layers whose *outputs* it holds (its
convolutions and their BNs): the paper's per-layer share, summed over coupled
layers, since picking any one of them prunes them all. So a residual stream that
nine blocks add into is picked about nine times as often as one inner convolution.
Widths never go below the minimum width: by default 10% of the original width
(at least one channel); the classifier's outputs are never pruned.
"""
from __future__ import annotations

import copy
import math
import random
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Sequence

import torch
from torch import nn

from elastic.argtypes import ROUNDINGS
from elastic.errors import BadBudget, ElasticError, UnknownName
from elastic.methods.channels import channel_structure
from elastic.models import ARCHS, arch_config, build_model, layer_channels
from elastic.profile import FP32_BYTES, profile_model

MODES: dict[str, str] = {"PA": "params", "FA": "macs", "MA": "memory"}
METRICS = ("params", "macs", "memory")
INITS = ("scratch", "finetune")
DEFAULT_STEP = 0.1
DEFAULT_MIN_FRACTION = 0.1   # default minimum width: 10% of the original, at least 1 channel


# ---- the network as data: layers, coupled groups ------------------------------------

@dataclass(frozen=True)
class _Layer:
    """One conv / linear / BN, in call order, with its channels tied to groups."""
    name: str
    kind: str                # "conv", "linear" or "bn"
    in_channels: int         # original (conv/linear); BN: = out_channels
    out_channels: int
    in_group: int | None     # the group whose width sets the input; None: fixed
    out_group: int | None    # the group whose width sets the output; None: fixed
    in_per_channel: int      # inputs per channel of in_group (H*W when a map is flattened)
    kernel: int              # kh * kw; 1 for linear
    bias: bool               # conv/linear bias, or BN affine
    out_pixels: int          # H_out * W_out; 1 for linear


@dataclass(frozen=True)
class _Group:
    """Channels pruned together: the filters of `producers` (conv/linear, call order)."""
    name: str                # the first producer
    channels: int
    producers: tuple[str, ...]


@dataclass(frozen=True)
class _Structure:
    arch: str
    num_classes: int
    input_shape: tuple[int, int, int]
    layers: tuple[_Layer, ...]
    groups: tuple[_Group, ...]
    owned: tuple[tuple[int, ...], ...]   # per group: indices of the layers whose outputs it holds
    peak_memory: int                     # of the unpruned model, fp32 bytes

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(g.channels for g in self.groups)

    def layer_costs(self, widths: Sequence[int]) -> list[tuple[int, int, int]]:
        """(params, MACs, memory bytes) of every layer at these group widths."""
        return [_layer_cost(layer, widths) for layer in self.layers]

    def totals(self, widths: Sequence[int]) -> dict[str, int]:
        costs = self.layer_costs(widths)
        return {metric: sum(c[i] for c in costs) for i, metric in enumerate(METRICS)}

    def shapes(self, widths: Sequence[int]) -> dict[str, list[int]]:
        """The `arch_config` shapes of the layers whose shape differs from the original."""
        shapes = {}
        for layer in self.layers:
            cin, cout = _channels(layer, widths)
            if (cin, cout) != (layer.in_channels, layer.out_channels):
                shapes[layer.name] = [cout] if layer.kind == "bn" else [cin, cout]
        return shapes


def _channels(layer: _Layer, widths: Sequence[int]) -> tuple[int, int]:
    cout = layer.out_channels if layer.out_group is None else widths[layer.out_group]
    if layer.kind == "bn":
        return cout, cout
    cin = layer.in_channels if layer.in_group is None else widths[layer.in_group] * layer.in_per_channel
    return cin, cout


def _layer_cost(layer: _Layer, widths: Sequence[int]) -> tuple[int, int, int]:
    """Params, MACs and memory bytes as `elastic.profile` counts them."""
    cin, cout = _channels(layer, widths)
    if layer.kind == "bn":
        params, macs = (2 * cout if layer.bias else 0), 0
    else:
        weights = cin * cout * layer.kernel
        params = weights + (cout if layer.bias else 0)
        macs = weights * layer.out_pixels          # bias adds are not counted
    memory = (params + cout * layer.out_pixels) * FP32_BYTES
    return params, macs, memory


@lru_cache(maxsize=8)
def _structure(arch: str, num_classes: int) -> _Structure:
    """Layers and coupled groups of the default `arch` (pure data, so cached)."""
    size = ARCHS.get(arch).input_size
    input_shape = (3, size, size)
    model = build_model(arch, num_classes)
    prof = profile_model(model, input_shape)
    modules = dict(model.named_modules())
    unsupported = [l.name for l in prof.layers if l.kind not in ("conv", "linear", "bn")]
    if unsupported:
        raise ValueError(f"{arch}: complexity pruning supports conv, linear and BN layers, not {unsupported}")
    # One analysis of coupled channels for planning and for prune-and-grow (elastic.methods.channels);
    # the classifier's outputs are fixed there, as the network's output.
    coupled = channel_structure(model)
    in_group = {layer.name: layer.in_group for layer in coupled.layers}
    in_per_channel = {layer.name: layer.per_channel for layer in coupled.layers}
    out_group = {**{layer.name: layer.out_group for layer in coupled.layers}, **dict(coupled.norms)}
    groups = []
    for index, channels in enumerate(coupled.sizes):
        producers = tuple(layer.name for layer in coupled.layers if layer.out_group == index)
        groups.append(_Group(producers[0], channels, producers))

    layers = []
    for row in prof.layers:
        module = modules[row.name]
        if isinstance(module, nn.Conv2d) and module.groups != 1:
            raise ValueError(f"{arch}: grouped convolution {row.name} is not supported")
        is_bn = row.kind == "bn"
        layers.append(_Layer(
            name=row.name, kind=row.kind,
            in_channels=layer_channels(module)[0],
            out_channels=layer_channels(module)[1],
            in_group=None if is_bn else in_group.get(row.name),
            out_group=out_group.get(row.name),
            in_per_channel=in_per_channel.get(row.name, 1),
            kernel=math.prod(module.kernel_size) if isinstance(module, nn.Conv2d) else 1,
            bias=(module.affine if is_bn else module.bias is not None),
            out_pixels=math.prod(row.out_shape[1:]),
        ))
    owned = tuple(tuple(i for i, layer in enumerate(layers) if layer.out_group == g) for g in range(len(groups)))
    structure = _Structure(arch, num_classes, input_shape, tuple(layers), tuple(groups), owned,
                           prof.peak_memory_bytes())
    measured = {"params": prof.params, "macs": prof.macs, "memory": sum(l.memory_bytes for l in prof.layers)}
    if structure.totals(structure.widths) != measured:
        raise ValueError(f"{arch}: the analytic complexity model does not match the profiler "
                         f"({structure.totals(structure.widths)} vs {measured})")
    return structure


# ---- the plan -----------------------------------------------------------------------

@dataclass(frozen=True)
class PrunePlan:
    """A pruned architecture, planned without training.

    kept: out channels (kept, original) of every prunable conv/linear, in call order.
    achieved: fraction kept of "params", "macs", "memory" (sum of per-layer
    weight + output activation bytes) and "peak_memory" (weights + peak live
    activations, fp32). params / macs / memory / peak_memory: absolute, measured
    by the profiler on the pruned model; `original` has the same for the unpruned one.
    groups: the prunable layers whose out channels are coupled, one tuple per group.
    """
    arch: str
    num_classes: int
    mode: str                      # "PA", "FA", "MA" or "uniform"
    metric: str                    # the budget metric: "params", "macs" or "memory"
    target: float
    config: dict[str, Any]         # elastic.models.arch_config of the pruned model
    kept: dict[str, tuple[int, int]]
    achieved: dict[str, float]
    params: int
    macs: int
    memory: int
    peak_memory: int
    original: dict[str, int]
    groups: tuple[tuple[str, ...], ...]
    step: float | None = None
    min_width: int | None = None
    round_to: int = 1
    seed: int | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def details(self) -> dict[str, Any]:
        """The JSON record for the results' `details` column."""
        return {"mode": self.mode, "metric": self.metric, "target": self.target,
                "achieved": {k: round(v, 6) for k, v in self.achieved.items()},
                "kept": {name: list(pair) for name, pair in self.kept.items()},
                "round_to": self.round_to, "step": self.step, "min_width": self.min_width,
                "seed": self.seed, "original": dict(self.original), **dict(self.options)}


@dataclass(frozen=True)
class FilterOptions:
    """What a filter pruning method (family "filters") plans from: the budget
    metric's mode, the fraction of it to keep and how widths are chosen."""
    mode: str = "FA"               # PA / FA / MA: the metric --target applies to (complexity: also the share)
    target: float = 0.5
    step: float = DEFAULT_STEP
    min_width: int | None = None
    round_to: int = 1
    seed: int = 0


def complexity_plan(arch: str, num_classes: int, options: FilterOptions) -> PrunePlan:
    """The method "complexity" (registered in elastic.methods): `plan`."""
    return plan(arch, num_classes, options.mode, options.target, step=options.step, min_width=options.min_width,
                round_to=options.round_to, seed=options.seed)


def uniform_thinning(arch: str, num_classes: int, options: FilterOptions) -> PrunePlan:
    """The method "uniform": `uniform_plan` on the mode's metric (step, min width
    and seed do not apply)."""
    return uniform_plan(arch, num_classes, options.target, MODES[options.mode], round_to=options.round_to)


def plan(arch: str, num_classes: int, mode: str, target: float, *, step: float = DEFAULT_STEP,
         min_width: int | None = None, round_to: int = 1, seed: int = 0) -> PrunePlan:
    """Complexity-driven pruning plan (no training; pure and deterministic).

    Repeatedly samples a prunable group with probability proportional to its
    share of the mode's metric (seeded `random.Random`) and removes `step` of its
    current filters (at least one; the last step only as many as the target
    needs), until the metric is at most `target` of the original: it lands
    below the target by less than one channel of the last group picked.
    min_width: smallest width per layer in channels (default: 10% of the
    original, at least 1). round_to: widths are multiples of it, except a layer
    already narrower than or equal to it, which keeps its width.
    Raises BadBudget if the target cannot be reached.
    """
    if mode not in MODES:
        raise UnknownName(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    _check_options(target, step, min_width, round_to)
    s = _structure(arch, num_classes)
    metric = MODES[mode]
    original = s.widths
    floors = tuple(_floor(c, min_width, round_to) for c in original)
    goal = target * s.totals(original)[metric]
    lowest = s.totals(floors)[metric] / s.totals(original)[metric]
    if lowest > target:
        raise BadBudget(
            f"{mode} target {target:g} is out of reach for {arch}: with every layer at its minimum width "
            f"(min width {min_width if min_width is not None else '10% of the original'}, round to {round_to}) "
            f"the smallest reachable fraction of {metric} is {lowest:.3f}")

    rng = random.Random(seed)
    widths = list(original)
    index = METRICS.index(metric)
    while s.totals(widths)[metric] > goal:
        costs = s.layer_costs(widths)
        open_groups = [g for g, w in enumerate(widths) if w > floors[g]]
        shares = [sum(costs[i][index] for i in s.owned[g]) for g in open_groups]
        g = rng.choices(open_groups, weights=shares if sum(shares) > 0 else None)[0]
        current = widths[g]
        widths[g] = max(floors[g], _snap_down(current - max(1, round(step * current)), round_to, original[g]))
        if s.totals(widths)[metric] < goal:
            # The last step: land on the target, the widest allowed width that meets it.
            for width in range(current - 1, widths[g], -1):
                trial = widths[:g] + [width] + widths[g + 1:]
                if _snap_down(width, round_to, original[g]) == width and s.totals(trial)[metric] <= goal:
                    widths[g] = width
                    break
    return _finish(s, mode, metric, target, tuple(widths),
                   step=step, min_width=min_width, round_to=round_to, seed=seed)


def uniform_plan(arch: str, num_classes: int, target: float, metric: str = "macs",
                 round_to: int = 1) -> PrunePlan:
    """Every prunable group thinned by the same fraction: the widest uniform
    network whose `metric` is at most `target` of the original (mode "uniform").
    Raises BadBudget if even one channel per layer is too much."""
    if metric not in METRICS:
        raise UnknownName(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    _check_options(target, DEFAULT_STEP, None, round_to)
    s = _structure(arch, num_classes)
    goal = target * s.totals(s.widths)[metric]

    def widths_at(fraction: float) -> tuple[int, ...]:
        return tuple(_nearest(c * fraction, round_to, c) for c in s.widths)

    if s.totals(widths_at(0.0))[metric] > goal:
        lowest = s.totals(widths_at(0.0))[metric] / s.totals(s.widths)[metric]
        raise BadBudget(f"uniform target {target:g} of {metric} is out of reach for {arch}: "
                        f"the smallest reachable fraction is {lowest:.3f}")
    low, high = 0.0, 1.0   # invariant: widths_at(low) meets the goal
    if s.totals(widths_at(high))[metric] <= goal:
        low = high
    for _ in range(40):
        middle = (low + high) / 2
        if s.totals(widths_at(middle))[metric] <= goal:
            low = middle
        else:
            high = middle
    return _finish(s, "uniform", metric, target, widths_at(low), round_to=round_to,
                   options={"fraction": round(low, 6)})


def _check_options(target: float, step: float, min_width: int | None, round_to: int) -> None:
    if not 0 < target <= 1:
        raise BadBudget(f"target {target} is not in (0, 1]: give the fraction to keep, e.g. 0.5")
    if not 0 < step < 1:
        raise ElasticError(f"step {step} is not in (0, 1): the fraction of a layer's filters removed at a time")
    if min_width is not None and min_width < 1:
        raise ElasticError(f"min width {min_width} must be at least 1 channel")
    if round_to not in ROUNDINGS:
        raise ElasticError(f"round_to {round_to} is not one of {ROUNDINGS}")


def _floor(channels: int, min_width: int | None, round_to: int) -> int:
    """Smallest allowed width of a layer of `channels` filters."""
    wanted = min_width if min_width is not None else max(1, math.ceil(DEFAULT_MIN_FRACTION * channels))
    return min(channels, max(round_to, math.ceil(wanted / round_to) * round_to))


def _snap_down(width: int, round_to: int, channels: int) -> int:
    """The widest allowed width <= `width`: a multiple of round_to, or the original."""
    return channels if width >= channels else width // round_to * round_to


def _nearest(width: float, round_to: int, channels: int) -> int:
    """The allowed width nearest `width`, at least one step of round_to."""
    if channels <= round_to:
        return channels
    return min(channels, max(round_to, round(width / round_to) * round_to))


def _finish(s: _Structure, mode: str, metric: str, target: float, widths: tuple[int, ...],
            **options: Any) -> PrunePlan:
    """Rebuild the planned network, profile it and check the analytic model agrees."""
    config = {"removed_blocks": [], "shapes": s.shapes(widths)}
    prof = profile_model(build_model(s.arch, s.num_classes, config), s.input_shape)
    measured = {"params": prof.params, "macs": prof.macs, "memory": sum(l.memory_bytes for l in prof.layers)}
    if s.totals(widths) != measured:  # a bug, not a user error: never show wrong numbers
        raise RuntimeError(f"{s.arch}: analytic complexity {s.totals(widths)} != profiled {measured}")
    original = {**s.totals(s.widths), "peak_memory": s.peak_memory}
    absolute = {**measured, "peak_memory": prof.peak_memory_bytes()}
    kept = {name: (w, g.channels) for g, w in zip(s.groups, widths) for name in g.producers}
    order = {layer.name: i for i, layer in enumerate(s.layers)}
    return PrunePlan(
        arch=s.arch, num_classes=s.num_classes, mode=mode, metric=metric, target=target, config=config,
        kept=dict(sorted(kept.items(), key=lambda item: order[item[0]])),
        achieved={k: absolute[k] / original[k] for k in absolute},
        params=absolute["params"], macs=absolute["macs"], memory=absolute["memory"],
        peak_memory=absolute["peak_memory"], original=original,
        groups=tuple(g.producers for g in s.groups), **options)


# ---- the pruned model ---------------------------------------------------------------

def build(plan: PrunePlan, source: nn.Module | None = None) -> nn.Module:
    """The physically pruned network: Torch-Pruning removes the channels from a
    copy of `source` (an unpruned, e.g. trained, `plan.arch`; default: a fresh
    one). In every group the filters with the largest L1 norm (summed over the
    group's coupled layers) are kept; `source` itself is not changed."""
    import torch_pruning as tp

    s = _structure(plan.arch, plan.num_classes)
    if source is None:
        model = build_model(plan.arch, plan.num_classes)
    else:
        leftover = arch_config(source, plan.arch, plan.num_classes)
        if leftover["shapes"] or leftover["removed_blocks"]:
            raise ValueError(f"build() prunes an unpruned {plan.arch}; this one is already pruned")
        model = copy.deepcopy(source)
    modules = dict(model.named_modules())
    device = next(model.parameters()).device
    with torch.enable_grad():
        graph = tp.DependencyGraph().build_dependency(
            model, example_inputs=torch.zeros(1, *s.input_shape, device=device), verbose=False)
    for group in s.groups:
        keep = plan.kept[group.name][0]
        if keep == group.channels:
            continue
        # L1 norm of each output filter, summed over the coupled producers: (channels,)
        scores = sum(modules[name].weight.detach().abs().flatten(1).sum(1) for name in group.producers)
        drop = sorted(torch.argsort(scores, stable=True)[: group.channels - keep].tolist())
        root = modules[group.name]
        graph.get_pruning_group(root, graph.get_pruner_of_module(root).prune_out_channels, drop).prune()
    if arch_config(model, plan.arch, plan.num_classes) != plan.config:
        raise RuntimeError(f"{plan.arch}: the pruned model does not match the plan's config")
    return model


__all__ = ["MODES", "METRICS", "ROUNDINGS", "FilterOptions", "PrunePlan", "build", "complexity_plan", "plan",
           "uniform_plan", "uniform_thinning"]
