"""Live block removal on the Block pruning page: the trained baseline drawn as
stages and blocks, blocks removed by the user and measured now (`elastic.live`),
and the direct step (every candidate measured on the validation split) run live.

Models and images come from `st.cache_resource` and are shared by every session:
nothing here changes them (`live.Exported.without` copies before removing). Measurements
are cached as plain data, keyed by the baseline's run id.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from torch import nn

from elastic import live
from elastic.checkpoints import load_model
from elastic.data import DATASETS, cache_dir
from elastic.errors import ElasticError
from elastic.methods.blocks import ScanProgress, candidate_blocks
from elastic.results import results_dir
from elastic.runs import find_baseline
from elastic.ui import data

DEFAULT_IMAGES = 1000
_COLORS = {"fixed": "#9e9e9e", "kept": "#1f77b4", "removed": "#d62728"}


@dataclass(frozen=True)
class Baseline:
    """The trained network live removal starts from, and its results row."""
    model: nn.Module
    path: Path
    run_id: str
    val_acc: float
    test_acc: float
    candidates: tuple[str, ...]
    exported: live.Exported        # exported to ONNX once: each removal is cut out of this graph


def baseline(arch: str, dataset: str) -> Baseline | None:
    """The trained baseline of `arch` on `dataset` (cached or shipped checkpoint,
    `runs.find_baseline`), or None when there is none on this machine.
    Shared by every session: never change its model."""
    return _baseline(arch, dataset, str(results_dir()), str(cache_dir()))


@st.cache_resource(show_spinner="Loading the trained baseline...", max_entries=8)
def _baseline(arch: str, dataset: str, results: str, cache: str) -> Baseline | None:
    # results and cache are in the key: other folders hold other baselines.
    spec = DATASETS.get(dataset)
    try:
        path, row = find_baseline(dataset, arch)
        model, _ = load_model(path, arch=arch, num_classes=spec.num_classes)
    except ElasticError:
        return None
    model.eval()
    shape = (3, spec.input_size, spec.input_size)
    names = tuple(candidate_blocks(model, shape))
    return Baseline(model, path, str(row["run_id"]), float(row["val_acc"]), float(row["test_acc"]), names,
                    live.Exported(model, shape))


def test_images(dataset: str, count: int | None):
    """The first `count` test images (all of them for None), as the rows' test split is fixed."""
    test = data.dataset_splits(dataset).test
    return test if count is None or count >= len(test) else test.head(count)


@st.cache_data(show_spinner=False, max_entries=256)
def measured(arch: str, dataset: str, run_id: str, removed: tuple[str, ...], count: int | None,
             _base: Baseline) -> live.Measured:
    """The baseline of `run_id` without `removed`, measured now on the first
    `count` test images (`live.measure`)."""
    splits = data.dataset_splits(dataset)
    network, onnx_model = _base.exported.without(removed)
    return live.measure(network, test_images(dataset, count), splits.spec, onnx_model=onnx_model)


@st.cache_data(show_spinner=False, max_entries=16)
def scanned(arch: str, dataset: str, run_id: str, _base: Baseline, _on_progress: ScanProgress | None = None
            ) -> dict[str, float]:
    """The direct step on the whole validation split: each candidate removed on
    its own, accuracy measured without it."""
    splits = data.dataset_splits(dataset)
    return live.scan(_base.model, _base.candidates, splits.val, splits.spec, on_progress=_on_progress,
                     exported=_base.exported)


def precompute(arch: str = "resnet20", dataset: str = "cifar10", pause: Callable[[], None] = lambda: None) -> None:
    """What the first visit to the Block pruning page measures for the default
    architecture: its trained baseline on the default test images (the app's
    warm-up; `pause()` is called before each step)."""
    pause()
    base = baseline(arch, dataset)
    if base is not None:
        pause()
        measured(arch, dataset, base.run_id, (), DEFAULT_IMAGES, base)


# ---- the network as stages and blocks (pure) ------------------------------------------

