import json
import re

import pytest

from elastic.errors import BadResults
from elastic.results import COLUMN_NAMES, append_row, done_ids, load_all, read_results


def row(run_id="cifar10/resnet20/baseline/e1/s0", **over):
    base = {"run_id": run_id, "dataset": "cifar10", "arch": "resnet20", "method": "baseline",
            "test_acc": 80.5, "val_acc": 81.0, "params": 272474, "macs": 40813184,
            "weight_bytes": 1089896, "peak_act_bytes": 196608, "peak_mem_fp32": 1286504,
            "peak_mem_int8": 321626, "config": {"removed_blocks": [], "shapes": {}},
            "epochs": 1, "seed": 0, "device": "cpu", "precision": "fp32", "cpu": "test CPU", "commit": "abc",
            "date": "2026-11-22T00:00:00Z",
            "seconds": 1.0, "command": "python -m elastic train"}
    base.update(over)
    return base


def test_append_and_read_back(tmp_path):
    path = tmp_path / "r.csv"
    append_row(path, row())
    append_row(path, row("b", macs=100))
    frame = read_results(path)
    assert list(frame.columns) == COLUMN_NAMES
    assert frame["macs"].tolist() == [40813184, 100]
    assert json.loads(frame["config"][0]) == {"removed_blocks": [], "shapes": {}}
    assert done_ids(path) == {"cifar10/resnet20/baseline/e1/s0", "b"}


def test_same_run_id_replaces_the_row(tmp_path):
    path = tmp_path / "r.csv"
    append_row(path, row(test_acc=10))
    append_row(path, row(test_acc=20))
    frame = read_results(path)
    assert len(frame) == 1 and frame["test_acc"][0] == 20


@pytest.mark.parametrize("bad,message", [
    ({"test_acc": "high"}, "test_acc"),
    ({"test_acc": 140}, "not a percentage"),
    ({"macs": 1.5}, "macs"),
    ({"config": "{not json"}, "config"),
    ({"arch": ""}, "'arch' is missing"),
])
def test_invalid_rows_are_refused_with_the_column(tmp_path, bad, message):
    with pytest.raises(BadResults, match=message):
        append_row(tmp_path / "r.csv", row(**bad))
    assert not (tmp_path / "r.csv").exists()


def test_malformed_file_names_file_and_line(tmp_path):
    path = tmp_path / "r.csv"
    append_row(path, row())
    append_row(path, row("second"))
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace("40813184", "lots")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(BadResults, match=r"r.csv, line 3: column 'macs'"):
        read_results(path)


def test_not_a_results_file(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(BadResults, match="missing column"):
        read_results(path)


def test_load_all_skips_bad_files_and_reports_them(tmp_path):
    append_row(tmp_path / "good.csv", row())
    (tmp_path / "bad.csv").write_text("run_id,dataset\n\"unterminated\n")
    frame, problems = load_all(tmp_path)
    assert len(frame) == 1
    assert len(problems) == 1 and "bad.csv" in problems[0]


def test_documented_schema_matches_the_code():
    from pathlib import Path

    from elastic.results import schema_markdown
    readme = (Path(__file__).resolve().parent.parent / "cached_results" / "README.md").read_text()
    assert schema_markdown() in readme


@pytest.mark.parametrize("bad,message", [
    ({"macs": -40813184}, "macs = -40813184 must be above 0"),
    ({"params": 0}, "params = 0 must be above 0"),
    ({"latency_ms": -1.0}, "latency_ms = -1.0 must be 0 or more"),
    ({"arch": "resnet999"}, "arch 'resnet999' is not known"),
    ({"method": "magic"}, "method 'magic' is not known"),
    ({"dataset": "mnist"}, "dataset 'mnist' is not known"),
    ({"target": -0.5}, "not a fraction in (0, 1]"),
])
def test_impossible_rows_are_refused_on_write(tmp_path, bad, message):
    with pytest.raises(BadResults, match=re.escape(message)):
        append_row(tmp_path / "r.csv", row(**bad))
    assert not (tmp_path / "r.csv").exists()


def test_a_bad_row_is_named_and_the_rest_of_the_file_still_loads(tmp_path):
    folder = tmp_path / "results"
    path = folder / "cifar10.csv"
    append_row(path, row("good-1"))
    append_row(path, row("good-2"))
    text = path.read_text().splitlines()
    text[2] = text[2].replace(",272474,40813184,", ",272474,-40813184,")     # line 3: negative MACs
    path.write_text("\n".join(text) + "\n")
    frame, problems = load_all(folder)
    assert list(frame["run_id"]) == ["good-1"]
    assert len(problems) == 1 and "line 3" in problems[0] and "macs" in problems[0]


def test_duplicates_name_both_lines_and_binary_files_say_so(tmp_path):
    path = tmp_path / "r.csv"
    append_row(path, row("a"))
    append_row(path, row("b"))
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, lines[1]]) + "\n")
    with pytest.raises(BadResults, match="appears twice, on lines 2 and 4"):
        read_results(path)
    path.write_bytes(bytes(range(256)) * 4 + b"\n")
    with pytest.raises(BadResults, match="not a CSV results file"):
        read_results(path)


def test_the_torch_free_catalog_matches_the_registries():
    from elastic.catalog import ARCH_FAMILY, DATASET_FAMILY
    from elastic.data import DATASETS
    from elastic.models import ARCHS
    assert ARCH_FAMILY == {name: ARCHS.get(name).family for name in ARCHS.names()}
    assert DATASET_FAMILY == {name: DATASETS.get(name).family for name in DATASETS.names()}


def test_the_catalogs_removable_blocks_are_what_block_pruning_finds():
    """Block pruning's candidates, found by tracing each registered network at
    its input size, are exactly as many as the catalog says (none: not listed)."""
    from elastic.catalog import REMOVABLE_BLOCKS
    from elastic.methods.blocks import candidate_blocks
    from elastic.models import ARCHS, build_model
    found = {}
    for name in ARCHS.names():
        size = ARCHS.get(name).input_size
        count = len(candidate_blocks(build_model(name, 10), (3, size, size)))
        if count:
            found[name] = count
    assert found == REMOVABLE_BLOCKS
