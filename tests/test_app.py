"""The Streamlit app, driven with AppTest over results made by real (tiny,
synthetic-data) runs of the command line: every page renders, and the
explorer's pickers, slider and device change the chosen configuration exactly
as elastic.explore says they should."""
from __future__ import annotations

import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from elastic import cli, explore
from elastic.explore import METRICS
from elastic.results import RESULTS_DIR, append_row, load_all, read_results

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
PAGES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "pages").glob("*.py"))

# Real runs, 1 epoch on 64 synthetic images each: enough to give the explorer
# several configurations at different costs, two architectures and two datasets.
RUNS = (
    ("cifar10", ["train", "--arch", "resnet20", "--label", "tiny synthetic test run"]),
    ("cifar10", ["train", "--arch", "alexnet"]),
    ("cifar10", ["prune", "--method", "complexity", "--mode", "FA", "--target", "0.5"]),
    ("cifar10", ["prune", "--method", "complexity", "--mode", "PA", "--target", "0.3"]),
    ("cifar100", ["train", "--arch", "resnet20", "--dataset", "cifar100"]),
)
TINY = ["--data", "synthetic", "--epochs", "1", "--batch-size", "32", "--train-subset", "64"]


def build_results(folder: Path, cache: Path) -> Path:
    """Run RUNS into `folder` once per test session (the browser test reuses it)."""
    done = folder / ".complete"
    if done.is_file():
        return folder
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ELASTIC_CACHE", str(cache))
        for dataset, argv in RUNS:
            code = cli.main(argv + TINY + ["--out", str(folder / f"{dataset}.csv")])
            assert code == 0, f"python -m elastic {' '.join(argv + TINY)} failed"
    done.touch()
    return folder


@pytest.fixture(scope="session")
def results(tmp_path_factory) -> Path:
    base = tmp_path_factory.getbasetemp()
    cache = base / "elastic-cache"
    folder = build_results(base / "app-results", cache)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ELASTIC_RESULTS_DIR", str(folder))
        mp.setenv("ELASTIC_CACHE", str(cache))
        yield folder


@pytest.fixture(scope="session")
def frame(results):
    table, problems = load_all(results)
    assert not problems
    return explore.prepare(table)


