"""Cached loaders for tables and presets (no torch here)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st

from elastic import explore
from elastic.results import load_all, results_dir

if TYPE_CHECKING:
    from elastic.data import DataSplits


def load_results() -> tuple[pd.DataFrame, list[str]]:
    """Every results row, prepared for exploring, and the files that could not
    be read. Re-read only when a file in the folder changes."""
    folder = results_dir()
    return _load(str(folder), _stamp(folder))


def shown_results(if_empty: str | None = None) -> pd.DataFrame:
    """The results for a page: a warning for each file that could not be read,
    and, when there are no rows and `if_empty` is given, that message and the
    end of the page."""
    frame, problems = load_results()
    for problem in problems:
        st.warning(f"Skipped a results file that could not be read: {problem}")
    if frame.empty and if_empty is not None:
        st.info(if_empty)
        st.stop()
    return frame


def _stamp(folder: Path) -> tuple[tuple[str, int, int], ...]:
    stats = []
    for path in sorted(folder.glob("*.csv")):
        try:
            stat = path.stat()
        except OSError:          # removed between glob and stat
            continue
        stats.append((path.name, stat.st_mtime_ns, stat.st_size))
    return tuple(stats)


@st.cache_data(show_spinner=False, max_entries=8)
def _load(folder: str, stamp: tuple) -> tuple[pd.DataFrame, list[str]]:
    frame, problems = load_all(folder)
    return explore.prepare(frame), problems


def dataset_splits(dataset: str, source: str = "auto") -> "DataSplits":
    """A dataset's splits, loaded once per server for every page (raises
    DataNotFound when it is not on disk). torch is imported on the first call."""
    from elastic.data import default_data_dirs
    return _splits(dataset, source, tuple(str(d) for d in default_data_dirs()))


@st.cache_resource(show_spinner="Loading the images...", max_entries=4)
def _splits(dataset: str, source: str, data_dirs: tuple[str, ...]) -> "DataSplits":
    from elastic.data import load_dataset
    return load_dataset(dataset, source=source)     # data_dirs is in the key: another $ELASTIC_DATA finds other files


@st.cache_data(show_spinner=False)
def devices() -> list[explore.Device]:
    return explore.load_devices()


@st.cache_data(show_spinner=False)
def claims() -> list[dict]:
    return explore.load_claims()
