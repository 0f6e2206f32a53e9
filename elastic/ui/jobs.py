"""Quick training runs started from the app, in a background thread so no page
waits: one shared worker (the app's machine is small; jobs queue), one job per
session, polled by the page."""
from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import streamlit as st
import torch

from elastic.data import load_dataset
from elastic.errors import DataNotFound
from elastic.models import build_model
from elastic.precision import resolve as resolve_precision
from elastic.profile import profile_model
from elastic.train import Progress, Recipe, evaluate, pick_device, train


@dataclass(frozen=True)
class QuickRun:
    """What to train: an architecture (pruned by `config`) on a fixed subset of
    a dataset, from scratch, for a few epochs."""
    arch: str
    dataset: str
    config: dict[str, Any] | None
    what: str                      # a description for the result, e.g. "ResNet-20, FA plan at 0.5"
    train_images: int = 2000
    epochs: int = 1
    batch_size: int = 128
    synthetic: bool = False        # use synthetic images even if the dataset is on disk
    seed: int = 0


@dataclass(frozen=True)
class QuickResult:
    run: QuickRun
    val_acc: float
    test_acc: float
    test_images: int
    train_images: int
    seconds: float
    params: int
    macs: int
    data_source: str
    fallback: str                  # why synthetic data was used instead of the dataset ("" if not)
    history: list[dict[str, float]]


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


@st.cache_resource
def _executor() -> ThreadPoolExecutor:
    """One worker for every session: jobs queue rather than share two cores."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="elastic-quick-run")


def start(run: QuickRun) -> Job:
    status = Status()
    return Job(run, status, _executor().submit(quick_train, run, status))


def quick_train(run: QuickRun, status: Status) -> QuickResult:
    """Train `run` and measure it: validation accuracy after each epoch, test
    accuracy on up to 1,000 test images at the end."""
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
    model = build_model(run.arch, data.num_classes, run.config)
    prof = profile_model(model, (3, data.spec.input_size, data.spec.input_size))
    device = pick_device("auto")
    recipe = Recipe(epochs=run.epochs, batch_size=run.batch_size, train_subset=run.train_images,
                    precision=resolve_precision("auto", device))

    def progress(p: Progress) -> None:
        status.progress = p

    status.phase = "training"
    result = train(model, data.train, data.spec, recipe, device=device, seed=run.seed,
                   val_set=data.val.head(1000, run.seed), on_progress=progress)
    status.phase = "evaluating"
    test = data.test.head(1000, run.seed)
    return QuickResult(
        run=run, val_acc=result.history[-1].get("val_acc", float("nan")),
        test_acc=evaluate(model, test, data.spec, device=device), test_images=len(test),
        train_images=min(run.train_images, len(data.train)), seconds=result.seconds,
        params=prof.params, macs=prof.macs, data_source=data.source, fallback=fallback,
        history=result.history)

