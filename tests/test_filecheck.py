"""`python -m elastic check`: every kind of file the project writes is recognised
(made here by the project's own code, or shipped), foreign files are refused in
one line; `export --run-id` exports a shipped checkpoint whose ONNX model
reproduces its row's test accuracy in onnxruntime."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from elastic.checkpoints import save_model
from elastic.data import DATASETS, synthetic
from elastic.deploy import export_bundle
from elastic.errors import BadCheckpoint
from elastic.filecheck import check_file, with_recorded
from elastic.identity import checkpoint_name
from elastic.methods.grow import build_elastic, save_elastic
from elastic.models import build_model
from elastic.results import RESULTS_DIR, load_all
from elastic.train import Recipe, train
from tests.conftest import shared_archive
from tests.test_reliability import assert_user_error, run_cli

SHIPPED = RESULTS_DIR / "checkpoints"
BASELINE = "cifar10/resnet20/baseline/e12/s0/fp32-69ffb0f4"
ELASTIC_LEVEL = "cifar10/resnet20/elastic/c2g1/s0/fp32-a92b9931/level2"


@pytest.fixture(scope="module")
def written(tmp_path_factory, one_torch_thread) -> dict[str, Path]:
    """One file of each kind, written by the project's own functions."""
    folder = tmp_path_factory.mktemp("written")
    torch.manual_seed(0)
    model = build_model("resnet20", 10)
    save_model(folder / "model.pt", model, "resnet20", 10, "cifar10", run_id="cifar10/resnet20/mine")
    spec = DATASETS.get("cifar10")
    images, _, _ = synthetic(spec, 64)
    train(build_model("resnet20", 10), images, spec, Recipe(epochs=1, batch_size=32),
          checkpoint=folder / "run.resume.pt")
    save_elastic(folder / "elastic.pt", build_elastic(model, "resnet20", 10, [0.5, 1.0]), dataset="cifar10")
    meta = {"arch": "resnet20", "dataset": "cifar10", "config": {"removed_blocks": ["layer1.1"]},
            "run_id": "cifar10/resnet20/x"}
    small = build_model("resnet20", 10, {"removed_blocks": ["layer1.1"], "shapes": {}})
    export_bundle(small, folder / "export", (3, 32, 32), meta)
    return {"model checkpoint": folder / "model.pt", "training resume file": folder / "run.resume.pt",
            "elastic checkpoint": folder / "elastic.pt", "TorchScript export": folder / "export" / "model.pt",
            "ONNX export": folder / "export" / "model.onnx", "json": folder / "export" / "model.json"}


def test_every_kind_the_project_writes_is_recognised(written):
    for kind in ("model checkpoint", "training resume file", "elastic checkpoint", "TorchScript export",
                 "ONNX export"):
        report = check_file(written[kind])
        assert report.kind == kind, (kind, report.summary)
    model = check_file(written["model checkpoint"])
    assert model.arch == "resnet20" and model.dataset == "cifar10" and model.run_id == "cifar10/resnet20/mine"
    assert ("parameters", "272,474") in model.facts and "the unpruned architecture" in model.summary
    resume = check_file(written["training resume file"])
    assert resume.arch == "resnet20" and "epoch 1 of 1" in resume.summary
    elastic = check_file(written["elastic checkpoint"])
    assert [level["width"] for level in elastic.levels] == ["50%", "100%"]
    assert elastic.levels[-1]["params"] == 272_474 and elastic.levels[0]["params"] < 272_474 / 2
    for kind in ("TorchScript export", "ONNX export"):
        report = check_file(written[kind])
        assert "exported by Elastic" in report.summary and "1 block(s) removed" in report.summary
        assert report.run_id == "cifar10/resnet20/x" and report.dataset == "cifar10"