def app(**query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update(query)
    return at.run()


def card(at: AppTest) -> str:
    """The text of the explorer's card headline."""
    heads = [m.value for m in at.markdown if m.value.startswith("**Best ")]
    assert len(heads) == 1, [m.value for m in at.markdown]
    return heads[0]


def query(at: AppTest, name: str) -> str:
    value = at.query_params[name]
    return value[0] if isinstance(value, list) else value


def expected(frame, *, dataset="cifar10", arch="resnet20", metric="macs", budget=math.inf, **kw):
    rows = explore.configurations(explore.select(frame, dataset=dataset, arch=arch,
                                                 methods=kw.pop("methods", None), modes=kw.pop("modes", None)))
    return explore.best_under_budget(rows, METRICS[metric], budget, **kw)


def widget(items, label: str):
    found = [w for w in items if w.label == label]
    assert len(found) == 1, [w.label for w in items]
    return found[0]


# ---- the explorer ---------------------------------------------------------------------

def test_explorer_starts_with_the_best_configuration_of_the_busiest_architecture(results, frame):
    at = app()
    assert not at.exception
    assert widget(at.selectbox, "Architecture").value == "resnet20"      # 3 rows, alexnet has 1
    pick = expected(frame)
    assert pick.row is not None and pick.row["run_id"] in card(at)
    assert "with no budget limit" in card(at)                          # the slider starts at its top
    texts = " ".join(m.value for m in [*at.markdown, *at.info, *at.caption])
    assert "Not yet run" in texts and "Block pruning (direct)" in texts   # registered, no rows: not invented
    assert "tiny synthetic test run" in at.dataframe[0].value.to_string()  # how the numbers were made
    assert any("synthetic images" in w.value for w in at.warning)


def test_moving_the_budget_changes_the_highlighted_configuration(results, frame):
    at = app()
    assert at.slider[0].label == "Budget (M MACs)"
    rows = explore.select(frame, dataset="cifar10", arch="resnet20")
    seen = set()
    for macs in sorted(set(rows["macs"]), reverse=True):     # just under each configuration's cost
        budget = macs / 1e6 - 0.1
        at.slider[0].set_value(budget).run()
        assert not at.exception
        pick = expected(frame, budget=budget * 1e6)
        if pick.row is None:
            assert "nothing to choose" in card(at)
            assert any("below every configuration" in w.value for w in at.warning)
        else:
            assert pick.row["run_id"] in card(at)
            assert all(r not in card(at) for r in rows["run_id"] if r != pick.row["run_id"])
        assert float(query(at, "budget")) == pytest.approx(budget * 1e6, rel=1e-5)   # the view is in the URL
        seen.add(pick.row["run_id"] if pick.row else None)
    assert None in seen and len(seen) >= 2


def test_pickers_change_the_rows_and_the_choice(results, frame):
    at = app()
    widget(at.button_group, "Methods").set_value(["baseline"]).run()
    assert not at.exception
    assert expected(frame, methods=["baseline"]).row["run_id"] in card(at)

    at = app()
    widget(at.button_group, "Complexity modes").set_value(["PA"]).run()
    pick = expected(frame, modes=["PA"])
    assert pick.row["run_id"] in card(at) and "complexity/FA/" not in card(at)

    widget(at.selectbox, "Architecture").set_value("alexnet").run()
    assert not at.exception and expected(frame, arch="alexnet").row["run_id"] in card(at)
    not_run = " ".join(box.value for box in at.info if "Not yet run" in box.value)
    assert "Uniform thinning" in not_run and "Block pruning" not in not_run
    assert any("Block pruning (direct)" in c.value and "does not apply to alexnet" in c.value for c in at.caption)

    widget(at.selectbox, "Architecture").set_value(explore.ALL_ARCHS).run()
    assert not at.exception
    assert expected(frame, arch=explore.ALL_ARCHS, modes=["PA"]).row["run_id"] in card(at)

    widget(at.selectbox, "Dataset").set_value("cifar100").run()
    assert not at.exception
    assert "cifar100/resnet20/baseline" in card(at)
    assert query(at, "dataset") == "cifar100"


def test_budget_metric_and_device_preset(results, frame):
    at = app()
    widget(at.selectbox, "Budget on").set_value("params").run()
    assert not at.exception
    assert at.slider[0].label == "Budget (K params)"                   # resnet20: 270 K at most
    widget(at.selectbox, "Device").set_value("stm32f767").run()
    assert not at.exception
    device = {d.key: d for d in explore.load_devices()}["stm32f767"]
    pick = expected(frame, metric="params", device=device)
    assert pick.row["run_id"] in card(at) and "Cortex-M7" in card(at)
    fits = explore.device_fit(pick.row, device)
    lines = [m.value for m in at.markdown if "**int8**" in m.value or "**fp32**" in m.value]
    assert len(lines) == 2
    for line, precision in zip(lines, ("int8", "fp32")):
        assert fits[precision].explain() in line
    assert any("512 KB SRAM" in c.value for c in at.caption)           # the preset cites its source
    widget(at.radio, "Deploy at").set_value("fp32").run()
    assert not at.exception
    fp32 = expected(frame, metric="params", device=device, precision="fp32")
    if fp32.row is None:
        assert any("none fits" in w.value for w in at.warning)
    else:
        assert fp32.row["run_id"] in card(at)


def test_a_shared_url_restores_the_view(results, frame):
    rows = explore.select(frame, dataset="cifar10", arch="resnet20")
    spec = explore.slider_spec(METRICS["macs"], rows["macs"])
    budget = spec.to_base(spec.from_base(rows["macs"].min()) + spec.step)   # one slider step above the smallest
    at = app(dataset="cifar10", arch="resnet20", metric="macs", budget=str(budget))
    assert not at.exception
    assert widget(at.selectbox, "Architecture").value == "resnet20"
    assert expected(frame, budget=budget).row["run_id"] in card(at)
    at = app(arch="no-such-arch", metric="nonsense", budget="abc")
    assert not at.exception and card(at)


def test_latency_not_measured_is_said_not_invented(results, frame):
    at = app()
    widget(at.selectbox, "Budget on").set_value("latency").run()
    assert not at.exception
    assert frame["latency_ms"].isna().all()          # no bench rows in the fixture
    assert any("not measured yet" in i.value for i in at.info)
    assert any("not measured yet" in w.value for w in at.warning)


def test_unreadable_result_files_are_reported_and_the_rest_still_shown(results, frame, tmp_path, monkeypatch):
    for path in results.glob("*.csv"):
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "broken.csv").write_text("run_id,dataset\nx,cifar10\n")
    monkeypatch.setenv("ELASTIC_RESULTS_DIR", str(tmp_path))
    at = app()
    assert not at.exception
    assert any("broken.csv" in w.value for w in at.warning)
    assert expected(frame).row["run_id"] in card(at)


