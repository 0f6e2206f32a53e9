"""Run identity: runs that differ in anything that changes a result never share a
row, a checkpoint or a resume file; shipped rows of the old scheme are migrated."""
import json
from pathlib import Path

import pytest
import torch

from elastic import identity
from elastic.cli import main
from elastic.data import load_dataset
from elastic.models import build_model
from elastic.precision import cpu_flags, cpu_name, native_bf16, resolve, vector_unit
from elastic.results import RESULTS_DIR, read_results
from elastic.runs import checkpoint_path
from elastic.train import Recipe, train

TINY = ["train", "--arch", "resnet20", "--data", "synthetic", "--epochs", "1", "--batch-size", "64",
        "--precision", "fp32"]


@pytest.mark.parametrize("first,second", [
    (["--lr", "0.1"], ["--lr", "0.05"]),
    (["--batch-size", "64"], ["--batch-size", "32"]),
    (["--train-subset", "128"], ["--train-subset", "192"]),
])
def test_runs_that_differ_in_one_setting_get_two_rows_and_two_checkpoints(tmp_path, first, second,
                                                                          one_torch_thread):
    out = tmp_path / "r.csv"
    assert main([*TINY, *first, "--out", str(out)]) == 0
    assert main([*TINY, *second, "--out", str(out)]) == 0
    frame = read_results(out)
    assert len(frame) == 2 and frame["run_id"].nunique() == 2
    assert all(checkpoint_path(run_id).is_file() for run_id in frame["run_id"])
    assert main([*TINY, *second, "--out", str(out)]) == 0      # the same settings replace their own row
    assert len(read_results(out)) == 2


def test_a_run_id_names_its_precision_and_every_setting(tmp_path):
    base = identity.settings(batch_size=256, lr=0.2, weight_decay=5e-4, train_subset=0,
                             data_source="archive:/somewhere/cifar10.tar.gz")
    name = identity.baseline_name("cifar10", "resnet20", epochs=12, seed=0, data_source="archive")
    run = identity.run(name, "fp32", base)
    assert run.startswith("cifar10/resnet20/baseline/e12/s0/fp32-") and identity.is_current(run)
    # where the archive sits on this machine changes nothing; which data does
    assert run == identity.run(name, "fp32", {**base, "data": "archive:cifar10.tar.gz"})
    others = [identity.run(name, "bf16", base)] + [identity.run(name, "fp32", {**base, key: value}) for key, value in
                                                    [("lr", 0.1), ("batch_size", 128), ("weight_decay", 0.0),
                                                     ("train_subset", 256), ("data", "torchvision"),
                                                     ("start", "cifar10/resnet20/baseline/e60/s0/fp32-00000000")]]
    assert len({run, *others}) == len(others) + 1
    step = identity.parse(f"{run}/step3")
    assert (step.run, step.kind, step.number) == (run, "step", 3) and str(step) == f"{run}/step3"
    assert identity.readable(run) == name


def test_a_run_id_tells_the_multiple_its_widths_were_rounded_to():
    pruned = dict(mode="FA", target=0.5, step=None, min_width=None, init="scratch", epochs=12, seed=0,
                  data_source="archive")
    elastic = dict(joint=False, epochs=4, core=2, grow=1, seed=0, levels="", importance="l2", data_source="archive")
    tag = "bf16-69ffb0f4"
    for multiple in (1, 8):
        run = f"{identity.pruned_name('cifar10', 'resnet56', 'complexity', round_to=multiple, **pruned)}/{tag}"
        grown = f"{identity.elastic_name('cifar10', 'resnet56', round_to=multiple, **elastic)}/{tag}"
        assert identity.rounding(run) == identity.rounding(identity.level(grown, 2)) == multiple
    assert identity.rounding("cifar10/resnet20/baseline/e12/s0/fp32-69ffb0f4") == 1


def _resume_file(tmp_path: Path, lr: float) -> Path:
    data = load_dataset("cifar10", source="synthetic", synthetic_size=256)
    path = tmp_path / "resume.pt"
    torch.manual_seed(0)
    train(build_model("resnet20", 10), data.train, data.spec, Recipe(epochs=1, batch_size=64, lr=lr),
          checkpoint=path)
    return path