def test_the_cli_names_the_kind_and_refuses_foreign_files_in_one_line(written, tmp_path):
    result = run_cli("check", *(str(written[k]) for k in ("model checkpoint", "training resume file",
                                                          "elastic checkpoint", "TorchScript export",
                                                          "ONNX export")), cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr[-2000:]
    for phrase in ("a model checkpoint: resnet20", "a training resume file: an unpruned resnet20",
                   "an elastic checkpoint: resnet20 with 2 levels", "a TorchScript export: resnet20",
                   "an ONNX export: resnet20"):
        assert phrase in result.stdout, (phrase, result.stdout)
    bare = tmp_path / "bare.pt"
    torch.save(build_model("resnet20", 10).state_dict(), bare)
    other = tmp_path / "other.pt"
    torch.save({"epoch": 3, "notes": "mine"}, other)
    image = tmp_path / "photo.pt"
    image.write_bytes(b"\xff\xd8\xff\xe0" + bytes(100))
    for path, phrase in ((bare, "a bare state_dict"), (other, "not one Elastic writes (its entries: epoch, notes)"),
                         (image, "it is a JPEG image"), (written["json"], "model.json describes the model"),
                         (tmp_path / "missing.pt", "does not exist")):
        result = run_cli("check", str(path), cache=tmp_path / "cache")
        assert_user_error(result, str(path), phrase)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.fixture
def shipped_results(monkeypatch):
    """The shipped results, whatever another test module pointed the environment at."""
    monkeypatch.setenv("ELASTIC_RESULTS_DIR", str(RESULTS_DIR))


def test_shipped_checkpoints_are_recognised_with_their_recorded_accuracy():
    frame = load_all(RESULTS_DIR)[0]
    baseline = with_recorded(check_file(SHIPPED / checkpoint_name(BASELINE)), frame)
    row = frame.set_index("run_id").loc[BASELINE]
    assert dict(baseline.facts)["recorded accuracy"].startswith(f"test {row['test_acc']:.2f}%")
    elastic = with_recorded(check_file(SHIPPED / checkpoint_name(ELASTIC_LEVEL.rsplit("/", 1)[0])), frame)
    level = frame.set_index("run_id").loc[ELASTIC_LEVEL]
    assert elastic.levels[2]["test acc (recorded)"] == f"{level['test_acc']:.2f}%"
    assert elastic.levels[2]["MACs"] == level["macs"]


def test_export_by_run_id_reproduces_the_rows_accuracy_in_onnxruntime(tmp_path, monkeypatch, shipped_results):
    """On an empty cache (as on a fresh clone), from the checkpoints that ship."""
    archive = shared_archive("cifar10")
    monkeypatch.setenv("ELASTIC_DATA", str(archive.parent))
    out = tmp_path / "level2"
    result = run_cli("export", "--run-id", ELASTIC_LEVEL, "--out-dir", str(out), cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr[-2000:]
    row = load_all(RESULTS_DIR)[0].set_index("run_id").loc[ELASTIC_LEVEL]
    assert f"onnxruntime test accuracy {row['test_acc']:.2f}% on 10,000 test images" in result.stdout
    assert "matches the row's" in result.stdout
    check = json.loads((out / "model.json").read_text())["verification"]["test_accuracy"]
    assert check["agrees"] and check["images"] == 10_000
    assert abs(check["onnxruntime"] - row["test_acc"]) <= 0.05
    exported = check_file(out / "model.onnx")
    assert exported.run_id == ELASTIC_LEVEL and exported.kind == "ONNX export"


def test_export_by_run_id_refuses_unknown_rows_and_rows_without_weights(tmp_path, shipped_results):
    result = run_cli("export", "--run-id", "cifar10/nope", "--out-dir", str(tmp_path / "a"), cache=tmp_path / "c")
    assert_user_error(result, "no results row has run id 'cifar10/nope'")
    untrained = "cifar10/resnet20/uniform/FA/t0.5/r1/scratch/e12/s0/fp32-69ffb0f4"   # its checkpoint does not ship
    result = run_cli("export", "--run-id", untrained, "--out-dir", str(tmp_path / "b"), cache=tmp_path / "c")
    assert_user_error(result, "has no trained checkpoint on this machine", "python -m elastic prune")


def test_a_foreign_torch_file_is_refused_before_anything_runs(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(BadCheckpoint, match="holds a list, not a dict"):
        check_file(path)