def test_every_page_copes_with_no_results(tmp_path, monkeypatch):
    monkeypatch.setenv("ELASTIC_RESULTS_DIR", str(tmp_path))
    at = app()
    assert not at.exception and any("Not yet run" in i.value and "resnet20 on cifar10" in i.value for i in at.info)
    assert "python -m elastic train --arch resnet20 --dataset cifar10 --epochs 12" in at.code[0].value
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception, page


# ---- the other pages ------------------------------------------------------------------

@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(results, page):
    at = app()
    at.switch_page(page).run()
    assert not at.exception, page
    assert at.title, page


def test_layers_page_shows_shares_and_live_plans(results):
    at = app(arch="resnet20", dataset="cifar10")
    at.switch_page("pages/layers.py").run()
    assert not at.exception
    assert widget(at.metric, "MACs").value == "40.8 M"            # the label names the metric
    kept = {m.label: m.value for m in at.metric if m.label.endswith("keeps")}
    assert set(kept) == {"PA keeps", "FA keeps", "MA keeps"}
    at.slider[0].set_value(0.3).run()
    assert not at.exception
    tighter = {m.label: m.value for m in at.metric if m.label.endswith("keeps")}
    assert tighter != kept and tighter["PA keeps"].startswith("30%")


def test_compare_page_puts_claims_beside_measurements(results, frame):
    at = app(arch="resnet20", dataset="cifar10")
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "Not yet run." in text                                    # e.g. block pruning
    assert "Claimed by the paper (not measured here)" in text
    assert "91.25" in text                                           # ResNet-20's claim, labelled as a claim
    best = explore.select(frame, dataset="cifar10", arch="resnet20", methods=["complexity"])["test_acc"].max()
    assert f"best test accuracy **{best:.2f}%**" in text
    assert "Does not apply" not in text

    at = app(arch="alexnet", dataset="cifar10")
    at.switch_page("pages/compare.py").run()
    text = " ".join(m.value for m in at.markdown)
    assert not at.exception and text.count("Does not apply: alexnet has no removable residual blocks.") == 3


def test_export_page_rebuilds_a_row_with_its_checkpoint(results, frame):
    at = app(arch="resnet20", dataset="cifar10")
    at.switch_page("pages/export.py").run()
    assert not at.exception
    assert any("trained weights from the checkpoint" in s.value for s in at.success)
    widget(at.button, "Build ONNX, TorchScript and JSON").click().run(timeout=300)
    assert not at.exception
    names = {b.proto.label.split(" ")[0] for b in at.get("download_button")}
    assert {"model.onnx", "model.pt", "model.json"} <= names


