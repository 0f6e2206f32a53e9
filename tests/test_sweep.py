import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from elastic import sweep
from elastic.cli import main
from elastic.results import read_results
from elastic.grids import GRIDS, GridOptions
from elastic.sweep import counted_done, dependants_next, finished

REPO = Path(__file__).resolve().parent.parent
# rows the smoke grid writes: baseline, complexity FA, uniform, block and block-l1
# (step 0 and step 1 each), and the four elastic levels
SMOKE_ROWS = {"baseline": 1, "complexity": 1, "uniform": 1, "block": 2, "block-l1": 2, "elastic": 4}


def run_sweep(jobs, out: Path, **options) -> sweep.SweepReport:
    """The sweep as `python -m elastic sweep` runs it: one-worker jobs in this process."""
    return sweep.run_sweep(jobs, out, main=main, **options)


def smoke_jobs(out: Path):
    return GRIDS.get("smoke").make(GridOptions(out))


def test_grids_cover_every_method_and_architecture(tmp_path):
    jobs = GRIDS.get("cifar10").make(GridOptions(tmp_path / "r.csv"))
    keys = {j.name for j in jobs}
    for arch in ("resnet20", "resnet56", "vgg16", "alexnet"):
        assert f"cifar10/{arch}/baseline" in keys
        assert f"cifar10/{arch}/elastic" in keys and f"cifar10/{arch}/elastic-joint" in keys
        for mode in ("PA", "FA", "MA"):
            assert {f"cifar10/{arch}/complexity/{mode}/{t}" for t in (0.3, 0.5, 0.7)} <= keys
    assert "cifar10/resnet56/block" in keys and "cifar10/vgg16/block" not in keys
    image_keys = {j.name for j in GRIDS.get("imagenette").make(GridOptions(tmp_path / "i.csv"))}
    assert "imagenette/resnet50/block-l1" in image_keys
    block = next(j for j in jobs if j.name == "cifar10/resnet20/block")
    assert block.after == ("cifar10/resnet20/baseline",)


def test_smoke_grid_runs_end_to_end(tmp_path):
    out = tmp_path / "smoke.csv"
    report = run_sweep(smoke_jobs(out), out)
    assert not report.failed, report.failed
    frame = read_results(out)
    assert frame["method"].value_counts().to_dict() == SMOKE_ROWS
    assert all(c.startswith(("python -m elastic train", "python -m elastic prune", "python -m elastic grow"))
               for c in frame["command"])                  # each row names its job's command, not the sweep's
    assert finished(out) == {j.key for j in smoke_jobs(out)}
    again = run_sweep(smoke_jobs(out), out)          # everything done: nothing runs
    assert again.ran == [] and len(again.skipped) == len(smoke_jobs(out))
    assert len(read_results(out)) == sum(SMOKE_ROWS.values())


