"""Resumable sweeps over a grid (elastic.grids).

Every job writes its own result rows atomically. The sweep keeps a ledger of
finished jobs next to the results, so a killed sweep resumes with the jobs it
had not finished, and no finished row is lost or written twice (rows are keyed
by run_id and replaced, never appended twice).

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
from typing import Callable

from elastic.data import REPO_ROOT
from elastic.errors import ElasticError
from elastic.grids import Job, Work


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


def mark_finished(results: Path, job: Job, seconds: float, estimate: float | None = None,
                  factor: float | None = None, threads: int | None = None) -> None:
    """Append one line; O_APPEND writes of one short line are atomic on Linux.
    `estimate` is the seconds the job was expected to take, with the Estimator's
    `factor` in it; `threads`, the CPU threads the job had beside other jobs."""
    record = {"key": job.key, "command": job.command, "seconds": round(seconds, 1),
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if estimate:
        record.update(estimate=round(estimate, 1), factor=factor)
    if threads:
        record.update(threads=threads)
    line = json.dumps(record) + "\n"
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
    too_long: dict[str, float] = field(default_factory=dict)  # key -> expected seconds, more than the time left
    seconds: float = 0.0


def run_job(argv: tuple[str, ...], threads: int | None = None) -> tuple[int, str]:
    """Run one job as a child process, with `threads` CPU threads if given (its
    share of the cores beside other jobs); returns (exit code, tail of its output)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)} if threads else None
    proc = subprocess.run([sys.executable, "-m", "elastic", *argv], cwd=REPO_ROOT,
                          capture_output=True, text=True, env=env, preexec_fn=_end_with_the_sweep)
    return proc.returncode, _tail(proc.stdout + proc.stderr)


