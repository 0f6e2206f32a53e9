import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from elastic.results import read_results
from elastic.sweep import GRIDS, GridOptions, finished, run_sweep

REPO = Path(__file__).resolve().parent.parent
# rows the smoke grid writes: baseline, complexity FA, uniform, block and block-l1
# (step 0 and step 1 each), and the four elastic levels
SMOKE_ROWS = {"baseline": 1, "complexity": 1, "uniform": 1, "block": 2, "block-l1": 2, "elastic": 4}


def smoke_jobs(out: Path):
    return GRIDS.get("smoke").make(GridOptions(out))


def test_grids_cover_every_method_and_architecture(tmp_path):
    jobs = GRIDS.get("cifar10").make(GridOptions(tmp_path / "r.csv"))
    keys = {j.key for j in jobs}
    for arch in ("resnet20", "resnet56", "vgg16", "alexnet"):
        assert f"cifar10/{arch}/baseline" in keys
        assert f"cifar10/{arch}/elastic" in keys and f"cifar10/{arch}/elastic-joint" in keys
        for mode in ("PA", "FA", "MA"):
            assert {f"cifar10/{arch}/complexity/{mode}/{t}" for t in (0.3, 0.5, 0.7)} <= keys
    assert "cifar10/resnet56/block" in keys and "cifar10/vgg16/block" not in keys
    image_keys = {j.key for j in GRIDS.get("imagenette").make(GridOptions(tmp_path / "i.csv"))}
    assert "imagenette/resnet50/block-l1" in image_keys
    block = next(j for j in jobs if j.key == "cifar10/resnet20/block")
    assert block.after == ("cifar10/resnet20/baseline",)


def test_smoke_grid_runs_end_to_end(tmp_path):
    out = tmp_path / "smoke.csv"
    report = run_sweep(smoke_jobs(out), out)
    assert not report.failed, report.failed
    frame = read_results(out)
    assert frame["method"].value_counts().to_dict() == SMOKE_ROWS
    assert finished(out) == {j.key for j in smoke_jobs(out)}
    again = run_sweep(smoke_jobs(out), out)          # everything done: nothing runs
    assert again.ran == [] and len(again.skipped) == len(smoke_jobs(out))
    assert len(read_results(out)) == sum(SMOKE_ROWS.values())


def test_killed_sweep_resumes_without_losing_or_duplicating_rows(tmp_path):
    out = tmp_path / "smoke.csv"
    cmd = [sys.executable, "-m", "elastic", "sweep", "--grid", "smoke", "--out", str(out)]
    env = {**os.environ, "ELASTIC_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ledger = out.with_name("smoke.sweep.jsonl")
    deadline = time.time() + 300
    while time.time() < deadline and (not ledger.is_file() or len(ledger.read_text().splitlines()) < 2):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = finished(out)
    assert 2 <= len(done_before) < len(smoke_jobs(out))
    rows_before = read_results(out)               # never half-written
    resumed = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"{len(done_before)} already done" in resumed.stdout
    frame = read_results(out)
    assert frame["method"].value_counts().to_dict() == SMOKE_ROWS
    assert set(rows_before["run_id"]) <= set(frame["run_id"])
    lines = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert len(lines) == len({line["key"] for line in lines}) == len(smoke_jobs(out))


def test_stop_after_lets_running_jobs_finish_and_leaves_the_rest(tmp_path):
    out = tmp_path / "smoke.csv"
    jobs = smoke_jobs(out)
    first = run_sweep(jobs, out, stop_after=0.0)          # the limit has passed before the first start
    assert first.ran == [] and first.not_started == [j.key for j in jobs]
    # The first job starts at once; it trains for seconds, so after it no job starts.
    second = run_sweep(jobs, out, stop_after=0.5)
    assert second.ran == [jobs[0].key] and second.not_started == [j.key for j in jobs[1:]]
    assert finished(out) == {jobs[0].key}
    third = run_sweep(jobs, out)
    assert third.skipped == [jobs[0].key] and len(third.ran) == len(jobs) - 1 and not third.not_started


def test_failed_prerequisite_stops_its_dependants(tmp_path):
    out = tmp_path / "r.csv"
    jobs = [j for j in smoke_jobs(out) if j.key.split("/")[2] in ("baseline", "block")]
    broken = [jobs[0].__class__(jobs[0].key, ("train", "--arch", "resnet20", "--dataset", "cifar100",
                                              "--data-dir", str(tmp_path / "none"), "--data", "archive"))]
    report = run_sweep(broken + jobs[1:], out)
    assert set(report.failed) == {j.key for j in jobs}
    assert "not started" in report.failed[jobs[1].key]


def test_ray_path_runs_the_smoke_grid(tmp_path):
    pytest.importorskip("ray", reason="Ray is an optional extra (requirements-dev.txt installs it)")
    import ray

    out = tmp_path / "smoke.csv"
    jobs = [j for j in smoke_jobs(out) if j.key.split("/")[2] in ("baseline", "complexity", "uniform")]
    try:
        report = run_sweep(jobs, out, workers=2, ray_address="local")
    finally:
        ray.shutdown()
    assert not report.failed, report.failed
    assert sorted(read_results(out)["method"]) == ["baseline", "complexity", "uniform"]
