"""The block pruning page's data and figures: the greedy steps of each run read
from the results rows, the accuracy-against-MACs trajectories, the heatmap of
every candidate's score at every step, and the removable blocks of a network
(computed live from the model, no training).

Everything but `live_candidates` is pure: tables in, tables and figures out.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from torch import nn

from elastic import explore, identity
from elastic.data import DATASETS
from elastic.methods import blocks, in_family
from elastic.models import build_model
from elastic.profile import profile_model
from elastic.ui import figures

METHODS = in_family("blocks")        # direct first, then the proxy baselines
# What a step's "candidates" scores are, per method (block-random records none).
SCORE_NAMES = {"block": "validation accuracy without the block (%)",
               "block-l1": "L1 norm of the block's last BatchNorm scale"}
_FONT = dict(family="sans-serif", size=12)


def prune_command(method: str, arch: str, dataset: str) -> str:
    """The command that produces a block pruning run for this selection."""
    return f"python -m elastic prune --method {method} --arch {arch} --dataset {dataset}"


# ---- the greedy steps, from the results rows ----------------------------------------

def block_steps(frame: pd.DataFrame, dataset: str, arch: str) -> pd.DataFrame:
    """The block pruning rows of one dataset and architecture, one per greedy
    step, with `run` (the run id without `/stepK`), `step` (int) and the parsed
    details: `removed_now` (str), `removed` (list) and `candidates` (dict).
    `frame` is prepared by `explore.prepare`. Sorted by run, then step."""
    rows = frame[(frame["dataset"] == dataset) & (frame["arch"] == arch) & frame["method"].isin(METHODS)]
    records = []
    for row in rows.to_dict("records"):
        run_id = identity.parse(row["run_id"])
        if run_id.kind != "step":
            continue
        details = json.loads(row["details"]) if row["details"] else {}
        records.append({**row, "run": run_id.run, "step": run_id.number,
                        "removed_now": details.get("removed_now", ""),
                        "removed": list(details.get("removed", [])),
                        "candidates": dict(details.get("candidates", {}))})
    out = pd.DataFrame(records, columns=[*frame.columns, "run", "step", "removed_now", "removed", "candidates"])
    return out.sort_values(["run", "step"], kind="mergesort").reset_index(drop=True)


def run_order(steps: pd.DataFrame) -> list[str]:
    """Runs to offer, best first: direct before the proxies, real data before
    synthetic, more steps first, then by name."""
    def key(run: str) -> tuple:
        group = steps[steps["run"] == run]
        method = group["method"].iloc[0]
        return (METHODS.index(method), (group["data_source"] == "synthetic").any(), -len(group), run)
    return sorted(steps["run"].unique(), key=key)


def run_label(steps: pd.DataFrame, run: str) -> str:
    """'Block pruning (direct) · t0.5/ft1/s0 · 2 blocks removed · synthetic data'."""
    group = steps[steps["run"] == run]
    first = group.iloc[0]
    prefix = f"{first['dataset']}/{first['arch']}/{first['method']}/"
    shown = identity.readable(run)
    settings = shown[len(prefix):] if shown.startswith(prefix) else shown
    settings = settings.removesuffix("/synthetic")
    removed = int(group["step"].max())
    blocks_removed = f"{removed} block{'' if removed == 1 else 's'} removed"
    text = f"{explore.method_label(first['method'])} · {settings} · {blocks_removed}"
    return text + (" · synthetic data" if (group["data_source"] == "synthetic").any() else "")


def steps_table(run_steps: pd.DataFrame) -> pd.DataFrame:
    """One line per step of one run: what was removed, accuracy before and after
    fine-tuning, and the cost against the run's starting network (step 0)."""
    start = run_steps[run_steps["step"] == 0]
    base_macs = float(start["macs"].iloc[0]) if len(start) else math.nan
    base_params = float(start["params"].iloc[0]) if len(start) else math.nan
    return pd.DataFrame({
        "step": run_steps["step"].to_numpy(),
        "removed": [r or "nothing (the baseline)" for r in run_steps["removed_now"]],
        # Step 0 removes nothing, so its accuracy "before fine-tuning" is the baseline's own.
        "val acc before FT (%)": run_steps["acc_before_ft"].fillna(run_steps["val_acc"]).to_numpy(),
        "val acc after FT (%)": run_steps["val_acc"].to_numpy(),
        "test acc (%)": run_steps["test_acc"].to_numpy(),
        "MACs (M)": (run_steps["macs"] / 1e6).to_numpy(),
        "MACs kept": (run_steps["macs"] / base_macs).to_numpy(),
        "params (K)": (run_steps["params"] / 1e3).to_numpy(),
        "params kept": (run_steps["params"] / base_params).to_numpy(),
    })


# ---- figures ---------------------------------------------------------------------------

