"""The checkpoints that ship: each is in the manifest with its rows, unchanged
since it was shipped, and reproduces every row's test accuracy on the whole
test split; the repository stays small enough to clone quickly."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

from elastic.data import load_dataset
from elastic.identity import checkpoint_name
from elastic.results import RESULTS_DIR, load_all
from elastic.shipping import TOLERANCE, accuracies, read_manifest, rows_of, sha256, ship
from tests.conftest import shared_archive

ROOT = Path(__file__).resolve().parent.parent
FOLDER = RESULTS_DIR / "checkpoints"
MAX_TRACKED_BYTES = 12 * 2 ** 20


def test_every_shipped_checkpoint_is_in_the_manifest_and_reproduces_its_rows(monkeypatch):
    manifest = read_manifest(FOLDER)
    assert sorted(manifest) == sorted(p.name for p in FOLDER.glob("*.pt"))
    frame = load_all(RESULTS_DIR)[0]
    splits = {}
    for name, entry in manifest.items():
        path = FOLDER / name
        assert sha256(path) == entry["sha256"] and path.stat().st_size == entry["bytes"], name
        run, rows = rows_of(entry["rows"][0], frame)
        assert checkpoint_name(run) == name and [r["run_id"] for r in rows] == entry["rows"]
        dataset = rows[0]["dataset"]
        if dataset not in splits:
            splits[dataset] = load_dataset(dataset, shared_archive(dataset).parent)
        measured = accuracies(path, rows, splits[dataset])
        for row in rows:
            assert entry["test_acc"][row["run_id"]] == pytest.approx(row["test_acc"])
            assert abs(measured[row["run_id"]] - row["test_acc"]) <= TOLERANCE, (row["run_id"], measured)


def test_tracked_files_stay_under_12_mib():
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    sizes = {name: (ROOT / name).stat().st_size for name in listed.decode().split("\0")
             if name and (ROOT / name).is_file()}
    total = sum(sizes.values())
    biggest = max(sizes, key=sizes.get)
    assert total < MAX_TRACKED_BYTES, f"{total / 2 ** 20:.1f} MiB tracked; the biggest is {biggest}"


def test_a_checkpoint_that_does_not_reproduce_its_row_is_not_shipped(tmp_path):
    """A synthetic row pointing at the shipped ResNet-20 baseline with another
    accuracy: the staged copy is checked, refused and removed; nothing ships."""
    import shutil

    frame = load_all(RESULTS_DIR)[0]
    row = frame[frame["run_id"] == "cifar10/resnet20/baseline/e12/s0/fp32-69ffb0f4"].copy()
    row["test_acc"] = 50.0
    source = tmp_path / "cache"
    source.mkdir()
    shutil.copy(FOLDER / checkpoint_name(row["run_id"].iloc[0]), source)
    data = load_dataset("cifar10", source="synthetic", synthetic_size=64)
    with pytest.raises(Exception, match="its row recorded 50.00%"):
        ship(row["run_id"].iloc[0], row, data, tmp_path / "shipped", sources=[source], half=True,
             on_line=lambda _: None)
    assert list((tmp_path / "shipped").iterdir()) == []


def test_half_storage_rounds_the_weights_and_keeps_the_vectors(tmp_path):
    """--half stores kernels and weight matrices as float16 (nearly all the
    bytes) and keeps biases and norm statistics float32; a model loaded from the
    compact copy is float32 again."""
    from elastic.checkpoints import load_checkpoint, load_model, save_checkpoint
    from elastic.shipping import HALF, compact

    state = load_checkpoint(FOLDER / "cifar10__resnet20__baseline__e12__s0__fp32-69ffb0f4.pt")
    state["model"] = {k: v.float() if v.is_floating_point() else v for k, v in state["model"].items()}  # as trained
    small = compact(state, half=True)
    tensors = small["model"]
    assert small["storage"] == HALF and "optimizer" not in small
    assert tensors["conv1.weight"].dtype == tensors["fc.weight"].dtype == torch.float16
    assert tensors["bn1.running_var"].dtype == tensors["bn1.weight"].dtype == tensors["fc.bias"].dtype == torch.float32
    assert tensors["bn1.num_batches_tracked"].dtype == torch.int64
    assert compact(state, half=False)["model"]["conv1.weight"].dtype == state["model"]["conv1.weight"].dtype
    save_checkpoint(tmp_path / "small.pt", small)
    model, _ = load_model(tmp_path / "small.pt")
    assert {p.dtype for p in model.state_dict().values() if p.is_floating_point()} == {torch.float32}
