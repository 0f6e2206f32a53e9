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


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for a module of tiny models: batch-1 profiles and tiny
    trainings gain nothing from threads, and on a shared CPU OpenMP workers
    spinning against other jobs make them many times slower. Restored after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def shared_archive(name: str) -> Path:
    """The offline archive of a dataset (CI has ../shared/data beside the clone)."""
    path = SHARED_DATA / DATASETS.get(name).archive
    if not path.is_file():
        pytest.fail(f"{path} is missing: the tests need ../shared/data beside the repository")
    return path