def trajectory_figure(steps: pd.DataFrame, runs: list[str]) -> go.Figure:
    """Accuracy against MACs along each run's steps, one colour per method: solid,
    test accuracy after fine-tuning; dotted, validation accuracy right after the
    removal (before fine-tuning; step 0 is the starting network). Test accuracy
    before fine-tuning is not measured, so it is not drawn."""
    colors = figures.method_colors()
    per_method = steps.groupby("method")["run"].nunique().to_dict()
    fig = go.Figure()
    for run in runs:
        group = steps[steps["run"] == run].sort_values("step")
        method = group["method"].iloc[0]
        name = explore.method_label(method)
        if per_method.get(method, 1) > 1:
            name += f" ({run_label(steps, run).split(' · ')[1]})"
        macs = (group["macs"] / 1e6).tolist()
        hover = [f"step {s}: {r or 'start'}" for s, r in zip(group["step"], group["removed_now"])]
        before = [v if s else a for s, v, a in zip(group["step"], group["acc_before_ft"], group["val_acc"])]
        fig.add_trace(go.Scatter(
            x=macs, y=group["test_acc"].tolist(), mode="lines+markers", name=f"{name}, test after FT",
            legendgroup=run, line=dict(color=colors.get(method), width=2), text=hover,
            hovertemplate="%{text}<br>%{x:.2f} M MACs · test %{y:.2f}%<extra></extra>"))
        fig.add_trace(go.Scatter(
            x=macs, y=before, mode="lines+markers", name=f"{name}, val before FT",
            legendgroup=run, line=dict(color=colors.get(method), width=1.5, dash="dot"),
            marker=dict(symbol="circle-open"), text=hover,
            hovertemplate="%{text}<br>%{x:.2f} M MACs · val before FT %{y:.2f}%<extra></extra>"))
    fig.update_layout(height=420, xaxis=dict(title="MACs (M)", autorange="reversed"),
                      yaxis_title="accuracy (%)", margin=dict(l=10, r=10, t=30, b=10),
                      legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0), font=_FONT,
                      template="plotly_white", hovermode="closest")
    return fig


@dataclass(frozen=True)
class CandidateGrid:
    """Every candidate's score at every step of one run. values[i][j] is block
    blocks[i]'s score at steps[j] (None once it is removed, or if not scored);
    chosen[j] is the block removed at steps[j]."""
    blocks: tuple[str, ...]
    steps: tuple[int, ...]
    values: tuple[tuple[float | None, ...], ...]
    chosen: tuple[str, ...]

    @property
    def scored(self) -> bool:
        return any(v is not None for row in self.values for v in row)


def candidate_grid(run_steps: pd.DataFrame) -> CandidateGrid:
    """The candidate scores of one run's steps (step 0, the start, has none).
    Blocks are in the order they first appear (model order)."""
    taken = run_steps[run_steps["step"] > 0].sort_values("step")
    names: dict[str, None] = {}
    for scores, removed in zip(taken["candidates"], taken["removed"]):
        names.update(dict.fromkeys(scores))
        names.update(dict.fromkeys(removed))
    values = tuple(tuple(_score(scores, name) for scores in taken["candidates"]) for name in names)
    return CandidateGrid(tuple(names), tuple(int(s) for s in taken["step"]), values,
                         tuple(taken["removed_now"]))


def _score(scores: dict[str, Any], name: str) -> float | None:
    value = scores.get(name)
    return None if value is None else float(value)


def heatmap_figure(grid: CandidateGrid, method: str) -> go.Figure:
    """Blocks (rows) by steps (columns), coloured by score; blank where a block
    was already removed; the block chosen at each step ringed."""
    columns = [f"step {s}" for s in grid.steps]
    text = [["" if v is None else f"{v:.3g}" for v in row] for row in grid.values]
    fig = go.Figure(go.Heatmap(
        z=[list(row) for row in grid.values], x=columns, y=list(grid.blocks), text=text,
        texttemplate="%{text}", colorscale="Viridis", hoverongaps=False, xgap=2, ygap=2,
        colorbar=dict(title=dict(text=SCORE_NAMES.get(method, "score"), side="right")),
        hovertemplate="%{y} at %{x}: %{z:.4g}<extra></extra>"))
    fig.add_trace(go.Scatter(
        x=columns, y=list(grid.chosen), mode="markers", name="removed at this step",
        marker=dict(symbol="square-open", size=34, color="#d62728", line=dict(width=3)),
        hovertemplate="%{x}: removed %{y}<extra></extra>"))
    fig.update_layout(height=max(260, 40 * len(grid.blocks) + 120), margin=dict(l=10, r=10, t=30, b=10),
                      yaxis=dict(autorange="reversed", title="block"), xaxis=dict(side="top"),
                      legend=dict(orientation="h", y=-0.05, yanchor="top", x=0), font=_FONT,
                      template="plotly_white")
    return fig


# ---- the removable blocks, live from the model -------------------------------------

def block_shares(model: nn.Module, input_shape: tuple[int, int, int]) -> pd.DataFrame:
    """Each removable block of `model` (`blocks.candidate_blocks`) with its MACs
    and parameters and their share of the whole network's. `model` is not changed."""
    names = blocks.candidate_blocks(model, input_shape)
    prof = profile_model(model, input_shape)
    rows = []
    for name in names:
        macs = sum(layer.macs for layer in prof.layers if layer.name.startswith(name + "."))
        params = sum(p.numel() for p in model.get_submodule(name).parameters())
        rows.append({"block": name, "MACs (M)": macs / 1e6, "MACs share": macs / prof.macs,
                     "params (K)": params / 1e3, "params share": params / prof.params})
    return pd.DataFrame(rows, columns=["block", "MACs (M)", "MACs share", "params (K)", "params share"])


@st.cache_data(show_spinner="Finding the removable blocks...", max_entries=16)
def live_candidates(arch: str, dataset: str) -> pd.DataFrame:
    """`block_shares` of the unpruned architecture at the dataset's input size."""
    spec = DATASETS.get(dataset)
    model = build_model(arch, spec.num_classes).eval()
    return block_shares(model, (3, spec.input_size, spec.input_size))
