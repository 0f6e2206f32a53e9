"""Shared fixtures. Tests never write into the repository's cache or results:
ELASTIC_CACHE points at a temporary folder for every test."""
from __future__ import annotations

from pathlib import Path

import pytest

from elastic.data import DATASETS

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ELASTIC_CACHE", str(tmp_path_factory.getbasetemp() / "elastic-cache"))
        yield


def shared_archive(name: str) -> Path:
    """The offline archive of a dataset (CI has ../shared/data beside the clone)."""
    path = SHARED_DATA / DATASETS.get(name).archive
    if not path.is_file():
        pytest.fail(f"{path} is missing: the tests need ../shared/data beside the repository")
    return path
