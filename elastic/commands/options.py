"""What the commands share: the common options (model, data, recipe,
precision), turning them into the package's inputs (data, recipe, run
settings), progress bars, and the checks made before long work starts."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from elastic.argtypes import device, integer, number
from elastic.atomic import check_creatable
from elastic.data import DATASETS, cache_dir, load_dataset
from elastic.errors import ElasticError
from elastic.identity import settings
from elastic.models import ARCHS
from elastic.precision import PRECISIONS, resolve
from elastic.results import read_results, results_dir
from elastic.runs import find_baseline
from elastic.train import Recipe


def add_model_args(p: argparse.ArgumentParser, *, arch: str | None = "resnet20") -> None:
    p.add_argument("--arch", default=arch, required=arch is None, choices=ARCHS.names(),
                   help="architecture (default: %(default)s)")
    p.add_argument("--dataset", default="cifar10", choices=DATASETS.names(),
                   help="dataset; sets the class count and input size (default: %(default)s)")


def add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=None,
                   help="folder holding the dataset archive or torchvision files "
                        "(default: $ELASTIC_DATA, else ./data and ../shared/data)")
    p.add_argument("--data", default="auto", choices=["auto", "archive", "torchvision", "synthetic"],
                   help="where images come from (default: %(default)s)")
    p.add_argument("--download", action="store_true", help="download with torchvision if not found")
    p.add_argument("--seed", type=integer(0), default=0, help="random seed (default: %(default)s)")
    p.add_argument("--device", type=device, default="auto",
                   help="cpu, cuda, cuda:N or auto (default: %(default)s)")


def add_recipe_args(p: argparse.ArgumentParser, epochs: int = 60, lr: float = 0.2) -> None:
    p.add_argument("--epochs", type=integer(1), default=epochs, help="training epochs (default: %(default)s)")
    p.add_argument("--batch-size", type=integer(1), default=256, help="(default: %(default)s)")
    p.add_argument("--lr", type=number(above=0), default=lr, help="peak learning rate (default: %(default)s)")
    p.add_argument("--weight-decay", type=number(at_least=0), default=5e-4, help="(default: %(default)s)")
    p.add_argument("--train-subset", type=integer(0), default=0,
                   help="train on a fixed subset of this many images (0: all)")
    p.add_argument("--out", default=None,
                   help="results CSV to append the row to (default: cached_results/<dataset>.csv)")
    p.add_argument("--label", default="", help="a note stored with the row, e.g. 'short CPU schedule'")
    add_precision_arg(p)


def add_precision_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="training arithmetic: bf16 autocast with channels_last, or fp32; auto: bf16 on CUDA "
                        "and on a CPU with native bf16 (AMX, AVX512-BF16) where a probe shows it faster, "
                        "else fp32 (default: %(default)s)")


def precision_for(args: argparse.Namespace, device: torch.device) -> str:
    """The arithmetic this command trains in ('fp32' or 'bf16') on `device`."""
    return resolve(args.precision, device)


def recipe_from(args: argparse.Namespace, precision: str, *, epochs: int | None = None, lr: float | None = None):
    return Recipe(epochs=args.epochs if epochs is None else epochs, batch_size=args.batch_size,
                  lr=args.lr if lr is None else lr, weight_decay=args.weight_decay,
                  train_subset=args.train_subset, precision=precision)


def run_settings(recipe, data_source: str, start: str = "", **options) -> dict:
    """The settings a run id's tag covers (elastic.identity.settings) for `recipe`."""
    return settings(batch_size=recipe.batch_size, lr=recipe.lr, weight_decay=recipe.weight_decay,
                    train_subset=recipe.train_subset, data_source=data_source, start=start, **options)


def positive_fraction(text: str) -> float:
    """argparse type for a target in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not in (0, 1]: give the fraction to keep, e.g. 0.5")
    return value


def load_data(args: argparse.Namespace):
    return load_dataset(args.dataset, args.data_dir, source=args.data, download=args.download, seed=args.seed)


def check_arch_fits(arch: str, dataset: str) -> None:
    if ARCHS.get(arch).family != DATASETS.get(dataset).family:
        raise ElasticError(f"{arch} is built for {ARCHS.get(arch).family} images; "
                           f"{dataset} needs one of the {DATASETS.get(dataset).family} architectures")


def progress_bar(desc: str) -> Callable:
    """A tqdm bar driven by the training engine's Progress callback."""
    bar = None

    def update(p) -> None:
        nonlocal bar
        if bar is None or bar.total != p.steps:
            if bar is not None:
                bar.close()
            bar = tqdm(total=p.steps, desc=desc, leave=False, file=sys.stderr)
        if p.val_acc is None:
            bar.n = p.step
            bar.set_postfix(epoch=f"{p.epoch}/{p.epochs}", loss=f"{p.loss:.3f}", refresh=False)
            bar.refresh()
        else:
            bar.write(f"{desc} epoch {p.epoch}/{p.epochs}: loss {p.loss:.3f}, val acc {p.val_acc:.2f}%")
            bar.reset()
    return update


def results_path(args: argparse.Namespace):
    return Path(args.out) if args.out else results_dir() / f"{args.dataset}.csv"


def check_outputs(results: Path) -> None:
    """Before any work starts: the results file is a valid results file or can be
    created, and the checkpoint folder can be written, so that an hour of
    training is never lost to a bad --out at the end."""
    if results.is_dir():
        raise ElasticError(f"--out {results} is a folder; name a results file, e.g. {results / 'results.csv'}")
    if results.exists():
        read_results(results)                      # a file that is not a valid results file says so now
        if not os.access(results, os.W_OK):
            raise ElasticError(f"--out {results} cannot be written (permission denied)")
    else:
        check_creatable(results.parent, f"--out {results}")
    check_creatable(cache_dir() / "checkpoints", "the checkpoint folder (set $ELASTIC_CACHE to move it)")



def baseline_for(args) -> Path:
    """The --baseline a command was given, else the matching trained baseline."""
    if getattr(args, "baseline", None):
        return Path(args.baseline)
    return find_baseline(args.dataset, args.arch, results_path(args), args.data == "synthetic")[0]
