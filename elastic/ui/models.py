"""Cached models, profiles and pruning plans for the pages that need torch.

Models come from `st.cache_resource` and are shared by every session: callers
never mutate them (copy first if something must change, e.g. for export).
Tables and plans come from `st.cache_data` as plain data.
"""
from __future__ import annotations

import json
from typing import Any, Callable

import pandas as pd
import streamlit as st
from torch import nn

from elastic.data import DATASETS
from elastic.deploy import checked_model
from elastic.errors import ElasticError
from elastic.methods import complexity
from elastic.models import build_model
from elastic.profile import profile_model
from elastic.runs import trained_model


def input_shape(dataset: str) -> tuple[int, int, int]:
    size = DATASETS.get(dataset).input_size
    return (3, size, size)


@st.cache_resource(max_entries=16, show_spinner="Building the model...")
def model(arch: str, num_classes: int, config_json: str = "", run_id: str = "") -> tuple[nn.Module, str]:
    """The model a results row describes, in eval mode, and where its weights
    came from: the row's trained checkpoint (`elastic.runs.trained_model`: in the
    cache or shipped, an elastic level taken out of its elastic checkpoint), else
    fresh weights. Shared by every session: never mutate it. A config that does
    not fit the architecture raises ElasticError (the page says so)."""
    config = json.loads(config_json) if config_json else None
    fresh = checked_model(arch, num_classes, config).eval()     # checked before anything is allocated
    try:
        found = trained_model(run_id, arch=arch, num_classes=num_classes) if run_id else None
    except ElasticError as err:
        return fresh, f"fresh weights: the checkpoint is unusable ({err})"
    if found is not None:
        return found[0], f"trained weights from the checkpoint {found[1]}"
    return fresh, "fresh, untrained weights: no checkpoint of this row in the cache or shipped"


@st.cache_data(show_spinner="Profiling the layers...")
def layer_table(arch: str, dataset: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """Per-layer rows of the unpruned model (`ModelProfile.to_rows`) and its totals."""
    spec = DATASETS.get(dataset)
    prof = profile_model(build_model(arch, spec.num_classes), input_shape(dataset))
    totals = {"params": prof.params, "macs": prof.macs, "peak_mem_fp32": prof.peak_memory_bytes(4),
              "peak_mem_int8": prof.peak_memory_int8(), "weight_bytes": prof.weight_bytes}
    return pd.DataFrame(prof.to_rows()), totals


# The Layer complexity page's budget when it opens.
DEFAULT_TARGET = 0.5


def precompute(arch: str = "resnet20", dataset: str = "cifar10", pause: Callable[[], None] = lambda: None) -> None:
    """What the first visit to the Layer complexity page computes for the
    default architecture: its layer table and the PA / FA / MA plans at the
    default budget (the app's warm-up; `pause()` is called before each step)."""
    pause()
    layer_table(arch, dataset)
    for mode in complexity.MODES:
        pause()
        plan(arch, dataset, mode, DEFAULT_TARGET)


@st.cache_data(show_spinner="Planning...")
def plan(arch: str, dataset: str, mode: str, target: float) -> dict[str, Any]:
    """The PA/FA/MA pruning plan for `target` (computed, no training), as plain
    data: config, kept {layer: (kept, original)}, achieved, params, macs, memory."""
    result = complexity.plan(arch, DATASETS.get(dataset).num_classes, mode, target)
    fields = {name: getattr(result, name) for name in ("config", "achieved", "params", "macs", "memory")}
    fields["kept"] = {layer: (int(k), int(o)) for layer, (k, o) in result.kept.items()}
    return fields


def kept_table(plans: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per (mode, layer) with the filters kept and the original count."""
    rows = [{"mode": mode, "layer": layer, "kept": int(k), "original": int(o)}
            for mode, p in plans.items() for layer, (k, o) in p["kept"].items()]
    return pd.DataFrame(rows, columns=["mode", "layer", "kept", "original"])


@st.cache_data(show_spinner="Exporting and verifying the model files...", max_entries=8)
def export_files(arch: str, dataset: str, config_json: str, run_id: str, meta_json: str) -> dict[str, bytes]:
    """ONNX, TorchScript and JSON files of a results row's model ({file name: bytes})."""
    from elastic import deploy
    net, _ = model(arch, DATASETS.get(dataset).num_classes, config_json, run_id)
    return deploy.export_bytes(net, input_shape(dataset), json.loads(meta_json))


@st.cache_data(show_spinner="Running the ONNX file in onnxruntime on the whole test split...", max_entries=8)
def onnx_check(onnx_bytes: bytes, dataset: str, recorded_acc: float):
    """An exported ONNX file's test accuracy in onnxruntime on the whole test
    split against the row's (`deploy.AccuracyCheck`). Raises DataNotFound when
    the dataset is not on disk."""
    import tempfile
    from pathlib import Path

    from elastic import deploy
    from elastic.data import load_dataset
    split = load_dataset(dataset)
    with tempfile.TemporaryDirectory(prefix="elastic-onnx-") as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(onnx_bytes)
        return deploy.check_onnx_accuracy(path, {"test_acc": recorded_acc}, split.test, split.spec, split.source)