def layout(model: nn.Module) -> list[tuple[str, list[str]]]:
    """The network's top-level parts in order: each nn.Sequential of two or more
    blocks is a stage (its blocks by full name); the layers before the first
    stage are the stem, those after the last the head."""
    parts: list[tuple[str, list[str]]] = []
    stem, head, seen_stage = [], [], False
    for name, module in model.named_children():
        if isinstance(module, nn.Sequential) and len(module) >= 2:
            seen_stage = True
            parts.append((name, [f"{name}.{child}" for child, _ in module.named_children()]))
        elif not seen_stage:
            stem.append(name)
        else:
            head.append(name)
    return [("stem", [" + ".join(stem)])] * bool(stem) + parts + [("head", [" + ".join(head)])] * bool(head)


def network_figure(parts: Sequence[tuple[str, list[str]]], candidates: Sequence[str],
                   removed: Sequence[str]) -> go.Figure:
    """One row per stage, one square per block: grey never removable (stem, head,
    first block of a stage), blue kept, red removed."""
    fig = go.Figure()
    states = []
    for row, (stage, names) in enumerate(parts):
        for col, name in enumerate(names):
            state = "removed" if name in removed else "kept" if name in candidates else "fixed"
            states.append((col, stage, name, state))
    labels = {"fixed": "never removed (stem, head, first block of a stage)", "kept": "removable, kept",
              "removed": "removed"}
    for state in ("fixed", "kept", "removed"):
        chosen = [s for s in states if s[3] == state]
        fig.add_trace(go.Scatter(
            x=[c for c, *_ in chosen], y=[stage for _, stage, *_ in chosen], mode="markers+text",
            name=labels[state], text=[name.rsplit(".", 1)[-1] if state != "fixed" or "." in name else ""
                                      for _, _, name, _ in chosen],
            customdata=[name for _, _, name, _ in chosen], textfont=dict(color="white", size=11),
            marker=dict(symbol="square" if state != "removed" else "x", size=28, color=_COLORS[state],
                        line=dict(width=1, color="white")),
            hovertemplate="%{customdata}<extra>" + labels[state] + "</extra>"))
    width = max(max((len(names) for _, names in parts), default=1), 12)   # the same spacing for every depth
    fig.update_layout(height=44 * len(parts) + 70, template="plotly_white", margin=dict(l=10, r=10, t=10, b=10),
                      xaxis=dict(visible=False, range=[-0.6, width - 0.4]),
                      yaxis=dict(autorange="reversed", categoryorder="array",
                                 categoryarray=[stage for stage, _ in parts], title=None),
                      legend=dict(orientation="h", y=-0.02, yanchor="top", x=0), font=dict(size=12))
    return fig


def ranking_table(scores: dict[str, float], reference: float) -> pd.DataFrame:
    return pd.DataFrame(live.ranking(scores, reference))


def recorded_first_step(steps: pd.DataFrame) -> dict[str, Any] | None:
    """Step 1 of the recorded direct block-pruning run on real data (the rows of
    `blocks_view.block_steps`): the block it removed and its scores, or None."""
    direct = steps[(steps["method"] == "block") & (steps["step"] == 1) & (steps["data_source"] != "synthetic")]
    if direct.empty:
        return None
    row = direct.iloc[0]
    return {"run_id": row["run_id"], "removed": row["removed_now"], "scores": row["candidates"]}


# ---- the section of the page ----------------------------------------------------------

