import subprocess
import sys

import pytest

from elastic.cli import COMMANDS, main
from elastic.results import read_results


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_profile_resnet56_prints_table_and_totals(capsys):
    assert main(["profile", "--arch", "resnet56", "--dataset", "cifar10"]) == 0
    out = capsys.readouterr().out
    assert "layer3.8.conv2" in out
    assert "MACs 125.75M" in out and "params 855.8K" in out
    assert "bytes fp32" in out and "bytes int8" in out


def test_train_on_synthetic_data_records_a_row(tmp_path, capsys):
    out = tmp_path / "results.csv"
    code = main(["train", "--arch", "resnet20", "--data", "synthetic", "--epochs", "1",
                 "--batch-size", "64", "--out", str(out), "--label", "test"])
    assert code == 0
    frame = read_results(out)
    assert len(frame) == 1
    row = frame.iloc[0]
    assert row["method"] == "baseline" and row["epochs"] == 1 and row["data_source"] == "synthetic"
    assert row["macs"] == 40813184 and row["command"].startswith("python -m elastic")
    assert "test" in capsys.readouterr().out


def test_a_diverging_training_stops_with_one_line_and_no_row(tmp_path, capsys):
    out = tmp_path / "results.csv"
    code = main(["train", "--arch", "resnet20", "--data", "synthetic", "--epochs", "1",
                 "--batch-size", "64", "--lr", "1e30", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "training diverged" in err and "lower the learning rate" in err
    assert not out.exists()


def test_evaluate_a_trained_checkpoint(tmp_path, capsys):
    out = tmp_path / "results.csv"
    main(["train", "--arch", "resnet20", "--data", "synthetic", "--epochs", "1", "--batch-size", "64",
          "--out", str(out)])
    printed = capsys.readouterr().out
    checkpoint = printed.strip().split("Checkpoint: ")[-1]
    assert main(["evaluate", checkpoint, "--data", "synthetic", "--split", "val"]) == 0
    assert "resnet20 on cifar10 val" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["profile", "--arch", "resnet50", "--dataset", "cifar10"], "needs one of the cifar architectures"),
    (["evaluate", "missing.pt", "--data", "synthetic"], "does not exist"),
    (["train", "--dataset", "cifar100", "--data-dir", "/nonexistent", "--epochs", "1"], "not found"),
])
def test_user_errors_exit_2_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_bad_arguments_are_refused_by_the_parser():
    result = subprocess.run([sys.executable, "-m", "elastic", "profile", "--arch", "nope"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_table_prints_each_architectures_measured_rows(tmp_path, capsys):
    """The shipped rows as Markdown: the baseline first, every row's accuracy,
    MACs and latency; an architecture without rows says how to make them."""
    import shutil

    from elastic.results import RESULTS_DIR

    shutil.copy(RESULTS_DIR / "cifar10.csv", tmp_path / "cifar10.csv")
    assert main(["table", "--results", str(tmp_path), "--archs", "resnet20", "resnet50"]) == 0
    out = capsys.readouterr().out
    frame = read_results(tmp_path / "cifar10.csv")
    base = frame[(frame["arch"] == "resnet20") & (frame["method"] == "baseline")].iloc[0]
    lines = out.splitlines()
    header = lines.index("| configuration | MACs (M) | params (K) | val acc (%) | test acc (%) | PyTorch (ms) "
                         "| onnxruntime (ms) |")
    assert lines[header + 2].startswith("| Baseline · resnet20")
    assert f"| 40.8 | 272 | {base['val_acc']:.2f} | {base['test_acc']:.2f} |" in out
    assert sum(line.startswith("| ") for line in lines) == 1 + (frame["arch"] == "resnet20").sum()   # header, rows
    assert "### resnet50 on cifar10" in out and "not yet run: python -m elastic train --arch resnet50" in out


def test_table_lists_a_runs_steps_in_order(tmp_path, capsys):
    """ResNet-56's block pruning has 14 steps: step 2 comes before step 10."""
    import re
    import shutil

    from elastic.results import RESULTS_DIR

    shutil.copy(RESULTS_DIR / "cifar10.csv", tmp_path / "cifar10.csv")
    assert main(["table", "--results", str(tmp_path), "--archs", "resnet56"]) == 0
    steps = [int(m) for m in re.findall(r"^\| Block pruning \(direct\) · target 0.5 · step (\d+) ",
                                        capsys.readouterr().out, flags=re.M)]
    assert steps == list(range(1, 15))


def test_table_of_an_empty_folder_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["table", "--results", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"error: no results in {tmp_path}"


def test_table_of_a_dataset_without_rows_says_not_yet_run(tmp_path, capsys):
    import shutil

    from elastic.results import RESULTS_DIR

    shutil.copy(RESULTS_DIR / "cifar10.csv", tmp_path / "cifar10.csv")
    assert main(["table", "--results", str(tmp_path), "--dataset", "cifar100"]) == 0
    out = capsys.readouterr().out
    assert "### resnet20 on cifar100" in out and "not yet run: python -m elastic train --arch resnet20" in out
    assert "|" not in out
