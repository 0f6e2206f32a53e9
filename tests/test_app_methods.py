"""The block pruning and elastic pages, driven with AppTest over results and an
elastic checkpoint made by real tiny runs of the command line (synthetic
images, one epoch on 64 of them): the pages show exactly what the runs
recorded, and switching a level measures that level live."""
from __future__ import annotations

import re

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from elastic import cli, explore
from elastic.explore import METRICS
from elastic.methods import blocks
from elastic.data import load_dataset
from elastic.methods.grow import build_elastic, extract, load_elastic, save_elastic
from elastic.models import build_model
from elastic.profile import count_macs
from elastic.results import load_all
from elastic.train import predict
from elastic.ui import elastic_view

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TINY = ["--data", "synthetic", "--batch-size", "32", "--train-subset", "64"]
RUNS = (
    ["train", "--arch", "resnet20", "--epochs", "1"],
    ["prune", "--method", "block", "--arch", "resnet20", "--max-blocks", "2", "--ft-epochs", "1",
     "--scan-subset", "64"],
    ["prune", "--method", "block-l1", "--arch", "resnet20", "--max-blocks", "2", "--ft-epochs", "1",
     "--scan-subset", "64"],
    ["grow", "--arch", "resnet20", "--core-epochs", "1", "--grow-epochs", "1"],
)
ONE_IMAGE = 100 / 128          # one synthetic test image, in accuracy points


@dataclass(frozen=True)
class Runs:
    results: Path
    checkpoints: Path
    frame: pd.DataFrame        # every row the runs wrote, as the pages read it


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Runs:
    """RUNS into a private results folder and cache, the elastic checkpoint
    shipped to a private checkpoints folder (what `grow --ship` does for
    cached_results), and the environment pointing the pages at them. Module
    scope: the environment is restored for the test files that come after."""
    base = tmp_path_factory.mktemp("methods")
    results, cache, shipped = base / "results", base / "cache", base / "checkpoints"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ELASTIC_CACHE", str(cache))
        mp.setenv("ELASTIC_RESULTS_DIR", str(results))
        mp.setenv("ELASTIC_CHECKPOINTS_DIR", str(shipped))
        for argv in RUNS:
            assert cli.main(argv + TINY + ["--out", str(results / "cifar10.csv")]) == 0, " ".join(argv)
        made = [p for p in (cache / "checkpoints").glob("*elastic*.pt") if not p.name.endswith(".resume.pt")]
        assert len(made) == 1, made
        shipped.mkdir()
        shutil.copy(made[0], shipped / made[0].name)
        frame, problems = load_all(results)
        assert not problems
        yield Runs(results, shipped, explore.prepare(frame))


