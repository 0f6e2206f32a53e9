"""Grids of configurations, run as resumable sweeps.

A grid is a list of jobs; a job is one `python -m elastic ...` command (a baseline,
a pruning run, an elastic grow) that writes its own result rows atomically. The
sweep keeps a ledger of finished jobs next to the results, so a killed sweep
resumes with the jobs it had not finished, and no finished row is lost or written
twice (rows are keyed by run_id and replaced, never appended twice).

Jobs run as local processes (several at once on a GPU, to keep it busy) or on a
Ray cluster (`--ray auto` or an address). Jobs that start from a trained baseline
wait for it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from elastic.errors import ElasticError
from elastic.registry import Registry

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Job:
    key: str                       # stable name, recorded in the ledger when finished
    argv: tuple[str, ...]          # arguments of `python -m elastic`
    after: tuple[str, ...] = ()    # keys of jobs that must finish first

    @property
    def command(self) -> str:
        return "python -m elastic " + " ".join(self.argv)


@dataclass(frozen=True)
class Grid:
    name: str
    description: str
    make: Callable[["GridOptions"], list[Job]]


@dataclass(frozen=True)
class GridOptions:
    results: Path                  # the results CSV every job appends to
    epochs: int | None = None      # override the grid's training epochs (e.g. short CPU runs)
    archs: tuple[str, ...] = ()    # restrict to these architectures
    methods: tuple[str, ...] = ()  # restrict to these methods
    extra: tuple[str, ...] = field(default=())  # extra arguments for every job (e.g. --device cuda)


GRIDS: Registry[Grid] = Registry("grid")

TARGETS = (0.3, 0.5, 0.7)
RESIDUAL = ("resnet20", "resnet56", "resnet50")


def method_jobs(dataset: str, arch: str, epochs: int, opts: GridOptions, *, ft_epochs: int,
                grow_epochs: int, batch: int, data: tuple[str, ...] = (), block_limit: tuple[str, ...] = (),
                targets: Iterable[float] = TARGETS, modes: Iterable[str] = ("PA", "FA", "MA")) -> list[Job]:
    """Every method of the product for one (dataset, arch)."""
    common = ("--arch", arch, "--dataset", dataset, "--batch-size", str(batch), *data,
              "--out", str(opts.results), *opts.extra)
    base = f"{dataset}/{arch}/baseline"
    jobs = [Job(base, ("train", *common, "--epochs", str(epochs)))]
    for target in targets:
        for mode in modes:
            jobs.append(Job(f"{dataset}/{arch}/complexity/{mode}/{target}",
                            ("prune", "--method", "complexity", "--mode", mode, "--target", str(target),
                             "--epochs", str(epochs), *common)))
        jobs.append(Job(f"{dataset}/{arch}/uniform/{target}",
                        ("prune", "--method", "uniform", "--target", str(target),
                         "--epochs", str(epochs), *common)))
    if arch in RESIDUAL:
        for method in ("block", "block-l1"):
            jobs.append(Job(f"{dataset}/{arch}/{method}", (
                "prune", "--method", method, "--target", "0.5", "--ft-epochs", str(ft_epochs),
                *block_limit, *common), after=(base,)))
    for joint in (False, True):
        name = "elastic-joint" if joint else "elastic"
        jobs.append(Job(f"{dataset}/{arch}/{name}", (
            "grow", *common, "--epochs", str(grow_epochs), *(("--joint",) if joint else ())),
            after=(base,)))
    keep = [j for j in jobs if not opts.methods or j.key.split("/")[2] in opts.methods]
    return keep


def _cifar10(opts: GridOptions) -> list[Job]:
    epochs = opts.epochs or 60
    jobs = []
    for arch in ("resnet20", "resnet56", "vgg16", "alexnet"):
        if not opts.archs or arch in opts.archs:
            jobs += method_jobs("cifar10", arch, epochs, opts, ft_epochs=max(epochs // 12, 1),
                                grow_epochs=max(epochs // 6, 1), batch=256)
    return jobs


def _imagenette(opts: GridOptions) -> list[Job]:
    epochs = opts.epochs or 40
    jobs = []
    for arch in ("resnet50", "vgg16_bn"):
        if not opts.archs or arch in opts.archs:
            jobs += method_jobs("imagenette", arch, epochs, opts, ft_epochs=max(epochs // 10, 1),
                                grow_epochs=max(epochs // 5, 1), batch=128)
    return jobs


def _smoke(opts: GridOptions) -> list[Job]:
    """Tiny and synthetic: every method once on ResNet-20, in seconds."""
    jobs = method_jobs("cifar10", "resnet20", opts.epochs or 1, opts, ft_epochs=1, grow_epochs=1,
                       batch=64, data=("--data", "synthetic"), block_limit=("--max-blocks", "1"),
                       targets=(0.5,), modes=("FA",))
    return [j for j in jobs if not j.key.endswith("elastic-joint")]


GRIDS.add("smoke", Grid("smoke", "ResNet-20 on synthetic data, every method once (seconds)", _smoke))
GRIDS.add("cifar10", Grid("cifar10", "CIFAR-10: ResNet-20/56, VGG-16, AlexNet x every method", _cifar10))
GRIDS.add("imagenette", Grid("imagenette", "Imagenette: ResNet-50, VGG-16-BN x every method", _imagenette))


# ---- the ledger of finished jobs ---------------------------------------------------

def ledger_path(results: Path) -> Path:
    return results.with_name(results.stem + ".sweep.jsonl")


def finished(results: Path) -> set[str]:
    path = ledger_path(results)
    if not path.is_file():
        return set()
    keys = set()
    for line in path.read_text().splitlines():
        try:
            keys.add(json.loads(line)["key"])
        except (ValueError, KeyError):
            continue  # a torn last line from a killed sweep is ignored
    return keys


def mark_finished(results: Path, job: Job, seconds: float) -> None:
    """Append one line; O_APPEND writes of one short line are atomic on Linux."""
    line = json.dumps({"key": job.key, "command": job.command, "seconds": round(seconds, 1),
                       "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n"
    fd = os.open(ledger_path(results), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


# ---- running -----------------------------------------------------------------------

@dataclass
class SweepReport:
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)   # key -> last lines of its output
    not_started: list[str] = field(default_factory=list)  # left for the next run by stop_after
    seconds: float = 0.0


def run_job(argv: tuple[str, ...]) -> tuple[int, str]:
    """Run one job as a child process; returns (exit code, tail of its output)."""
    proc = subprocess.run([sys.executable, "-m", "elastic", *argv], cwd=REPO_ROOT,
                          capture_output=True, text=True)
    return proc.returncode, _tail(proc.stdout + proc.stderr)


def run_job_here(argv: tuple[str, ...]) -> tuple[int, str]:
    """Run one job in this process (no interpreter start-up: the smoke grid and
    one-worker sweeps); any exception counts as a failed job."""
    import contextlib
    import io
    import traceback

    from elastic.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            code = main(list(argv))
        except Exception:  # a bug in one job must not stop the sweep
            traceback.print_exc()
            code = 1
    return code, _tail(out.getvalue())


def _tail(output: str) -> str:
    return "\n".join(output.strip().splitlines()[-5:])


def run_sweep(jobs: list[Job], results: Path, *, workers: int = 1, ray_address: str | None = None,
              stop_after: float | None = None,
              on_event: Callable[[str, Job, SweepReport], None] | None = None) -> SweepReport:
    """Run the jobs not yet in the ledger, respecting `after`, `workers` at a time
    (or on Ray). A job whose prerequisite failed is not started. After
    `stop_after` seconds no job is started; those running finish, and the rest
    are left for the next run (for time-boxed machines)."""
    report = SweepReport()
    started = time.perf_counter()
    done = finished(results)
    pending = []
    for job in jobs:
        (report.skipped if job.key in done else pending).append(job.key if job.key in done else job)
    keys = {j.key for j in jobs}
    submit, wait = (_ray_pool(ray_address) if ray_address else _local_pool(workers))
    running: dict[object, tuple[Job, float]] = {}
    while pending or running:
        if stop_after is not None and time.perf_counter() - started >= stop_after:
            report.not_started += [job.key for job in pending]
            pending = []
        for job in list(pending):
            blocked = [k for k in job.after if k in keys and k not in done]
            if any(k in report.failed for k in blocked):
                pending.remove(job)
                report.failed[job.key] = f"not started: {blocked[0]} failed"
                continue
            if not blocked and len(running) < max(workers, 1):
                pending.remove(job)
                running[submit(job)] = (job, time.perf_counter())
                if on_event:
                    on_event("start", job, report)
        if not running:
            break
        handle, code, tail = wait(list(running))
        job, t0 = running.pop(handle)
        if code == 0:
            mark_finished(results, job, time.perf_counter() - t0)
            done.add(job.key)
            report.ran.append(job.key)
        else:
            report.failed[job.key] = tail
        if on_event:
            on_event("done" if code == 0 else "failed", job, report)
    report.seconds = time.perf_counter() - started
    return report


def _local_pool(workers: int):
    """One worker: jobs run in this process, one after the other. More: child
    processes, so that trainings run side by side (e.g. on one GPU)."""
    from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

    pool = ThreadPoolExecutor(max(workers, 1))

    def submit(job: Job):
        if workers <= 1:
            future: Future = Future()
            future.set_result(run_job_here(job.argv))
            return future
        return pool.submit(run_job, job.argv)

    def wait_one(handles):
        finished_, _ = wait(handles, return_when=FIRST_COMPLETED)
        handle = next(iter(finished_))
        return (handle, *handle.result())
    return submit, wait_one


def _ray_pool(address: str):
    try:
        import ray
    except ImportError:
        raise ElasticError("Ray is not installed: pip install -r requirements-dev.txt "
                           "(or pip install ray), or run without --ray") from None
    if not ray.is_initialized():
        ray.init(address=None if address == "local" else address, include_dashboard=False,
                 runtime_env={"working_dir": None}, log_to_driver=False, ignore_reinit_error=True)
    remote = ray.remote(num_cpus=1)(run_job)

    def submit(job: Job):
        return remote.remote(job.argv)

    def wait_one(handles):
        ready, _ = ray.wait(handles, num_returns=1)
        return (ready[0], *ray.get(ready[0]))
    return submit, wait_one
