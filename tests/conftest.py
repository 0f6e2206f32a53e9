"""Shared fixtures. Tests never write into the repository's cache or results:
ELASTIC_CACHE points at a temporary folder for every test. The app's background
warm-up of the live pages is off (ELASTIC_PRECOMPUTE=0)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from elastic.data import DATASETS

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ELASTIC_CACHE", str(tmp_path_factory.getbasetemp() / "elastic-cache"))
        mp.setenv("ELASTIC_PRECOMPUTE", "0")      # no background warm-up competing with the tests for the CPU
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
    """The offline archive of a dataset, where the README says the tests look:
    $ELASTIC_DATA first, then ../shared/data beside the clone (as CI has it)."""
    archive = DATASETS.get(name).archive
    folders = ([Path(os.environ["ELASTIC_DATA"])] if os.environ.get("ELASTIC_DATA") else []) + [SHARED_DATA]
    for folder in folders:
        if (folder / archive).is_file():
            return folder / archive
    pytest.fail(f"{archive} is in none of {', '.join(map(str, folders))}: the tests need the dataset archives "
                f"in $ELASTIC_DATA or ../shared/data beside the repository")