def show(arch: str, dataset: str, steps: pd.DataFrame) -> None:
    """Live removal: the network, the blocks to remove, the measurement, and
    the direct step run live and compared with the recorded one."""
    from elastic.ui.blocks_view import prune_command

    st.subheader(f"Remove blocks live from the trained {arch}")
    base = baseline(arch, dataset)
    if base is None:
        st.info(f"No trained {arch} baseline for {dataset} is on this machine (in the cache or shipped), so "
                "blocks cannot be removed live. This command trains one:")
        st.code(f"python -m elastic train --arch {arch} --dataset {dataset} --epochs 12", language="bash")
        return
    st.caption(f"Starting from `{base.run_id}` (test {base.test_acc:.2f}%, validation {base.val_acc:.2f}% as "
               "recorded). Removing a block leaves its identity path; there is no fine-tuning here, so this is "
               "the accuracy right after removal, what the direct method's scan sees. Measured in onnxruntime "
               "on this machine's CPU.")
    key = f"blocks.live.{dataset}.{arch}"
    chosen = st.pills("Blocks to remove", list(base.candidates), selection_mode="multi", key=f"{key}.removed")
    removed = tuple(name for name in base.candidates if name in (chosen or []))
    st.plotly_chart(network_figure(layout(base.model), base.candidates, removed), width="stretch",
                    config={"displaylogo": False, "staticPlot": True}, key=f"{key}.figure")
    whole = st.toggle("Measure on the whole test split", key=f"{key}.whole",
                      help=f"Off: the first {DEFAULT_IMAGES:,} test images (a fixed subset).")
    count = None if whole else DEFAULT_IMAGES
    try:
        with st.spinner("Measuring..."):
            ref = measured(arch, dataset, base.run_id, (), count, base)
            now = measured(arch, dataset, base.run_id, removed, count, base)
    except ElasticError as err:
        st.info(f"Not measured: {err}")
        return
    cells = st.columns(4)
    cells[0].metric(f"Test accuracy ({now.images:,} images)", f"{now.accuracy:.2f}%",
                    f"{now.accuracy - ref.accuracy:+.2f} pts" if removed else "baseline", delta_color="normal")
    cells[1].metric("MACs", f"{now.macs / 1e6:.1f} M", f"{now.macs / ref.macs - 1:+.1%}" if removed else "baseline",
                    delta_color="inverse")
    cells[2].metric("Parameters", f"{now.params / 1e3:.1f} K",
                    f"{now.params / ref.params - 1:+.1%}" if removed else "baseline", delta_color="inverse")
    cells[3].metric("Latency (onnxruntime)", f"{now.latency.median_ms:.2f} ms",
                    f"{now.latency.median_ms / ref.latency.median_ms - 1:+.0%}" if removed else "baseline",
                    delta_color="inverse",
                    help=f"Batch 1, one thread. Median of {now.latency.repeats} passes; 10th-90th percentile "
                         f"{now.latency.p10_ms:.2f}-{now.latency.p90_ms:.2f} ms, on {now.latency.host}.")
    st.caption(f"Measured in {now.seconds:.1f} s (export to ONNX, verified against PyTorch, evaluated, timed). "
               f"The baseline on the same images: {ref.accuracy:.2f}%.")

    st.markdown("**The direct step, live**: every removable block taken out on its own and the accuracy "
                f"measured without it on the whole validation split, as step 1 of `{prune_command('block', arch, dataset)}` does.")
    if st.button(f"Measure every candidate ({len(base.candidates)} blocks)", key=f"{key}.scan"):
        bar = st.progress(0.0, text="Starting...")

        def progress(done: int, total: int, name: str | None) -> None:
            bar.progress(done / total, text=f"{done} of {total} measured" + (f"; now without {name}" if name else ""))
        st.session_state[f"{key}.scores"] = scanned(arch, dataset, base.run_id, base, progress)
        bar.empty()
    scores = st.session_state.get(f"{key}.scores")
    if not scores:
        return
    table = ranking_table(scores, base.val_acc)
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "accuracy without it (%)": st.column_config.NumberColumn(format="%.2f"),
        "drop (points)": st.column_config.NumberColumn(format="%.2f")})
    first = table.iloc[0]["block"]
    recorded = recorded_first_step(steps)
    if recorded is None:
        st.info(f"The direct step would remove **{first}** first. No recorded direct run to compare with.")
    elif recorded["removed"] == first:
        st.success(f"The direct step removes **{first}** first, as step 1 of the recorded run "
                   f"`{recorded['run_id']}` did.")
    else:
        st.warning(f"The direct step removes **{first}** first; step 1 of the recorded run `{recorded['run_id']}` "
                   f"removed **{recorded['removed']}** (it may have started from another training of the "
                   "baseline, or scores this close swap on a rerun).")
