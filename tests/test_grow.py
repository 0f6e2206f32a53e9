"""Tests for elastic prune-and-grow (elastic.methods.grow): nested levels are views
of shared tensors, reordering keeps the function, growing keeps smaller levels
bit-identical, extraction and profiles agree, threads switch levels safely, the
checkpoint round-trips, and the CLI writes one row per level."""
from __future__ import annotations

import json
import threading

import pytest
import torch
from torch import nn

from elastic import cli, identity
from elastic.data import load_dataset
from elastic.errors import BadCheckpoint, ElasticError
from elastic.methods.grow import (DEFAULT_LEVELS, ElasticNet, LevelView, build_elastic, channel_structure,
                                  extract, grow_level, level_channels, load_elastic, save_elastic,
                                  switch_time_us, train_level)
from elastic.checkpoints import save_model
from elastic.methods.rounding import fastest_level_rounding
from elastic.models import ARCHS, arch_config, build_model
from elastic.profile import count_macs, profile_model
from elastic.results import read_results
from elastic.train import Recipe

CIFAR_ARCHS = [name for name in ARCHS.names() if ARCHS.get(name).family == "cifar"]
TINY = Recipe(epochs=1, batch_size=16, lr=0.05, train_subset=32)   # two steps


def trained_looking(arch: str, seed: int = 0) -> nn.Module:
    """A freshly built network with random batch-norm statistics and affine
    parameters, so reordering mistakes cannot hide behind identity norms."""
    torch.manual_seed(seed)
    model = build_model(arch, 10)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.2)
    return model.eval()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def resnet20() -> tuple[nn.Module, ElasticNet]:
    base = trained_looking("resnet20")
    return base, build_elastic(base, "resnet20", 10).eval()


@pytest.fixture(scope="module")
def data():
    return load_dataset("cifar10", source="synthetic", synthetic_size=256)


def outputs(model: ElasticNet, x: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        return [model(x, k) for k in range(model.num_levels)]


# ---- structure and prune ----------------------------------------------------------

def test_resnet20_groups_follow_residual_coupling() -> None:
    structure = channel_structure(build_model("resnet20", 10))
    # 3 stages tied by additions + one inner group per block (conv1 -> conv2).
    assert len(structure.sizes) == 3 + 9
    assert structure.heads == ("fc",)
    layers = {layer.name: layer for layer in structure.layers}
    stage1 = layers["conv1"].out_group
    assert layers["layer1.2.conv2"].out_group == stage1 and layers["layer2.0.conv1"].in_group == stage1
    assert layers["layer2.0.downsample.0"].in_group == stage1
    assert layers["layer2.0.downsample.0"].out_group == layers["layer2.2.conv2"].out_group != stage1
    assert layers["conv1"].in_group is None and layers["fc"].out_group is None


@pytest.mark.parametrize("arch", sorted(ARCHS.names()))
def test_every_registered_arch_has_a_structure(arch: str) -> None:
    structure = channel_structure(build_model(arch, 10))
    assert structure.sizes and len(structure.heads) == 1


@pytest.mark.parametrize("arch", CIFAR_ARCHS)
def test_full_level_of_fresh_model_equals_baseline(arch: str) -> None:
    base = trained_looking(arch)
    model = build_elastic(base, arch, 10).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = base(x)
        assert torch.allclose(model(x), expected, atol=1e-5, rtol=1e-5)
        assert torch.allclose(model(x, level=model.num_levels - 1), expected, atol=1e-5, rtol=1e-5)
    # The prune step is pure: the baseline is untouched.
    assert not any(p is q for p in base.parameters() for q in model.parameters())


def test_channels_are_sorted_by_importance(resnet20) -> None:
    _, model = resnet20
    weight = model.base.get_submodule("layer1.0.conv1").weight
    norms = weight.detach().flatten(1).norm(dim=1)
    assert torch.all(norms[:-1] >= norms[1:])


def test_levels_are_leading_slice_views_without_copies(resnet20) -> None:
    _, model = resnet20
    assert model.widths == DEFAULT_LEVELS and model.num_levels == 4
    full = model.params_at(-1)
    shared = {layer.name for layer in model.structure.layers} - set(model.structure.heads)
    for k in range(model.num_levels - 1):
        small, larger = model.params_at(k), model.params_at(k + 1)
        assert small.keys() == full.keys()
        for name in (f"{layer}.weight" for layer in shared):
            view, param = small[name], model.base.get_submodule(name.rpartition(".")[0]).weight
            assert view.untyped_storage().data_ptr() == param.untyped_storage().data_ptr()
            assert view.data_ptr() == param.data_ptr() == larger[name].data_ptr()   # leading slice
            assert all(a <= b for a, b in zip(view.shape, larger[name].shape))
            assert torch.equal(view, larger[name][tuple(slice(0, n) for n in view.shape)])
        # Batch norms and the head are the level's own.
        assert small["fc.weight"].data_ptr() != larger["fc.weight"].data_ptr()
        assert small["layer1.0.bn1.weight"].shape[0] < larger["layer1.0.bn1.weight"].shape[0]
    # The only extra tensors are the smaller levels' batch norms and heads.
    extra = sum(p.numel() for p in model.levels.parameters())
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in model.base.parameters()) + extra
    assert extra < 0.05 * sum(p.numel() for p in model.base.parameters())
    # Switching is a lookup of precomputed views; preparing them is well under a millisecond.
    assert model.params_at(1) is model.params_at(1)
    assert switch_time_us(model, 0, repeats=20) < 1000


