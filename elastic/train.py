"""The training and evaluation engine: any model, any dataset, one recipe.

Images stay uint8 tensors (on the GPU when they fit) and are augmented in batches
on the device, so small CIFAR networks are not starved by a Python data loader.
Progress is reported through a callback; nothing here prints.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from elastic.checkpoints import load_checkpoint, save_checkpoint
from elastic.data import DatasetSpec, ImageSet
from elastic.errors import BadCheckpoint, Diverged
from elastic.precision import autocast

SYNC_EVERY = 20  # on CUDA, steps between reads of the loss (each read waits for the GPU)


@dataclass(frozen=True)
class Recipe:
    """How to train. The defaults are the CIFAR recipe of the shared data README:
    SGD with Nesterov momentum, one-cycle learning rate, label smoothing 0.1,
    weight decay 5e-4, random crop (4-pixel padding) and flip."""
    epochs: int = 60
    batch_size: int = 256
    lr: float = 0.2                  # peak learning rate of the one-cycle schedule
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    warmup: float = 0.25             # fraction of steps spent rising to the peak
    schedule: str = "onecycle"       # "onecycle", "cosine" or "constant"
    precision: str = "fp32"          # "fp32" or "bf16" (autocast); elastic.precision.resolve picks one
    channels_last: bool = True       # memory layout on CUDA and under bf16
    train_subset: int = 0            # >0: train on a fixed subset of this many images

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Progress:
    """What the callback receives: after every step (`val_acc` is None) and
    after every epoch (with the validation accuracy, if a val set was given)."""
    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float
    lr: float
    val_acc: float | None = None


@dataclass
class TrainResult:
    history: list[dict[str, float]] = field(default_factory=list)   # one row per epoch
    seconds: float = 0.0
    resumed_from_epoch: int = 0


LossFn = Callable[[nn.Module, Tensor, Tensor], Tensor]


def pick_device(name: str = "auto") -> torch.device:
    """The device `name` names ('auto': CUDA where there is a GPU, else the CPU);
    a CUDA device that this machine does not have is a one-line error."""
    from elastic.errors import ElasticError
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index or 0) >= count:
            have = f"{count} CUDA device(s)" if count else "no CUDA GPU (or a CPU-only PyTorch)"
            raise ElasticError(f"--device {name}: this machine has {have}; use --device cpu or auto")
    return device


def normalize(images: Tensor, spec: DatasetSpec) -> Tensor:
    """uint8 (N, 3, H, W) -> float, scaled and standardised with the dataset's statistics."""
    mean = torch.tensor(spec.mean, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, device=images.device).view(1, 3, 1, 1)
    return (images.float() / 255 - mean) / std


def augment(images: Tensor, spec: DatasetSpec, gen: torch.Generator) -> Tensor:
    """Random crop with 4-pixel zero padding + flip (CIFAR), or random-resized crop
    (scale 0.35-1) + flip (Imagenette), on a uint8 batch, on its own device."""
    n, c, h, w = images.shape
    dev = images.device
    if spec.family == "cifar":
        pad = 4
        padded = F.pad(images, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (n,), device=dev, generator=gen)
        dx = torch.randint(0, 2 * pad + 1, (n,), device=dev, generator=gen)
        rows = (dy[:, None] + torch.arange(h, device=dev)).view(n, 1, h, 1)
        cols = (dx[:, None] + torch.arange(w, device=dev)).view(n, 1, 1, w)
        out = padded[torch.arange(n, device=dev).view(n, 1, 1, 1),
                     torch.arange(c, device=dev).view(1, c, 1, 1), rows, cols]
    else:
        from torchvision.ops import roi_align
        area = torch.empty(n, device=dev).uniform_(0.35, 1.0, generator=gen) * h * w
        log_ratio = torch.empty(n, device=dev).uniform_(math.log(3 / 4), math.log(4 / 3), generator=gen)
        ratio = log_ratio.exp()
        bw = (area * ratio).sqrt().clamp(max=w)
        bh = (area / ratio).sqrt().clamp(max=h)
        x0 = torch.rand(n, device=dev, generator=gen) * (w - bw)
        y0 = torch.rand(n, device=dev, generator=gen) * (h - bh)
        boxes = torch.stack([torch.arange(n, device=dev, dtype=torch.float), x0, y0, x0 + bw, y0 + bh], 1)
        out = roi_align(images.float(), boxes, (h, w), spatial_scale=1.0, sampling_ratio=2, aligned=True)
        out = out.round().clamp(0, 255).to(torch.uint8)
    flip = torch.rand(n, device=dev, generator=gen) < 0.5
    return torch.where(flip.view(n, 1, 1, 1), out.flip(3), out)