def jobs_running(out: Path) -> list[str]:
    """The command lines of the processes that write into `out` (a sweep's jobs)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            line = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(out) in line and " sweep " not in line:
            found.append(line)
    return found


@pytest.mark.parametrize("workers", ["1", "2"])
def test_killed_sweep_resumes_without_losing_or_duplicating_rows(tmp_path, workers):
    """Killed hard, a sweep resumes where its ledger stopped; with two workers
    its jobs are child processes, and they end with it."""
    out = tmp_path / "smoke.csv"
    cmd = [sys.executable, "-m", "elastic", "sweep", "--grid", "smoke", "--out", str(out), "--workers", workers]
    env = {**os.environ, "ELASTIC_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ledger = out.with_name("smoke.sweep.jsonl")
    deadline = time.time() + 300
    while time.time() < deadline and (not ledger.is_file() or len(ledger.read_text().splitlines()) < 2):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 30
    while jobs_running(out) and time.time() < deadline:
        time.sleep(0.2)
    assert jobs_running(out) == []
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


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_jobs_process_ends_when_its_sweep_is_killed():
    """A job's child process would otherwise train on, unseen, after its sweep
    is killed (jobs print little before their end, so no broken pipe stops them)."""
    code = ("import subprocess, sys, time; from elastic import sweep; "
            "child = subprocess.Popen(['sleep', '60'], preexec_fn=sweep._end_with_the_sweep); "
            "print(child.pid, flush=True); time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 20

    def state() -> str:               # "Z": ended, not yet reaped by whoever adopted it
        try:
            return Path(f"/proc/{child}/stat").read_text().split()[2]
        except OSError:
            return "gone"
    while state() not in ("gone", "Z") and time.time() < deadline:
        time.sleep(0.1)
    assert state() in ("gone", "Z"), f"the job's process is still running ({state()})"


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
    jobs = [j for j in smoke_jobs(out) if j.name.split("/")[2] in ("baseline", "block")]
    broken = [jobs[0].__class__(jobs[0].name, ("train", "--arch", "resnet20", "--dataset", "cifar100",
                                              "--data-dir", str(tmp_path / "none"), "--data", "archive"))]
    report = run_sweep(broken + jobs[1:], out)
    assert set(report.failed) == {broken[0].key, *(j.key for j in jobs[1:])}
    assert "not started" in report.failed[jobs[1].key]


def test_ray_path_runs_the_smoke_grid(tmp_path):
    pytest.importorskip("ray", reason="Ray is an optional extra (requirements-dev.txt installs it)")
    import ray

    out = tmp_path / "smoke.csv"
    jobs = [j for j in smoke_jobs(out) if j.name.split("/")[2] in ("baseline", "complexity", "uniform")]
    try:
        report = run_sweep(jobs, out, workers=2, ray_address="local")
    finally:
        ray.shutdown()
    assert not report.failed, report.failed
    assert sorted(read_results(out)["method"]) == ["baseline", "complexity", "uniform"]


def test_jobs_side_by_side_on_a_cpu_share_its_cores(tmp_path):
    """Two workers on a CPU: each job is a child process with its share of the
    threads, and its row and ledger line say so."""
    assert sweep.cpu_threads(1, 2) is None and sweep.cpu_threads(2, 2) == 1
    assert sweep.cpu_threads(3, 2) == 1 and sweep.cpu_threads(2, 16) == 8
    out = tmp_path / "smoke.csv"
    jobs = [j for j in smoke_jobs(out) if j.name.split("/")[2] in ("baseline", "uniform")]
    report = run_sweep(jobs, out, workers=2, threads=1)
    assert not report.failed, report.failed
    frame = read_results(out)
    assert sorted(frame["method"]) == ["baseline", "uniform"]
    assert all(cpu.endswith(", 1 thread") for cpu in frame["cpu"])
    lines = [json.loads(line) for line in sweep.ledger_path(out).read_text().splitlines()]
    assert [line["threads"] for line in lines] == [1, 1]


def test_the_probe_runs_on_the_threads_a_job_will_have():
    import torch
    from elastic.grids import Work
    seen = []
    before = torch.get_num_threads()
    estimator = sweep.Estimator("fp32", step_seconds=lambda work, precision, threads=None: seen.append(threads) or 1.0,
                                threads=1)
    job = smoke_jobs(Path("unused.csv"))[0]
    assert estimator(job) > 0 and seen == [1]
    assert sweep.probe_step_seconds(Work("cifar10", "resnet20", 8, 1.0), "fp32", steps=1, threads=1) > 0
    assert torch.get_num_threads() == before


def test_the_ledger_runs_a_job_again_when_its_epochs_change(tmp_path):
    out = tmp_path / "smoke.csv"
    one = [j for j in GRIDS.get("smoke").make(GridOptions(out, epochs=1)) if j.name.endswith("/baseline")]
    two = [j for j in GRIDS.get("smoke").make(GridOptions(out, epochs=2)) if j.name.endswith("/baseline")]
    assert one[0].name == two[0].name and one[0].key != two[0].key
    assert run_sweep(one, out).ran == [one[0].key]
    again = run_sweep(two, out)                      # the 1-epoch run does not stand in for the 2-epoch one
    assert again.ran == [two[0].key] and not again.skipped
    assert len(read_results(out)) == 2               # two runs, two rows
    assert run_sweep(one, out).skipped == [one[0].key]


def test_a_sweep_on_auto_precision_counts_a_job_done_in_the_other_arithmetic(tmp_path):
    grid, out = GRIDS.get("cpu"), tmp_path / "cpu.csv"
    fp32 = grid.make(GridOptions(out, extra=("--precision", "fp32")))
    bf16 = grid.make(GridOptions(out, extra=("--precision", "bf16")))
    assert [j.name for j in fp32] == [j.name for j in bf16] and fp32[0].key != bf16[0].key
    ledger = {fp32[0].key}                           # the ResNet-56 baseline, trained in fp32 elsewhere
    assert counted_done(bf16, ledger) == set()       # --precision bf16 named: only bf16 counts
    assert counted_done(bf16, ledger, fp32) == {bf16[0].key}


def test_a_finished_baseline_without_its_checkpoint_counts_only_while_nothing_starts_from_it(tmp_path):
    jobs = [j for j in smoke_jobs(tmp_path / "r.csv") if j.name.split("/")[2] in ("baseline", "block")]
    baseline, block = jobs
    assert block.after == (baseline.name,)
    gone = lambda job: job is baseline               # noqa: E731  its checkpoint is not on this machine
    assert counted_done(jobs, {baseline.key}, needs_again=gone) == set()
    assert counted_done(jobs, {baseline.key, block.key}, needs_again=gone) == {baseline.key, block.key}


def test_jobs_starting_from_a_baseline_that_cannot_ship_run_right_after_it(tmp_path):
    jobs = GRIDS.get("cpu").make(GridOptions(tmp_path / "cpu.csv", extra=("--precision", "fp32")))
    order = [j.name for j in dependants_next(jobs, {"cifar10/alexnet/baseline"})]
    assert sorted(order) == sorted(j.name for j in jobs)                 # nothing lost, nothing twice
    at = order.index("cifar10/alexnet/baseline")
    assert order[at + 1:at + 3] == ["cifar10/alexnet/elastic", "cifar10/alexnet/elastic-joint"]
    others = [n for n in order if n not in ("cifar10/alexnet/elastic", "cifar10/alexnet/elastic-joint")]
    assert others == [j.name for j in jobs if j.name not in order[at + 1:at + 3]]   # the rest keep their order
    assert [j.name for j in dependants_next(jobs[1:], {jobs[0].name})] == [j.name for j in jobs[1:]]


def test_the_sweep_trains_a_baseline_again_when_its_checkpoint_is_gone(tmp_path):
    # A new machine has the ledger and the rows (committed) but not the cache.
    out = tmp_path / "smoke.csv"
    env = {**os.environ, "ELASTIC_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "elastic", "sweep", "--grid", "smoke", "--out", str(out), "--precision", "fp32"]
    first = subprocess.run([*cmd, "--methods", "baseline"], cwd=REPO, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-2000:]
    for path in (tmp_path / "cache" / "checkpoints").glob("*.pt"):
        path.unlink()
    listed = subprocess.run([*cmd, "--methods", "baseline", "block", "--list"], cwd=REPO, env=env,
                            capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert listed.stdout.splitlines()[0].startswith("todo* cifar10/resnet20/baseline")
    again = subprocess.run([*cmd, "--methods", "baseline", "block"], cwd=REPO, env=env, capture_output=True,
                           text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "2 ran, 0 already done, 0 failed" in again.stdout
    assert read_results(out)["method"].value_counts().to_dict() == {"baseline": 1, "block": 2}
    # No deadline, yet on a CPU each job's estimate is recorded beside its seconds, for the next deadline.
    records = [json.loads(line) for line in out.with_name("smoke.sweep.jsonl").read_text().splitlines()]
    assert all(r["estimate"] > 0 and r["factor"] > 0 for r in records)


class FakeClock:
    """Seconds that pass only when a job ends, by the job's expected duration."""
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_deadline_starts_only_jobs_expected_to_fit(tmp_path):
    from elastic.grids import Job, Work

    out = tmp_path / "r.csv"
    work = Work("cifar10", "resnet20", 256, 1.0)
    quick = ("profile", "--arch", "resnet20")        # a real job that takes about a second
    jobs = [Job("a", quick, work=work), Job("long", (*quick, "--dataset", "cifar100"), work=work),
            Job("c", (*quick, "--dataset", "cifar10"), work=work), Job("after-long", quick, after=("long",))]
    expected = {"a": 50.0, "long": 500.0, "c": 30.0}
    clock = FakeClock()

    def on_event(kind, job, report):
        if kind == "done":
            clock.now += expected[job.name]

    report = run_sweep(jobs, out, stop_after=200, estimate=lambda job: expected[job.name], clock=clock,
                       on_event=on_event)
    # a (50 s) fits; long (500 s) does not fit in the 150 s left; c (30 s) does; nothing waits on long
    assert report.ran == [jobs[0].key, jobs[2].key]
    assert report.not_started == [jobs[1].key, jobs[3].key] and not report.failed
    assert report.too_long[jobs[1].key] == 500.0
    records = [json.loads(line) for line in out.with_name("r.sweep.jsonl").read_text().splitlines()]
    assert [r["estimate"] for r in records] == [50.0, 30.0]


