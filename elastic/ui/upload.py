"""The work behind "Check a checkpoint": read an uploaded file (its size first),
say what it is with `elastic.filecheck.check_file`, profile it, and measure its
accuracy on a few test images. Everything stays in this session: an uploaded
model is never put in a cache shared with other users."""
from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st
from torch import nn

from elastic import explore
from elastic.checkpoints import MAX_UPLOAD_BYTES, display_name
from elastic.data import DATASETS
from elastic.errors import ElasticError
from elastic.filecheck import FileReport, check_bytes, check_size, with_recorded
from elastic.methods.elastic_net import ElasticNet
from elastic.models import ARCHS
from elastic.profile import ModelProfile, profile_model
from elastic.train import evaluate
from elastic.ui import data

ACCURACY_IMAGES = 500
FILE_TYPES = ["pt", "pth", "ckpt", "onnx"]
_KEY = "upload.checked"


def check(uploaded: Any, max_bytes: int = MAX_UPLOAD_BYTES) -> FileReport:
    """What an `st.file_uploader` file is. The size is read before the contents;
    raises an ElasticError saying what is wrong. The result (or the error) is
    kept for this session, so reruns do not check it again."""
    key = (uploaded.file_id, max_bytes)
    kept = st.session_state.get(_KEY)
    if kept is not None and kept[0] == key:
        if isinstance(kept[1], ElasticError):
            raise kept[1]
        return kept[1]
    try:
        check_size(display_name(uploaded.name), uploaded.size, max_bytes)       # before reading the contents
        report = check_bytes(uploaded.getvalue(), uploaded.name, max_bytes)
        result: FileReport | ElasticError = with_recorded(report, data.load_results()[0])
    except ElasticError as err:
        result = err
    st.session_state[_KEY] = (key, result)
    if isinstance(result, ElasticError):
        raise result
    return result


def profile(report: FileReport) -> ModelProfile | None:
    """Per-layer profile of a model checkpoint's network (None for other kinds)."""
    if report.kind != "model checkpoint" or report.dataset is None:
        return None
    size = DATASETS.get(report.dataset).input_size
    return profile_model(report.model, (3, size, size))


def show(report: FileReport) -> None:
    """What the file holds: its facts, each level of an elastic checkpoint, and a
    model checkpoint's parameters, MACs and peak memory."""
    prof = profile(report)
    if prof is not None:
        cells = st.columns(4)
        for cell, metric, value in (
                (cells[0], explore.METRICS["params"], prof.params),
                (cells[1], explore.METRICS["macs"], prof.macs),
                (cells[2], explore.METRICS["memory"], prof.peak_memory_bytes(4)),
                (cells[3], explore.METRICS["memory_int8"], prof.peak_memory_int8())):
            cell.metric(metric.label, explore.format_quantity(value, metric, noun=False))
    st.table(pd.DataFrame(report.facts, columns=["", "this file"]).set_index(""))
    if report.levels:
        st.markdown("**Levels** (each a standalone network; accuracy as its results row recorded it on the whole "
                    "test split)")
        st.dataframe(pd.DataFrame(report.levels), hide_index=True, width="stretch", column_config={
            "params": st.column_config.NumberColumn(format="localized"),
            "MACs": st.column_config.NumberColumn(format="localized")})
    if prof is not None:
        st.caption("Peak memory = weights + peak live activations, batch 1.")
        with st.expander("Every layer"):
            st.dataframe(pd.DataFrame(prof.to_rows()), hide_index=True, width="stretch")


def measurable(report: FileReport) -> list[str]:
    """Datasets the file's network can be measured on: the one it names, else
    every dataset of its architecture's image size (empty: nothing to run)."""
    if report.kind in ("training resume file", "ONNX export") or report.model is None:
        return []
    if report.dataset:
        return [report.dataset]
    return [name for name in DATASETS.names()
            if report.arch is None or DATASETS.get(name).input_size == ARCHS.get(report.arch).input_size]


def accuracy(report: FileReport, dataset: str, n: int = ACCURACY_IMAGES) -> tuple[list[tuple[str, float]], int, str]:
    """Test accuracy (%) of the file's network (of each level, for an elastic
    checkpoint) on a fixed subset of `n` test images of `dataset`, the number of
    images and where they came from. Raises DataNotFound if the dataset is not on
    disk, and ElasticError if the network does not fit the dataset's classes."""
    split = data.dataset_splits(dataset)
    test = split.test.head(n)
    model = report.model
    if isinstance(model, ElasticNet):
        if model.num_classes != split.spec.num_classes:
            raise ElasticError(f"the network has {model.num_classes} outputs; {dataset} has "
                               f"{split.spec.num_classes} classes")
        found = [(f"level {k}", evaluate(lambda x, k=k: model(x, k), test, split.spec))
                 for k in range(model.num_levels)]
    else:
        outputs = _outputs(model, split.spec.input_size)
        if outputs != split.spec.num_classes:
            raise ElasticError(f"the network has {outputs} outputs; {dataset} has {split.spec.num_classes} classes")
        found = [("", evaluate(model, test, split.spec))]
    return found, len(test), split.source


def _outputs(model: nn.Module, size: int) -> int:
    import torch
    with torch.inference_mode():
        return int(model(torch.zeros(1, 3, size, size)).shape[-1])
