"""Live block removal on the Block pruning page, on the trained ResNet-20
baseline that ships and the real CIFAR-10 images: a removed block is measured
now, and the direct step run live picks the block that step 1 of the recorded
direct run removed."""
from __future__ import annotations

import json

import pytest
import torch
from streamlit.testing.v1 import AppTest

from elastic import live
from elastic.checkpoints import load_model
from elastic.data import load_dataset
from elastic.errors import ElasticError
from elastic.methods.blocks import candidate_blocks, remove
from elastic.models import build_model
from elastic.profile import profile_model
from elastic.results import RESULTS_DIR, load_all
from elastic.runs import find_baseline
from elastic.train import evaluate
from elastic.ui import blocks_live
from tests.conftest import shared_archive
from tests.test_app import APP, metric_values, widget

ONE_IMAGE = 0.1          # one of 1,000 test images, in accuracy points


@pytest.fixture
def shipped(monkeypatch):
    monkeypatch.setenv("ELASTIC_RESULTS_DIR", str(RESULTS_DIR))
    monkeypatch.setenv("ELASTIC_DATA", str(shared_archive("cifar10").parent))


def blocks_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params.update(arch="resnet20", dataset="cifar10")
    at.run()
    return at.switch_page("pages/blocks.py").run()


def test_removing_a_block_measures_it_now_and_the_direct_step_matches_the_recorded_one(shipped):
    at = blocks_page()
    assert not at.exception
    shown = metric_values(at)
    path, row = find_baseline("cifar10", "resnet20")
    model, _ = load_model(path)
    data = load_dataset("cifar10")
    test = data.test.head(1000)
    base_acc = evaluate(model, test, data.spec)
    assert abs(float(shown["Test accuracy (1,000 images)"].rstrip("%")) - base_acc) <= ONE_IMAGE

    widget(at.button_group, "Blocks to remove").set_value(["layer3.2"]).run()
    assert not at.exception
    smaller = remove(model, ["layer3.2"])
    shown = metric_values(at)
    assert abs(float(shown["Test accuracy (1,000 images)"].rstrip("%")) - evaluate(smaller, test, data.spec)) \
        <= ONE_IMAGE
    assert shown["MACs"] == f"{profile_model(smaller, (3, 32, 32)).macs / 1e6:.1f} M"
    assert shown["Latency (onnxruntime)"].endswith(" ms")
    drawing = json.loads(at.get("plotly_chart")[-1].proto.spec)
    removed = next(t for t in drawing["data"] if t["name"] == "removed")
    assert removed["customdata"] == ["layer3.2"]
    fixed = next(t for t in drawing["data"] if t["name"].startswith("never removed"))
    assert {"layer1.0", "layer2.0", "layer3.0"} <= set(fixed["customdata"])     # first block of each stage

    widget(at.button, "Measure every candidate (6 blocks)").click().run()
    assert not at.exception
    ranking = at.dataframe[-1].value
    assert sorted(ranking["block"]) == sorted(candidate_blocks(model))
    recorded = json.loads(load_all(RESULTS_DIR)[0].set_index("run_id")
                          .loc["cifar10/resnet20/block/t0.5/ft1/s0/fp32-6d52d047/step1", "details"])
    assert ranking["block"].iloc[0] == recorded["removed_now"]
    assert any("as step 1 of the recorded run" in s.value for s in at.success)


def test_the_live_scan_is_the_direct_step_measured_in_onnxruntime():
    torch_model = build_model("resnet20", 10).eval()
    data = load_dataset("cifar10", source="synthetic", synthetic_size=128)
    names = candidate_blocks(torch_model)[:2]
    scores = live.scan(torch_model, names, data.val, data.spec)
    for name in names:
        assert abs(scores[name] - evaluate(remove(torch_model, [name]), data.val, data.spec)) <= 100 / len(data.val)
    table = live.ranking({"a": 50.0, "b": 70.0, "c": 70.0}, 80.0)
    assert [r["block"] for r in table] == ["b", "c", "a"]                     # ties keep model order
    assert table[0]["drop (points)"] == pytest.approx(10.0)


def test_the_network_is_drawn_as_stem_stages_and_head():
    parts = blocks_live.layout(build_model("resnet56", 10))
    assert [stage for stage, _ in parts] == ["stem", "layer1", "layer2", "layer3", "head"]
    assert [len(names) for _, names in parts] == [1, 9, 9, 9, 1]
    assert parts[1][1][0] == "layer1.0"


def test_blocks_cut_from_the_exported_graph_compute_what_the_smaller_network_does():
    import onnxruntime as ort
    torch_model = build_model("resnet56", 10).eval()
    exported = live.Exported(torch_model, (3, 32, 32))
    full = len(exported.graph.graph.node)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for blocks in (["layer1.1"], ["layer3.8"], ["layer1.2", "layer2.5", "layer3.1", "layer3.2"]):
        network, onnx_model = exported.without(blocks)
        session = ort.InferenceSession(onnx_model, providers=["CPUExecutionProvider"])
        got = session.run(None, {"input": x.numpy()})[0]
        with torch.inference_mode():
            expected = remove(torch_model, blocks).eval()(x)
        assert torch.allclose(torch.from_numpy(got), expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))
        assert profile_model(network, (3, 32, 32)).macs == profile_model(remove(torch_model, blocks),
                                                                           (3, 32, 32)).macs
        cut = live.cut_blocks(exported.graph, blocks)
        assert len(cut.graph.node) < full and not any("/layer1/layer1.1/" in n.name for n in cut.graph.node
                                                      if blocks == ["layer1.1"])
    assert len(exported.graph.graph.node) == full               # the baseline's graph is left as it was


def test_cutting_what_is_not_a_block_is_refused():
    exported = live.Exported(build_model("resnet20", 10).eval(), (3, 32, 32))
    with pytest.raises(ElasticError, match="no nodes of block layer9.9"):
        exported.without(["layer9.9"])
    with pytest.raises(ElasticError, match="output"):
        live.cut_blocks(exported.graph, ["fc"])
