"""Elastic prune-and-grow (Mangal et al.): one model, several nested widths.

Every prunable layer's channels are reordered by importance, so that each level
(by default 51.2%, 64%, 80% and 100% of the channels) uses the *leading slices*
of the shared weight tensors. The smallest level (the core) is fine-tuned first;
then level by level the channels are added back (starting from the baseline's
weights) and only what is new is trained, so every smaller level keeps computing
exactly what it did. Each level has its own BatchNorm parameters and statistics
and its own classifier head.

The network itself (levels as leading slices, `forward(x, level)` that switches
nothing on the model, extraction, its checkpoint) is elastic.methods.elastic_net;
this module makes and trains one: the prune step (`build_elastic`), the grow
step (`train_level`, `grow_level`), and the two registered methods that train
the levels, `prune_and_grow` (this paper) and `joint` (all widths together).

Structure is found by tracing the network with torch.fx (elastic.methods.channels,
the analysis complexity pruning shares): channels joined by an
addition (residual connections) form one group with one order; the network's
input and output channels stay fixed. Supported layers: Conv2d (groups=1),
Linear, BatchNorm, flatten, additions and stateless activations / pooling /
dropout, which covers the CIFAR ResNets, VGG and AlexNet (and torchvision's
ResNet-50 and VGG-16-BN).

Levels are numbered from the smallest (0, the core) to the full width (-1).
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch
from torch import Tensor, nn

from elastic.data import DatasetSpec, ImageSet
from elastic.errors import ElasticError
from elastic.methods.channels import Layer, Structure, channel_structure
from elastic.methods.elastic_net import (DEFAULT_LEVELS, ElasticNet, LevelView, check_widths, copy_leading, extract,
                                         level_channels, load_elastic, save_elastic, switch_time_us)
from elastic.train import evaluate, Progress, Recipe, TrainResult, train

# ---- prune: rank, reorder, build -----------------------------------------------------

def filter_importance(model: nn.Module, structure: Structure, group: int, importance: str = "l2") -> Tensor:
    """Score of each channel of `group`: the L2 (or L1) norm of the filters that
    write it, summed over the layers tied by residual additions."""
    p = {"l2": 2, "l1": 1}.get(importance)
    if p is None:
        raise ElasticError(f"unknown importance {importance!r}; use l2 or l1")
    score = torch.zeros(structure.sizes[group])
    for layer in structure.layers:
        if layer.out_group == group:
            weight = model.get_submodule(layer.name).weight.detach()
            score += weight.flatten(1).norm(p=p, dim=1).float().cpu()
    return score


@torch.no_grad()
def reorder_channels(model: nn.Module, structure: Structure, group: int, order: Tensor) -> None:
    """Put the channels of `group` in `order`, in place: the writers' filters,
    the batch norms and the readers' input channels move together, so the
    network computes the same function."""
    order = order.to(torch.long)
    for layer in structure.layers:
        module = model.get_submodule(layer.name)
        if layer.out_group == group:
            module.weight.copy_(module.weight[order.to(module.weight.device)])
            if module.bias is not None:
                module.bias.copy_(module.bias[order.to(module.bias.device)])
        if layer.in_group == group:
            # A linear layer after a flatten reads per_channel features per channel, channel-major.
            idx = (order[:, None] * layer.per_channel + torch.arange(layer.per_channel)).flatten()
            module.weight.copy_(module.weight[:, idx.to(module.weight.device)])
    for name, norm_group in structure.norms:
        if norm_group == group:
            module = model.get_submodule(name)
            for tensor in (module.weight, module.bias, module.running_mean, module.running_var):
                tensor.copy_(tensor[order.to(tensor.device)])


def build_elastic(base_model: nn.Module, arch: str, num_classes: int,
                  widths: Sequence[float] = DEFAULT_LEVELS, importance: str = "l2", round_to: int = 1) -> ElasticNet:
    """The prune step: a copy of `base_model` with every channel group sorted by
    importance (most important first), wrapped as an elastic network whose level
    k uses the leading `widths[k]` of every group (rounded to multiples of
    `round_to`, see level_channels). Every level starts from the baseline's
    weights; the full level computes what `base_model` does."""
    base = copy.deepcopy(base_model)
    structure = channel_structure(base)
    for group in range(len(structure.sizes)):
        score = filter_importance(base, structure, group, importance)
        reorder_channels(base, structure, group, torch.argsort(score, descending=True, stable=True))
    return ElasticNet(base, arch, num_classes, widths, structure, round_to)


# ---- grow: train one level, keep the rest exactly fixed --------------------------------

@contextmanager
def _only_new_trainable(model: ElasticNet, level: int) -> Iterator[Callable[[], None]]:
    """Inside the block only what level `level` adds is trainable: its own batch
    norms and heads and, of each shared tensor, the slice it uses beyond level
    `level - 1` (all of level 0's slice for the core). Yields the `after_step`
    that writes every other entry of the shared tensors back after each
    optimizer step, which undoes weight decay and momentum on them exactly."""
    k = model.index(level)
    used, below = model.level_params(k), (model.level_params(k - 1) if k else {})
    masks: list[tuple[Tensor, Tensor]] = []          # (shared tensor, trainable entries)
    for layer, module in model._shared:
        for attr in ("weight", "bias"):
            tensor = getattr(module, attr)
            if tensor is None:
                continue
            name = f"{layer.name}.{attr}"
            mask = torch.zeros(tensor.shape, dtype=torch.bool, device=tensor.device)
            mask[tuple(slice(0, n) for n in used[name].shape)] = True
            if name in below:
                mask[tuple(slice(0, n) for n in below[name].shape)] = False
            masks.append((tensor, mask))
    frozen = [tensor.detach().clone() for tensor, _ in masks]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    for tensor, mask in masks:
        tensor.requires_grad_(bool(mask.any()))
    for module in model.own_modules(k).values():
        for p in module.parameters():
            p.requires_grad_(True)

    @torch.no_grad()
    def after_step() -> None:
        for (tensor, mask), old in zip(masks, frozen):
            tensor.copy_(torch.where(mask, tensor, old))

    try:
        yield after_step
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def train_level(model: ElasticNet, level: int, train_set: ImageSet, spec: DatasetSpec, recipe: Recipe, *,
                device: torch.device | str = "cpu", seed: int = 0, val_set: ImageSet | None = None,
                on_progress: Callable[[Progress], None] | None = None,
                checkpoint: Path | None = None) -> TrainResult:
    """Train level `level` in place: the core (level 0) entirely, a larger level
    only in what it adds. Every tensor a smaller level uses (and every entry only
    larger levels use) ends bit-identical to how it started."""
    model.to(device)
    with _only_new_trainable(model, level) as after_step:
        return train(LevelView(model, level), train_set, spec, recipe, device=device, seed=seed,
                     val_set=val_set, on_progress=on_progress, checkpoint=checkpoint, after_step=after_step)


@torch.no_grad()
def grow_level(model: ElasticNet, level: int) -> None:
    """Start level `level` (>= 1) from the level below: its batch norms and heads
    take level `level - 1`'s values for the channels they share; the added
    channels keep the baseline's values (which `train_level` never touched)."""
    k = model.index(level)
    if k == 0:
        raise ElasticError("level 0 is the core; it is trained, not grown")
    below = model.own_modules(k - 1)
    for name, module in model.own_modules(k).items():
        copy_leading(below[name], module)


def train_joint(model: ElasticNet, train_set: ImageSet, spec: DatasetSpec, recipe: Recipe, *,
                device: torch.device | str = "cpu", seed: int = 0, val_set: ImageSet | None = None,
                on_progress: Callable[[Progress], None] | None = None,
                checkpoint: Path | None = None) -> TrainResult:
    """The slimmable-network comparison: every level in every step, the sum of
    their losses, all weights trainable. Validation accuracy is the full level's."""
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)

    def loss_fn(m: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        return sum(criterion(m(x, level), y) for level in range(model.num_levels))

    return train(model, train_set, spec, recipe, device=device, seed=seed, val_set=val_set,
                 on_progress=on_progress, checkpoint=checkpoint, loss_fn=loss_fn)


# ---- the two elastic methods: how the levels are trained -----------------------------

@dataclass(frozen=True)
class LevelDone:
    """A level whose weights are final, as an elastic method reports it."""
    level: int
    epochs: int            # epochs that shaped it in all (the core's and each grown level's)
    stage_epochs: int      # epochs of the training that finished it
    seconds: float         # training time so far
    acc_before: float      # validation accuracy before that training
    history: list[dict[str, float]]
    trained_levels: int    # levels final now (what a checkpoint written now may claim)


@dataclass(frozen=True)
class ElasticTraining:
    """What an elastic method (family "elastic", registered in elastic.methods)
    trains with: (model, ElasticTraining) -> None. The driver's side effects
    (checkpoints, rows) happen in `level_done`; per-epoch resume files are
    `resume(stage)` ("level0", ... for prune-and-grow, "" for joint training)."""
    train_set: ImageSet
    val_set: ImageSet
    spec: DatasetSpec
    recipe_for: Callable[[int], Recipe]              # epochs -> the recipe
    epochs: int
    core_epochs: int
    grow_epochs: int
    device: torch.device | str
    seed: int
    progress: Callable[[str], Callable[[Progress], None] | None]    # a stage's label -> its progress callback
    resume: Callable[[str], Path]
    level_done: Callable[[LevelDone], None]

    def val_acc(self, model: ElasticNet, level: int) -> float:
        return evaluate(LevelView(model, level), self.val_set, self.spec, device=self.device)


def prune_and_grow(model: ElasticNet, t: ElasticTraining) -> None:
    """The method "elastic": train the core, then grow level by level, each
    trained only in what it adds; each level is final as soon as it is trained."""
    seconds = 0.0
    for k in range(model.num_levels):
        if k:
            grow_level(model, k)
        before = t.val_acc(model, k)
        epochs = t.grow_epochs if k else t.core_epochs
        result = TrainResult()
        if epochs:
            result = train_level(model, k, t.train_set, t.spec, t.recipe_for(epochs), device=t.device, seed=t.seed,
                                 val_set=t.val_set, on_progress=t.progress("core" if k == 0 else f"grow level {k}"),
                                 checkpoint=t.resume(f"level{k}"))
        seconds += result.seconds
        # Level k is final now: growing the larger levels never changes what it computes.
        t.level_done(LevelDone(k, t.core_epochs + k * t.grow_epochs, epochs, seconds, before, result.history, k + 1))


def joint(model: ElasticNet, t: ElasticTraining) -> None:
    """The method "elastic-joint": every level trained together for `t.epochs`."""
    before = [t.val_acc(model, k) for k in range(model.num_levels)]
    result = train_joint(model, t.train_set, t.spec, t.recipe_for(t.epochs), device=t.device, seed=t.seed,
                         val_set=t.val_set, on_progress=t.progress("joint"), checkpoint=t.resume(""))
    for k in range(model.num_levels):
        t.level_done(LevelDone(k, t.epochs, t.epochs, result.seconds, before[k], result.history, model.num_levels))


def schedule(epochs: int, core_epochs: int | None, grow_epochs: int | None, num_levels: int) -> tuple[int, int]:
    """(core epochs, epochs per grown level): by default half of `epochs` for the
    core and the other half split over the grown levels (at least 1 each)."""
    core = max(1, epochs // 2) if core_epochs is None else core_epochs
    grow = max(1, (epochs - core) // max(num_levels - 1, 1)) if grow_epochs is None else grow_epochs
    if core < 0 or grow < 0:
        raise ElasticError("--core-epochs and --grow-epochs must be 0 or more")
    return core, grow


__all__ = ["DEFAULT_LEVELS", "ElasticNet", "ElasticTraining", "Layer", "LevelDone", "LevelView", "Structure",
           "build_elastic", "channel_structure", "check_widths", "extract", "filter_importance", "grow_level", "joint",
           "level_channels", "load_elastic", "prune_and_grow", "reorder_channels", "save_elastic", "schedule",
           "switch_time_us", "train_joint", "train_level"]