def train(model: nn.Module, train_set: ImageSet, spec: DatasetSpec, recipe: Recipe, *,
          device: torch.device | str = "cpu", seed: int = 0, val_set: ImageSet | None = None,
          on_progress: Callable[[Progress], None] | None = None,
          checkpoint: Path | None = None, loss_fn: LossFn | None = None,
          after_step: Callable[[], None] | None = None) -> TrainResult:
    """Train `model` in place with `recipe`; returns the per-epoch history.

    checkpoint: a file written after every epoch (atomically) and resumed from
    if it exists. loss_fn(model, x, y) replaces the plain cross-entropy (for
    methods that train several widths at once); after_step runs after each
    optimizer step (for methods that keep some weights fixed).
    Only parameters with requires_grad are optimised.
    """
    device = torch.device(device)
    cuda = device.type == "cuda"
    if recipe.precision not in ("fp32", "bf16"):
        raise ValueError(f"recipe precision {recipe.precision!r}: resolve it first (elastic.precision.resolve)")
    channels_last = recipe.channels_last and (cuda or recipe.precision == "bf16")
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if recipe.train_subset:
        train_set = train_set.head(recipe.train_subset, seed)
    images, labels = train_set.images.to(device), train_set.labels.to(device)
    steps = max(len(labels) // recipe.batch_size, 1)  # drop the last partial batch
    # Under torchrun, every process draws the same batches and takes its share of each.
    rank, world = _distributed()
    net = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum,
                                nesterov=recipe.nesterov, weight_decay=recipe.weight_decay)
    scheduler = _scheduler(optimizer, recipe, steps)
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    loss_fn = loss_fn or (lambda m, x, y: criterion(m(x), y))
    result = TrainResult()
    start_epoch = 0
    if checkpoint is not None and Path(checkpoint).is_file():
        state = load_checkpoint(checkpoint, device)
        check_resume(checkpoint, state, model, recipe)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch = result.resumed_from_epoch = int(state["epoch"])
        result.history = list(state.get("history", []))
    # Wall-clock seconds carry over a resume, so a row reports the whole run.
    started = time.perf_counter() - (float(state.get("seconds", 0.0)) if start_epoch else 0.0)
    for epoch in range(start_epoch, recipe.epochs):
        model.train()
        # Seeded by (seed, epoch) so a resumed run draws the same batches.
        gen = torch.Generator(device=device).manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(len(labels), device=device, generator=gen)
        total = torch.zeros((), device=device)
        for step in range(steps):
            idx = order[step * recipe.batch_size:(step + 1) * recipe.batch_size]
            x = normalize(augment(images[idx], spec, gen), spec)[rank::world]
            idx = idx[rank::world]
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device.type, recipe.precision):
                loss = loss_fn(net, x, labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if after_step is not None:
                after_step()
            total += loss.detach()
            # Reading the loss waits for the GPU: on CUDA do it every SYNC_EVERY steps
            # only, so the CPU can queue the next steps while the GPU works.
            if not cuda or (step + 1) % SYNC_EVERY == 0 or step + 1 == steps:
                loss_value = _finite(float(loss.detach()), epoch)
                if on_progress:
                    on_progress(Progress(epoch + 1, recipe.epochs, step + 1, steps, loss_value,
                                         scheduler.get_last_lr()[0]))
        row = {"epoch": epoch + 1, "loss": _finite(float(total), epoch) / steps}
        if val_set is not None:
            row["val_acc"] = evaluate(model, val_set, spec, device=device)
        result.history.append(row)
        if on_progress:
            on_progress(Progress(epoch + 1, recipe.epochs, steps, steps, row["loss"],
                                 scheduler.get_last_lr()[0], row.get("val_acc")))
        if checkpoint is not None and rank == 0:
            save_checkpoint(checkpoint, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                         "scheduler": scheduler.state_dict(), "epoch": epoch + 1,
                                         "history": result.history, "recipe": recipe.to_dict(),
                                         "seconds": time.perf_counter() - started})
    result.seconds = time.perf_counter() - started
    model.to(memory_format=torch.contiguous_format)
    return result


