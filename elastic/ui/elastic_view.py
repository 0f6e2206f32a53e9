"""The elastic page's loaders and figures: the shipped elastic checkpoints, one
cached model per checkpoint (shared by every session, switched by passing the
level, never by changing it), and per-level accuracy, cost and timings.

Cached values are keyed by the checkpoint's path and modification time, so a
re-shipped checkpoint is loaded afresh.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch

from elastic import deploy, explore, identity
from elastic.data import DATASETS, ImageSet
from elastic.errors import BadCheckpoint, DataNotFound
from elastic.methods import elastic_net, in_family
from elastic.methods.elastic_net import ElasticNet
from elastic.profile import profile_model
from elastic.train import evaluate, predict
from elastic.ui import data, figures

METHODS = in_family("elastic")
LIVE_IMAGES = 500          # test images the live accuracy is measured on
SHOWN_IMAGES = 8           # test images shown with their predictions
_FONT = dict(family="sans-serif", size=12)


# ---- finding and loading checkpoints ----------------------------------------------------

def checkpoints_dir() -> Path:
    """$ELASTIC_CHECKPOINTS_DIR, else checkpoints/ in the results folder
    (cached_results/checkpoints, where `python -m elastic grow --ship` writes)."""
    return Path(os.environ.get("ELASTIC_CHECKPOINTS_DIR") or data.results_dir() / "checkpoints")


def find_checkpoints(folder: Path) -> list[Path]:
    """Elastic checkpoints in `folder` (`*elastic*.pt`, not resume files), by
    dataset and architecture; prune-and-grow (the method of the paper) before
    joint training, so it is the one a page opens with."""
    found = [p for p in folder.glob("*elastic*.pt") if not p.name.endswith(".resume.pt")]
    return sorted(found, key=lambda p: (p.name.split("__")[:2], "__elastic-joint__" in p.name, p.name))


def checkpoint_label(path: Path) -> str:
    """'cifar10 · resnet20 · elastic · c4g2 · s0' from the file name (without the
    run's precision-digest tag)."""
    return " · ".join(identity.readable(path.stem.replace("__", "/")).split("/"))


def grow_command(arch: str = "resnet20", dataset: str = "cifar10", *, joint: bool = False, ship: bool = True) -> str:
    """The command that trains an elastic model (and ships its checkpoint to cached_results/checkpoints)."""
    return (f"python -m elastic grow --arch {arch} --dataset {dataset}" + (" --joint" if joint else "")
            + (" --ship" if ship else ""))


def stamp(path: Path) -> int:
    """The checkpoint's modification time: part of every cache key."""
    return path.stat().st_mtime_ns


@st.cache_resource(max_entries=4, show_spinner="Loading the elastic checkpoint...")
def elastic_model(path: str, mtime: int) -> ElasticNet:
    """The elastic network in a checkpoint, in eval mode, on the CPU. Shared by
    every session: call it with a level (`model(x, level)`), never change it."""
    return elastic_net.load_elastic(path)


def dataset_of(model: ElasticNet, path: Path) -> str:
    """The dataset the checkpoint was trained on: its metadata, else its file name."""
    name = str(model.meta.get("dataset") or path.name.split("__")[0])
    if name not in DATASETS:
        raise BadCheckpoint(f"{path.name}: trained on an unknown dataset {name!r}")
    return name


def trained_on_synthetic(model: ElasticNet) -> bool:
    """Runs on synthetic images say so in their id (elastic.identity)."""
    return identity.on_synthetic(str(model.meta.get("run", "")))


# ---- test images ------------------------------------------------------------------------

@dataclass(frozen=True)
class LiveImages:
    """A fixed subset of a test split, and where it came from."""
    images: ImageSet
    classes: tuple[str, ...]
    source: str            # "archive:<path>", "torchvision:<root>" or "synthetic"
    fallback: str          # why synthetic images stand in for the dataset ("" if they do not)


def live_images(dataset: str, synthetic: bool, n: int = LIVE_IMAGES) -> LiveImages:
    """`n` images of the test split (a fixed subset), real unless the model was
    trained on synthetic images; synthetic when the dataset is not on disk."""
    fallback = ""
    if synthetic:
        splits = data.dataset_splits(dataset, source="synthetic")
    else:
        try:
            splits = data.dataset_splits(dataset)
        except DataNotFound as err:
            fallback, splits = str(err), data.dataset_splits(dataset, source="synthetic")
    return LiveImages(splits.test.head(n), splits.classes, splits.source, fallback)


# ---- one level: accuracy, cost, timings --------------------------------------------------

def level_accuracy(path: str, mtime: int, level: int, live: LiveImages, dataset: str) -> tuple[float, list[int]]:
    """Test accuracy (%) of `level` on the live images, and its predictions for
    the images shown (`shown_indices`). Every level is evaluated on the first
    call for a checkpoint, so switching levels afterwards waits for nothing."""
    return _all_accuracies(path, mtime, dataset, live.source, len(live.images), live)[level]


@st.cache_data(show_spinner="Evaluating every level once on the test images...", max_entries=8)
def _all_accuracies(path: str, mtime: int, dataset: str, source: str, count: int,
                    _live: LiveImages) -> list[tuple[float, list[int]]]:
    # The images are not hashed: (dataset, source, count) name them (a fixed subset of one source).
    model = elastic_model(path, mtime)
    spec = DATASETS.get(dataset)
    shown = _live.images.take(shown_indices(len(_live.images)))
    out = []
    for level in range(model.num_levels):
        run = lambda x, k=level: model(x, k)       # noqa: E731 - the level is an argument, not a switch
        out.append((evaluate(run, _live.images, spec), predict(run, shown, spec).tolist()))
    return out


@st.cache_data(show_spinner="Profiling the level...", max_entries=64)
def level_profile(path: str, mtime: int, level: int) -> dict[str, float]:
    """Parameters, MACs and peak memory of `level` as a standalone network."""
    model = elastic_model(path, mtime)
    small = elastic_net.extract(model, level)          # a new module: profiling it leaves the shared model alone
    prof = profile_model(small, input_shape(model, path))
    return {"params": prof.params, "macs": prof.macs, "peak_mem_fp32": prof.peak_memory_bytes(4),
            "peak_mem_int8": prof.peak_memory_int8()}


@st.cache_data(show_spinner=False, max_entries=64)
def stage_widths(path: str, mtime: int, level: int) -> pd.DataFrame:
    """The output channels of every convolution of `level`, by stage (the first
    part of a layer's name: conv1, layer1, ...), against full width."""
    model = elastic_model(path, mtime)
    here, full = (_conv_widths(elastic_net.extract(model, k)) for k in (level, model.num_levels - 1))
    rows = []
    for stage, widths in here.items():
        rows.append({"stage": stage, "convolutions": len(widths), "channels at this level": _span(widths),
                     "at full width": _span(full.get(stage, [])),
                     "kept": sum(widths) / max(sum(full.get(stage, [])), 1)})
    return pd.DataFrame(rows)


def _conv_widths(net: torch.nn.Module) -> dict[str, list[int]]:
    widths: dict[str, list[int]] = {}
    for name, module in net.named_modules():
        if isinstance(module, torch.nn.Conv2d):
            widths.setdefault(name.split(".")[0], []).append(module.out_channels)
    return widths


def _span(widths: list[int]) -> str:
    """'16' when every convolution has 16 channels, '10–16' otherwise."""
    return "" if not widths else str(min(widths)) if min(widths) == max(widths) else f"{min(widths)}–{max(widths)}"


def level_timing(path: str, mtime: int, level: int) -> dict[str, float | str]:
    """Batch-1 CPU latency of `level` extracted as a standalone network (median,
    10th and 90th percentile, ms) and run inside the elastic model (median, ms),
    and the time to switch to it (µs): preparing its weight views from scratch,
    and fetching them once prepared. Every level is timed on the first call,
    in interleaved rounds, so a change in the server's load hits all alike."""
    return _all_timings(path, mtime)[level]


@st.cache_data(show_spinner="Timing every level once (interleaved rounds)...", max_entries=8)
def _all_timings(path: str, mtime: int) -> list[dict[str, float | str]]:
    model = elastic_model(path, mtime)
    shape = input_shape(model, path)
    levels = range(model.num_levels)
    networks = {**{("extracted", k): elastic_net.extract(model, k) for k in levels},
                **{("in place", k): elastic_net.LevelView(model, k) for k in levels}}
    measured = deploy.measure_latencies(networks, shape, warmup=3, repeats=10, rounds=5)
    out = []
    for k in levels:
        lat = measured["extracted", k]
        out.append({"extracted_ms": lat.median_ms, "extracted_p10_ms": lat.p10_ms, "extracted_p90_ms": lat.p90_ms,
                    "repeats": lat.repeats, "in_place_ms": measured["in place", k].median_ms,
                    "host": lat.host, "threads": lat.threads, "switch_us": elastic_net.switch_time_us(model, k),
                    "switch_cached_us": elastic_net.switch_time_us(model, k, cached=True)})
    return out


def precompute(pause: Callable[[], None] = lambda: None, first_only: bool = False) -> None:
    """What a first visit computes, for every shipped elastic checkpoint (or
    only the first, which the page opens on): every level evaluated on the live
    images, timed, and profiled (the app's warm-up). `pause()` is called before
    each step (the warm-up waits there while the app is in use)."""
    paths = find_checkpoints(checkpoints_dir())
    for path in paths[:1] if first_only else paths:
        mtime = stamp(path)
        pause()
        model = elastic_model(str(path), mtime)
        dataset = dataset_of(model, path)
        pause()
        live = live_images(dataset, trained_on_synthetic(model))
        pause()
        level_accuracy(str(path), mtime, 0, live, dataset)
        pause()
        level_timing(str(path), mtime, 0)
        for level in range(model.num_levels):
            pause()
            level_profile(str(path), mtime, level)
            stage_widths(str(path), mtime, level)


def shown_indices(count: int, shown: int = SHOWN_IMAGES) -> list[int]:
    """Which of `count` live images are shown: evenly spread, so a test split
    stored class by class still shows several classes."""
    return sorted({int(i) for i in np.linspace(0, count - 1, min(shown, count))})


def input_shape(model: ElasticNet, path: Path | str) -> tuple[int, int, int]:
    size = DATASETS.get(dataset_of(model, Path(path))).input_size
    return (3, size, size)


def thumbnails(images: torch.Tensor, scale: int = 3) -> list[np.ndarray]:
    """uint8 (N, 3, H, W) images as (H*scale, W*scale, 3) arrays for st.image,
    enlarged without smoothing so 32x32 pixels stay visible."""
    hwc = images.permute(0, 2, 3, 1).numpy()
    return [img.repeat(scale, axis=0).repeat(scale, axis=1) for img in hwc]


# ---- the results rows -------------------------------------------------------------------

def level_rows(frame: pd.DataFrame, dataset: str, arch: str) -> pd.DataFrame:
    """Rows of the elastic methods for this dataset and architecture, with the
    level number (`level_no`), its width and the run (run id without /levelK)."""
    rows = frame[(frame["dataset"] == dataset) & (frame["arch"] == arch) & frame["method"].isin(METHODS)]
    details = [json.loads(d) if d else {} for d in rows["details"]]
    return rows.assign(
        level_no=pd.to_numeric(rows["level"], errors="coerce"),
        width=[float(d.get("width", np.nan)) for d in details],
        run=[identity.parse(r).run for r in rows["run_id"]],
    ).sort_values(["run", "level_no"], kind="mergesort")


def levels_figure(rows: pd.DataFrame, width: float | None = None) -> go.Figure:
    """Test accuracy of every level of every elastic run against the level's
    width, one line per run; the level shown on the page as a dashed line."""
    colors = figures.method_colors()
    fig = go.Figure()
    for run, group in rows.groupby("run", sort=False):
        method = group["method"].iloc[0]
        synthetic = " · synthetic" if (group["data_source"] == "synthetic").any() else ""
        settings = identity.readable(run).split("/", 3)[-1].removesuffix("/synthetic")
        name = f"{explore.method_label(method)} · {settings}{synthetic}"
        fig.add_trace(go.Scatter(
            x=(group["width"] * 100).tolist(), y=group["test_acc"].tolist(), mode="lines+markers", name=name,
            line=dict(color=colors.get(method), dash="solid" if method == "elastic" else "dash"),
            customdata=np.stack([group["level_no"], group["macs"] / 1e6], axis=1),
            hovertemplate="level %{customdata[0]:.0f} (%{x:.1f}% width): %{y:.2f}% · "
                          "%{customdata[1]:.2f} M MACs<extra></extra>"))
    if width is not None:
        fig.add_vline(x=width * 100, line=dict(color="#444444", dash="dash", width=1),
                      annotation_text="shown above", annotation_position="top left")
    fig.update_layout(height=360, showlegend=True, xaxis_title="width of the level (% of every layer's channels)",
                      yaxis_title="test accuracy (%)", margin=dict(l=10, r=10, t=30, b=10),
                      legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0), font=_FONT,
                      template="plotly_white")
    return fig