def _end_with_the_sweep() -> None:
    """In a job's child process, before it starts (Linux): be sent SIGTERM when
    the sweep's thread that started it ends, so that a killed sweep leaves no
    training running on (its last finished epoch stays in the resume file)."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))     # 1: PR_SET_PDEATHSIG


def cpu_threads(workers: int, cores: int) -> int | None:
    """The threads each of `workers` jobs side by side on a CPU gets: its share of
    the `cores` (at least one); None for one worker, which keeps torch's default.
    Small convolutions parallelise badly, so two one-thread trainings on two
    cores do more work than one two-thread training (benchmarks/bench_workers.py)."""
    return max(1, cores // workers) if workers > 1 else None


def run_job_here(argv: tuple[str, ...], main: Callable[[list[str]], int]) -> tuple[int, str]:
    """Run one job in this process with the command line's `main` (no interpreter
    start-up: the smoke grid and one-worker sweeps); any exception counts as a
    failed job."""
    import contextlib
    import io
    import traceback

    out = io.StringIO()
    saved, sys.argv = sys.argv, ["elastic", *argv]     # the rows record the job's command, not the sweep's
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            code = main(list(argv))
        except Exception:  # a bug in one job must not stop the sweep
            traceback.print_exc()
            code = 1
        finally:
            sys.argv = saved
    return code, _tail(out.getvalue())


def _tail(output: str) -> str:
    return "\n".join(output.strip().splitlines()[-5:])


def run_sweep(jobs: list[Job], results: Path, *, workers: int = 1, ray_address: str | None = None,
              stop_after: float | None = None, estimate: Callable[[Job], float] | None = None,
              clock: Callable[[], float] = time.perf_counter,
              on_event: Callable[[str, Job, SweepReport], None] | None = None,
              main: Callable[[list[str]], int] | None = None, done: set[str] | None = None,
              threads: int | None = None) -> SweepReport:
    """Run the jobs not yet in the ledger, respecting `after`, `workers` at a time
    (or on Ray). A job whose prerequisite failed is not started.

    done: the keys that count as finished (default: the ledger's; see
    `counted_done` for a sweep whose precision is 'auto').

    stop_after: seconds from now after which no job is started; those running
    finish and the rest are left for the next run (for time-boxed machines). With
    `estimate` (job -> expected seconds), a job starts only if it is expected to
    end within that time; a later, shorter job may start in its place.

    main: the command line's entry point; with it and one worker, jobs run in
    this process, else each in a child process (with `threads` CPU threads, if
    given: `cpu_threads`)."""
    report = SweepReport()
    started = clock()
    done = set(finished(results) if done is None else done)
    pending = []
    for job in jobs:
        (report.skipped if job.key in done else pending).append(job.key if job.key in done else job)
    by_name = {j.name: j for j in jobs}
    submit, wait = (_ray_pool(ray_address) if ray_address else _local_pool(workers, main, threads))
    running: dict[object, tuple[Job, float, float]] = {}
    while pending or running:
        left = None if stop_after is None else stop_after - (clock() - started)
        if left is not None and left <= 0:
            report.not_started += [job.key for job in pending]
            pending = []
        for job in list(pending):
            prereqs = [by_name[n] for n in job.after if n in by_name]
            blocked = [p.key for p in prereqs if p.key not in done]
            if any(k in report.failed for k in blocked):
                pending.remove(job)
                report.failed[job.key] = f"not started: {blocked[0]} failed"
                continue
            if blocked or len(running) >= max(workers, 1):
                continue
            expected = estimate(job) if estimate is not None and job.work is not None else 0.0
            if left is not None and expected > left:
                report.too_long[job.key] = expected        # would not end in time: try the next one
                continue
            pending.remove(job)
            if on_event:          # before submit: a one-worker pool runs the job inside submit
                on_event("start", job, report)
            running[submit(job)] = (job, clock(), expected)
        if not running:
            report.not_started += [job.key for job in pending]
            break
        handle, code, tail = wait(list(running))
        job, t0, expected = running.pop(handle)
        if code == 0:
            factor = estimate.factor_for(job) if hasattr(estimate, "factor_for") else None
            mark_finished(results, job, clock() - t0, expected, factor, None if ray_address else threads)
            done.add(job.key)
            report.ran.append(job.key)
        else:
            report.failed[job.key] = tail
        if on_event:
            on_event("done" if code == 0 else "failed", job, report)
    report.seconds = clock() - started
    return report


def counted_done(jobs: list[Job], ledger: set[str], twins: list[Job] = (),
                 needs_again: Callable[[Job], bool] = lambda job: False) -> set[str]:
    """The keys of `jobs` that a sweep counts as finished: those in the ledger,
    and those whose twin (the job of the same name in `twins`: the same job in
    the other arithmetic) is, for a sweep that lets the machine pick its
    precision (a row trained in fp32 on one machine is not trained again in bf16
    on the next). A finished job that a job still to run starts from, and that
    `needs_again` (its checkpoint is not on this machine), is not counted: it
    runs again first."""
    twin_keys = {twin.name: twin.key for twin in twins}
    done = {job.key for job in jobs if job.key in ledger or twin_keys.get(job.name) in ledger}
    waiting = {name for job in jobs if job.key not in done for name in job.after}
    return {job.key for job in jobs if job.key in done and not (job.name in waiting and needs_again(job))}


def dependants_next(jobs: list[Job], first: set[str]) -> list[Job]:
    """`jobs` in their order, except that the jobs starting from one named in
    `first` run right after it (in their own order): for a baseline whose
    checkpoint lives only in this machine's cache (too large to ship), whose
    dependants would otherwise wait behind other work and find it gone on the
    next machine."""
    names = set(first) & {job.name for job in jobs}
    pulled = {job.name for job in jobs if names & set(job.after)}
    out = []
    for job in jobs:
        if job.name in pulled:
            continue
        out.append(job)
        if job.name in names:
            out += [j for j in jobs if job.name in j.after]
    return out


def _family(method: str) -> str:
    """A method's family in the registry ("" for the baseline or a name it does not know)."""
    from elastic.methods import METHODS
    return METHODS.get(method).family if method in METHODS.names() else ""


def job_kind(key: str) -> tuple[str, str]:
    """(architecture, method) of a job's name or ledger key ('cifar10/resnet56/complexity/FA/0.5@1a2b3c4d')."""
    parts = key.split("@")[0].split("/")
    return (parts[1], parts[2]) if len(parts) >= 3 else ("", key)


