"""Every registered method, run by the command line exactly as its registration
says (`Method.argv`), on the smoke model: ResNet-20 on synthetic images, one
epoch on 64 of them. A method added to elastic.methods is tested here without
a new test, and the command line, the sweep grids and the app's method groups
are checked against the registry."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from elastic import cli, grids
from elastic.commands.prune import add_prune
from elastic.methods import METHODS, in_family, selected_by
from elastic.results import read_results
from elastic.ui import blocks_view, elastic_view

TINY = ["--arch", "resnet20", "--data", "synthetic", "--batch-size", "32", "--train-subset", "64"]
# What keeps each family's run to seconds (a new family gets its own line).
SHORT = {"": ["--epochs", "1"], "filters": ["--epochs", "1"],
         "blocks": ["--max-blocks", "1", "--ft-epochs", "1", "--scan-subset", "32"],
         "elastic": ["--core-epochs", "1", "--grow-epochs", "1"]}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A private cache and results file holding the tiny trained baseline that
    the methods which start from a trained network find."""
    base = tmp_path_factory.mktemp("methods")
    out = base / "cifar10.csv"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ELASTIC_CACHE", str(base / "cache"))
        mp.setenv("ELASTIC_RESULTS_DIR", str(base / "results"))
        assert cli.main([*METHODS.get("baseline").argv, *TINY, *SHORT[""], "--out", str(out)]) == 0
        yield out


@pytest.mark.parametrize("name", METHODS.names())
def test_every_registered_method_runs_from_its_registration(name, workspace: Path):
    method = METHODS.get(name)
    before = set(read_results(workspace)["run_id"])
    assert cli.main([*method.argv, *TINY, *SHORT[method.family], "--out", str(workspace)]) == 0
    table = read_results(workspace)
    rows = table[~table["run_id"].isin(before) | (table["method"] == name)]
    assert len(rows) >= 1 and set(rows["method"]) == {name}
    assert rows["test_acc"].between(0, 100).all() and (rows["macs"] > 0).all()
    assert all(run_id.startswith(f"cifar10/resnet20/{name}") for run_id in rows["run_id"])
    if method.modes:
        assert set(rows["mode"]) == {"FA"}                      # the default mode
    if method.stage:
        assert rows["level"].astype(str).str.fullmatch(r"\d+").all()
    if name != "baseline":                                      # compression: below the baseline's cost
        assert rows["macs"].min() < table[table["method"] == "baseline"]["macs"].iloc[0]


def test_the_command_line_the_grids_and_the_pages_read_the_registry(tmp_path):
    parser = argparse.ArgumentParser()
    add_prune(parser)
    choices = next(a.choices for a in parser._actions if a.dest == "method")
    assert tuple(choices) == selected_by("prune") == ("uniform", "complexity", "block", "block-l1", "block-random")
    assert grids.GRID_METHODS == tuple(n for n in METHODS if n != "block-random")
    jobs = grids.GRIDS.get("cifar10").make(grids.GridOptions(tmp_path / "r.csv"))
    for name in grids.GRID_METHODS:            # each grid method's jobs run it as its registration says
        argv = METHODS.get(name).argv
        mine = [j for j in jobs if j.name.split("/")[:3] == ["cifar10", "resnet20", name]]
        assert mine and all(j.argv[0] == argv[0] and set(argv) <= set(j.argv) for j in mine), name
    assert blocks_view.METHODS == in_family("blocks") == ("block", "block-l1", "block-random")
    assert elastic_view.METHODS == in_family("elastic") == ("elastic", "elastic-joint")
    every = {m for family in ("", "filters", "blocks", "elastic") for m in in_family(family)}
    assert every == set(METHODS.names())                        # every method belongs to a family SHORT knows


def last_first(model, candidates, seed):
    """A block pruning method that is only this function: the deepest block first."""
    return list(reversed(candidates)), {}


def test_a_new_method_is_its_function_and_its_registration(workspace: Path, monkeypatch):
    from elastic.methods import Method
    method = Method("block-last", "Block pruning (deepest first)", "", "the deepest removable block first",
                    ("prune", "--method", "block-last"), family="blocks", stage="step",
                    algorithm=f"{__name__}:last_first")
    monkeypatch.setitem(METHODS._items, method.name, method)
    assert cli.main([*method.argv, *TINY, *SHORT["blocks"], "--out", str(workspace)]) == 0
    rows = read_results(workspace).query("method == 'block-last'")
    step1 = rows[rows["level"].astype(str) == "1"]
    assert len(step1) == 1 and json.loads(step1["details"].iloc[0])["removed_now"] == "layer3.2"


def test_every_method_but_the_baseline_names_a_function_of_its_family():
    for name in METHODS:
        method = METHODS.get(name)
        if name == "baseline":
            assert not method.algorithm
            continue
        assert callable(method.implementation()), name
    assert METHODS.get("block-l1").implementation().__name__ == "l1_order"
