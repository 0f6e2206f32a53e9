"""The work behind "Check a checkpoint": read an uploaded file (its size first),
check it with `elastic.checks.check_upload`, profile it, and measure its accuracy
on a few test images. Everything stays in this session: an uploaded model is
never put in a cache shared with other users."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st
from torch import nn

from elastic import explore
from elastic.checks import MAX_UPLOAD_BYTES, check_upload, display_name
from elastic.data import DATASETS, load_dataset
from elastic.errors import BadCheckpoint, ElasticError
from elastic.profile import ModelProfile, profile_model
from elastic.train import evaluate

ACCURACY_IMAGES = 500
_KEY = "upload.checked"


@dataclass(frozen=True)
class Checked:
    """An uploaded checkpoint that passed every check."""
    name: str
    arch: str
    dataset: str
    model: nn.Module
    meta: dict[str, Any]
    profile: ModelProfile


def check(uploaded: Any, arch: str, dataset: str, max_bytes: int = MAX_UPLOAD_BYTES) -> Checked:
    """Check an `st.file_uploader` file for `arch` on `dataset`. The size is read
    before the contents; raises an ElasticError saying what is wrong. The result
    (or the error) is kept for this session, so reruns do not check it again."""
    key = (uploaded.file_id, arch, dataset, max_bytes)
    kept = st.session_state.get(_KEY)
    if kept is not None and kept[0] == key:
        if isinstance(kept[1], ElasticError):
            raise kept[1]
        return kept[1]
    try:
        result: Checked | ElasticError = _check(uploaded, arch, dataset, max_bytes)
    except ElasticError as err:
        result = err
    st.session_state[_KEY] = (key, result)
    if isinstance(result, ElasticError):
        raise result
    return result


def _check(uploaded: Any, arch: str, dataset: str, max_bytes: int) -> Checked:
    name = display_name(uploaded.name)
    if uploaded.size > max_bytes:
        raise BadCheckpoint(f"{name} is {uploaded.size / 1024 ** 2:.1f} MB; the limit is "
                            f"{max_bytes / 1024 ** 2:.0f} MB")
    spec = DATASETS.get(dataset)
    model, meta = check_upload(uploaded.getvalue(), uploaded.name, arch, spec.num_classes, max_bytes)
    profile = profile_model(model, (3, spec.input_size, spec.input_size))
    return Checked(name, arch, dataset, model, meta, profile)


def show(checked: Checked) -> None:
    """The checkpoint's profile: parameters, MACs, peak memory, and what it says about itself."""
    prof = checked.profile
    cells = st.columns(4)
    for cell, metric, value in (
            (cells[0], explore.METRICS["params"], prof.params),
            (cells[1], explore.METRICS["macs"], prof.macs),
            (cells[2], explore.METRICS["memory"], prof.peak_memory_bytes(4)),
            (cells[3], explore.METRICS["memory_int8"], prof.peak_memory_int8())):
        cell.metric(metric.label, explore.format_quantity(value, metric))
    config = checked.meta.get("config") or {}
    resized, removed = len(config.get("shapes", {})), len(config.get("removed_blocks", []))
    structure = (f"pruned: {resized} layer(s) resized, {removed} block(s) removed" if resized or removed
                 else "the unpruned architecture")
    trained_on = checked.meta.get("dataset")
    st.caption(f"{checked.arch}, {structure}. Saved for {checked.meta.get('num_classes')} classes"
               + (f", trained on {trained_on}" if isinstance(trained_on, str) and trained_on else "")
               + ". Peak memory = weights + peak live activations, batch 1.")
    with st.expander("Every layer"):
        st.dataframe(pd.DataFrame(prof.to_rows()), hide_index=True, width="stretch")


def accuracy(checked: Checked, n: int = ACCURACY_IMAGES) -> tuple[float, int, str]:
    """Test accuracy (%) on a fixed subset of `n` test images, the number of
    images and where they came from. Raises DataNotFound if the dataset is not on disk."""
    data = load_dataset(checked.dataset)
    test = data.test.head(n)
    return evaluate(checked.model, test, data.spec), len(test), data.source
