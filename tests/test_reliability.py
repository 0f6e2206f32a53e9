"""Reliability and security: the package, the CLI and the app under bad input,
many users and interrupted runs. Untrusted checkpoints never run code, bad files
and names give one clear message (no traceback), concurrent users never see each
other's results, and killed processes leave nothing half-written.

Every file here is made in tmp_path by real code (torch.save, tiny synthetic
training runs, tar/JPEG writers); nothing is mocked.
"""
from __future__ import annotations

import io
import json
import math
import os
import pickle
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import torch
from streamlit.testing.v1 import AppTest

from elastic import cli, explore, identity
from elastic.checkpoints import MAX_UPLOAD_BYTES, display_name
from elastic.data import DATASETS, load_dataset
from elastic.errors import BadBudget, BadCheckpoint, BadResults, DataNotFound
from elastic.explore import query_problems
from elastic.explore import METRICS
from elastic.filecheck import check_bytes
from elastic.methods import complexity
from elastic.methods.grow import build_elastic, extract, load_elastic, save_elastic
from elastic.models import build_model
from elastic.profile import profile_model
from tests.test_app import app, card
from elastic.checkpoints import load_model, save_model
from elastic.checkpoints import load_checkpoint
from elastic.results import load_all, read_results
from elastic.train import evaluate

ROOT = Path(__file__).resolve().parent.parent
UPLOAD_PAGE = str(ROOT / "pages" / "upload.py")
TINY = ["--data", "synthetic", "--epochs", "1", "--batch-size", "32", "--train-subset", "64"]


# ---- helpers ----------------------------------------------------------------------------

