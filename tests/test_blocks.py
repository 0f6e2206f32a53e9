"""Tests for block pruning (elastic.methods.blocks): candidates found by inspecting
the model, removal as a real smaller network, the greedy loop, proxy orders, and
one end-to-end CLI run on synthetic data."""
from __future__ import annotations

import argparse
import json

import pytest
import torch
from torch import nn

from elastic import cli, identity
from elastic.commands.prune import add_prune
from elastic.methods.blocks import (block_scan, budget_check, candidate_blocks, l1_scores, measured_choice,
                                    l1_order, proxy_choice, prune_blocks, random_order, remove)
from elastic.checkpoints import save_model
from elastic.models import arch_config, build_model
from elastic.profile import profile_model
from elastic.results import read_results

CIFAR = (3, 32, 32)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def resnet20() -> nn.Module:
    torch.manual_seed(0)
    model = build_model("resnet20", 10)
    # Non-trivial BN statistics and scales, so outputs and L1 scores depend on every block.
    for bn in model.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.running_mean.uniform_(-0.1, 0.1)
            bn.running_var.uniform_(0.5, 1.5)
            bn.weight.data.uniform_(0.5, 1.5)
    return model.eval()


@pytest.mark.parametrize("arch, shape, expected", [
    ("resnet20", CIFAR, 6), ("resnet56", CIFAR, 24), ("resnet50", (3, 64, 64), 12),
    ("vgg16", CIFAR, 0), ("alexnet", CIFAR, 0)])
def test_candidate_counts(arch: str, shape: tuple[int, int, int], expected: int) -> None:
    model = build_model(arch, 10)
    names = candidate_blocks(model, shape)
    assert len(names) == expected
    assert len(set(names)) == len(names)
    # Never the first block of a stage, the stem or the classifier.
    assert not any(name.endswith(".0") for name in names)
    assert all(name.startswith("layer") and name.count(".") == 1 for name in names)


