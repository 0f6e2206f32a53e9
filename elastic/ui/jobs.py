"""Quick runs started from the app, in a background thread so no page waits:
one shared worker (the app's machine is small), one quick run at a time on the
server, kept after it ends so a reload (or another tab) still shows it.

A quick run prunes the shipped trained baseline by a complexity plan and
fine-tunes the pruned network on a subset, so its accuracy means something after
a minute of training; without a trained baseline it trains from scratch, and
says so.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st
import torch

from torch.optim.swa_utils import update_bn

from elastic.checkpoints import load_model
from elastic.data import DatasetSpec, ImageSet, load_dataset
from elastic.errors import DataNotFound, ElasticError
from elastic.methods import complexity
from elastic.models import build_model
from elastic.precision import resolve as resolve_precision
from elastic.profile import profile_model
from elastic.runs import find_baseline
from elastic.train import Progress, Recipe, evaluate, normalize, pick_device, train
from elastic.ui import page

FINETUNE_LR = 0.02        # peak learning rate when fine-tuning a pruned trained network
SCRATCH_LR = 0.2          # the recipe's, when there is no trained baseline to start from
EVAL_IMAGES = 1000        # validation and test images a quick run is measured on


@dataclass(frozen=True)
class QuickRun:
    """What to run: an architecture pruned by a complexity plan (mode "none":
    unpruned) on a fixed subset of a dataset, for a few epochs."""
    arch: str
    dataset: str
    mode: str                      # "PA", "FA", "MA" or "none"
    target: float
    what: str                      # a description for the result, e.g. "resnet20, FA plan keeping 0.5"
    train_images: int = 2000
    epochs: int = 1
    batch_size: int = 128
    synthetic: bool = False        # use synthetic images even if the dataset is on disk
    seed: int = 0


@dataclass(frozen=True)
class QuickResult:
    run: QuickRun
    start: str                     # "fine-tuned from <baseline run id>" or "trained from scratch (...)"
    val_before: float              # validation accuracy of the pruned network before any training
    val_acc: float
    test_acc: float
    baseline_test_acc: float | None  # the unpruned baseline on the same test images
    test_images: int
    train_images: int
    seconds: float
    params: int
    macs: int
    data_source: str
    fallback: str                  # why synthetic data was used instead of the dataset ("" if not)
    losses: list[tuple[float, float]]   # (epoch as a fraction, training loss) after every step
    history: list[dict[str, float]]


def recalibrate_batch_norms(model: torch.nn.Module, images: ImageSet, spec: DatasetSpec,
                            batch_size: int = 256) -> None:
    """Recompute every BatchNorm's running statistics on `images` (no weight
    changes): the statistics of the unpruned network do not fit the channels a
    pruned one keeps, and fine-tuning starts much higher from refreshed ones."""
    batches = [normalize(images.images[i:i + batch_size], spec) for i in range(0, len(images), batch_size)]
    update_bn(batches, model)


def trained_baseline(arch: str, dataset: str) -> tuple[Path, str] | None:
    """The checkpoint and run id of the trained baseline a quick run of
    (arch, dataset) would fine-tune, or None when there is none on disk."""
    try:
        path, row = find_baseline(dataset, arch)
    except ElasticError:
        return None
    return path, row["run_id"]


def trained_start(arch: str, dataset: str) -> str | None:
    """The run id of that baseline, or None."""
    found = trained_baseline(arch, dataset)
    return found[1] if found else None


@dataclass
class Status:
    """Written by the worker thread, read by the page (plain attribute writes)."""
    phase: str = "queued behind another job"
    progress: Progress | None = None
    started: float = field(default_factory=time.monotonic)

    def fraction(self) -> float:
        p = self.progress
        if p is None:
            return 0.0
        return min(((p.epoch - 1) * p.steps + p.step) / max(p.epochs * p.steps, 1), 1.0)


@dataclass
class Job:
    run: QuickRun
    status: Status
    future: Future

    @property
    def running(self) -> bool:
        return not self.future.done()


class AlreadyRunning(ElasticError):
    """A quick run was asked for while another one runs."""


@dataclass
class _Board:
    """The server's quick run: the one running, or the last one that ended."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    job: Job | None = None


