"""`profile`, `train` and `evaluate`: a model's cost, a baseline's training and a checkpoint's accuracy."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from elastic import identity
from elastic.argtypes import integer
from elastic.checkpoints import load_model, save_model
from elastic.commands.options import (add_data_args, add_model_args, add_recipe_args, check_arch_fits, check_outputs,
                                      load_data, precision_for, progress_bar,
                                      recipe_from, results_path, run_settings)
from elastic.data import DATASETS
from elastic.models import build_model
from elastic.profile import format_table, profile_model
from elastic.results import append_row
from elastic.runs import checkpoint_path, result_row
from elastic.train import evaluate, pick_device, train


# ---- profile ----------------------------------------------------------------------

def add_profile(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument("--checkpoint", default=None, help="profile the (pruned) model saved in this checkpoint")


def run_profile(args: argparse.Namespace) -> None:
    spec = DATASETS.get(args.dataset)
    check_arch_fits(args.arch, args.dataset)
    if args.checkpoint:
        model, _ = load_model(args.checkpoint, arch=args.arch, num_classes=spec.num_classes)
    else:
        model = build_model(args.arch, spec.num_classes)
    prof = profile_model(model, (3, spec.input_size, spec.input_size))
    print(f"{args.arch} on {args.dataset} (input 3x{spec.input_size}x{spec.input_size}, batch 1)")
    print(format_table(prof))


# ---- train ------------------------------------------------------------------------

def add_train(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    add_data_args(p)
    add_recipe_args(p)
    p.add_argument("--checkpoint", default=None,
                   help="checkpoint file, resumed from if it exists (default: in the cache folder)")


def run_train(args: argparse.Namespace) -> None:
    check_arch_fits(args.arch, args.dataset)
    check_outputs(results_path(args))
    device = _init_distributed(pick_device(args.device))
    data = load_data(args)
    precision = precision_for(args, device)
    recipe = recipe_from(args, precision)
    name = identity.baseline_name(args.dataset, args.arch, epochs=args.epochs, seed=args.seed,
                                  data_source=data.source)
    run_id = identity.run(name, precision, run_settings(recipe, data.source))
    torch.manual_seed(args.seed)
    model = build_model(args.arch, data.num_classes)
    final = checkpoint_path(run_id)
    resume = args.checkpoint or final.with_suffix(".resume.pt")
    result = train(model, data.train, data.spec, recipe, device=device, seed=args.seed,
                   val_set=data.val, on_progress=progress_bar(f"train {args.arch}"), checkpoint=resume)
    if result.resumed_from_epoch:
        print(f"resumed from epoch {result.resumed_from_epoch} of {args.epochs} (checkpoint {resume})")
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun, the first process writes the checkpoint and the row
    schedule = identity.schedule(args.epochs)
    save_model(final, model, args.arch, data.num_classes, args.dataset, run_id=run_id, recipe=recipe.to_dict(),
               seed=args.seed, schedule=schedule)
    if not args.checkpoint:
        Path(resume).unlink(missing_ok=True)  # finished: the next run with these options starts afresh
    row = result_row(model, args.arch, data, run_id=run_id, method="baseline", device=device,
                     seed=args.seed, epochs=args.epochs, seconds=result.seconds, precision=precision,
                     recipe=recipe.to_dict(), label=args.label, schedule=schedule)
    append_row(results_path(args), row)
    print(f"{run_id}: test {row['test_acc']:.2f}%, val {row['val_acc']:.2f}%, "
          f"{row['macs'] / 1e6:.1f} M MACs, {row['params'] / 1e3:.1f} K params, "
          f"{result.seconds / 60:.1f} min. Checkpoint: {final}")


def _init_distributed(device: torch.device) -> torch.device:
    """Join the process group when started by torchrun (WORLD_SIZE > 1): NCCL on
    GPUs (one per process), gloo on CPUs. Returns this process's device."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return device
    import torch.distributed as dist
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


# ---- evaluate ---------------------------------------------------------------------

def add_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a checkpoint written by train / prune")
    p.add_argument("--dataset", default="cifar10", help="(default: %(default)s)")
    add_data_args(p)
    p.add_argument("--split", default="test", choices=["test", "val", "train"], help="(default: %(default)s)")
    p.add_argument("--limit", type=integer(0), default=0, help="evaluate a fixed subset of this many images")


def run_evaluate(args: argparse.Namespace) -> None:
    data = load_data(args)
    device = pick_device(args.device)
    model, state = load_model(args.checkpoint, num_classes=data.num_classes, device=device)
    subset = getattr(data, args.split)
    if args.limit:
        subset = subset.head(args.limit)
    acc = evaluate(model, subset, data.spec, device=device)
    print(f"{state['arch']} on {args.dataset} {args.split} ({len(subset)} images): {acc:.2f}%")