def test_the_estimator_counts_what_a_cut_off_run_did(tmp_path, monkeypatch):
    import torch

    from elastic import identity
    from elastic.grids import Work
    from elastic.sweep import Estimator

    monkeypatch.setenv("ELASTIC_CACHE", str(tmp_path))
    run = identity.baseline_name("cifar10", "resnet20", epochs=10, seed=0, data_source="archive")
    work = Work("cifar10", "resnet20", 250, 10, run=run)
    estimate = Estimator("fp32", step_seconds=lambda w, p, threads: 0.1)   # 180 steps an epoch, 0.1 s a step
    job = SimpleNamespace(work=work, key="cifar10/resnet20/baseline@0123abcd")
    assert estimate(job) == pytest.approx(60 + 10 * 180 * 0.1 * 1.5)
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    torch.save({"epoch": 6, "recipe": {"batch_size": 250, "epochs": 10}},
               folder / identity.checkpoint_name(f"{run}/fp32-0123abcd").replace(".pt", ".resume.pt"))
    assert estimate(job) == pytest.approx(60 + 4 * 180 * 0.1 * 1.5)
    torch.save({"epoch": 9, "recipe": {"batch_size": 128, "epochs": 10}},    # another batch size: not this job
               folder / identity.checkpoint_name(f"{run}/fp32-ffffffff").replace(".pt", ".resume.pt"))
    assert estimate(job) == pytest.approx(60 + 4 * 180 * 0.1 * 1.5)