def test_level_is_an_argument_not_state(resnet20) -> None:
    _, model = resnet20
    x = torch.randn(2, 3, 32, 32)
    before = {name: t.clone() for name, t in model.state_dict().items()}
    with torch.no_grad():
        a, b, c = model(x, 0), model(x, -1), model(x, 0)
    assert torch.equal(a, c) and not torch.allclose(a, b)
    assert all(torch.equal(before[name], t) for name, t in model.state_dict().items())
    with pytest.raises(ElasticError, match="level 7"):
        model(x, 7)


def test_views_follow_the_tensors_when_the_model_moves(resnet20) -> None:
    import copy
    model = copy.deepcopy(resnet20[1])
    x = torch.randn(2, 3, 32, 32)
    expected = outputs(model, x)
    old = model.params_at(0)["conv1.weight"]
    model.double()                     # replaces every tensor, like .to("cuda")
    new = model.params_at(0)["conv1.weight"]
    assert new.dtype == torch.float64 and new.data_ptr() == model.base.conv1.weight.data_ptr() != old.data_ptr()
    for a, b in zip(expected, outputs(model, x.double())):
        assert torch.allclose(a.double(), b, atol=1e-5)


# ---- extraction and profiles ---------------------------------------------------------

def test_extracted_levels_match_and_profile_as_predicted(resnet20) -> None:
    _, model = resnet20
    x = torch.randn(2, 3, 32, 32)
    macs = []
    for k in range(model.num_levels):
        small = extract(model, k)
        config = model.level_config(k)
        assert arch_config(small, "resnet20", 10) == config
        assert all(p.is_contiguous() and p.data_ptr() not in
                   {q.data_ptr() for q in model.parameters()} for p in small.parameters())
        with torch.no_grad():
            assert torch.allclose(small(x), model(x, k), atol=1e-5, rtol=1e-5)
        prof = profile_model(small, (3, 32, 32))
        rebuilt = profile_model(build_model("resnet20", 10, config), (3, 32, 32))
        assert (prof.macs, prof.params, prof.layers) == (rebuilt.macs, rebuilt.params, rebuilt.layers)
        # The elastic forward at level k really does level k's arithmetic.
        assert count_macs(LevelView(model, k), (3, 32, 32)) == prof.macs
        macs.append(prof.macs)
    assert macs == sorted(set(macs))
    assert macs[-1] == profile_model(build_model("resnet20", 10), (3, 32, 32)).macs
    assert 0.2 < macs[0] / macs[-1] < 0.35          # ~0.512^2 of the convolutions