class Payload:
    """Unpickling this runs `touch marker`: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def run_cli(*argv: str, cache: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m elastic ARGV` in a fresh process, as a user runs it."""
    env = {**os.environ, "ELASTIC_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "elastic", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def assert_user_error(result: subprocess.CompletedProcess, *phrases: str) -> None:
    """Exit 2, no traceback, and a message that says what is wrong."""
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    for phrase in phrases:
        assert phrase in result.stderr, (phrase, result.stderr[-2000:])


def saved(path: Path, arch: str = "resnet20", num_classes: int = 10, **meta) -> Path:
    torch.manual_seed(0)
    save_model(path, build_model(arch, num_classes), arch, num_classes, "cifar10", **meta)
    return path


def payloads(folder: Path, marker: Path) -> dict[str, Path]:
    """The same payload in each file format torch.load reads: zip (torch.save),
    the legacy pickle format, and a plain pickle."""
    files = {"zip": folder / "evil.pt", "legacy": folder / "evil_legacy.pt", "pickle": folder / "evil.pkl"}
    torch.save({"arch": "resnet20", "num_classes": 10, "model": Payload(marker)}, files["zip"])
    torch.save({"arch": "resnet20", "model": Payload(marker)}, files["legacy"],
               _use_new_zipfile_serialization=False)
    files["pickle"].write_bytes(pickle.dumps({"model": Payload(marker)}))
    return files


def flipped(data: bytes, start: int, length: int = 64) -> bytes:
    out = bytearray(data)
    for i in range(start, start + length):
        out[i] ^= 0xFF
    return bytes(out)


# ---- 1. checkpoints: never run code, one clear message per problem --------------------------

@pytest.mark.filterwarnings("ignore:Detected pickle protocol")     # torch's note on the plain pickle
def test_a_checkpoint_payload_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "payload-ran"
    files = payloads(tmp_path, marker)
    torch.load(files["zip"], weights_only=False)              # the payload is real: trusting the file runs it
    assert marker.is_file()
    marker.unlink()
    loaders = {"load_checkpoint": load_checkpoint, "load_model": load_model, "load_elastic": load_elastic,
               "check_bytes": lambda p: check_bytes(p.read_bytes(), p.name)}
    for kind, path in files.items():
        for name, load in loaders.items():
            with pytest.raises(BadCheckpoint) as info:
                load(path)
            message = str(info.value)
            assert path.name in message and "refused for safety" in message, (kind, name, message)
            assert not marker.exists(), f"{name} ran the payload of the {kind} file"
    assert "posix.system" in str(pytest.raises(BadCheckpoint, load_checkpoint, files["zip"]).value)


def test_the_cli_refuses_a_payload_without_running_it_or_a_traceback(tmp_path):
    marker = tmp_path / "payload-ran"
    evil = payloads(tmp_path, marker)["zip"]
    result = run_cli("evaluate", str(evil), "--data", "synthetic", cache=tmp_path / "cache")
    assert_user_error(result, str(evil), "refused for safety")
    result = run_cli("profile", "--arch", "resnet20", "--checkpoint", str(evil), cache=tmp_path / "cache")
    assert_user_error(result, str(evil), "refused for safety")
    assert not marker.exists()


def test_the_cli_names_a_truncated_or_foreign_checkpoint(tmp_path):
    good = saved(tmp_path / "good.pt")
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    result = run_cli("evaluate", str(cut), "--data", "synthetic", cache=tmp_path / "cache")
    assert_user_error(result, str(cut), "cut short", "expected a checkpoint written by torch.save")
    other = saved(tmp_path / "resnet56.pt", "resnet56")
    result = run_cli("profile", "--arch", "resnet20", "--checkpoint", str(other), cache=tmp_path / "cache")
    assert_user_error(result, str(other), "holds a resnet56 model, expected resnet20")


def _bad_checkpoints(folder: Path) -> dict[str, tuple[Path, dict, tuple[str, ...]]]:
    """name -> (file, load_model keywords, phrases the message must contain)."""
    good = saved(folder / "good.pt")
    raw = good.read_bytes()
    state = torch.load(good, weights_only=True)
    weights = state["model"]
    cases = {}

    def add(name: str, data: bytes | dict, kwargs: dict, *phrases: str) -> None:
        path = folder / f"{name}.pt"
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            torch.save(data, path)
        cases[name] = (path, kwargs, phrases)

    expect = {"arch": "resnet20", "num_classes": 10}
    add("truncated", raw[: len(raw) // 2], expect, "cut short", "expected a checkpoint written by torch.save")
    add("corrupted-weights", flipped(raw, len(raw) // 2), expect, "corrupted", "checksum")
    add("corrupted-header", flipped(raw, 200), expect, "corrupted", "checksum")
    add("empty", b"", expect, "empty", "expected a checkpoint")
    add("not-a-checkpoint", b"\x89PNG\r\n\x1a\n" + bytes(100), expect, "not a PyTorch checkpoint")
    add("wrong-arch", torch.load(saved(folder / "r56.pt", "resnet56"), weights_only=True), expect,
        "holds a resnet56 model, expected resnet20")
    add("wrong-classes", torch.load(saved(folder / "c100.pt", num_classes=100), weights_only=True), expect,
        "trained for 100 classes, expected 10")
    add("mislabeled-weights", {**torch.load(folder / "r56.pt", weights_only=True), "arch": "resnet20"}, {},
        "weights do not fit the resnet20", "unexpected, e.g. layer1.3")
    add("wrong-head", {**state, "model": {**weights, "fc.weight": torch.zeros(100, 64)}}, expect,
        "fc.weight has shape [100, 64], expected [10, 64]")
    add("bare-state-dict", dict(weights), expect, "not an Elastic model checkpoint", "bare state_dict")
    add("no-class-count", {k: v for k, v in state.items() if k != "num_classes"}, {},
        "num_classes entry (None) is not a positive whole number")
    add("unknown-layer-in-config", {**state, "config": {"shapes": {"nope": [1, 2]}}}, expect,
        "config does not describe a resnet20")
    add("config-not-a-dict", {**state, "config": "layer1"}, expect, "config entry is a str")
    # A crafted class count or layer size would allocate terabytes if the model were built first.
    add("huge-class-count", {**state, "num_classes": 10 ** 12}, {},
        "fc.weight has shape [10, 64], expected [1000000000000, 64]")
    add("huge-layer-in-config", {**state, "config": {"shapes": {"fc": [64, 10 ** 12]}}}, expect,
        "fc.weight has shape [10, 64], expected [1000000000000, 64]")
    add("weights-not-tensors", {**state, "model": "weights"}, expect, "not a dict of tensors")
    add("unknown-arch", {**state, "arch": "resnet9000"}, {}, "'resnet9000', which is not supported")
    return cases


def test_bad_checkpoints_each_give_one_clear_message(tmp_path):
    for name, (path, kwargs, phrases) in _bad_checkpoints(tmp_path).items():
        with pytest.raises(BadCheckpoint) as info:
            load_model(path, **kwargs)
        message = str(info.value)
        assert str(path) in message, (name, message)                 # which file
        for phrase in phrases:                                       # what is wrong, what was expected
            assert phrase in message, (name, phrase, message)
        assert "\n" not in message, (name, message)                 # one line
    model, state = load_model(tmp_path / "good.pt", arch="resnet20", num_classes=10)
    assert state["arch"] == "resnet20" and not any(p.is_meta for p in model.parameters())


def test_a_legacy_format_checkpoint_still_loads(tmp_path):
    state = torch.load(saved(tmp_path / "good.pt"), weights_only=True)
    legacy = tmp_path / "legacy.pt"
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    model, _ = load_model(legacy, arch="resnet20", num_classes=10)
    assert torch.equal(model.state_dict()["fc.weight"], state["model"]["fc.weight"])


def test_a_damaged_elastic_checkpoint_is_named(tmp_path):
    path = tmp_path / "elastic.pt"
    save_elastic(path, build_elastic(build_model("resnet20", 10), "resnet20", 10))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) * 2 // 3])
    with pytest.raises(BadCheckpoint, match="elastic.pt: the file is cut short"):
        load_elastic(path)
    path.write_bytes(flipped(raw, len(raw) // 2))
    with pytest.raises(BadCheckpoint, match="elastic.pt: the file is corrupted"):
        load_elastic(path)


# ---- 2. uploads: checked without Streamlit, then the page ----------------------------------

@pytest.fixture
def private_tmp(tmp_path, monkeypatch) -> Path:
    """Point tempfile at an empty folder of our own, to see what an upload leaves there."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_a_valid_upload_is_recognised_and_leaves_nothing_behind(tmp_path, private_tmp, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    torch.manual_seed(0)
    original = build_model("resnet20", 10)
    save_model(tmp_path / "mine.pt", original, "resnet20", 10, "cifar10", note="mine")
    data = (tmp_path / "mine.pt").read_bytes()
    escape = "../../../escape.pt"                               # a hostile file name is never used as a path
    report = check_bytes(data, escape, MAX_UPLOAD_BYTES)
    assert report.kind == "model checkpoint" and report.name == "escape.pt"
    assert report.arch == "resnet20" and report.dataset == "cifar10"
    assert not report.model.training
    for name, tensor in original.state_dict().items():
        assert torch.equal(report.model.state_dict()[name], tensor)
    assert ("parameters", f"{profile_model(original, (3, 32, 32)).params:,}") in report.facts
    assert list(private_tmp.iterdir()) == [] and list(work.iterdir()) == []
    assert not (tmp_path / "escape.pt").exists() and not Path("/tmp/escape.pt").exists()
    legacy = io.BytesIO()
    torch.save(torch.load(tmp_path / "mine.pt", weights_only=True), legacy, _use_new_zipfile_serialization=False)
    assert legacy.getvalue()[:2] == b"\x80\x02"                 # the legacy pickle format is accepted too
    assert check_bytes(legacy.getvalue(), "legacy.pt").kind == "model checkpoint"
    assert list(private_tmp.iterdir()) == []


def test_bad_uploads_are_refused_with_the_file_name(tmp_path, private_tmp):
    marker = tmp_path / "payload-ran"
    evil = payloads(tmp_path, marker)["zip"].read_bytes()
    good = saved(tmp_path / "good.pt").read_bytes()
    cases = {
        "too big": (good, len(good) - 1, "the limit is"),
        "too big and hostile": (evil, len(evil) - 1, "the limit is"),     # size is checked before anything else
        "empty": (b"", MAX_UPLOAD_BYTES, "is empty"),
        "an image": (b"\x89PNG\r\n\x1a\n" + bytes(64), MAX_UPLOAD_BYTES, "not a file Elastic writes: it is a PNG"),
        "text": (b"print('hello')\n", MAX_UPLOAD_BYTES, "not a file Elastic writes: it is a text file"),
        "a payload": (evil, MAX_UPLOAD_BYTES, "refused for safety"),
        "truncated": (good[: len(good) // 3], MAX_UPLOAD_BYTES, "cut short"),
        "corrupted": (flipped(good, len(good) // 2), MAX_UPLOAD_BYTES, "checksum"),
    }
    for case, (data, limit, phrase) in cases.items():
        with pytest.raises(BadCheckpoint) as info:
            check_bytes(data, f"my {case}.pt", limit)
        message = str(info.value)
        assert f"my {case}.pt" in message and phrase in message, (case, message)
        assert str(private_tmp) not in message, message             # the temporary path is not shown
        assert "\n" not in message
    assert not marker.exists() and list(private_tmp.iterdir()) == []


def test_display_names_are_safe_to_show():
    assert display_name("../../etc/passwd") == "passwd"
    assert display_name("C:\\Users\\me\\model.pt") == "model.pt"
    assert display_name("a`b\x00\x1b[31mc.pt") == "a'b[31mc.pt"
    assert display_name("") == "the uploaded file"
    assert len(display_name("x" * 500)) == 80


def fake_cifar10(path: Path, *, broken: str = "", per_class: int = 2) -> Path:
    """A cifar10.tar.gz in the shared archive's layout (<root>/{train,test}/<class>/<file>.jpg)
    with tiny JPEGs; `broken` names one member whose bytes are not an image."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for split, count in (("train", per_class), ("test", 1)):
            for c in range(10):
                for i in range(count):
                    name = f"cifar10/{split}/class{c}/{i}.jpg"
                    buffer = io.BytesIO()
                    Image.new("RGB", (32, 32), (25 * c, 100, 200 - 20 * c)).save(buffer, "JPEG")
                    data = b"\xff\xd8\xff\xe0 not really a JPEG" if name == broken else buffer.getvalue()
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    return path


def upload_page() -> AppTest:
    return AppTest.from_file(UPLOAD_PAGE, default_timeout=120).run()


def test_upload_page_checks_profiles_and_keeps_working_after_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("ELASTIC_DATA", str(tmp_path / "no-data"))
    marker = tmp_path / "payload-ran"
    evil = payloads(tmp_path, marker)["zip"].read_bytes()
    torch.manual_seed(0)
    original = build_model("resnet20", 10)
    save_model(tmp_path / "good.pt", original, "resnet20", 10, "cifar10")
    good = (tmp_path / "good.pt").read_bytes()
    at = upload_page()
    assert not at.exception and at.title[0].value == "Check a checkpoint"
    uploader = at.file_uploader[0]
    assert uploader.proto.max_upload_size_mb == MAX_UPLOAD_BYTES // 2 ** 20
    assert any("No file uploaded yet" in i.value for i in at.info)

    def upload(name: str, data: bytes) -> AppTest:
        at.file_uploader[0].set_value((name, data, "application/octet-stream")).run()
        assert not at.exception, at.exception
        return at

    upload("good.pt", good)
    assert any("`good.pt` is a model checkpoint: resnet20 for 10 classes" in s.value for s in at.success)
    prof = profile_model(original, (3, 32, 32))
    shown = {m.label: m.value for m in at.metric}
    assert shown["Parameters"] == explore.format_quantity(prof.params, METRICS["params"], noun=False)
    assert shown["MACs"] == explore.format_quantity(prof.macs, METRICS["macs"], noun=False)
    assert shown["Peak memory (fp32)"] == explore.format_bytes(prof.peak_memory_bytes(4))
    for name, data, phrase in (("evil.pt", evil, "refused for safety"),
                               ("half.pt", good[: len(good) // 2], "cut short"),
                               ("notes.pt", b"just text", "not a file Elastic writes")):
        upload(name, data)
        assert len(at.error) == 1 and name in at.error[0].value and phrase in at.error[0].value
        assert not at.success and not at.metric
    assert not marker.exists()
    upload("good.pt", good)                                  # the page keeps working
    assert at.success and not at.error
    at.button(key="upload.accuracy").click().run()
    assert not at.exception
    assert any("Accuracy not measured" in w.value and "not found" in w.value for w in at.warning)


def test_upload_page_measures_accuracy_on_the_dataset_the_file_names(tmp_path, monkeypatch):
    monkeypatch.setenv("ELASTIC_DATA", str(fake_cifar10(tmp_path / "data" / "cifar10.tar.gz").parent))
    torch.manual_seed(0)
    model = build_model("resnet20", 10).eval()
    save_model(tmp_path / "good.pt", model, "resnet20", 10, "cifar10")
    at = upload_page()
    at.file_uploader[0].set_value(("good.pt", (tmp_path / "good.pt").read_bytes(), "application/octet-stream"))
    at.run()
    assert not at.selectbox                                  # the file names its dataset
    at.button(key="upload.accuracy").click().run()
    assert not at.exception
    data = load_dataset("cifar10")
    expected = evaluate(model, data.test.head(500), data.spec)
    assert any(m.label == "Test accuracy" and m.value == f"{expected:.2f}%" for m in at.metric)


# ---- 3. data: wrong folders, damaged archives, no network ---------------------------------

def test_a_wrong_data_folder_says_where_it_looked_and_what_to_do(tmp_path):
    with pytest.raises(DataNotFound) as info:
        load_dataset("cifar10", tmp_path / "nowhere")
    message = str(info.value)
    assert str(tmp_path / "nowhere") in message and "cifar10.tar.gz" in message
    assert "--download" in message and "--data synthetic" in message


def test_a_truncated_archive_is_named(tmp_path):
    archive = fake_cifar10(tmp_path / "cifar10.tar.gz")
    assert len(load_dataset("cifar10", tmp_path).test) == 10        # the complete archive loads
    raw = archive.read_bytes()
    cut = tmp_path / "cut" / "cifar10.tar.gz"
    cut.parent.mkdir()
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataNotFound) as info:
        load_dataset("cifar10", cut.parent)
    assert str(cut) in str(info.value) and "complete copy" in str(info.value)


def test_atomic_writes_keep_the_usual_permissions_and_leave_no_temporary_file(tmp_path):
    from elastic.atomic import replace_atomically

    umask = os.umask(0)
    os.umask(umask)
    replace_atomically(tmp_path / "a" / "rows.csv", lambda f: f.write(b"x\n"))
    assert (tmp_path / "a" / "rows.csv").read_bytes() == b"x\n"
    assert (tmp_path / "a" / "rows.csv").stat().st_mode & 0o777 == 0o666 & ~umask
    with pytest.raises(ZeroDivisionError):                 # a writer that fails leaves the old file
        replace_atomically(tmp_path / "a" / "rows.csv", lambda f: f.write(b"half") and 1 / 0)
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["rows.csv"]
    assert (tmp_path / "a" / "rows.csv").read_bytes() == b"x\n"


def test_workers_decoding_one_archive_at_once_all_succeed(tmp_path, monkeypatch):
    """A sweep's workers start together and each finds the dataset not yet cached:
    they all decode and write the cache; none may fail or leave a partial file."""
    from concurrent.futures import ThreadPoolExecutor

    fake_cifar10(tmp_path / "data" / "cifar10.tar.gz", per_class=20)
    monkeypatch.setenv("ELASTIC_CACHE", str(tmp_path / "cache"))
    with ThreadPoolExecutor(8) as pool:
        sizes = list(pool.map(lambda _: len(load_dataset("cifar10", tmp_path / "data").test), range(8)))
    assert sizes == [10] * 8
    (folder,) = (tmp_path / "cache" / "datasets").iterdir()
    assert sorted(p.name for p in folder.iterdir()) == [
        "meta.json", "test_images.npy", "test_labels.npy", "train_images.npy", "train_labels.npy"]


@pytest.mark.parametrize("member", ["cifar10/train/class3/1.jpg", "cifar10/test/class7/0.jpg"])
def test_an_image_that_does_not_decode_is_named(tmp_path, member):
    archive = fake_cifar10(tmp_path / "cifar10.tar.gz", broken=member)
    with pytest.raises(DataNotFound) as info:
        load_dataset("cifar10", tmp_path)
    message = str(info.value)
    assert str(archive) in message and member in message and "not a readable image" in message


def test_an_offline_download_says_so_and_how_to_go_on(tmp_path):
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(10)
    started = time.monotonic()
    try:
        with pytest.raises(DataNotFound) as info:
            load_dataset("cifar100", tmp_path, download=True)
    finally:
        socket.setdefaulttimeout(previous)
    message = str(info.value)
    assert "could not download cifar100" in message and str(tmp_path) in message
    assert "offline" in message and "by hand" in message and "--data synthetic" in message
    assert time.monotonic() - started < 60


# ---- 4. budgets and names -------------------------------------------------------------------

@pytest.mark.parametrize("target", ["nan", "-1", "1e9", "inf", "0", "abc"])
def test_impossible_targets_are_refused_by_the_cli(target, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["prune", "--method", "complexity", "--dry-run", "--target", target])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--target" in err and ("not in (0, 1]" in err or "not a number" in err), err


def test_a_budget_below_the_smallest_model_and_unknown_names_are_refused_by_the_cli(capsys):
    assert cli.main(["prune", "--method", "complexity", "--dry-run", "--target", "0.0001"]) == 2
    err = capsys.readouterr().err
    assert "out of reach for resnet20" in err and "smallest reachable fraction" in err
    assert cli.main(["prune", "--method", "uniform", "--dry-run", "--target", "0.0001"]) == 2
    assert "out of reach" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:          # refused as it is parsed, naming the range
        cli.main(["prune", "--method", "complexity", "--dry-run", "--min-width", "0"])
    assert stop.value.code == 2 and "--min-width: 0 is below 1; give 1 or more" in capsys.readouterr().err
    for argv in (["--arch", "nope"], ["--dataset", "nope"], ["--mode", "XA"], ["--step", "nan"]):
        with pytest.raises(SystemExit):
            cli.main(["prune", "--method", "complexity", "--dry-run", *argv])
        err = capsys.readouterr().err
        assert "invalid choice" in err or "not in (0, 1)" in err, (argv, err)
    assert cli.main(["evaluate", "model.pt", "--dataset", "nope", "--data", "synthetic"]) == 2
    assert "unknown dataset 'nope'; known: cifar10" in capsys.readouterr().err


@pytest.mark.parametrize("target,phrase", [("nan", "not in (0, 1]"), ("0.0001", "out of reach")])
def test_budget_errors_in_a_real_process_have_no_traceback(tmp_path, target, phrase):
    result = run_cli("prune", "--method", "complexity", "--dry-run", "--target", target, cache=tmp_path)
    assert_user_error(result, phrase)


@pytest.mark.parametrize("target", [math.nan, math.inf, -1.0, 0.0, 1e9, 1e-6])
def test_plans_refuse_impossible_targets(target):
    with pytest.raises(BadBudget):
        complexity.plan("resnet20", 10, "FA", target)
    with pytest.raises(BadBudget):
        complexity.uniform_plan("resnet20", 10, target)


def test_query_problems_name_every_bad_link_parameter():
    known = (["cifar10"], ["resnet20"])
    assert query_problems({"dataset": "cifar10", "arch": "resnet20", "metric": "macs", "budget": "4e7"}, *known) == []
    assert query_problems({"arch": explore.ALL_ARCHS}, *known) == []
    problems = query_problems({"dataset": "nope", "arch": "nope2", "metric": "nope3", "budget": "-5"}, *known)
    assert len(problems) == 4
    assert "'nope'" in problems[0] and "'nope2'" in problems[1] and "'nope3'" in problems[2]
    assert "'-5'" in problems[3]
    for budget in ("nan", "inf", "abc", "-1e-9"):
        assert len(query_problems({"budget": budget}, *known)) == 1, budget


# ---- tiny real results, for the app ----------------------------------------------------------

RUNS = (["train", "--arch", "resnet20", "--label", "tiny reliability run"],
        ["prune", "--method", "complexity", "--mode", "FA", "--target", "0.5"],
        ["prune", "--method", "complexity", "--mode", "PA", "--target", "0.3"])


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("reliability-results")
    for argv in RUNS:
        assert cli.main(argv + TINY + ["--out", str(folder / "cifar10.csv")]) == 0, argv
    return folder


@pytest.fixture
def explorer_env(results, monkeypatch) -> Path:
    monkeypatch.setenv("ELASTIC_RESULTS_DIR", str(results))
    return results




def resnet20_rows(folder: Path):
    frame, problems = load_all(folder)
    assert not problems
    return explore.select(explore.prepare(frame), dataset="cifar10", arch="resnet20")


@pytest.mark.parametrize("query", [
    {"budget": "-5"}, {"budget": "nan"}, {"budget": "1e300"}, {"budget": "abc"},
    {"arch": "nope"}, {"dataset": "nope"}, {"metric": "nope", "budget": "-1"},
    {"dataset": "nope", "arch": "nope", "budget": "-5", "methods": "nope", "modes": "XA", "device": "nope"},
])
def test_explorer_keeps_working_with_bad_link_parameters(explorer_env, query):
    at = app(**query)
    assert not at.exception, (query, at.exception)
    assert card(at)                                        # a choice or the reason there is none
    if query == {"budget": "-5"}:                          # ignored, as the warning says: no limit, not 0
        assert card(at).startswith("**Best with no budget limit:**")
        assert any("it is ignored" in w.value for w in at.warning)


@pytest.mark.parametrize("query", [{"arch": "nope"}, {"dataset": "nope"}, {"arch": "resnet50", "dataset": "cifar10"},
                                   {"budget": "-5", "metric": "nope"}])
def test_layers_page_keeps_working_with_bad_link_parameters(explorer_env, query):
    at = app(**query)
    at.switch_page("pages/layers.py").run()
    assert not at.exception, (query, at.exception)
    assert any(m.label == "MACs" for m in at.metric)
    at.slider(key="layers.target").set_value(0.1).run()      # the smallest budget the slider allows
    assert not at.exception


# ---- 5. cached results: a half-written file is detected ---------------------------------------

def test_every_truncation_of_a_results_file_is_detected_or_a_clean_prefix(results, tmp_path):
    raw = (results / "cifar10.csv").read_bytes()
    full = read_results(results / "cifar10.csv")
    newlines = [i + 1 for i, byte in enumerate(raw) if byte == ord("\n")]
    cuts = sorted(set(range(1, len(raw), 7)) | set(newlines) | {n - 1 for n in newlines} | {n + 1 for n in newlines})
    copy = tmp_path / "cut.csv"
    accepted = 0
    for cut in cuts:
        if cut >= len(raw):
            continue
        copy.write_bytes(raw[:cut])
        try:
            frame = read_results(copy)
        except BadResults as err:
            assert str(copy) in str(err)
            continue
        accepted += 1                                     # only whole rows: the first rows, unchanged
        assert cut in newlines, cut
        assert frame.astype(str).values.tolist() == full.iloc[: len(frame)].astype(str).values.tolist(), cut
    assert accepted == len(newlines) - 1                  # header only, then each complete row but the last


def test_explorer_names_a_half_written_file_and_shows_the_rest(results, tmp_path, monkeypatch):
    good = (results / "cifar10.csv").read_bytes()
    (tmp_path / "cifar10.csv").write_bytes(good)
    (tmp_path / "half.csv").write_bytes(good[: len(good) - 40])       # cut inside the last row
    monkeypatch.setenv("ELASTIC_RESULTS_DIR", str(tmp_path))
    at = app()
    assert not at.exception
    assert any("half.csv" in w.value and "incomplete" in w.value for w in at.warning)
    rows = resnet20_rows(results)
    assert explore.best_under_budget(rows, METRICS["macs"], math.inf).row["run_id"] in card(at)


# ---- 6. many users at once --------------------------------------------------------------------

def test_twenty_users_share_one_elastic_model(tmp_path):
    torch.manual_seed(0)
    model = build_elastic(build_model("resnet20", 10), "resnet20", 10).eval()   # as the app's cached loader
    spec = DATASETS.get("cifar10")
    images = load_dataset("cifar10", source="synthetic", synthetic_size=64).test
    levels = range(model.num_levels)
    costs = {}
    for k in levels:
        prof = profile_model(extract(model, k), (3, 32, 32))
        costs[k] = {"macs": prof.macs, "params": prof.params}
    # One results row per level, with made-up accuracies that rise with the width.
    frame = explore.prepare(pd.DataFrame(
        [{"run_id": f"level{k}", "dataset": "cifar10", "arch": "resnet20", "method": "elastic", "mode": "",
          "test_acc": 80.0 + k, "macs": costs[k]["macs"], "params": costs[k]["params"]} for k in levels]))
    budgets = [costs[0]["macs"] * (0.5 + 0.2 * i) for i in range(20)]

    def work(user: int) -> dict:
        k = user % model.num_levels
        run = lambda x: model(x, k)                                    # noqa: E731 - as the elastic page
        with torch.no_grad():
            logits = run(torch.zeros(2, 3, 32, 32) + user / 20)
        pick = explore.best_under_budget(frame, METRICS["macs"], budgets[user])
        return {"level": k, "logits": logits, "acc": evaluate(run, images, spec),
                "shapes": {n: tuple(v.shape) for n, v in extract(model, k).state_dict().items()},
                "pick": pick.row["run_id"] if pick.row else None}

    reference = [work(user) for user in range(20)]                     # one user after another
    barrier = threading.Barrier(20)

    def at_once(user: int) -> dict:
        barrier.wait()
        return work(user)

    with ThreadPoolExecutor(max_workers=20) as pool:
        concurrent = list(pool.map(at_once, range(20)))
    assert len({r["pick"] for r in reference}) >= 3                    # the budgets pick different levels
    for user, (alone, together) in enumerate(zip(reference, concurrent)):
        assert together["pick"] == alone["pick"], user
        assert together["shapes"] == alone["shapes"], user                # the level's standalone network
        assert together["acc"] == alone["acc"], user
        assert torch.allclose(together["logits"], alone["logits"], rtol=0, atol=1e-6), user


PROFILING_USERS = """
import json, threading, torch
from concurrent.futures import ThreadPoolExecutor
from elastic.methods.grow import build_elastic, extract
from elastic.models import build_model
from elastic.profile import profile_model
call, getattr_ = torch.nn.Module.__call__, torch.nn.Module.__getattr__
torch.manual_seed(0)
model = build_elastic(build_model("resnet20", 10), "resnet20", 10).eval()
x = torch.randn(2, 3, 32, 32)
with torch.no_grad():
    logits = [model(x, k) for k in range(model.num_levels)]
macs = [profile_model(extract(model, k), (3, 32, 32)).macs for k in range(model.num_levels)]
barrier = threading.Barrier(20)

def user(i):
    k = i % model.num_levels
    barrier.wait()
    try:
        with torch.no_grad():
            same = bool(torch.allclose(model(x, k), logits[k], rtol=0, atol=1e-6))
        return same and profile_model(extract(model, k), (3, 32, 32)).macs == macs[k]  # as level_profile
    except Exception as err:
        return type(err).__name__

with ThreadPoolExecutor(max_workers=20) as pool:
    seen = list(pool.map(user, range(20)))
restored = torch.nn.Module.__call__ is call and torch.nn.Module.__getattr__ is getattr_
print(json.dumps({"seen": seen, "restored": restored}))
"""


def test_profiling_while_other_users_run_models(tmp_path):
    # In its own process: a failure here leaves torch.nn.Module patched for the rest of the process.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", PROFILING_USERS], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["seen"] == [True] * 20
    assert report["restored"]                              # the process is not left broken


def test_twenty_explorer_sessions_each_highlight_their_own_choice(explorer_env):
    rows = resnet20_rows(explorer_env)
    spec = explore.slider_spec(METRICS["macs"], rows["macs"])
    steps = round((spec.high - spec.low) / spec.step)
    positions = [min(round(spec.low + spec.step * round(steps * i / 19), 10), spec.high)   # 20 slider positions
                 for i in range(20)]

    def expected(position: float) -> str:
        budget = math.inf if position >= spec.high else spec.to_base(position)
        pick = explore.best_under_budget(rows, METRICS["macs"], budget)
        return pick.row["run_id"] if pick.row else "nothing to choose"

    # Twenty independent sessions (own session state, shared st.cache_data), driven from
    # a thread pool. AppTest.run itself is not thread-safe in Streamlit 1.67 (each run
    # installs and then removes one process-wide mock Runtime: concurrent runs fail with
    # "Runtime hasn't been created!"), so the runs take turns, interleaved at random.
    turn = threading.Lock()
    sessions: dict[int, AppTest] = {}

    def session(i: int) -> str:
        with turn:                                         # opened from a link with its own budget
            sessions[i] = app(budget=f"{spec.to_base(positions[i]):.12g}")
            first = card(sessions[i])
        time.sleep(0.001 * (i % 5))
        with turn:                                         # then the slider moved elsewhere
            sessions[i].slider[0].set_value(positions[19 - i]).run()
        return first

    with ThreadPoolExecutor(max_workers=20) as pool:
        firsts = list(pool.map(session, range(20)))
    for i in reversed(range(20)):                          # after everyone moved: each still sees its own
        assert expected(positions[i]) in firsts[i], (i, expected(positions[i]), firsts[i])
        at = sessions[i].run()
        assert not at.exception, at.exception
        assert at.slider[0].value == pytest.approx(positions[19 - i])
        assert expected(positions[19 - i]) in card(at), (i, expected(positions[19 - i]), card(at))
    assert len({expected(p) for p in positions}) >= 3


# ---- 7. interrupted work -------------------------------------------------------------------------

def test_a_killed_training_resumes_from_its_last_epoch(tmp_path):
    cache, out = tmp_path / "cache", tmp_path / "results.csv"
    # fp32 named: under auto a CPU with native bf16 would train (and name its files) in bf16.
    argv = ["train", "--arch", "resnet20", "--data", "synthetic", "--epochs", "3", "--batch-size", "32",
            "--train-subset", "64", "--precision", "fp32", "--out", str(out)]
    folder = cache / "checkpoints"

    def resume_files():
        return list(folder.glob("cifar10__resnet20__baseline__e3__s0__synthetic__fp32-*.resume.pt"))
    env = {**os.environ, "ELASTIC_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "elastic", *argv], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not resume_files() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert resume_files(), "no epoch checkpoint was written before the kill"
    resume = resume_files()[0]
    epoch = torch.load(resume, weights_only=True)["epoch"]
    assert 1 <= epoch < 3 and not out.exists()
    rerun = run_cli(*argv, cache=cache)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"resumed from epoch {epoch} of 3" in rerun.stdout
    frame = read_results(out)
    assert list(frame["run_id"].map(identity.untagged)) == ["cifar10/resnet20/baseline/e3/s0/synthetic"]
    assert frame["epochs"][0] == 3
    assert not resume.exists()                             # finished: the next run starts afresh
    _, state = load_model(folder / identity.checkpoint_name(frame["run_id"][0]))
    assert state["arch"] == "resnet20"


WRITER = """
import json
import os
import sys
from elastic.results import append_row, read_results
path, row = sys.argv[1], json.loads(sys.argv[2])
i = len(read_results(path)) if os.path.exists(path) else 0
while True:
    append_row(path, {**row, "run_id": f"r{i:06d}"})
    i += 1
"""
ROW = {"dataset": "cifar10", "arch": "resnet20", "method": "baseline", "test_acc": 50.0, "params": 1, "macs": 2,
       "weight_bytes": 4, "peak_act_bytes": 4, "peak_mem_fp32": 8, "peak_mem_int8": 2, "config": {},
       "epochs": 1, "seed": 0, "device": "cpu", "precision": "fp32", "cpu": "test CPU", "commit": "abc",
            "date": "2026-01-01T00:00:00Z", "seconds": 1.0,
       "command": "python -m elastic train", "label": "a long label " * 40, "data_source": "synthetic"}


def test_a_killed_writer_never_leaves_a_half_written_results_file(tmp_path):
    out = tmp_path / "results.csv"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    for round_ in range(3):
        before = len(read_results(out)) if out.exists() else 0
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(out), json.dumps(ROW)], cwd=tmp_path, env=env,
                                stderr=subprocess.PIPE)
        # Kill at the worst moment seen: as soon as the file shrinks (a rewrite in
        # progress), else once it has grown by about 50 rows.
        deadline, last = time.monotonic() + 120, out.stat().st_size if out.is_file() else 0
        while proc.poll() is None and time.monotonic() < deadline:
            size = out.stat().st_size if out.is_file() else 0
            if size < last or size > 30_000 * (round_ + 1):
                break
            last = size
            time.sleep(0.0005)
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate()
        assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
        frame = read_results(out)                          # parses: never half-written
        assert len(frame) > before
        assert list(frame["run_id"]) == [f"r{i:06d}" for i in range(len(frame))]   # no row lost or doubled
        assert (frame["label"] == ROW["label"]).all() and (frame["data_source"] == "synthetic").all()