def test_run_page_trains_in_the_background_and_falls_back_to_synthetic(results, tmp_path, monkeypatch):
    monkeypatch.setenv("ELASTIC_DATA", str(tmp_path))            # no dataset on disk here
    at = app(arch="resnet20", dataset="cifar10")
    at.switch_page("pages/run.py").run()
    assert not at.exception
    widget(at.number_input, "Training images").set_value(400)
    widget(at.button, "Start the quick run").click().run()
    assert not at.exception
    deadline = time.monotonic() + 300
    while not any(m.label == "Validation accuracy" for m in at.metric):
        assert time.monotonic() < deadline, "the quick run did not finish"
        time.sleep(0.5)
        at.run()
        assert not at.exception
    assert any("synthetic images" in w.value and "not on disk" in w.value for w in at.warning)
    assert any("trained from scratch on synthetic images, for 1 epoch on 400 images" in m.value
               for m in at.markdown)


# ---- the shipped results ---------------------------------------------------------------

def test_explorer_renders_the_shipped_results(monkeypatch):
    monkeypatch.setenv("ELASTIC_RESULTS_DIR", str(RESULTS_DIR))
    at = app()
    assert not at.exception
    frame, _ = load_all(RESULTS_DIR)
    if len(frame):
        assert card(at)
    else:
        assert any("No results yet" in i.value for i in at.info)


def fresh_python(code: str) -> list[str]:
    """What `code` prints, run in a fresh interpreter in the repository (its imports start empty)."""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()


def test_the_explorer_loads_without_torch(results):
    """The first page must load fast: it needs pandas and plotly, never torch."""
    printed = fresh_python("import sys; from streamlit.testing.v1 import AppTest; "
                           "at = AppTest.from_file('app.py', default_timeout=60).run(); "
                           "assert not at.exception, at.exception; "
                           "print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))")
    assert printed[-1] == "[]"


def test_the_model_pages_modules_load_without_torchvision():
    """torchvision costs two seconds to import (its ops import torch._dynamo):
    only the torchvision architectures' builders import it."""
    printed = fresh_python("import sys, importlib; from elastic.ui import page; "
                           "[importlib.import_module(m) for m in page.HEAVY_MODULES]; "
                           "from elastic.models import build_model; build_model('resnet20', 10); "
                           "print('torchvision' in sys.modules); build_model('resnet50', 10); "
                           "print('torchvision' in sys.modules)")
    assert printed[-2:] == ["False", "True"]


def test_the_warm_up_waits_while_the_app_is_in_use():
    """A background step waits for every page or fragment run (and a quick
    run's training) to end, then for the app to be left alone for a moment."""
    import threading

    from elastic.ui import page

    done = {}
    entered, leave = threading.Event(), threading.Event()

    def user() -> None:
        with page.in_use():
            entered.set()
            leave.wait(10)
            done["user"] = time.monotonic()   # at most the moment the use ends

    def warm_up() -> None:
        entered.wait(10)
        page.wait_until_idle(0.3)
        done["warm_up"] = time.monotonic()

    threads = [threading.Thread(target=user), threading.Thread(target=warm_up)]
    for t in threads:
        t.start()
    entered.wait(10)
    time.sleep(0.5)
    assert "warm_up" not in done          # still in use: the warm-up waits
    leave.set()
    for t in threads:
        t.join(10)
    assert done["warm_up"] - done["user"] >= 0.3


def test_export_page_refuses_a_row_whose_config_cannot_be_built(tmp_path, monkeypatch):
    rows = read_results(RESULTS_DIR / "cifar10.csv").head(1).to_dict("records")
    impossible = {**rows[0], "run_id": "cifar10/resnet20/baseline/e12/s0/fp32-00000000",
                  "config": '{"removed_blocks": ["layer9.9"], "shapes": {}}'}
    append_row(tmp_path / "cifar10.csv", {k: v for k, v in impossible.items() if v is not None and v == v})
    monkeypatch.setenv("ELASTIC_RESULTS_DIR", str(tmp_path))
    at = app(arch="resnet20", dataset="cifar10")
    at.switch_page("pages/export.py").run()
    assert not at.exception
    assert any("cannot be built" in e.value and "layer9.9" in e.value for e in at.error)
    assert not at.get("download_button")