# ---- grow: smaller levels stay bit-identical --------------------------------------------

def test_growing_keeps_smaller_levels_bit_identical(data) -> None:
    model = build_elastic(trained_looking("resnet20"), "resnet20", 10, importance="l1")
    x = torch.randn(4, 3, 32, 32)
    shared_before = {n: t.detach().clone() for n, t in model.base.state_dict().items()}
    fixed: list[torch.Tensor] = []
    for k in range(model.num_levels):
        if k:
            grow_level(model, k)
        start = outputs(model.eval(), x)
        train_level(model, k, data.train, data.spec, TINY, seed=k)
        now = outputs(model.eval(), x)
        for j, reference in enumerate(fixed):
            assert torch.equal(now[j], reference), f"level {j} changed while growing level {k}"
        assert not torch.allclose(now[k], start[k]), f"level {k} did not train"
        fixed.append(now[k])
    # The channels only the full level uses were never trained before it grew:
    # the top-left block of every shared tensor is level 2's, the rest kept its
    # baseline value until level 3 trained it.
    weight = model.base.get_submodule("layer3.2.conv1").weight
    assert not torch.equal(weight, shared_before["layer3.2.conv1.weight"])
    assert all(p.requires_grad for p in model.parameters())


def test_train_level_freezes_what_others_use(data) -> None:
    model = build_elastic(trained_looking("resnet20"), "resnet20", 10)
    conv = model.base.get_submodule("layer2.1.conv2").weight
    before = conv.detach().clone()
    train_level(model, 0, data.train, data.spec, TINY)
    out, inp = model.params_at(0)["layer2.1.conv2.weight"].shape[:2]
    assert (out, inp) == (16, 16)                        # 32 channels at width 0.512
    changed = conv.detach() != before
    assert changed[:out, :inp].any()                     # the core trained
    changed[:out, :inp] = False
    assert not changed.any()                             # nothing outside the core moved


# ---- switching from threads ------------------------------------------------------------

def test_threads_get_their_own_levels(resnet20) -> None:
    _, model = resnet20
    x = torch.randn(2, 3, 32, 32)
    references = outputs(model, x)
    errors: list[str] = []

    def worker(levels: list[int]) -> None:
        with torch.no_grad():
            for i in range(200):
                k = levels[i % len(levels)]
                if not torch.allclose(model(x, k), references[k], atol=1e-6, rtol=1e-6):
                    errors.append(f"call {i} at level {k}")

    threads = [threading.Thread(target=worker, args=(levels,)) for levels in ([0, 3], [3, 1, 0, 2])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors


# ---- checkpoints -----------------------------------------------------------------------

def test_checkpoint_round_trip(resnet20, tmp_path) -> None:
    _, model = resnet20
    path = tmp_path / "elastic.pt"
    save_elastic(path, model, dataset="cifar10")
    state = torch.load(path, weights_only=True)
    assert state["levels"] == list(model.widths) and state["arch"] == "resnet20"
    loaded = load_elastic(path)
    assert loaded.meta["dataset"] == "cifar10" and not loaded.training
    x = torch.randn(2, 3, 32, 32)
    for a, b in zip(outputs(model, x), outputs(loaded, x)):
        assert torch.equal(a, b)
    assert path.stat().st_size < 3e6


def test_bad_checkpoints_are_refused(tmp_path) -> None:
    plain = tmp_path / "plain.pt"
    save_model(plain, build_model("resnet20", 10), "resnet20", 10, "cifar10")
    with pytest.raises(BadCheckpoint, match="not an elastic checkpoint"):
        load_elastic(plain)
    with pytest.raises(BadCheckpoint):
        load_elastic(tmp_path / "missing.pt")
    model = build_elastic(build_model("resnet20", 10), "resnet20", 10)
    broken = tmp_path / "broken.pt"
    save_elastic(broken, model)
    state = torch.load(broken, weights_only=True)
    del state["state"]["base.layer1.0.conv1.weight"]
    torch.save(state, broken)
    with pytest.raises(BadCheckpoint, match="broken.pt"):
        load_elastic(broken)


# ---- unsupported networks --------------------------------------------------------------

class Concat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 3), nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.cat([self.a(x), self.b(x)], 1).mean((2, 3)))


