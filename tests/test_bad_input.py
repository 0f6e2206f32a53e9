"""Bad input as a careless user types it: every case ends in one line on stderr
and exit 2, before any work starts, with no traceback and no shipped file changed."""
from pathlib import Path

import pytest

from elastic.checkpoints import save_model
from elastic.cli import main
from elastic.data import load_dataset
from elastic.models import build_model
from elastic.results import RESULTS_DIR, append_row, read_results
from elastic.train import Recipe, train

BASE = ["--data", "synthetic"]
RESUMED = ["--batch-size", "64", "--precision", "fp32"]   # the resume file's recipe, less its epochs


def _snapshot() -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in RESULTS_DIR.rglob("*") if p.is_file()}


def _cases(tmp: Path) -> list[tuple[list[str], str]]:
    a_file = tmp / "a-file"
    a_file.write_text("not a folder")
    corrupt = tmp / "corrupt.csv"
    corrupt.write_bytes(b"\x00\x01 random bytes \xff\n")
    binary = tmp / "config.json"
    binary.write_bytes(bytes(range(256)))
    bom = tmp / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + b'{"removed_blocks": ["layer9.9"]}')
    baseline = tmp / "baseline.pt"
    save_model(baseline, build_model("resnet20", 10), "resnet20", 10, "cifar10")
    resume = tmp / "resume.pt"           # what `train --checkpoint` writes: a 1-epoch run, batch 64
    data = load_dataset("cifar10", source="synthetic", synthetic_size=128)
    train(build_model("resnet20", 10), data.train, data.spec, Recipe(epochs=1, batch_size=64), checkpoint=resume)
    impossible = tmp / "impossible.csv"
    shipped = read_results(RESULTS_DIR / "cifar10.csv").head(1).to_dict("records")[0]
    shipped.update(config='{"removed_blocks": ["layer9.9"], "shapes": {}}', latency_ms=None)
    append_row(impossible, {k: v for k, v in shipped.items() if v is not None and v == v})
    return [
        (["train", *BASE, "--batch-size", "0"], "--batch-size"),
        (["train", *BASE, "--batch-size", "-4"], "--batch-size"),
        (["train", *BASE, "--epochs", "0"], "--epochs"),
        (["train", *BASE, "--epochs", "-3"], "--epochs"),
        (["train", *BASE, "--lr", "-1"], "--lr"),
        (["train", *BASE, "--lr", "nan"], "--lr"),
        (["train", *BASE, "--weight-decay", "-0.1"], "--weight-decay"),
        (["train", *BASE, "--train-subset", "-5"], "--train-subset"),
        (["train", *BASE, "--seed", "x"], "--seed"),
        (["train", *BASE, "--device", "banana"], "banana"),
        (["train", *BASE, "--device", "cuda:7"], "cuda"),
        (["train", *BASE, "--precision", "fp16"], "--precision"),
        (["train", *BASE, "--out", str(tmp)], "is a folder"),
        (["train", *BASE, "--checkpoint", str(baseline)], "is a model checkpoint"),
        (["train", *BASE, *RESUMED, "--epochs", "1", "--arch", "resnet56", "--checkpoint", str(resume)],
         "another network"),
        (["train", *BASE, *RESUMED, "--epochs", "3", "--checkpoint", str(resume)], "epochs 1 there, 3 here"),
        (["train", *BASE, "--epochs", "1", "--batch-size", "32", "--checkpoint", str(resume)],
         "batch_size 64 there, 32 here"),
        (["train", *BASE, "--out", str(a_file / "r.csv")], "is a file, not a folder"),
        (["train", *BASE, "--out", str(corrupt)], "corrupt.csv"),
        (["evaluate", "x.pt", *BASE, "--limit", "-5"], "--limit"),
        (["grow", *BASE, "--epochs", "0"], "--epochs"),
        (["grow", *BASE, "--core-epochs", "-1"], "--core-epochs"),
        (["prune", "--method", "magic"], "--method"),
        (["prune", "--method", "block", *BASE, "--ft-epochs", "-1"], "--ft-epochs"),
        (["prune", "--method", "block-l1", *BASE, "--baseline", str(baseline), "--target", "0.01"],
         "out of reach by block removal"),
        (["prune", "--method", "block-l1", *BASE, "--baseline", str(baseline), "--target", "0.01", "--dry-run"],
         "out of reach by block removal"),
        (["prune", "--method", "block", *BASE, "--ft-lr", "0"], "--ft-lr"),
        (["prune", "--method", "complexity", *BASE, "--target", "0"], "--target"),
        (["prune", "--method", "complexity", *BASE, "--min-width", "0"], "--min-width"),
        (["prune", "--method", "uniform", *BASE, "--out", str(corrupt)], "corrupt.csv"),
        (["sweep", "--grid", "smoke", "--methods", "magic"], "--methods"),
        (["sweep", "--grid", "smoke", "--archs", "resnet999"], "--archs"),
        (["sweep", "--grid", "smoke", "--stop-after", "-1"], "--stop-after"),
        (["sweep", "--grid", "smoke", "--out", str(tmp)], "is a folder"),
        (["sweep", "--grid", "nope"], "--grid"),
        (["bench", "--repeats", "0"], "--repeats"),
        (["bench", "--batch-size", "0"], "--batch-size"),
        (["bench", "--threads", "0"], "--threads"),
        (["export", "--out-dir", str(tmp), "--opset", "3"], "--opset"),
        (["profile", "--arch", "resnet999"], "--arch"),
        (["export", "--out-dir", str(a_file)], "is a file, not a folder"),
        (["export", "--out-dir", str(tmp / "x"), "--config", str(binary)], "is not text"),
        (["export", "--out-dir", str(tmp / "x"), "--config", str(bom)], "layer9.9"),
        (["bench", "--config", str(binary)], "is not text"),
        (["bench", "--config", '{"shapes": {"fc": [64, 1000000000000]}}'], "never widens a layer"),
        (["bench", "--fill-results", str(impossible)], "layer9.9"),
        (["nonsense"], "invalid choice"),
    ]


def test_every_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    before = _snapshot()
    failures = []
    for argv, says in _cases(tmp_path):
        capsys.readouterr()
        try:
            code = main(argv)
        except SystemExit as stop:
            code = stop.code
        err = capsys.readouterr().err.strip().splitlines()
        if code != 2 or len(err) != 1 or says not in err[0] or "Traceback" in err[0]:
            failures.append((argv, code, err[-3:]))
    assert not failures, "\n".join(map(str, failures))
    assert _snapshot() == before
    assert not list(tmp_path.glob(".*.tmp")) and not (tmp_path / "a-file").is_dir()


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_a_bad_count_names_the_valid_range(value, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train", "--epochs", value])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and ("1 or more" in err or "whole number" in err)