def test_export_uses_the_shipped_baseline_and_never_shows_an_accuracy_beside_untrained_weights(monkeypatch):
    """On a fresh machine (empty cache) the ResNet-20 baseline exports with the
    trained weights that ship; a configuration without weights shows no accuracy."""
    monkeypatch.setenv("ELASTIC_RESULTS_DIR", str(RESULTS_DIR))
    frame = explore.configurations(explore.prepare(load_all(RESULTS_DIR)[0]))
    rows = explore.select(frame, dataset="cifar10", arch="resnet20")
    at = app(arch="resnet20", dataset="cifar10")
    at.switch_page("pages/export.py").run()
    assert not at.exception
    options = widget(at.selectbox, "Configuration").options
    assert len(options) == len(rows)                      # the unpruned network once, as the baseline
    baseline = rows[rows["method"] == "baseline"].iloc[0]
    widget(at.selectbox, "Configuration").set_value(baseline["run_id"]).run()
    assert any("trained weights from the checkpoint" in s.value and "cached_results/checkpoints" in s.value
               for s in at.success)
    assert metric_values(at)["Test accuracy (as measured)"] == f"{baseline['test_acc']:.2f}%"
    untrained = rows[rows["method"] == "complexity"].iloc[0]  # no complexity checkpoint ships
    widget(at.selectbox, "Configuration").set_value(untrained["run_id"]).run()
    assert any("untrained weights" in w.value for w in at.warning)
    assert metric_values(at)["Test accuracy"] == "untrained weights"
    assert f"{untrained['test_acc']:.2f}%" not in " ".join(metric_values(at).values())
    assert untrained["command"] in [c.value for c in at.code]