@st.cache_resource
def _board() -> _Board:
    return _Board()


@st.cache_resource
def _executor() -> ThreadPoolExecutor:
    """One worker for every session: runs never share two cores."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="elastic-quick-run")


def latest() -> Job | None:
    """The quick run running now, or the last one, for every session of this server."""
    return _board().job


def start(run: QuickRun) -> Job:
    """Start `run`; AlreadyRunning (naming the running one) if one runs."""
    board = _board()
    with board.lock:           # two clicks at once start one run
        if board.job is not None and board.job.running:
            raise AlreadyRunning(f"a quick run is already running ({board.job.run.what}); "
                                 "wait for it to end, its progress is shown below")
        status = Status()
        board.job = Job(run, status, _executor().submit(_train_in_use, run, status))
        return board.job


def _train_in_use(run: QuickRun, status: Status) -> QuickResult:
    with page.in_use():        # the app's warm-up waits while a quick run trains
        return quick_train(run, status)


def quick_train(run: QuickRun, status: Status) -> QuickResult:
    """Prune the trained baseline by the run's plan (or build the network fresh
    when there is none), fine-tune it on the subset, and measure validation
    accuracy before and after and test accuracy on up to 1,000 test images."""
    status.phase = "loading data"
    fallback = ""
    size = max(2 * run.train_images, 512)      # half of a synthetic set becomes validation
    if run.synthetic:
        data = load_dataset(run.dataset, source="synthetic", synthetic_size=size, seed=run.seed)
    else:
        try:
            data = load_dataset(run.dataset, seed=run.seed)
        except DataNotFound as err:
            fallback = str(err)
            data = load_dataset(run.dataset, source="synthetic", synthetic_size=size, seed=run.seed)
    torch.manual_seed(run.seed)
    status.phase = "pruning"
    source, start_id = None, None
    if data.source != "synthetic":
        found = trained_baseline(run.arch, run.dataset)
        if found is not None:
            path, start_id = found
            source, _ = load_model(path, arch=run.arch, num_classes=data.num_classes)
    if run.mode == "none":
        model = source if source is not None else build_model(run.arch, data.num_classes)
    else:
        plan = complexity.plan(run.arch, data.num_classes, run.mode, run.target)
        model = complexity.build(plan, source)
    prof = profile_model(model, (3, data.spec.input_size, data.spec.input_size))
    device = pick_device("auto")
    if source is not None and run.mode != "none":
        status.phase = "recalibrating batch norms"
        recalibrate_batch_norms(model, data.train.head(run.train_images, run.seed), data.spec)
    val, test = data.val.head(EVAL_IMAGES, run.seed), data.test.head(EVAL_IMAGES, run.seed)
    baseline_test = evaluate(source, test, data.spec, device=device) if source is not None else None
    val_before = evaluate(model, val, data.spec, device=device)
    recipe = Recipe(epochs=run.epochs, batch_size=run.batch_size, train_subset=run.train_images,
                    lr=FINETUNE_LR if source is not None else SCRATCH_LR,
                    precision=resolve_precision("auto", device))
    losses: list[tuple[float, float]] = []

    def progress(p: Progress) -> None:
        status.progress = p
        if p.val_acc is None:
            losses.append((p.epoch - 1 + p.step / max(p.steps, 1), p.loss))

    status.phase = "fine-tuning" if source is not None else "training from scratch"
    result = train(model, data.train, data.spec, recipe, device=device, seed=run.seed, val_set=val,
                   on_progress=progress)
    status.phase = "evaluating"
    start = (f"fine-tuned from the trained baseline {start_id}" if start_id is not None else
             "trained from scratch: no trained baseline of this architecture is on disk"
             if data.source != "synthetic" else "trained from scratch on synthetic images")
    return QuickResult(
        run=run, start=start, val_before=val_before, val_acc=result.history[-1].get("val_acc", float("nan")),
        test_acc=evaluate(model, test, data.spec, device=device), baseline_test_acc=baseline_test,
        test_images=len(test), train_images=min(run.train_images, len(data.train)), seconds=result.seconds,
        params=prof.params, macs=prof.macs, data_source=data.source, fallback=fallback, losses=losses,
        history=result.history)