def test_a_resume_file_of_another_recipe_is_refused_in_one_line(tmp_path, capsys, one_torch_thread):
    resume = _resume_file(tmp_path, lr=0.1)
    out = tmp_path / "r.csv"
    code = main(["train", "--arch", "resnet20", "--data", "synthetic", "--epochs", "1", "--batch-size", "64",
                 "--lr", "0.2", "--precision", "fp32", "--checkpoint", str(resume), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "another recipe" in err[0] and "lr 0.1 there, 0.2 here" in err[0]
    assert not out.exists()


def test_a_resume_file_of_another_network_or_a_model_checkpoint_is_refused(tmp_path, capsys, one_torch_thread):
    resume = _resume_file(tmp_path, lr=0.2)
    code = main(["train", "--arch", "resnet56", "--data", "synthetic", "--epochs", "1", "--batch-size", "64",
                 "--precision", "fp32", "--checkpoint", str(resume), "--out", str(tmp_path / "r.csv")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "another network" in err[0]
    out = tmp_path / "r.csv"
    assert main([*TINY, "--out", str(out)]) == 0
    model_file = checkpoint_path(read_results(out)["run_id"][0])
    capsys.readouterr()
    code = main([*TINY, "--checkpoint", str(model_file), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "is a model checkpoint" in err[0]


def test_a_finished_run_leaves_no_resume_file(tmp_path, one_torch_thread):
    out = tmp_path / "r.csv"
    assert main([*TINY, "--out", str(out)]) == 0
    final = checkpoint_path(read_results(out)["run_id"][0])
    assert final.is_file() and not list(final.parent.glob("*.resume.pt"))


def test_bf16_training_on_the_cpu_keeps_fp32_weights_and_statistics(one_torch_thread):
    # Runs on every CPU: where bf16 is not native PyTorch emulates it (slowly), and
    # this model is small enough for that.
    data = load_dataset("cifar10", source="synthetic", synthetic_size=256)
    torch.manual_seed(0)
    model = build_model("resnet20", 10)
    result = train(model, data.train, data.spec, Recipe(epochs=2, batch_size=32, lr=0.05, precision="bf16"),
                   val_set=data.val)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert model.bn1.running_mean.dtype == torch.float32 and model.bn1.running_mean.abs().sum() > 0
    losses = [h["loss"] for h in result.history]
    assert all(map(torch.isfinite, torch.tensor(losses))) and losses[1] < losses[0]
    assert next(model.parameters()).is_contiguous()      # back to the default layout after training


def test_auto_precision_is_fp32_on_a_cpu_without_native_bf16():
    assert resolve("fp32", "cpu") == "fp32" and resolve("bf16", "cpu") == "bf16"
    assert resolve("auto", "cpu") in (("fp32", "bf16") if native_bf16() else ("fp32",))
    with pytest.raises(ValueError, match="unknown precision"):
        resolve("fp16", "cpu")


def test_the_cpu_is_named_with_its_widest_vector_unit():
    # Two "AMD EPYC" machines, one with AVX2 only and one with AVX-512 BF16, train
    # and run at very different speeds; rows must tell them apart.
    assert vector_unit({"sse2", "avx2"}) == "AVX2"
    assert vector_unit({"avx2", "avx512f", "avx512_bf16"}) == "AVX-512 BF16"
    assert vector_unit({"avx2", "avx512f", "avx512_bf16", "amx_bf16"}) == "AMX"
    assert vector_unit({"sse2"}) == ""
    assert cpu_name().endswith(vector_unit(cpu_flags()))


OLD_HEADER = ("run_id,dataset,arch,method,mode,target,level,test_acc,val_acc,acc_before_ft,params,macs,"
              "weight_bytes,peak_act_bytes,peak_mem_fp32,peak_mem_int8,latency_ms,latency_host,config,details,"
              "recipe,epochs,seed,device,commit,date,seconds,command,label,data_source")


def _old_row(run_id: str, method: str, recipe: dict, level: str = "") -> str:
    cells = [run_id, "cifar10", "resnet20", method, "", "0.5" if level else "", level, "80", "81", "", "272474",
             "40813184", "1089896", "196608", "1286504", "321626", "2.2", "\"AMD EPYC, 2 cores; 1 thread, torch\"",
             '"{""removed_blocks"": [], ""shapes"": {}}"', "", '"' + json.dumps(recipe).replace('"', '""') + '"',
             "12", "0", "cpu", "abc", "2026-11-22T00:00:00Z", "1.0", "python -m elastic train", "",
             "archive:/old/place/cifar10.tar.gz"]
    return ",".join(cells)


def test_rows_of_schema_1_are_migrated_to_ids_a_rerun_would_give(tmp_path):
    recipe = {"batch_size": 256, "lr": 0.2, "weight_decay": 5e-4, "train_subset": 0, "epochs": 12}
    block = {**recipe, "lr": 0.02, "epochs": 1, "scan_subset": 0,
             "baseline": "/x/.cache/elastic/checkpoints/cifar10__resnet20__baseline__e12__s0.pt"}
    path = tmp_path / "old.csv"
    path.write_text("\n".join([OLD_HEADER, _old_row("cifar10/resnet20/block/t0.5/ft1/s0/step1", "block", block, "1"),
                               _old_row("cifar10/resnet20/baseline/e12/s0", "baseline", recipe)]) + "\n")
    frame = read_results(path)
    rows = {r["method"]: r for r in frame.to_dict("records")}
    base = identity.run("cifar10/resnet20/baseline/e12/s0", "fp32", identity.settings(
        batch_size=256, lr=0.2, weight_decay=5e-4, train_subset=0, data_source="archive:cifar10.tar.gz"))
    assert rows["baseline"]["run_id"] == base               # what `train --epochs 12` writes today
    assert rows["block"]["run_id"] == str(identity.RunId(identity.run(
        "cifar10/resnet20/block/t0.5/ft1/s0", "fp32", identity.settings(
            batch_size=256, lr=0.02, weight_decay=5e-4, train_subset=0, data_source="archive:cifar10.tar.gz",
            start=base, scan_subset=0)), "step", 1))
    assert set(frame["precision"]) == {"fp32"} and set(frame["cpu"]) == {"AMD EPYC, 2 cores"}


def test_the_shipped_rows_and_elastic_checkpoints_follow_the_current_scheme():
    frame = read_results(RESULTS_DIR / "cifar10.csv")
    assert all(identity.is_current(run_id) for run_id in frame["run_id"])
    assert set(frame["precision"]) <= {"fp32", "bf16"} and frame["cpu"].str.len().min() > 0
    for path in (RESULTS_DIR / "checkpoints").glob("*elastic*.pt"):
        run = torch.load(path, weights_only=True)["meta"]["run"]
        assert path.name == identity.checkpoint_name(run)
        assert (frame["run_id"] == f"{run}/level0").any()


def test_a_shipped_baseline_is_found_when_the_cache_is_empty(tmp_path, monkeypatch, one_torch_thread):
    import elastic.results
    from elastic.runs import find_baseline, shipped_checkpoint_path

    shipped = tmp_path / "shipped"
    assert main([*TINY, "--out", str(shipped / "cifar10.csv")]) == 0
    run_id = read_results(shipped / "cifar10.csv")["run_id"][0]
    (shipped / "checkpoints").mkdir()
    checkpoint_path(run_id).rename(shipped / "checkpoints" / identity.checkpoint_name(run_id))
    monkeypatch.setattr(elastic.results, "RESULTS_DIR", shipped)
    monkeypatch.delenv("ELASTIC_RESULTS_DIR", raising=False)     # results_dir() is then RESULTS_DIR
    path, row = find_baseline("cifar10", "resnet20", synthetic=True)
    assert path == shipped_checkpoint_path(run_id) and row["run_id"] == run_id