def page(path: str, **query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update(query)
    at.run()
    at.switch_page(path).run()
    assert not at.exception, at.exception
    return at


def widget(items, label: str):
    found = [w for w in items if w.label == label]
    assert len(found) == 1, [w.label for w in items]
    return found[0]


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def charts(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def run_rows(frame: pd.DataFrame, method: str) -> pd.DataFrame:
    """One block pruning run's rows, by step."""
    rows = frame[frame["method"] == method].copy()
    rows["step"] = rows["level"].astype(int)
    return rows.sort_values("step")


# ---- block pruning ------------------------------------------------------------------

def test_blocks_page_shows_the_steps_chart_heatmap_and_live_candidates(runs):
    at = page("pages/blocks.py", dataset="cifar10", arch="resnet20")
    direct = run_rows(runs.frame, "block")
    details = [json.loads(d) for d in direct["details"]]

    run = widget(at.selectbox, "Run")
    assert run.value == direct["run_id"].iloc[0].rsplit("/step", 1)[0]          # direct first
    assert len(run.options) == 2
    table = at.dataframe[0].value
    assert table["step"].tolist() == [0, 1, 2]
    assert table["removed"].tolist() == ["nothing (the baseline)"] + [d["removed_now"] for d in details[1:]]
    assert table["test acc (%)"].tolist() == pytest.approx(direct["test_acc"].tolist())
    assert table["MACs (M)"].tolist() == pytest.approx((direct["macs"] / 1e6).tolist())
    shown = metrics(at)
    assert shown["Blocks removed"] == "2"
    assert shown["Test accuracy after the last step"] == f"{direct['test_acc'].iloc[-1]:.2f}%"

    trajectory, heatmap = charts(at)
    names = {t["name"] for t in trajectory["data"]}
    assert {"Block pruning (direct), test after FT", "Block pruning (L1 proxy), val before FT"} <= names
    solid = next(t for t in trajectory["data"] if t["name"] == "Block pruning (direct), test after FT")
    assert solid["x"] == pytest.approx((direct["macs"] / 1e6).tolist())

    # Heatmap: every candidate's measured accuracy at every step, blank once removed, the choice ringed.
    cells, ring = heatmap["data"]
    for j, step in enumerate(details[1:]):
        for block, z in zip(cells["y"], (row[j] for row in cells["z"])):
            if block in step["candidates"]:
                assert z == pytest.approx(step["candidates"][block])
            else:
                assert z is None and block in step["removed"][:-1]
        assert ring["y"][j] == step["removed_now"]
        assert step["candidates"][step["removed_now"]] == max(step["candidates"].values())   # direct: the best

    live = at.dataframe[-1].value                                 # computed from the model, no training
    assert live["block"].tolist() == blocks.candidate_blocks(build_model("resnet20", 10))
    removed = details[-1]["removed"]
    assert dict(zip(live["block"], live["removed at step"])) == {       # "stays": never a None cell
        name: str(removed.index(name) + 1) if name in removed else "stays" for name in live["block"]}
    assert shown["Removable blocks"] == str(len(live))
    assert shown["Their share of the MACs"] == f"{live['MACs share'].sum():.1%}"


def test_picking_the_l1_run_shows_its_steps_and_proxy_scores(runs):
    at = page("pages/blocks.py", dataset="cifar10", arch="resnet20")
    before = metrics(at)
    l1 = run_rows(runs.frame, "block-l1")
    details = [json.loads(d) for d in l1["details"]]
    widget(at.selectbox, "Run").set_value(l1["run_id"].iloc[0].rsplit("/step", 1)[0]).run()
    assert not at.exception
    shown = metrics(at)
    assert shown["Test accuracy after the last step"] == f"{l1['test_acc'].iloc[-1]:.2f}%"
    assert shown["Parameters kept"] == f"{l1['params'].iloc[-1] / l1['params'].iloc[0]:.1%}"
    assert shown != before
    assert at.dataframe[0].value["removed"].tolist()[1:] == details[-1]["removed"]
    cells, ring = charts(at)[1]["data"]
    assert "L1 norm" in cells["colorbar"]["title"]["text"]
    first = details[1]["candidates"]
    assert [row[0] for row in cells["z"]] == pytest.approx([first[b] for b in cells["y"]])
    assert ring["y"][0] == min(first, key=first.get)              # the proxy removes the smallest L1 first


def test_blocks_page_says_not_yet_run_and_gives_the_command(runs):
    at = page("pages/blocks.py", dataset="cifar10", arch="resnet20")
    assert any("Not yet run" in i.value and "Block pruning (random)" in i.value for i in at.info)
    assert any("python -m elastic prune --method block-random --arch resnet20 --dataset cifar10" in c.value
               for c in at.code)

    widget(at.selectbox, "Dataset").set_value("cifar100").run()
    assert not at.exception
    assert any("Not yet run" in i.value for i in at.info)
    assert [c.value for c in at.code] == ["python -m elastic prune --method block --arch resnet20 --dataset cifar100",
                                          "python -m elastic train --arch resnet20 --dataset cifar100 --epochs 12"]
    assert any("No trained resnet20 baseline for cifar100" in i.value for i in at.info)   # nothing to remove live
    assert "Removable blocks" in metrics(at)                      # the live panel needs no results

    widget(at.selectbox, "Architecture").set_value("vgg16").run()
    assert not at.exception
    assert any("no removable residual blocks" in i.value for i in at.info)
    assert not at.code and not at.dataframe


# ---- elastic networks -----------------------------------------------------------------

def level_row(frame: pd.DataFrame, level: int) -> dict:
    rows = frame[(frame["method"] == "elastic") & (frame["level"] == str(level))]
    assert len(rows) == 1
    return rows.iloc[0].to_dict()


def captions(at: AppTest) -> list[str]:
    (images,) = at.get("image")
    return [img.caption for img in images.proto.imgs]


def expected_captions(model, level: int, data) -> list[str]:
    """'predicted ✓' or 'predicted ✗ (true: label)' for the test images the page shows."""
    shown = data.test.take(elastic_view.shown_indices(len(data.test)))
    predicted = predict(lambda x: model(x, level), shown, data.spec).tolist()
    return [f"{data.classes[p]} ✓" if p == t else f"{data.classes[p]} ✗ (true: {data.classes[t]})"
            for p, t in zip(predicted, shown.labels.tolist())]


def shown_accuracy(at: AppTest) -> float:
    """The live test accuracy; its label says on how many images it was measured."""
    (value,) = [v for k, v in metrics(at).items() if re.fullmatch(r"Test accuracy \([\d,]+ images\)", k)]
    return float(value.rstrip("%"))


def test_checkpoints_are_listed_prune_and_grow_first(tmp_path):
    names = ["cifar10__resnet56__elastic__c2g1__s0.pt", "cifar10__resnet20__elastic-joint__e1__s0.pt",
             "cifar10__resnet20__elastic__c2g1__s0.pt", "cifar10__resnet20__elastic__c2g1__s0.level0.resume.pt",
             "cifar10__resnet20__baseline__e12__s0.pt"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in elastic_view.find_checkpoints(tmp_path)] == [
        "cifar10__resnet20__elastic__c2g1__s0.pt", "cifar10__resnet20__elastic-joint__e1__s0.pt",
        "cifar10__resnet56__elastic__c2g1__s0.pt"]


def test_elastic_page_switches_levels_live(runs):
    model = load_elastic(next(runs.checkpoints.glob("*.pt")))
    data = load_dataset("cifar10", source="synthetic")
    at = page("pages/elastic.py")
    slider = widget(at.select_slider, "Level")
    assert slider.value == 3                                       # starts at the full width
    assert any("trained on **synthetic images**" in i.value for i in at.info)
    seen = {}
    for level in (3, 0, 1):
        if level != slider.value:
            widget(at.select_slider, "Level").set_value(level).run()
            assert not at.exception
        row, shown = level_row(runs.frame, level), metrics(at)
        # Live on the same 128 synthetic test images the run measured (within one image of argmax ties).
        assert abs(shown_accuracy(at) - row["test_acc"]) <= ONE_IMAGE
        assert shown["MACs"] == explore.format_quantity(row["macs"], METRICS["macs"], noun=False)
        assert shown["Parameters"] == explore.format_quantity(row["params"], METRICS["params"], noun=False)
        assert shown["Latency (batch 1)"].endswith(" ms") and shown["Switch time"].endswith(" µs")
        assert any(f"{row['run_id']}" in c.value for c in at.caption)       # the recorded number beside it
        assert at.markdown[0].value.startswith(f"**8 test images at level {level}**")
        assert captions(at) == expected_captions(model, level, data)
        seen[level] = {**shown, "Test accuracy": shown_accuracy(at)}
    assert len({s["MACs"] for s in seen.values()}) == 3
    if len({level_row(runs.frame, k)["test_acc"] for k in seen}) > 1:      # the runs measured a difference
        assert len({s["Test accuracy"] for s in seen.values()}) > 1

    (levels,) = charts(at)                                         # the runs' accuracy per level
    (trace,) = levels["data"]
    assert trace["y"] == pytest.approx([level_row(runs.frame, k)["test_acc"] for k in range(4)])
    assert any("elastic grow --arch resnet20 --dataset cifar10 --joint" in c.value for c in at.code)


def test_elastic_page_without_a_checkpoint_gives_the_grow_command(runs, tmp_path, monkeypatch):
    monkeypatch.setenv("ELASTIC_CHECKPOINTS_DIR", str(tmp_path))
    at = page("pages/elastic.py")
    assert any("No elastic checkpoint shipped yet" in i.value for i in at.info)
    assert [c.value for c in at.code] == ["python -m elastic grow --arch resnet20 --dataset cifar10 --ship"]
    assert not at.metric


def test_elastic_page_falls_back_to_synthetic_images_and_shows_each_levels_cost(runs, tmp_path, monkeypatch):
    """A checkpoint of a (fresh, untrained) model meant for real CIFAR-10, with
    the dataset missing: the page says it uses synthetic images, and two levels
    show different MACs."""
    folder, empty = tmp_path / "checkpoints", tmp_path / "no-data"
    empty.mkdir()
    model = build_elastic(build_model("resnet20", 10), "resnet20", 10)
    save_elastic(folder / "cifar10__resnet20__elastic__fresh.pt", model, dataset="cifar10", method="elastic")
    monkeypatch.setenv("ELASTIC_CHECKPOINTS_DIR", str(folder))
    monkeypatch.setenv("ELASTIC_DATA", str(empty))
    at = page("pages/elastic.py")
    assert any("not on disk" in w.value and "synthetic images" in w.value for w in at.warning)
    full = metrics(at)
    widget(at.select_slider, "Level").set_value(0).run()
    assert not at.exception
    core = metrics(at)
    assert full["MACs"] != core["MACs"] and full["Parameters"] != core["Parameters"]
    assert core["MACs"] == explore.format_quantity(count_macs(extract(model, 0), (3, 32, 32)), METRICS["macs"], noun=False)