def metric_values(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_export_page_exports_a_trained_elastic_level_that_onnxruntime_reproduces(monkeypatch):
    """Elastic level 2 ships inside its elastic checkpoint: the page exports it
    with trained weights and the ONNX file's accuracy in onnxruntime on the whole
    test split equals the row's."""
    from tests.conftest import shared_archive
    monkeypatch.setenv("ELASTIC_RESULTS_DIR", str(RESULTS_DIR))
    monkeypatch.setenv("ELASTIC_DATA", str(shared_archive("cifar10").parent))
    level = "cifar10/resnet20/elastic/c2g1/s0/fp32-a92b9931/level2"
    row = load_all(RESULTS_DIR)[0].set_index("run_id").loc[level]
    at = app(arch="resnet20", dataset="cifar10")
    at.switch_page("pages/export.py").run()
    widget(at.selectbox, "Configuration").set_value(level).run()
    assert any("trained weights from the checkpoint" in s.value and "elastic" in s.value for s in at.success)
    assert metric_values(at)["Test accuracy (as measured)"] == f"{row['test_acc']:.2f}%"
    widget(at.button, "Build ONNX, TorchScript and JSON").click().run(timeout=300)
    assert not at.exception
    verdicts = [s.value for s in at.success if "onnxruntime test accuracy" in s.value]
    assert verdicts and f"{row['test_acc']:.2f}% on 10,000 test images" in verdicts[0], [s.value for s in at.success]
    assert "matches the row's" in verdicts[0]


def test_the_explorer_budgets_on_onnxruntime_latency_and_shows_the_efficiency(tmp_path, monkeypatch):
    """Rows with both runtimes' latency (the shipped rows, onnxruntime figures set
    here so the choice is known): a budget on onnxruntime latency picks the best
    validation accuracy among the rows under it, the card says which runtime,
    and a MAC cut that buys little speed is flagged."""
    rows = read_results(RESULTS_DIR / "cifar10.csv").to_dict("records")
    base = next(r for r in rows if r["run_id"] == "cifar10/resnet20/baseline/e12/s0/fp32-69ffb0f4")
    for row in rows:          # onnxruntime latency: 2 ms at the baseline's MACs, falling half as fast as the MACs
        row["ort_latency_ms"] = 2.0 * (0.5 + 0.5 * row["macs"] / base["macs"])
        append_row(tmp_path / "cifar10.csv", {k: v for k, v in row.items() if v is not None and v == v})
    monkeypatch.setenv("ELASTIC_RESULTS_DIR", str(tmp_path))
    frame = explore.configurations(explore.prepare(load_all(tmp_path)[0]))
    budget = 1.6
    pick = expected(frame, metric="latency_ort", budget=budget)
    assert pick.row is not None and pick.row["ort_latency_ms"] <= budget < base["ort_latency_ms"]
    at = app(dataset="cifar10", arch="resnet20", metric="latency_ort", budget=str(budget))
    assert not at.exception
    assert pick.row["run_id"] in card(at) and "Best under 1.6 ms" in card(at)
    text = " ".join(m.value for m in at.markdown)
    speedup = base["ort_latency_ms"] / pick.row["ort_latency_ms"]
    assert f"{speedup:.2f}x faster than the baseline" in text and "in onnxruntime: efficiency" in text
    assert "(low: this MAC cut buys little speed)" in text          # half the MAC cut turns into speed
    assert {c.proto.label for c in at.selectbox} >= {"Budget on"}
    assert widget(at.selectbox, "Budget on").value == "latency_ort"


def test_the_warm_up_fills_the_layer_pages_caches_between_pauses():
    from elastic.ui import models
    calls = []
    models.precompute(pause=lambda: calls.append("pause"))
    assert calls == ["pause"] * 4                  # the layer table, then PA, FA and MA
    layers, totals = models.layer_table("resnet20", "cifar10")
    assert totals["macs"] == 40_813_184 and set(layers["kind"]) >= {"conv", "linear"}
    assert models.plan("resnet20", "cifar10", "FA", models.DEFAULT_TARGET)["achieved"]["macs"] <= 0.5 + 1e-9


def test_preload_imports_the_model_pages_and_keeps_them_out_of_garbage_collection():
    """serve.py's preload: torch and the model pages' modules are imported, and
    their objects frozen, so Streamlit's full collection after every run (each
    slider move) does not scan torch's heap."""
    printed = fresh_python("import gc, sys; from elastic.ui import page; page.preload(); "
                           "print(all(m in sys.modules for m in page.HEAVY_MODULES)); "
                           "print(gc.get_freeze_count() > 200_000, len(gc.get_objects()) < 100_000)")
    assert printed[-2:] == ["True", "True True"]


def test_serve_py_serves_app_py_once_its_pages_are_loaded():
    """`streamlit run serve.py` is app.py behind an st.App whose startup preloads."""
    printed = fresh_python("import serve; print(serve.app.__class__.__name__, serve.ready.__name__)")
    assert printed[-1] == "App ready"


def test_the_elastic_warm_up_can_stop_at_the_checkpoint_the_page_opens_on(monkeypatch):
    """serve.py measures only the checkpoint the Elastic page opens on before it
    answers: 4 steps (model, images, accuracies, timings) and one per level."""
    from elastic.ui import elastic_view
    monkeypatch.setenv("ELASTIC_RESULTS_DIR", str(RESULTS_DIR))          # the shipped checkpoints
    paths = elastic_view.find_checkpoints(elastic_view.checkpoints_dir())
    assert len(paths) >= 2 and paths[0].name.startswith("cifar10__resnet20__elastic__")
    steps = []
    elastic_view.precompute(pause=lambda: steps.append("pause"), first_only=True)
    first = elastic_view.elastic_model(str(paths[0]), elastic_view.stamp(paths[0]))
    assert len(steps) == 4 + first.num_levels


def test_the_plotly_bundle_the_app_preloads_is_in_the_installed_streamlit():
    """load_plotly_when_idle names Streamlit's Plotly bundle by its hashed file
    name; a Streamlit release that renames it must fail here, not go unnoticed."""
    from elastic.ui import page
    name = page.plotly_bundle()
    assert name is not None and name.startswith("PlotlyChart.") and name.endswith(".js")