def test_the_estimator_learns_its_factor_from_jobs_of_the_same_kind(tmp_path):
    """Joint training ran 3.6x its estimate on VGG-16; that must not stretch
    the estimate of a complexity job, whose kind ran 1.3x, nor of a uniform
    thinning of VGG-16 (a thinned network trained alike), while AlexNet's
    uniform thinning ran 4.0x."""
    from elastic.sweep import Estimator

    ledger = tmp_path / "r.sweep.jsonl"
    records = [("cifar10/vgg16/complexity/FA/0.5", 1300, 1000, 1.0), ("cifar10/vgg16/elastic-joint", 3600, 1000, 1.0),
               ("cifar10/alexnet/uniform/0.5", 2000, 1000, 2.0), ("cifar10/resnet56/uniform/0.5", 1500, 1000, 1.0),
               ("cifar10/resnet56/block", 1200, 1000, 1.0), ("cifar10/resnet56/elastic", 1100, 1000, 1.0)]
    ledger.write_text("".join(json.dumps({"key": f"{name}@0123abcd", "seconds": seconds, "estimate": estimate,
                                          "factor": factor}) + "\n" for name, seconds, estimate, factor in records)
                      + "not json\n")
    estimate = Estimator("fp32", ledger=ledger, step_seconds=lambda w, p, threads: 0.1)

    def factor(name):
        return estimate.factor_for(SimpleNamespace(key=f"{name}@ffffffff"))
    assert factor("cifar10/vgg16/complexity/MA/0.3") == pytest.approx(1.3)      # same architecture and method
    assert factor("cifar10/resnet56/uniform/0.7") == pytest.approx(1.5)         # its own, not AlexNet's 4.0
    assert factor("cifar10/vgg16/uniform/0.3") == pytest.approx(1.3)            # same architecture and family
    assert factor("cifar10/resnet20/uniform/0.3") == pytest.approx(4.0)         # same method, the worst of them
    assert factor("cifar10/resnet20/block") == pytest.approx(1.2)               # same method
    assert factor("cifar10/resnet56/block-l1") == pytest.approx(1.2)            # same family, not joint's 3.6
    assert factor("cifar10/resnet56/elastic-joint") == pytest.approx(3.6)       # same method, not its elastic's 1.1
    assert factor("cifar10/resnet56/baseline") == pytest.approx(4.0)            # a new kind: the worst of all
    assert Estimator("fp32", step_seconds=lambda w, p, threads: 0.1).factor_for(SimpleNamespace(key="a/b/c@0")) == 1.5


def test_the_cpu_grid_runs_in_the_issue_order(tmp_path):
    from elastic.grids import cpu_stage

    jobs = GRIDS.get("cpu").make(GridOptions(tmp_path / "r.csv"))
    stages = [cpu_stage(j.name) for j in jobs]
    assert stages == sorted(stages) and set(stages) == set("abcdefg")
    names = [j.name for j in jobs]
    assert names[:3] == ["cifar10/resnet56/baseline", "cifar10/alexnet/baseline", "cifar10/vgg16/baseline"]
    assert "cifar10/resnet56/block" in names and "cifar10/vgg16/block" not in names
    assert {"imagenette/resnet50/baseline", "imagenette/resnet50/complexity/FA/0.5",
            "imagenette/resnet50/uniform/0.5", "imagenette/resnet50/block", "imagenette/resnet50/elastic"} \
        == {n for n in names if n.startswith("imagenette")}
    assert not any(n.startswith("cifar10/resnet20/") and cpu_stage(n) not in "fg" for n in names)
    rounded = [j for j in jobs if cpu_stage(j.name) == "f"]     # after a-e: FA 0.5 and uniform 0.5 rounded to 8
    assert {j.name for j in rounded} == {f"cifar10/{a}/{m}/0.5/r8" for a in ("resnet20", "resnet56", "alexnet",
                                                                            "vgg16") for m in ("complexity/FA",
                                                                                               "uniform")}
    assert all(j.argv[j.argv.index("--round-to") + 1] == "8" for j in rounded)
    for job in jobs:         # each dataset's rows in its own file beside the ledger's
        dataset = job.name.split("/")[0]
        assert job.argv[job.argv.index("--out") + 1] == str(tmp_path / f"{dataset}.csv")
    baseline = jobs[0]
    assert "--epochs" in baseline.argv and baseline.argv[baseline.argv.index("--epochs") + 1] == "12"