def test_unsupported_networks_raise_clear_errors() -> None:
    with pytest.raises(ElasticError, match="does not support the operation"):
        channel_structure(Concat())
    depthwise = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3, groups=8))
    with pytest.raises(ElasticError, match="plain convolutions"):
        channel_structure(depthwise)
    with pytest.raises(ElasticError, match="include 1"):
        build_elastic(build_model("resnet20", 10), "resnet20", 10, widths=(0.5, 0.8))


# ---- command line ----------------------------------------------------------------------

@pytest.fixture()
def baseline_file(tmp_path, monkeypatch):
    monkeypatch.setenv("ELASTIC_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "baseline.pt"
    save_model(path, trained_looking("resnet20"), "resnet20", 10, "cifar10")
    return path


COMMON = ["--arch", "resnet20", "--data", "synthetic", "--batch-size", "16", "--train-subset", "32"]


def test_cli_grow_writes_one_row_per_level(baseline_file, tmp_path, capsys) -> None:
    out = tmp_path / "results.csv"
    code = cli.main(["grow", *COMMON, "--baseline", str(baseline_file), "--epochs", "2",
                     "--out", str(out), "--label", "test"])
    assert code == 0, capsys.readouterr().err
    rows = read_results(out)
    assert list(rows["level"]) == ["0", "1", "2", "3"] and set(rows["method"]) == {"elastic"}
    # --epochs 2: one epoch for the core, one for each grown level.
    assert list(rows["run_id"].map(identity.untagged)) == [
        f"cifar10/resnet20/elastic/c1g1/s0/synthetic/level{k}" for k in range(4)]
    assert list(rows["epochs"]) == [1, 2, 3, 4] and set(rows["label"]) == {"test"}
    assert list(rows["macs"]) == sorted(set(rows["macs"])) and rows["acc_before_ft"].notna().all()
    checkpoint = None
    for width, row in zip(DEFAULT_LEVELS, rows.to_dict("records")):
        details = json.loads(row["details"])
        assert details["width"] == width and details["levels"] == list(DEFAULT_LEVELS)
        assert 0 < details["switch_us"] < 1000
        rebuilt = build_model("resnet20", 10, json.loads(row["config"]))
        assert profile_model(rebuilt, (3, 32, 32)).macs == row["macs"]
        checkpoint = details["checkpoint"]
    assert checkpoint.startswith(str(tmp_path / "cache"))
    model = load_elastic(checkpoint)
    assert model.widths == DEFAULT_LEVELS and model.meta["trained_levels"] == 4
    assert arch_config(extract(model, 0), "resnet20", 10) == json.loads(rows["config"][0])

    assert cli.main(["grow", *COMMON, "--eval-level", "0", "--checkpoint", checkpoint]) == 0
    printed = capsys.readouterr().out
    assert "level 0 (width 0.512): test" in printed and " us" in printed and "ms extracted" in printed


def test_cli_joint_run_ships_its_checkpoint(baseline_file, tmp_path, monkeypatch, capsys) -> None:
    import elastic.results
    monkeypatch.setattr(elastic.results, "RESULTS_DIR", tmp_path / "shipped")
    monkeypatch.delenv("ELASTIC_RESULTS_DIR", raising=False)     # results_dir() is then RESULTS_DIR
    out = tmp_path / "results.csv"
    code = cli.main(["grow", *COMMON, "--baseline", str(baseline_file), "--joint", "--epochs", "1",
                     "--levels", "1,0.5", "--ship", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    rows = read_results(out)
    assert list(rows["method"]) == ["elastic-joint"] * 2 and list(rows["level"]) == ["0", "1"]
    assert list(rows["run_id"].map(identity.untagged)) == [
        f"cifar10/resnet20/elastic-joint/e1/s0/levels0.5-1/synthetic/level{k}" for k in range(2)]
    details = [json.loads(d) for d in rows["details"]]
    assert [d["width"] for d in details] == [0.5, 1.0]
    shipped = tmp_path / "shipped" / "checkpoints" / identity.checkpoint_name(identity.parse(rows["run_id"][0]).run)
    assert details[0]["checkpoint"] == str(shipped) and load_elastic(shipped).meta["method"] == "elastic-joint"


def test_cli_errors_are_one_line(baseline_file, capsys) -> None:
    assert cli.main(["grow", *COMMON, "--eval-level", "0"]) == 2
    assert "--checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["grow", *COMMON, "--levels", "0.5,0.8"])


# ---- channel counts rounded to a multiple (--round-to) ---------------------------------

def test_rounded_levels_are_multiples_and_stay_nested() -> None:
    sizes, widths = (16, 32, 64, 10), (0.5, 0.75, 1.0)
    assert level_channels(sizes, widths) == [(8, 16, 32, 5), (12, 24, 48, 8), (16, 32, 64, 10)]
    rounded = level_channels(sizes, widths, 8)
    # Nearest multiple of 8; the full width keeps every channel, a group of 8 or fewer all of its own.
    assert rounded == [(8, 16, 32, 8), (16, 24, 48, 8), (16, 32, 64, 10)]
    assert all(a <= b for low, high in zip(rounded, rounded[1:]) for a, b in zip(low, high))
    with pytest.raises(ElasticError, match="same network"):
        level_channels((16, 32), (0.5, 0.6, 1.0), 16)


def test_a_rounded_elastic_network_saves_and_loads_its_rounding(tmp_path) -> None:
    model = build_elastic(trained_looking("resnet20"), "resnet20", 10, round_to=8)
    assert all(c % 8 == 0 for level in model.channels for c in level)
    assert model.channels != build_elastic(build_model("resnet20", 10), "resnet20", 10).channels
    path = tmp_path / "rounded.pt"
    save_elastic(path, model)
    loaded = load_elastic(path)
    assert loaded.round_to == 8 and loaded.channels == model.channels
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(outputs(loaded.eval(), x)[0], outputs(model.eval(), x)[0])
    # A file written before --round-to existed has no rounding: it loads as 1.
    plain = build_elastic(trained_looking("resnet20"), "resnet20", 10)
    save_elastic(path, plain)
    state = torch.load(path, weights_only=True)
    del state["round_to"]
    torch.save(state, path)
    assert load_elastic(path).round_to == 1


def test_round_to_auto_measures_the_multiples_that_keep_the_levels_apart() -> None:
    chosen, sums = fastest_level_rounding(build_model("resnet20", 10), "resnet20", 10, DEFAULT_LEVELS, (3, 32, 32))
    # 32 would make the 0.512 and 0.64 levels of ResNet-20 the same network: not a candidate.
    assert set(sums) == {8, 16} and chosen in sums and all(ms > 0 for ms in sums.values())


def test_cli_grow_round_to_writes_rounded_levels_under_their_own_id(baseline_file, tmp_path, capsys) -> None:
    out = tmp_path / "results.csv"
    code = cli.main(["grow", *COMMON, "--baseline", str(baseline_file), "--epochs", "1", "--core-epochs", "1",
                     "--grow-epochs", "0", "--round-to", "8",
                     "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    rows = read_results(out)
    assert list(rows["run_id"].map(identity.untagged)) == [
        f"cifar10/resnet20/elastic/c1g0/s0/r8/synthetic/level{k}" for k in range(4)]
    for row in rows.to_dict("records"):
        details = json.loads(row["details"])
        assert all(c % 8 == 0 for c in details["channels"])
        assert json.loads(row["recipe"])["round_to"] == 8
    assert load_elastic(json.loads(rows["details"][0])["checkpoint"]).round_to == 8
    with pytest.raises(SystemExit) as stop:
        cli.main(["grow", *COMMON, "--round-to", "7"])
    assert stop.value.code == 2 and "7 is not one of 1, 4, 8, 16, 32 or auto" in capsys.readouterr().err