def check_resume(path: Path | str, state: dict[str, Any], model: nn.Module, recipe: Recipe) -> None:
    """Refuse, in one line, a resume file that is not one, or whose recipe or
    network differs from this run's: resuming it would mix two trainings."""
    missing = [k for k in ("model", "optimizer", "scheduler", "epoch") if k not in state]
    if missing:
        kind = "a model checkpoint" if "model" in state else "not a training resume file"
        raise BadCheckpoint(f"{path} is {kind} (it has no {', '.join(missing)}); --checkpoint takes the "
                            f"resume file a training writes, or a path that does not exist yet")
    saved = state.get("recipe")
    if not isinstance(saved, dict):
        raise BadCheckpoint(f"{path} does not record its recipe (written by an older version); delete it "
                            f"to start this training afresh")
    diff = [f"{k} {saved.get(k)!r} there, {v!r} here" for k, v in recipe.to_dict().items() if saved.get(k) != v]
    if diff:
        raise BadCheckpoint(f"{path} was written by another recipe ({'; '.join(diff)}); delete it or rerun "
                            f"with the same options")
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in state["model"].items() if isinstance(v, Tensor)}
    if ours != theirs:
        differ = sorted(set(ours) ^ set(theirs)) or [k for k in ours if ours[k] != theirs.get(k)]
        raise BadCheckpoint(f"{path} holds another network ({len(differ)} tensors differ, e.g. {differ[0]}); "
                            f"delete it or rerun with the architecture it was written for")


def _finite(loss: float, epoch: int) -> float:
    if not math.isfinite(loss):
        raise Diverged(f"training diverged: the loss became {loss} in epoch {epoch + 1}; "
                       f"lower the learning rate (--lr)")
    return loss


def _distributed() -> tuple[int, int]:
    """(rank, world size) when running data-parallel under torchrun, else (0, 1)."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _scheduler(optimizer: torch.optim.Optimizer, recipe: Recipe, steps: int):
    total = max(recipe.epochs * steps, 1)
    if recipe.schedule == "onecycle" and total >= 4:
        # OneCycleLR divides by (warm-up steps - 1) and by the remaining steps: keep both >= 1.
        warmup = min(max(recipe.warmup, 2.5 / total), 0.5)
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=recipe.lr, total_steps=total, pct_start=warmup,
            anneal_strategy="linear", div_factor=25, final_div_factor=1e3,
            cycle_momentum=False)
    if recipe.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total)
    if recipe.schedule in ("constant", "onecycle"):  # one-cycle over fewer than 4 steps: constant
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    raise ValueError(f"unknown schedule {recipe.schedule!r}; use onecycle, cosine or constant")


@torch.no_grad()
def predict(model: nn.Module | Callable[[Tensor], Tensor], data: ImageSet, spec: DatasetSpec, *,
            device: torch.device | str = "cpu", batch_size: int = 1000) -> Tensor:
    """Predicted class of every image (int64, on the CPU). `model` may be any
    callable on a normalised batch, e.g. one level of an elastic model; modules
    are evaluated in eval mode and their mode restored afterwards."""
    device = torch.device(device)
    was_training = isinstance(model, nn.Module) and model.training
    if isinstance(model, nn.Module):
        model.eval()
    out = []
    try:
        for start in range(0, len(data), batch_size):
            x = normalize(data.images[start:start + batch_size].to(device), spec)
            with autocast(device.type, "bf16" if device.type == "cuda" else "fp32"):
                out.append(model(x).argmax(1).cpu())
    finally:
        if was_training:
            model.train()
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)


def evaluate(model: nn.Module | Callable[[Tensor], Tensor], data: ImageSet, spec: DatasetSpec, *,
             device: torch.device | str = "cpu", batch_size: int = 1000) -> float:
    """Top-1 accuracy in percent."""
    if len(data) == 0:
        raise ValueError("cannot evaluate on an empty set")
    predicted = predict(model, data, spec, device=device, batch_size=batch_size)
    return 100.0 * float((predicted == data.labels).float().mean())
