"""Tests for elastic.deploy: exports that run and match PyTorch, latency, the
bench / export commands, config errors and int8 quantization."""
from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from elastic import deploy
from elastic.cli import main
from elastic.errors import ElasticError
from elastic.models import arch_config, build_model
from elastic.results import host_name

CIFAR = (3, 32, 32)
PRUNED_RESNET20 = {"shapes": {"layer1.0.conv1": [16, 5], "layer1.0.bn1": [5],
                              "layer1.0.conv2": [5, 16], "layer2.1.conv1": [32, 11],
                              "layer2.1.bn1": [11], "layer2.1.conv2": [11, 32],
                              "layer3.2.conv1": [64, 23], "layer3.2.bn1": [23],
                              "layer3.2.conv2": [23, 64]}}


def with_random_statistics(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine parameters, as a
    trained network has, so that exporters' BN folding is really exercised."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.1)
    return model


def thin_vgg16(divisor: int) -> dict:
    """Every hidden width of vgg16 divided by `divisor` (the image's 3 channels
    and the 10 classes stay), as a config."""
    shapes = {}
    for name, m in build_model("vgg16", 10).named_modules():
        if isinstance(m, nn.Conv2d):
            shapes[name] = [m.in_channels if m.in_channels == 3 else m.in_channels // divisor,
                            m.out_channels // divisor]
        elif isinstance(m, nn.BatchNorm2d):
            shapes[name] = [m.num_features // divisor]
        elif isinstance(m, nn.Linear):
            shapes[name] = [m.in_features // divisor, m.out_features]
    return {"shapes": shapes}


def elastic_level() -> nn.Module:
    """The smallest level of an elastic ResNet-20, extracted as a plain model."""
    from elastic.methods import grow
    base = with_random_statistics(build_model("resnet20", 10), seed=3)
    return grow.extract(grow.build_elastic(base, "resnet20", 10), 0)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


MODELS = {
    "pruned-resnet20": lambda: build_model("resnet20", 10, PRUNED_RESNET20),
    "blocks-removed-resnet20": lambda: build_model("resnet20", 10, {"removed_blocks": ["layer1.1", "layer3.2"]}),
    "pruned-vgg16": lambda: build_model("vgg16", 10, thin_vgg16(8)),
    "elastic-level": elastic_level,
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Each model exported once to ONNX and TorchScript (keyed by MODELS' names)."""
    out = {}
    for name, make in MODELS.items():
        model = with_random_statistics(make())
        folder = tmp_path_factory.mktemp(name)
        out[name] = (model, deploy.export_onnx(model, folder / "m.onnx", CIFAR),
                     deploy.export_torchscript(model, folder / "m.pt", CIFAR))
    return out


@pytest.mark.parametrize("name", list(MODELS))
def test_onnx_export_runs_in_onnxruntime_and_matches(exported, name):
    model, onnx_path, _ = exported[name]
    assert deploy.verify_onnx(model, onnx_path, CIFAR) <= 1e-4
    # Independently: another batch size (the batch axis is dynamic).
    x = torch.randn(5, *CIFAR, generator=torch.Generator().manual_seed(7))
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(["logits"], {"input": x.numpy()})[0]
    with torch.no_grad():
        expected = deploy.private_copy(model)(x).numpy()
    assert got.shape == (5, 10)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize("name", list(MODELS))
def test_torchscript_export_loads_and_matches(exported, name):
    model, _, ts_path = exported[name]
    assert deploy.verify_torchscript(model, ts_path, CIFAR) <= 1e-4
    loaded = torch.jit.load(str(ts_path))
    x = torch.randn(4, *CIFAR)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), deploy.private_copy(model)(x), atol=1e-4, rtol=0)


def test_verification_catches_a_file_of_another_model(exported):
    model, onnx_path, ts_path = exported["pruned-resnet20"]
    other = with_random_statistics(build_model("resnet20", 10, PRUNED_RESNET20), seed=5)
    with pytest.raises(ElasticError, match="differs from the PyTorch model"):
        deploy.verify_onnx(other, onnx_path, CIFAR)
    with pytest.raises(ElasticError, match="differs from the PyTorch model"):
        deploy.verify_torchscript(other, ts_path, CIFAR)


def test_bundle_and_bytes_hold_runnable_files_and_metadata(tmp_path):
    model = with_random_statistics(build_model("resnet20", 10, {"removed_blocks": ["layer2.2"]}))
    meta = {"arch": "resnet20", "dataset": "cifar10", "method": "block",
            "config": arch_config(model, "resnet20", 10), "metrics": {"test_acc": 90.5}}
    paths = deploy.export_bundle(model, tmp_path / "bundle", CIFAR, meta)
    assert sorted(paths) == sorted(deploy.BUNDLE_FILES)
    assert all(p.is_file() and p.parent == tmp_path / "bundle" for p in paths.values())
    info = json.loads(paths["model.json"].read_text())
    assert info["arch"] == "resnet20" and info["method"] == "block"
    assert info["config"]["removed_blocks"] == ["layer2.2"] and info["metrics"] == {"test_acc": 90.5}
    assert 0 <= info["verification"]["onnx_max_abs_diff"] <= 1e-4
    assert 0 <= info["verification"]["torchscript_max_abs_diff"] <= 1e-4
    assert info["verification"]["onnx_opset"] == 17
    assert info["preprocess"]["mean"] == pytest.approx([0.4914, 0.4822, 0.4465])
    # The same files in memory, for download buttons; the ONNX bytes run as they are.
    blobs = deploy.export_bytes(model, CIFAR, meta)
    assert sorted(blobs) == sorted(deploy.BUNDLE_FILES)
    session = ort.InferenceSession(blobs["model.onnx"], providers=["CPUExecutionProvider"])
    x = torch.randn(2, *CIFAR)
    with torch.no_grad():
        expected = deploy.private_copy(model)(x).numpy()
    np.testing.assert_allclose(session.run(None, {"input": x.numpy()})[0], expected, atol=1e-4, rtol=0)
    assert json.loads(blobs["model.json"])["config"] == meta["config"]


def test_dynamo_exporter_when_onnxscript_is_installed(tmp_path):
    pytest.importorskip("onnxscript")
    model = with_random_statistics(build_model("resnet20", 10, {"removed_blocks": ["layer1.1"]}))
    path = deploy.export_onnx(model, tmp_path / "d.onnx", CIFAR, exporter="dynamo")
    assert not (tmp_path / "d.onnx.data").exists()   # one self-contained file
    assert deploy.verify_onnx(model, path, CIFAR) <= 1e-4


def test_measure_latency_reports_positive_figures_and_restores_threads():
    model = build_model("resnet20", 10, {"removed_blocks": ["layer1.1", "layer2.1", "layer3.1"]})
    torch.set_num_threads(2)
    try:
        lat = deploy.measure_latency(model, CIFAR, batch_size=2, threads=1, warmup=2, repeats=5)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
    assert 0 < lat.p10_ms <= lat.median_ms <= lat.p90_ms
    assert (lat.batch_size, lat.threads, lat.device, lat.precision, lat.repeats) == (2, 1, "cpu", "fp32", 5)
    assert lat.host == host_name()
    assert lat.per_image_ms == pytest.approx(lat.median_ms / 2)
    assert "1 thread" in str(lat)
    assert model.training   # measured on a copy


def test_interleaved_latencies_measure_every_model():
    small = build_model("resnet20", 10, {"removed_blocks": [f"layer{s}.{k}" for s in (1, 2, 3) for k in (1, 2)]})
    lat = deploy.measure_latencies({"full": build_model("resnet20", 10), "small": small}, CIFAR,
                                   threads=1, warmup=1, repeats=3, rounds=2)
    assert set(lat) == {"full", "small"}
    assert all(v.repeats == 6 and v.median_ms > 0 and v.threads == 1 for v in lat.values())


def test_onnxruntime_latency_times_the_export():
    model = build_model("resnet20", 10, {"removed_blocks": ["layer1.1", "layer2.1", "layer3.1"]})
    lat = deploy.measure_latency(model, CIFAR, threads=1, warmup=1, repeats=3, runtime="onnxruntime")
    assert lat.runtime == "onnxruntime" and lat.median_ms > 0 and lat.threads == 1
    assert "onnxruntime on cpu" in str(lat)


def test_latency_columns_fill_the_schema_for_both_runtimes():
    cols = deploy.latency_columns(build_model("resnet20", 10), 32, repeats=2, rounds=2)
    assert set(cols) == {"latency_ms", "ort_latency_ms", "latency_host", "latency_detail"}
    assert cols["latency_ms"] > 0 and cols["ort_latency_ms"] > 0 and cols["latency_host"].startswith(host_name())
    detail = json.loads(cols["latency_detail"])
    threads = torch.get_num_threads()
    keys = {"batch 1, 1 thread", "batch 8, 1 thread", f"batch 1, {threads} thread{'s' if threads != 1 else ''}",
            f"batch 8, {threads} thread{'s' if threads != 1 else ''}"}
    for runtime in ("torch", "onnxruntime"):
        assert set(detail[runtime]) == keys
        for figures in detail[runtime].values():
            assert figures["p10_ms"] <= figures["median_ms"] <= figures["p90_ms"] and figures["passes"] == 4
    assert detail["onnxruntime"]["batch 1, 1 thread"]["median_ms"] == cols["ort_latency_ms"]


def test_speedup_efficiency_is_speedup_over_mac_ratio():
    # Half the MACs and half the time: efficiency 1; half the MACs, 20% faster: 0.6, flagged.
    assert deploy.speedup_efficiency(10.0, 5.0, 100, 50) == pytest.approx(1.0)
    assert deploy.speedup_efficiency(12.0, 10.0, 100, 50) == pytest.approx(0.6)
    assert deploy.is_inefficient(12.0, 10.0, 100, 50)
    assert not deploy.is_inefficient(10.0, 6.5, 100, 50)       # 1.54x / 2 = 0.77
    assert not deploy.is_inefficient(10.0, 10.0, 100, 100)     # the baseline itself
    with pytest.raises(ValueError):
        deploy.speedup_efficiency(10.0, 0.0, 100, 50)


def _latency(round_medians: tuple[float, ...]) -> deploy.Latency:
    median = float(np.median(round_medians))
    return deploy.Latency(median, min(round_medians), max(round_medians), 1, 1, "cpu", "host",
                          repeats=len(round_medians), round_medians_ms=round_medians)


def test_paired_speedup_cancels_load_that_drifts_between_rounds():
    # The machine slows down 2x and 4x in later rounds; in each round the other model is twice as fast.
    base, other = _latency((1.0, 2.0, 4.0, 4.0)), _latency((0.5, 1.0, 2.0, 2.0))
    assert deploy.paired_speedup(base, other) == pytest.approx(2.0)
    drifting = _latency((0.5, 0.5, 1.0, 4.0))     # its fast passes fell in the slow machine's good rounds
    assert base.median_ms / drifting.median_ms == pytest.approx(4.0)
    assert deploy.paired_speedup(base, drifting) == pytest.approx(3.0)   # rounds: 2, 4, 4, 1
    with pytest.raises(ValueError, match="same interleaved"):
        deploy.paired_speedup(base, _latency((1.0, 2.0)))


def test_time_runners_keeps_each_rounds_median():
    x = torch.zeros(1, 3, 4, 4)
    measured = deploy.time_runners({"a": lambda t: t + 1, "b": lambda t: t * 2}, x, warmup=0, repeats=3,
                                   rounds=4, threads=1, runtime="torch")
    for lat in measured.values():
        assert len(lat.round_medians_ms) == 4 and lat.repeats == 12
        assert min(lat.round_medians_ms) >= 0
    assert deploy.paired_speedup(measured["a"], measured["b"]) > 0


def test_bench_cli_prints_median_spread_and_threads(capsys):
    rc = main(["bench", "--arch", "resnet20", "--config", '{"removed_blocks": ["layer1.2"]}',
               "--batch-size", "1", "2", "--threads", "1", "--warmup", "1", "--repeats", "3",
               "--runtime", "torch", "onnxruntime"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "batch 1," in out and "batch 2," in out and "median" in out and "p90" in out
    assert out.count("1 thread, torch on cpu") == 2 and out.count("1 thread, onnxruntime on cpu") == 2


def test_export_cli_writes_a_verified_bundle(tmp_path, capsys):
    config = json.dumps({"removed_blocks": ["layer3.1"]})
    rc = main(["export", "--arch", "resnet20", "--config", config, "--out-dir", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert rc == 0
    assert {p.name for p in (tmp_path / "out").iterdir()} == set(deploy.BUNDLE_FILES)
    assert "onnxruntime vs PyTorch: max |diff|" in out
    info = json.loads((tmp_path / "out" / "model.json").read_text())
    assert info["config"]["removed_blocks"] == ["layer3.1"] and info["metrics"]["macs"] > 0


@pytest.mark.parametrize("config, message", [
    ({"shapes": {"layer1.0.conv1": [16, 9]}}, "do not connect"),
    ({"shapes": {"layer9.conv1": [16, 9]}}, "no layer 'layer9.conv1'"),
    ({"shapes": {"layer1.0.conv1": [16]}}, r"\[in, out\]"),
    ({"removed_blocks": ["layer1.7"]}, "no block 'layer1.7'"),
    ({"widths": [8, 16]}, "removed_blocks"),
    ({"shapes": {"layer1.0.conv1": [16, 10 ** 9]}}, "wider than resnet20's own layer1.0.conv1"),
    ({"shapes": {"bn1": [17]}}, "never widens"),
])
def test_wrong_config_is_a_clear_error(config, message):
    with pytest.raises(ElasticError, match=message):
        deploy.checked_model("resnet20", 10, config)


def test_cli_reports_a_wrong_config_in_one_line(capsys):
    rc = main(["bench", "--arch", "resnet20", "--config", '{"shapes": {"layer1.0.conv1": [16, 9]}}'])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert main(["export", "--arch", "resnet20", "--config", "{oops", "--out-dir", "x"]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_int8_quantization_agrees_with_fp32_or_says_why():
    model = with_random_statistics(build_model("resnet20", 10, {"removed_blocks": ["layer1.1", "layer2.1"]}))
    gen = torch.Generator().manual_seed(0)
    calibration = torch.randn(64, *CIFAR, generator=gen)
    try:
        quantized = deploy.quantize_int8(model, calibration, CIFAR)
    except ElasticError as err:
        assert "int8" in str(err)
        pytest.skip(f"int8 unavailable here: {err}")
    assert deploy.precision_of(quantized) == "int8" and deploy.precision_of(model) == "fp32"
    x = torch.randn(256, *CIFAR, generator=gen)
    with torch.inference_mode():
        fp32, int8 = deploy.private_copy(model)(x), quantized(x)
    assert int8.dtype == torch.float32 and int8.shape == fp32.shape
    assert (int8.argmax(1) == fp32.argmax(1)).float().mean() >= 0.8
    lat = deploy.measure_latency(quantized, CIFAR, threads=1, warmup=1, repeats=3)
    assert lat.precision == "int8" and lat.median_ms > 0


def test_bench_cli_compares_int8_with_fp32(capsys):
    rc = main(["bench", "--arch", "resnet20", "--int8", "--data", "synthetic", "--calibration", "32",
               "--limit", "64", "--threads", "1", "--warmup", "1", "--repeats", "3"])
    captured = capsys.readouterr()
    if rc == 2:
        assert "int8 quantization is not available" in captured.err
        pytest.skip(captured.err)
    assert rc == 0
    assert "int8 (synthetic, 64 test images): accuracy" in captured.out
    assert "batch 1, int8, 1 thread" in captured.out and "batch 1, fp32, 1 thread" in captured.out


def test_int8_rejects_calibration_of_the_wrong_shape():
    with pytest.raises(ElasticError, match="calibration images"):
        deploy.quantize_int8(build_model("resnet20", 10), torch.randn(4, 3, 16, 16), CIFAR)


def test_fill_latency_measures_rows_without_it(tmp_path):
    from elastic.deploy import fill_latency
    from elastic.results import append_row, read_results
    from tests.test_results import row

    path = tmp_path / "r.csv"
    append_row(path, row("a"))
    append_row(path, row("b", latency_ms=1.5, latency_host="elsewhere"))
    append_row(path, row("c", latency_ms=1.5, ort_latency_ms=1.2, latency_host="elsewhere"))
    assert fill_latency(path, repeats=2) == 2             # b has no onnxruntime figure yet
    frame = read_results(path).set_index("run_id")
    assert frame.loc["a", "latency_ms"] > 0 and frame.loc["a", "ort_latency_ms"] > 0
    assert "thread" in frame.loc["a", "latency_host"] and frame.loc["b", "latency_ms"] != 1.5
    assert frame.loc["c", "latency_ms"] == 1.5 and frame.loc["c", "ort_latency_ms"] == 1.2   # measured rows stay
    assert fill_latency(path, repeats=2) == 0


def test_fill_latency_measures_every_network_once_and_together(tmp_path):
    """Rows of one network share one measurement (the same figures); another
    network is timed in the same interleaved rounds, and the rows say so."""
    from elastic.deploy import fill_latency
    from elastic.results import append_row, read_results
    from tests.test_results import row

    path = tmp_path / "r.csv"
    thin = {"removed_blocks": ["layer3.2"], "shapes": {}}
    append_row(path, row("a"))
    append_row(path, row("a-bf16", precision="bf16"))
    append_row(path, row("thin", config=thin, macs=37000000))
    assert fill_latency(path, repeats=2) == 3
    frame = read_results(path).set_index("run_id")
    assert frame.loc["a", "latency_detail"] == frame.loc["a-bf16", "latency_detail"]
    assert frame.loc["a", "latency_detail"] != frame.loc["thin", "latency_detail"]
    assert frame["latency_host"].str.endswith("interleaved with 1 other network").all()