def test_candidates_are_residual_and_shape_preserving() -> None:
    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.conv(x) + x)

    class AddsConstant(nn.Module):   # adds to its input, but not a branch computed from it
        def __init__(self) -> None:
            super().__init__()
            self.bias = nn.Parameter(torch.zeros(1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.bias

    class ResidualThenPool(Residual):   # residual, but its output is smaller than its input
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return nn.functional.max_pool2d(super().forward(x), 2)

    model = nn.Sequential(Residual(), Residual(), nn.Conv2d(4, 4, 3, padding=1), AddsConstant(),
                          nn.Sequential(nn.ReLU(), Residual()), ResidualThenPool(), nn.BatchNorm2d(4))
    # "0" is first in its container; "2" and "6" keep the shape but have no skip path;
    # "3" adds a constant, not a branch; "5" changes the shape.
    assert candidate_blocks(model, (4, 8, 8)) == ["1", "4.1"]


def test_removal_drops_exactly_the_block(resnet20: nn.Module) -> None:
    full = profile_model(resnet20, CIFAR)
    for name in candidate_blocks(resnet20):
        pruned = remove(resnet20, [name])
        block_macs = sum(layer.macs for layer in full.layers if layer.name.startswith(name + "."))
        block_params = sum(p.numel() for p in resnet20.get_submodule(name).parameters())
        after = profile_model(pruned, CIFAR)
        assert block_macs > 0
        assert full.macs - after.macs == block_macs
        assert full.params - after.params == block_params
    assert len(candidate_blocks(resnet20)) == 6   # the original is untouched


def test_rebuilt_from_removal_list_matches(resnet20: nn.Module) -> None:
    pruned = remove(resnet20, ["layer2.2", "layer1.1", "layer3.1"])
    config = arch_config(pruned, "resnet20", 10)
    assert sorted(config["removed_blocks"]) == ["layer1.1", "layer2.2", "layer3.1"]
    rebuilt = build_model("resnet20", 10, json.loads(json.dumps(config)))
    rebuilt.load_state_dict(pruned.state_dict())
    x = torch.randn(4, *CIFAR, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(x), pruned.eval()(x))
        assert not torch.equal(resnet20(x), pruned(x))
    assert candidate_blocks(pruned) == ["layer1.2", "layer2.1", "layer3.2"]


def _present(model: nn.Module, names: list[str]) -> set[str]:
    modules = dict(model.named_modules())
    return {n for n in names if n in modules}


def test_block_scan_measures_each_removal(resnet20: nn.Module) -> None:
    names = candidate_blocks(resnet20)
    calls = []
    scores = block_scan(resnet20, names, lambda m: 10.0 * len(_present(m, names)),
                        on_progress=lambda done, total, name: calls.append((done, total, name)))
    assert scores == {n: 50.0 for n in names}
    assert calls[0] == (0, 6, names[0]) and calls[-1] == (6, 6, None)


def test_greedy_loop_removes_least_harmful_and_rescans(resnet20: nn.Module) -> None:
    names = candidate_blocks(resnet20)
    harm = {"layer1.1": 5.0, "layer1.2": 4.0, "layer2.1": 0.5, "layer2.2": 3.0, "layer3.1": 2.0, "layer3.2": 1.0}

    def accuracy(model: nn.Module) -> float:
        gone = set(names) - _present(model, names)
        # Interaction: once layer2.1 is gone, layer2.2 becomes nearly free to remove.
        cost = {**harm, "layer2.2": 0.1} if "layer2.1" in gone else harm
        return 90.0 - sum(cost[n] for n in gone)

    tuned = []
    steps = list(prune_blocks(resnet20, names, measured_choice(accuracy), evaluate=accuracy,
                              finetune=lambda m, k: tuned.append((k, len(_present(m, names)))),
                              budget_met=lambda m: False, max_blocks=3))
    assert [s.removed_now for s in steps] == ["layer2.1", "layer2.2", "layer3.2"]
    assert [s.removed for s in steps][-1] == ["layer2.1", "layer2.2", "layer3.2"]
    assert steps[0].scores == {n: 90.0 - harm[n] for n in names}
    assert set(steps[1].scores) == set(names) - {"layer2.1"}
    assert steps[1].acc_before_ft == pytest.approx(90.0 - 0.5 - 0.1)
    assert tuned == [(1, 5), (2, 4), (3, 3)]
    assert len(candidate_blocks(resnet20)) == 6   # input model not changed


def test_loop_stops_at_budget_and_resumes(resnet20: nn.Module) -> None:
    names = candidate_blocks(resnet20)
    full = profile_model(resnet20, CIFAR).macs
    one_block = full - profile_model(remove(resnet20, ["layer3.2"]), CIFAR).macs
    target = 1 - 1.5 * one_block / full     # two stage-3 blocks are needed, not three
    met = budget_check(resnet20, "macs", target, 32)
    order = ["layer3.2", "layer3.1", "layer2.2"]
    steps = list(prune_blocks(resnet20, names, proxy_choice(order), evaluate=lambda m: 0.0,
                              finetune=lambda m, k: None, budget_met=met))
    assert [s.removed_now for s in steps] == ["layer3.2", "layer3.1"]
    assert met(steps[-1].model) and not met(steps[0].model)
    # Resuming from step 1's model continues with step 2.
    resumed = list(prune_blocks(steps[0].model, names, proxy_choice(order), evaluate=lambda m: 0.0,
                                finetune=lambda m, k: None, budget_met=met, removed=["layer3.2"]))
    assert [(s.step, s.removed) for s in resumed] == [(2, ["layer3.2", "layer3.1"])]


def test_l1_order_follows_bn_scale_norms(resnet20: nn.Module) -> None:
    model = remove(resnet20, [])
    names = candidate_blocks(model)
    wanted = {"layer1.1": 3.0, "layer1.2": 0.5, "layer2.1": 2.0, "layer2.2": 0.1, "layer3.1": 1.0, "layer3.2": 4.0}
    for name, value in wanted.items():
        bn = model.get_submodule(name).bn2      # the block's last BatchNorm
        bn.weight.data.fill_(-value / bn.num_features)   # L1 uses |scale|
        model.get_submodule(name).bn1.weight.data.fill_(100.0)   # not the last BN: ignored
    scores = l1_scores(model, names)
    assert scores == pytest.approx(wanted)
    order, recorded = l1_order(model, names)
    assert order == ["layer2.2", "layer1.2", "layer3.1", "layer2.1", "layer1.1", "layer3.2"]
    assert recorded == pytest.approx(wanted)
    _, first_scores = proxy_choice(order, recorded)(model, names[1:])
    assert set(first_scores) == set(names[1:])


def test_random_order_is_seeded(resnet20: nn.Module) -> None:
    names = candidate_blocks(resnet20)
    orders = {seed: random_order(resnet20, names, seed)[0] for seed in range(4)}
    assert all(sorted(o) == sorted(names) for o in orders.values())
    assert random_order(resnet20, names, 2)[0] == orders[2]
    assert len({tuple(o) for o in orders.values()}) > 1
    assert random_order(resnet20, names, 0)[1] == {}


def test_prune_options_parse_for_block_pruning() -> None:
    parser = argparse.ArgumentParser()
    add_prune(parser)                            # complexity's and block pruning's options on one parser
    args = parser.parse_args(["--method", "block", "--baseline", "x.pt", "--max-blocks", "3",
                              "--budget-metric", "memory"])
    assert (args.baseline, args.max_blocks, args.budget_metric, args.ft_epochs) == ("x.pt", 3, "memory", 2)
    assert parser.parse_args(["--method", "complexity"]).baseline is None


def test_cli_refuses_non_residual(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("ELASTIC_CACHE", str(tmp_path))
    code = cli.main(["prune", "--method", "block", "--arch", "vgg16", "--data", "synthetic",
                     "--out", str(tmp_path / "r.csv")])
    assert code == 2
    assert "no removable residual blocks" in capsys.readouterr().err
    assert not (tmp_path / "r.csv").exists()


def test_cli_end_to_end_and_resume(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ELASTIC_CACHE", str(tmp_path))
    torch.manual_seed(0)
    baseline = tmp_path / "baseline.pt"
    save_model(baseline, build_model("resnet20", 10), "resnet20", 10, "cifar10")
    out = tmp_path / "results.csv"
    argv = ["prune", "--method", "block", "--arch", "resnet20", "--data", "synthetic",
            "--baseline", str(baseline), "--ft-epochs", "1", "--batch-size", "32", "--out", str(out),
            "--scan-subset", "64", "--train-subset", "64"]
    assert cli.main(argv + ["--max-blocks", "2"]) == 0

    rows = read_results(out).sort_values("level").to_dict("records")
    assert [r["level"] for r in rows] == ["0", "1", "2"]
    prefix = "cifar10/resnet20/block/t0.5/ft1/s0/synthetic"
    assert [identity.untagged(r["run_id"]) for r in rows] == [f"{prefix}/step{k}" for k in range(3)]
    details = [json.loads(r["details"]) for r in rows]
    assert details[1]["removed"] == [details[1]["removed_now"]]
    assert details[2]["removed"] == details[1]["removed"] + [details[2]["removed_now"]]
    assert len(details[1]["candidates"]) == 6 and len(details[2]["candidates"]) == 5
    assert details[1]["removed_now"] in details[1]["candidates"]
    assert all(0 <= acc <= 100 for acc in details[1]["candidates"].values())
    assert details[2]["budget_metric"] == "macs" and details[2]["target"] == 0.5
    assert rows[0]["macs"] > rows[1]["macs"] > rows[2]["macs"]
    assert rows[1]["params"] > rows[2]["params"]
    assert all(r["method"] == "block" and r["target"] == 0.5 for r in rows)
    assert rows[1]["epochs"] == 1 and rows[1]["acc_before_ft"] is not None
    assert sorted(json.loads(rows[2]["config"])["removed_blocks"]) == sorted(details[2]["removed"])

    # Resume: steps 1-2 are kept, only step 3 runs, from step 2's checkpoint.
    assert cli.main(argv + ["--max-blocks", "3"]) == 0
    again = read_results(out).sort_values("level").to_dict("records")
    assert [r["level"] for r in again] == ["0", "1", "2", "3"]
    assert [r["date"] for r in again[:3]] == [r["date"] for r in rows]
    assert json.loads(again[3]["details"])["removed"][:2] == details[2]["removed"]
    assert again[3]["macs"] < rows[2]["macs"]


def test_cli_proxy_method_and_dry_run(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("ELASTIC_CACHE", str(tmp_path))
    baseline = tmp_path / "baseline.pt"
    model = build_model("resnet20", 10)
    save_model(baseline, model, "resnet20", 10, "cifar10")
    out = tmp_path / "results.csv"
    common = ["prune", "--method", "block-l1", "--arch", "resnet20", "--data", "synthetic",
              "--baseline", str(baseline), "--out", str(out)]
    assert cli.main(common + ["--dry-run"]) == 0
    assert "removal order: layer1.1" in capsys.readouterr().out
    assert not out.exists()
    assert cli.main(common + ["--max-blocks", "1", "--ft-epochs", "0"]) == 0
    rows = read_results(out).sort_values("level").to_dict("records")
    step = json.loads(rows[1]["details"])
    assert step["removed_now"] == l1_order(model, candidate_blocks(model))[0][0]
    assert step["candidates"] == pytest.approx(l1_scores(model, candidate_blocks(model)))
    assert rows[1]["method"] == "block-l1"
