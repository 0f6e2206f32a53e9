"""The explorer's logic, without Streamlit: Pareto fronts, the best configuration
under a budget, units, device fit, presets, claims and shareable choices."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from elastic import explore
from elastic.explore import METRICS, Choices
from elastic.methods import METHODS
from elastic.results import COLUMN_NAMES

KB, MB = 1024, 1024 ** 2


def make_rows(*rows: dict) -> pd.DataFrame:
    """Result rows with every schema column, prepared as the app prepares them."""
    defaults = dict(dataset="cifar10", arch="resnet20", method="complexity", mode="", target=None, level="",
                    test_acc=90.0, params=270_000, macs=40_000_000, weight_bytes=1_080_000,
                    peak_act_bytes=65_536, peak_mem_fp32=1_200_000, peak_mem_int8=300_000, latency_ms=None,
                    config="{}", epochs=12, seed=0, device="cpu", precision="fp32", cpu="test CPU", commit="abc",
                    date="2026-01-01T00:00:00Z",
                    seconds=1.0, command="python -m elastic ...", label="", data_source="archive:/x")
    full = [{**defaults, "run_id": f"r{i}", **row} for i, row in enumerate(rows)]
    return explore.prepare(pd.DataFrame(full, columns=COLUMN_NAMES))


# ---- Pareto fronts ------------------------------------------------------------------

def test_pareto_front_keeps_only_undominated_points_in_cost_order():
    rows = make_rows(dict(macs=10, test_acc=80), dict(macs=20, test_acc=85), dict(macs=30, test_acc=84),
                     dict(macs=40, test_acc=90), dict(macs=20, test_acc=82), dict(macs=5, test_acc=60))
    front = explore.pareto_front(rows, "macs")
    assert list(front["run_id"]) == ["r5", "r0", "r1", "r3"]
    assert list(front["macs"]) == sorted(front["macs"])


def test_pareto_front_skips_missing_values_and_keeps_one_of_exact_duplicates():
    rows = make_rows(dict(latency_ms=None, test_acc=99), dict(latency_ms=2.0, test_acc=70),
                     dict(latency_ms=2.0, test_acc=70), dict(latency_ms=1.0, test_acc=75))
    front = explore.pareto_front(rows, "latency_ms")
    assert list(front["run_id"]) == ["r3"]          # r0 has no latency; r1/r2 are beaten by r3
    assert explore.pareto_front(rows.iloc[:0], "macs").empty


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 50), st.integers(0, 100)), min_size=1, max_size=25))
def test_pareto_front_matches_the_definition(points):
    rows = make_rows(*[dict(macs=x, test_acc=float(y)) for x, y in points])
    front = explore.pareto_front(rows, "macs")
    pts = list(zip(rows["macs"], rows["test_acc"]))

    def dominated(x, y):
        return any(a <= x and b >= y and (a < x or b > y) for a, b in pts)

    on_front = set(zip(front["macs"], front["test_acc"]))
    assert on_front == {p for p in pts if not dominated(*p)}
    assert len(front) == len(on_front)             # one row per front point


# ---- best under a budget -------------------------------------------------------------

def test_best_under_budget_is_the_most_accurate_row_that_fits():
    rows = make_rows(dict(macs=10e6, test_acc=80), dict(macs=20e6, test_acc=86), dict(macs=40e6, test_acc=91))
    macs = METRICS["macs"]
    assert explore.best_under_budget(rows, macs, 25e6).row["run_id"] == "r1"
    assert explore.best_under_budget(rows, macs, 20e6).row["run_id"] == "r1"      # the budget is inclusive
    assert explore.best_under_budget(rows, macs, 19.9e6).row["run_id"] == "r0"
    assert explore.best_under_budget(rows, macs, math.inf).row["run_id"] == "r2"
    pick = explore.best_under_budget(rows, macs, 25e6)
    assert (pick.considered, pick.under_budget, pick.fitting, pick.reason) == (3, 2, 2, "")


def test_the_choice_is_made_on_validation_accuracy_not_test_accuracy():
    rows = make_rows(dict(macs=10e6, val_acc=85.0, test_acc=84.0), dict(macs=20e6, val_acc=83.0, test_acc=86.0))
    pick = explore.best_under_budget(rows, METRICS["macs"], math.inf)
    assert pick.row["run_id"] == "r0"                  # better on validation, worse on test
    assert pick.chosen_by.startswith("by validation accuracy (85.00%")
    # A row with no validation accuracy ranks after those with one; alone, it is chosen by test.
    rows = make_rows(dict(macs=10e6, val_acc=70.0, test_acc=70.0), dict(macs=20e6, test_acc=95.0))
    assert explore.best_under_budget(rows, METRICS["macs"], math.inf).row["run_id"] == "r0"
    pick = explore.best_under_budget(rows.iloc[1:], METRICS["macs"], math.inf)
    assert pick.row["run_id"] == "r1" and "recorded no validation accuracy" in pick.chosen_by


def test_ties_go_to_the_cheaper_configuration_regardless_of_order():
    rows = make_rows(dict(run_id="b", macs=30e6, test_acc=88), dict(run_id="a", macs=20e6, test_acc=88),
                     dict(run_id="c", macs=20e6, test_acc=88))
    for order in (rows, rows.iloc[::-1]):
        assert explore.best_under_budget(order, METRICS["macs"], 50e6).row["run_id"] == "a"


def test_a_budget_below_every_configuration_says_so_and_names_the_smallest():
    rows = make_rows(dict(macs=10e6, test_acc=80, method="uniform"), dict(macs=20e6, test_acc=86))
    pick = explore.best_under_budget(rows, METRICS["macs"], 5e6)
    assert pick.row is None and pick.under_budget == 0
    assert "below every configuration" in pick.reason
    assert "5 M MACs" in pick.reason and "10 M MACs" in pick.reason and "Uniform thinning" in pick.reason


def test_empty_selection_and_unmeasured_latency_are_explained():
    empty = explore.best_under_budget(make_rows().iloc[:0], METRICS["macs"], 1e9)
    assert empty.row is None and "No results" in empty.reason
    rows = make_rows(dict(latency_ms=None), dict(latency_ms=None))
    pick = explore.best_under_budget(rows, METRICS["latency"], 100.0)
    assert pick.row is None and pick.unmeasured == 2
    assert pick.reason == "Latency (PyTorch): not measured yet for any configuration here."
    some = make_rows(dict(latency_ms=None, test_acc=99), dict(latency_ms=3.0, test_acc=70))
    pick = explore.best_under_budget(some, METRICS["latency"], 100.0)
    assert pick.row["run_id"] == "r1" and pick.unmeasured == 1   # an unmeasured row is never assumed to fit


def test_a_device_limits_the_choice_and_explains_when_nothing_fits():
    mcu = explore.Device("mcu", "Tiny MCU", "microcontroller", 512 * KB, 2 * MB, "", ("datasheet",))
    small = dict(macs=10e6, test_acc=80, peak_mem_int8=300 * KB, peak_mem_fp32=1.2 * MB, weight_bytes=1 * MB)
    large = dict(macs=40e6, test_acc=90, peak_mem_int8=900 * KB, peak_mem_fp32=3.6 * MB, weight_bytes=3 * MB)
    rows = make_rows(small, large)
    assert explore.best_under_budget(rows, METRICS["macs"], 1e9).row["run_id"] == "r1"
    assert explore.best_under_budget(rows, METRICS["macs"], 1e9, device=mcu).row["run_id"] == "r0"
    pick = explore.best_under_budget(rows, METRICS["macs"], 1e9, device=mcu, precision="fp32")
    assert pick.row is None and pick.under_budget == 2 and pick.fitting == 0
    assert "none fits the Tiny MCU at fp32" in pick.reason


# ---- device fit --------------------------------------------------------------------

def test_device_fit_compares_peak_memory_with_memory_and_weights_with_flash():
    mcu = explore.Device("m7", "M7", "microcontroller", 512 * KB, 2 * MB, "", ("ds",))
    row = dict(peak_mem_int8=400 * KB, peak_mem_fp32=1.5 * MB, weight_bytes=1 * MB)
    fit = explore.device_fit(row, mcu)
    assert fit["int8"].fits and fit["int8"].weights_needed == 256 * KB
    assert not fit["fp32"].memory_ok and fit["fp32"].flash_ok and not fit["fp32"].fits
    assert fit["int8"].explain().startswith("fits: peak 400 KB ≤ 512 KB memory, weights 256 KB ≤ 2 MB flash")
    assert fit["fp32"].explain().startswith("does not fit: peak 1.5 MB > 512 KB memory")
    big_weights = dict(peak_mem_int8=100 * KB, peak_mem_fp32=400 * KB, weight_bytes=12 * MB)
    assert not explore.device_fit(big_weights, mcu)["int8"].flash_ok      # 3 MB of int8 weights > 2 MB
    board = explore.Device("pi", "Pi", "board", 512 * MB, None, "", ("brief",))
    assert explore.device_fit(big_weights, board)["fp32"].fits             # no flash limit


def test_shipped_device_presets_parse_and_cite_their_sources():
    devices = explore.load_devices()
    by_key = {d.key: d for d in devices}
    m7 = by_key["stm32f767"]
    assert (m7.memory_bytes, m7.flash_bytes) == (512 * KB, 2 * MB) and "Cortex-M7" in m7.name
    kinds = {d.kind for d in devices}
    assert {"microcontroller", "single-board computer", "embedded GPU module"} <= kinds
    for d in devices:
        assert d.sources and any("http" in s for s in d.sources) and any(len(s) > 30 for s in d.sources)


def test_malformed_device_presets_are_rejected():
    with pytest.raises(ValueError, match="entry 0"):
        explore.parse_devices({"devices": [{"key": "x", "name": "X"}]})
    good = {"key": "x", "name": "X", "kind": "k", "memory_bytes": 1, "flash_bytes": None, "sources": ["s"]}
    with pytest.raises(ValueError, match="unique"):
        explore.parse_devices({"devices": [good, good]})
    with pytest.raises(ValueError, match="source"):
        explore.parse_devices({"devices": [{**good, "sources": []}]})


# ---- units ---------------------------------------------------------------------------

@pytest.mark.parametrize("metric, value, text", [
    ("macs", 40_815_104, "40.8 M MACs"),
    ("macs", 313_000_000, "313 M MACs"),
    ("macs", 4_100_000_000, "4.1 G MACs"),
    ("params", 272_474, "272 K params"),
    ("params", 14_724_042, "14.7 M params"),
    ("params", 512, "512 params"),
    ("memory", 512 * KB, "512 KB"),
    ("memory", 1.5 * MB, "1.5 MB"),
    ("memory_int8", 300, "300 B"),
    ("latency", 3.25, "3.25 ms"),
    ("latency", 0.5, "0.5 ms"),
    ("macs", 0, "0 MACs"),
    ("latency", float("nan"), "not measured yet"),
    ("latency", None, "not measured yet"),
])
def test_format_quantity_reads_like_a_person_would_write_it(metric, value, text):
    assert explore.format_quantity(value, METRICS[metric]) == text


@pytest.mark.parametrize("metric, value, text", [
    ("params", 14_724_042, "14.7 M"), ("macs", 313_000_000, "313 M"), ("params", 512, "512"),
    ("memory", 1.5 * MB, "1.5 MB"), ("latency", 3.25, "3.25 ms"), ("macs", None, "not measured yet"),
])
def test_format_quantity_without_the_noun_fits_under_a_label(metric, value, text):
    """A metric tile's label names the metric: "14.7 M params" was cut off in a
    quarter-page tile at 1400 px, "14.7 M" is not."""
    assert explore.format_quantity(value, explore.METRICS[metric], noun=False) == text


@pytest.mark.parametrize("metric, value, title", [
    ("macs", 40.8e6, "MACs (M)"), ("params", 272e3, "Parameters (K)"), ("params", 512, "Parameters"),
    ("memory", 1.5 * MB, "Peak memory (fp32, MB)"), ("latency_ort", 0.4, "Latency (onnxruntime, ms)"),
])
def test_an_axis_title_names_the_unit_once(metric, value, title):
    """Not "MACs (M MACs)"."""
    metric = METRICS[metric]
    assert explore.axis_title(metric, explore.choose_unit(metric, value)) == title


def test_slider_spec_covers_every_configuration_in_round_steps():
    spec = explore.slider_spec(METRICS["macs"], [20.4e6, 40.8e6, float("nan")])
    assert spec.unit.name == "M MACs" and spec.low == 0
    assert spec.high >= 40.8 and spec.high <= 40.8 * 1.1
    assert spec.step == 0.2 and 100 <= spec.high / spec.step <= 250
    assert abs(spec.high / spec.step - round(spec.high / spec.step)) < 1e-6
    assert spec.from_base(20.4e6) == pytest.approx(20.4)
    assert spec.to_base(spec.from_base(20.4e6)) == pytest.approx(20.4e6)
    assert spec.from_base(20.39e6) == pytest.approx(20.2)        # rounded down: never more than asked
    assert spec.from_base(1e12) == spec.high and spec.from_base(-5) == 0
    assert spec.format == "%.1f"
    mem = explore.slider_spec(METRICS["memory"], [300 * KB, 900 * KB])
    assert mem.unit.name == "KB"
    assert explore.slider_spec(METRICS["latency"], [float("nan"), None]) is None


# ---- choices and the URL -------------------------------------------------------------

def test_choices_round_trip_through_query_parameters():
    choice = Choices(dataset="cifar10", arch="resnet20", methods=("baseline", "complexity"), modes=("FA",),
                     metric="params", budget=150_000.0, device="stm32f767", precision="fp32")
    query = choice.to_query()
    assert query["budget"] == "150000" and query["methods"] == "baseline,complexity"
    assert Choices.from_query(query) == choice
    assert Choices().to_query() == {"metric": "macs"}
    assert Choices(budget=21.2 * 1e6).to_query()["budget"] == "21200000"      # no float noise, no exponent
    assert Choices(metric="latency", budget=0.35).to_query()["budget"] == "0.35"


def test_malformed_query_parameters_fall_back_to_defaults():
    choice = Choices.from_query({"metric": "bogus", "budget": "lots", "modes": "XX", "precision": "fp16"})
    assert (choice.metric, choice.budget, choice.modes, choice.precision) == ("macs", None, explore.MODES, "int8")
    assert Choices.from_query({"budget": "nan"}).budget is None


def test_changing_the_metric_forgets_the_budget():
    choice = Choices(metric="macs", budget=20e6)
    assert choice.update(metric="params").budget is None
    assert choice.update(metric="macs").budget == 20e6
    assert choice.update(metric="params", budget=5.0).budget == 5.0


# ---- selecting, describing and summarising rows ------------------------------------

def test_select_filters_methods_and_modes_but_keeps_rows_without_a_mode():
    rows = make_rows(dict(method="baseline"), dict(mode="FA"), dict(mode="PA"), dict(arch="vgg16", mode="FA"),
                     dict(dataset="cifar100"))
    chosen = explore.select(rows, dataset="cifar10", arch="resnet20", modes=("FA",))
    assert list(chosen["run_id"]) == ["r0", "r1"]
    assert len(explore.select(rows, dataset="cifar10")) == 4
    assert list(explore.select(rows, dataset="cifar10", methods=["baseline"])["run_id"]) == ["r0"]
    assert explore.archs(rows, "cifar10") == ["resnet20", "vgg16"]
    assert explore.datasets(rows) == ["cifar10", "cifar100"]


def test_missing_methods_lists_every_registered_method_without_rows():
    rows = make_rows(dict(method="baseline"), dict(method="complexity"), dict(method="block", arch="resnet56"))
    missing = explore.missing_methods(rows, dataset="cifar10", arch="resnet20")
    assert missing == [m for m in METHODS.names() if m not in ("baseline", "complexity")]
    assert "block" not in explore.missing_methods(rows, dataset="cifar10")
    assert explore.missing_methods(rows, dataset="imagenette") == METHODS.names()


def test_block_pruning_is_not_missing_where_it_cannot_run():
    """AlexNet and VGG-16 have no residual blocks: block pruning does not apply
    to them, so it is never listed as not yet run there; it is for ResNets."""
    blocks = [m for m in METHODS.names() if METHODS.get(m).family == "blocks"]
    rows = make_rows(dict(method="baseline", arch="alexnet"), dict(method="baseline", arch="resnet56"))
    for arch in ("alexnet", "vgg16"):
        assert explore.not_applicable(arch) == blocks
        assert not set(blocks) & set(explore.missing_methods(rows, dataset="cifar10", arch=arch))
    assert explore.not_applicable("resnet56") == [] == explore.not_applicable(explore.ALL_ARCHS)
    assert set(blocks) <= set(explore.missing_methods(rows, dataset="cifar10", arch="resnet56"))


def test_describe_and_how_made_say_how_each_number_was_made():
    row = make_rows(dict(mode="FA", target=0.5, epochs=1, label="short CPU schedule (12 epochs)")).iloc[0]
    assert explore.describe(row.to_dict()) == "Complexity-driven (PA/FA/MA) · FA · target 0.5 · resnet20 · 1 epoch"
    bf16 = make_rows(dict(method="baseline", precision="bf16")).iloc[0].to_dict()
    assert explore.describe(bf16) == "Baseline · resnet20 · 12 epochs · bf16"   # told apart from the fp32 one
    rounded = make_rows(dict(mode="FA", target=0.5, precision="bf16",
                             run_id="cifar10/resnet20/complexity/FA/t0.5/r8/scratch/e12/s0/bf16-69ffb0f4"),
                        dict(mode="FA", target=0.5, precision="bf16",
                             run_id="cifar10/resnet20/complexity/FA/t0.5/r1/scratch/e12/s0/bf16-69ffb0f4"))
    assert [explore.describe(r) for r in rounded.to_dict("records")] == [   # the same command but --round-to 8
        "Complexity-driven (PA/FA/MA) · FA · target 0.5 · widths rounded to 8 · resnet20 · 12 epochs · bf16",
        "Complexity-driven (PA/FA/MA) · FA · target 0.5 · resnet20 · 12 epochs · bf16"]
    rows = make_rows(dict(label="short CPU schedule (12 epochs)"), dict(label="short CPU schedule (12 epochs)"),
                     dict(label="", data_source="synthetic", epochs=1, precision="bf16", cpu=""))
    table = explore.how_made(rows)
    assert table.to_dict("records") == [
        {"label": "short CPU schedule (12 epochs)", "data": "archive", "epochs": 12, "precision": "fp32",
         "cpu": "test CPU", "rows": 2},
        {"label": "(no label)", "data": "synthetic (not real images)", "epochs": 1, "precision": "bf16",
         "cpu": "unrecorded", "rows": 1}]


def test_baseline_and_reductions():
    rows = make_rows(dict(method="baseline", data_source="synthetic", epochs=60, test_acc=50),
                     dict(method="baseline", epochs=12, test_acc=88),
                     dict(method="baseline", epochs=6, test_acc=80),
                     dict(method="complexity", params=135_000, macs=10_000_000, peak_mem_fp32=600_000,
                          test_acc=87.5))
    pruned = rows.iloc[3].to_dict()
    base = explore.baseline_for(rows, pruned)
    assert base["run_id"] == "r1"                 # real data first, then the most epochs
    red = explore.reductions(pruned, base)
    assert red["params"] == pytest.approx(0.5) and red["macs"] == pytest.approx(0.75)
    assert red["memory"] == pytest.approx(0.5) and red["accuracy"] == pytest.approx(-0.5)
    assert explore.baseline_for(rows.iloc[3:], pruned) is None


def test_a_row_is_compared_with_the_baseline_of_its_own_precision():
    rows = make_rows(dict(method="baseline", precision="fp32", test_acc=84.0),
                     dict(method="baseline", precision="bf16", test_acc=83.5),
                     dict(method="complexity", precision="bf16", macs=10_000_000),
                     dict(method="complexity", precision="fp32", macs=10_000_000))
    assert explore.baseline_for(rows, rows.iloc[2].to_dict())["run_id"] == "r1"
    assert explore.baseline_for(rows, rows.iloc[3].to_dict())["run_id"] == "r0"


def test_measured_summary_reports_reductions_within_one_point():
    rows = make_rows(dict(method="baseline", test_acc=90),
                     dict(method="complexity", params=135_000, macs=20_000_000, test_acc=89.5),
                     dict(method="complexity", params=27_000, macs=4_000_000, test_acc=80))
    summary = explore.measured_summary(rows, rows).set_index("method")
    assert summary.loc["complexity", "rows"] == 2 and summary.loc["complexity", "best_test_acc"] == 89.5
    assert summary.loc["complexity", "params_reduction"] == pytest.approx(0.5)   # the 80% row loses 10 points
    assert math.isnan(summary.loc["baseline", "params_reduction"])


def test_claims_cite_a_source_and_name_registered_methods():
    claims = explore.load_claims()
    assert {c["method"] for c in claims} <= set(METHODS.names())
    for claim in claims:
        assert claim["source"] and claim["claim"] and claim["paper"]
        for number in claim.get("numbers", []):
            assert isinstance(number["value"], (int, float)) and number["what"]
    raw = json.loads(explore.CLAIMS_FILE.read_text())
    assert "not" in raw["about"] or "never" in raw["about"]


def test_one_schedule_at_a_time_the_widest_first():
    rows = make_rows(
        dict(arch="resnet20", schedule="12 epochs", test_acc=84.0), dict(arch="resnet56", schedule="12 epochs"),
        dict(arch="resnet20", schedule="60 epochs", test_acc=91.0), dict(arch="resnet20", schedule="60 epochs"),
        dict(arch="resnet20", schedule=""))
    # 12 epochs covers two architectures; 60 epochs has more rows but one architecture
    assert explore.schedules(rows, "cifar10") == ["12 epochs", "60 epochs", explore.UNRECORDED]
    short = explore.select(rows, dataset="cifar10", schedule="12 epochs")
    assert set(short["arch"]) == {"resnet20", "resnet56"} and len(short) == 2
    assert len(explore.select(rows, dataset="cifar10", schedule=explore.UNRECORDED)) == 1
    assert len(explore.select(rows, dataset="cifar10")) == 5


def test_ties_on_validation_accuracy_go_to_the_lower_cost_never_to_test_accuracy():
    rows = make_rows(dict(macs=30e6, val_acc=85.0, test_acc=90.0), dict(macs=20e6, val_acc=85.0, test_acc=80.0))
    assert explore.best_under_budget(rows, METRICS["macs"], math.inf).row["run_id"] == "r1"
    params = make_rows(dict(macs=30e6, params=1e5, val_acc=85.0, test_acc=90.0),
                       dict(macs=20e6, params=1e5, val_acc=85.0, test_acc=80.0))
    assert explore.best_under_budget(params, METRICS["params"], math.inf).row["run_id"] == "r1"   # then MACs


def test_a_configuration_at_exactly_the_budget_is_under_it():
    rows = make_rows(dict(macs=40813184, test_acc=84.17))
    assert explore.best_under_budget(rows, METRICS["macs"], 40813184 * (1 - 1e-12)).row is not None
    # As the page shows it: a 40.8 M budget takes the network shown as 40.8 M MACs, not one shown as 40.9 M.
    assert explore.best_under_budget(rows, METRICS["macs"], 40.8e6).row is not None
    assert explore.best_under_budget(make_rows(dict(macs=40.86e6)), METRICS["macs"], 40.8e6).row is None


def test_a_negative_or_malformed_budget_in_a_link_is_ignored_as_the_warning_says():
    assert Choices.from_query({"metric": "macs", "budget": "-5"}).budget is None
    problems = explore.query_problems({"budget": "-5"}, ["cifar10"], ["resnet20"])
    assert problems == ["The budget '-5' in the link is not a number of at least 0; it is ignored."]
    assert Choices.from_query({"metric": "macs", "budget": "0"}).budget == 0.0


def test_the_unpruned_network_is_the_baseline_never_a_methods_configuration():
    rows = make_rows(dict(method="baseline", mode="", test_acc=92.0),
                     dict(method="block", target=0.5, level="0", epochs=0, test_acc=92.0),   # step 0: the baseline
                     dict(method="block", target=0.5, level="1", macs=30e6, params=200_000),
                     dict(method="elastic", level="3"),                                 # full width
                     dict(method="elastic", level="0", macs=10e6, params=70_000),
                     dict(method="block", arch="resnet56", level="0"))                  # no resnet56 baseline row
    assert rows["unpruned"].tolist() == [False, True, False, True, False, False]
    assert explore.configurations(rows)["run_id"].tolist() == ["r0", "r2", "r4", "r5"]
    assert explore.describe(rows.iloc[1].to_dict()).startswith("Baseline (the unpruned network, measured by Block")
    best = explore.best_under_budget(explore.configurations(rows[rows["arch"] == "resnet20"]), METRICS["macs"],
                                     math.inf)
    assert best.row["method"] == "baseline"         # never "Block pruning, step 0" at the baseline's accuracy


def test_one_word_per_meaning_in_descriptions():
    rows = make_rows(dict(method="uniform", mode="FA", target=0.5), dict(method="complexity", mode="FA", target=0.5),
                     dict(method="block", level="2", target=0.5, macs=30e6),
                     dict(method="elastic", level="1", macs=10e6))
    texts = [explore.describe(r) for r in rows.to_dict("records")]
    assert texts[0] == "Uniform thinning · target 0.5 · resnet20 · 12 epochs"          # no mode: not complexity
    assert texts[1].startswith("Complexity-driven (PA/FA/MA) · FA · target 0.5")
    assert "step 2" in texts[2] and "level" not in texts[2]
    assert "level 1" in texts[3]
    # The complexity-mode filter leaves other methods' rows alone, uniform's FA included.
    kept = explore.select(rows, dataset="cifar10", modes=("PA",))
    assert kept["method"].tolist() == ["uniform", "block", "elastic"]


def test_every_registered_architecture_is_offered_with_the_commands_that_measure_it():
    from elastic import catalog
    assert catalog.archs_for("cifar10") == ["resnet20", "resnet56", "vgg16", "alexnet"]
    assert catalog.archs_for("imagenette") == ["resnet50", "vgg16_bn"] and catalog.archs_for("mnist") == []
    assert explore.run_commands("cifar10", "vgg16") == [
        "python -m elastic train --arch vgg16 --dataset cifar10 --epochs 12",
        "python -m elastic sweep --grid cpu --archs vgg16"]
    assert explore.run_commands("cifar100", "resnet20") == [
        "python -m elastic train --arch resnet20 --dataset cifar100 --epochs 12"]
    problems = explore.query_problems({"arch": "resnet50"}, ["cifar10"], catalog.archs_for("cifar10"),
                                      where="cifar10")
    assert problems == ["Architecture 'resnet50' from the link is not available for cifar10; showing resnet20 "
                        "instead. Choices: resnet20, resnet56, vgg16, alexnet."]