class Estimator:
    """Expected seconds of a job on this machine: its work (`Work`) times the
    step time of its architecture, measured here by a probe (a few training steps
    on random images, in the precision the jobs use), times a factor learnt from
    the jobs this ledger has seen finish (`factor_for`: their seconds over their
    estimate; 1.5 before any has: data, augmentation and evaluation on top of
    the pure step). With `threads` (jobs side by side on a CPU, each with its
    share of the cores) the probe runs on that many threads."""

    def __init__(self, precision: str, ledger: Path | None = None,
                 step_seconds: Callable[..., float] | None = None, threads: int | None = None):
        self.precision = precision
        self.measure = step_seconds or probe_step_seconds
        self.threads = threads
        self.steps: dict[tuple, float] = {}
        self.ratios: list[tuple[tuple[str, str], float]] = []     # (architecture, method), in ledger order
        if ledger is not None and ledger.is_file():
            for line in ledger.read_text().splitlines():
                try:
                    record = json.loads(line)
                    if record.get("estimate") and record.get("factor"):
                        ratio = record["seconds"] / record["estimate"] * record["factor"]
                        self.ratios.append((job_kind(record["key"]), ratio))
                except (ValueError, KeyError, TypeError, ZeroDivisionError):
                    continue

    def factor_for(self, job: Job) -> float:
        """The worst of the last five ratios (seconds over the estimate without
        a factor) of finished jobs of the same architecture and method, else (for
        filter pruning: uniform thinning and complexity pruning train one thinned
        network alike) of that family on the same architecture, else of the same method, else
        of the same family (block and its L1 proxy), else of any: a deadline is a
        promise, but one kind of job that the step model misjudges (joint training
        trains every level; thin ResNets run far below their MAC share) must not
        stretch the others."""
        arch, method = job_kind(job.key)
        family = _family(method)
        for same in (lambda kind: kind == (arch, method),
                     lambda kind: family == "filters" and kind[0] == arch and _family(kind[1]) == family,
                     lambda kind: kind[1] == method,
                     lambda kind: family and _family(kind[1]) == family, lambda kind: True):
            found = [ratio for kind, ratio in self.ratios if same(kind)]
            if found:
                return max(found[-5:])
        return 1.5

    def __call__(self, job: Job) -> float:
        from elastic.data import DATASETS
        work = job.work
        key = (work.dataset, work.arch, work.batch)
        if key not in self.steps:
            self.steps[key] = self.measure(work, self.precision, threads=self.threads)
        spec = DATASETS.get(work.dataset)
        train_images = {"cifar": 45000, "imagenette": 8522}[spec.family]
        steps = work.epochs * (1.0 - self.done(work)) * train_images / work.batch
        # Small widths do not speed up in proportion to their MACs (CPU efficiency is about 0.5).
        return 60.0 + steps * self.steps[key] * (0.25 + 0.75 * work.scale) * self.factor_for(job)

    def done(self, work: Work) -> float:
        """The fraction of a single training that a cut-off run of it has done:
        the furthest epoch among its resume files in the cache with the job's
        batch size, epochs and precision."""
        if not work.run:
            return 0.0
        import torch

        from elastic.data import cache_dir
        from elastic.identity import checkpoint_name
        stem = checkpoint_name(f"{work.run}/{self.precision}").removesuffix(".pt")
        best = 0
        for path in (cache_dir() / "checkpoints").glob(f"{stem}-*.resume.pt"):
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
                recipe = state["recipe"]
                if recipe["batch_size"] == work.batch and recipe["epochs"] == work.epochs:
                    best = max(best, int(state["epoch"]))
            except Exception:  # an unreadable file says nothing about progress
                continue
        return min(best / work.epochs, 1.0)


def probe_step_seconds(work: Work, precision: str, steps: int = 3, threads: int | None = None) -> float:
    """Median of `steps` training steps (after one to warm up) of the full
    architecture on random images of the dataset's size, on `threads` CPU
    threads if given (torch's default otherwise)."""
    import torch
    from torch import nn

    from elastic.data import DATASETS
    from elastic.models import build_model
    from elastic.precision import autocast
    spec = DATASETS.get(work.dataset)
    torch.manual_seed(0)
    model = build_model(work.arch, spec.num_classes).train()
    x = torch.randn(work.batch, 3, spec.input_size, spec.input_size)
    y = torch.randint(0, spec.num_classes, (work.batch,))
    if precision == "bf16":
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    times = []
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        for _ in range(steps + 1):
            t0 = time.perf_counter()
            with autocast("cpu", precision):
                loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(before)
    return sorted(times[1:])[len(times[1:]) // 2]


def _local_pool(workers: int, main: Callable[[list[str]], int] | None, threads: int | None = None):
    """One worker and `main`: jobs run in this process, one after the other.
    Else child processes (more workers: trainings side by side, on one GPU or
    on a CPU's cores, `threads` each)."""
    from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

    pool = ThreadPoolExecutor(max(workers, 1))

    def submit(job: Job):
        if workers <= 1 and main is not None:
            future: Future = Future()
            future.set_result(run_job_here(job.argv, main))
            return future
        return pool.submit(run_job, job.argv, threads)

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
