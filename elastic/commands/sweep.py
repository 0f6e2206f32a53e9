"""`sweep`: a grid of configurations, run resumably (elastic.sweep does the work)."""
from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from elastic.argtypes import device, integer, number
from elastic.atomic import check_creatable
from elastic.commands.options import add_precision_arg, precision_for
from elastic.errors import ElasticError
from elastic.grids import GRID_METHODS, GRIDS, GridOptions, Job
from elastic.models import ARCHS
from elastic.results import load_all, results_dir
from elastic.runs import find_baseline, shipped_checkpoint_path
from elastic.sweep import (Estimator, counted_done, cpu_threads, dependants_next, finished, ledger_path,
                           run_sweep as run_jobs)
from elastic.train import pick_device


def add_sweep(p: argparse.ArgumentParser) -> None:
    p.add_argument("--grid", required=True, choices=GRIDS.names(), help="which grid of configurations")
    p.add_argument("--out", default=None,
                   help="results CSV (default: cached_results/<grid>.csv; the smoke grid: a temporary folder); "
                        "the ledger of finished jobs is <out>.sweep.jsonl beside it. The cpu grid writes its rows "
                        "to cifar10.csv and imagenette.csv beside --out")
    p.add_argument("--epochs", type=integer(1), default=None, help="override the grid's training epochs")
    p.add_argument("--archs", nargs="*", default=[], choices=ARCHS.names(), help="only these architectures")
    p.add_argument("--methods", nargs="*", default=[], choices=GRID_METHODS,
                   help="only these methods (default: all)")
    p.add_argument("--workers", type=integer(0), default=0,
                   help="jobs at once (default: 4 on a GPU, to keep it busy; 2 on a CPU with 2 cores or "
                        "more). On a CPU the cores are shared out: on 2 cores, two one-thread trainings "
                        "side by side do 1.1-1.8x the work of one two-thread training "
                        "(benchmarks/bench_workers.py); 1 runs the jobs one at a time in this process")
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="run the jobs on a Ray cluster: 'auto', an address, or 'local' to start one here")
    p.add_argument("--device", type=device, default=None, help="passed to every job (cpu, cuda)")
    p.add_argument("--stop-after", type=number(at_least=0), default=None, metavar="MINUTES",
                   help="start a job only if it is expected to end within this many minutes (its "
                        "duration estimated from a probe of this machine, its MACs and epochs); running "
                        "jobs finish, the rest wait for the next run (for machines lent for a fixed time)")
    add_precision_arg(p)
    p.add_argument("--list", action="store_true", help="print the jobs and whether they are done, run nothing")


def baseline_missing(job: Job) -> bool:
    """True for a baseline job whose trained checkpoint is neither in this
    machine's cache nor shipped (a new machine: the jobs that start from it need
    it trained again)."""
    dataset, arch, method, *_ = job.name.split("/")
    if method != "baseline":
        return False
    results = Path(job.argv[job.argv.index("--out") + 1]) if "--out" in job.argv else None
    try:
        find_baseline(dataset, arch, results, synthetic="synthetic" in job.argv)
    except ElasticError:
        return True
    return False


def shipped_baselines() -> set[tuple[str, str]]:
    """The (dataset, architecture) pairs whose trained baseline ships in
    cached_results/checkpoints (small enough to commit)."""
    frame = load_all()[0]
    rows = frame[frame["method"] == "baseline"]
    return {(r["dataset"], r["arch"]) for r in rows.to_dict("records")
            if shipped_checkpoint_path(r["run_id"]).is_file()}


def run_sweep(args: argparse.Namespace, main: Callable[[list[str]], int]) -> None:
    """`main` (the command line's entry point) runs one-worker jobs in this process."""
    if args.out:
        out = Path(args.out)
    elif args.grid == "smoke":
        out = Path(tempfile.mkdtemp(prefix="elastic-smoke-")) / "smoke.csv"
    else:
        out = results_dir() / f"{args.grid}.csv"
    if out.is_dir():
        raise ElasticError(f"--out {out} is a folder; name a results file, e.g. {out / 'results.csv'}")
    check_creatable(out.parent, f"--out {out}")
    # Resolved once, here: every job trains in the same arithmetic and its key says which.
    on = pick_device(args.device or "auto")
    precision = precision_for(args, on)
    extra = (*(("--device", args.device) if args.device else ()), "--precision", precision)
    opts = GridOptions(out, args.epochs, tuple(args.archs), tuple(args.methods), extra)
    grid = GRIDS.get(args.grid)
    jobs = grid.make(opts)
    twins = []
    if args.precision == "auto":       # a job done in the other arithmetic counts as done
        other = {"fp32": "bf16", "bf16": "fp32"}[precision]
        twins = grid.make(replace(opts, extra=(*extra[:-1], other)))
    ledger = finished(out)
    done = counted_done(jobs, ledger, twins, needs_again=baseline_missing)
    # A baseline too large to ship lives in this cache only: what starts from it runs next.
    shipped = shipped_baselines()
    jobs = dependants_next(jobs, {job.name for job in jobs if job.name.split("/")[2] == "baseline"
                                  and tuple(job.name.split("/")[:2]) not in shipped})
    if args.list:
        recorded = counted_done(jobs, ledger, twins)
        for job in jobs:
            state = "done" if job.key in done else "todo*" if job.key in recorded else "todo"
            print(f"{state:<5} {job.name:<40} {job.command}")
        if recorded - done:
            print("todo*: finished, but its checkpoint is not on this machine and a job still to run starts from it")
        return
    workers = args.workers or (4 if torch.cuda.is_available() else min(2, torch.get_num_threads()))
    bar = tqdm(total=len(jobs), initial=len([j for j in jobs if j.key in done]), desc=f"sweep {args.grid}",
               file=sys.stderr)

    def on_event(kind, job, report) -> None:
        if kind == "start":
            bar.write(f"start {job.name}")
        else:
            bar.update(1)
        if kind == "failed":
            bar.write(f"FAILED {job.key}:\n{report.failed[job.key]}")
    stop_after = None if args.stop_after is None else args.stop_after * 60
    # On a CPU every job is estimated, with or without a deadline: the ledger records the
    # estimate beside the seconds, and the next deadline learns its factor from them.
    threads = cpu_threads(workers, torch.get_num_threads()) if on.type == "cpu" and not args.ray else None
    estimate = (Estimator(precision, ledger_path(out), threads=threads)
                if stop_after is not None or on.type == "cpu" else None)
    report = run_jobs(jobs, out, workers=workers, ray_address=args.ray, stop_after=stop_after, estimate=estimate,
                      on_event=on_event, main=main, done=done, threads=threads)
    bar.close()
    left = f", {len(report.not_started)} left for the next run" if report.not_started else ""
    for key in [k for k in report.not_started if k in report.too_long][:5]:
        print(f"not started: {key.split('@')[0]} is expected to take {report.too_long[key] / 60:.0f} min, "
              f"more than was left")
    print(f"{len(report.ran)} ran, {len(report.skipped)} already done, {len(report.failed)} failed{left} "
          f"in {report.seconds / 60:.1f} min; results in {out}")
    if report.failed:
        raise ElasticError(f"{len(report.failed)} job(s) failed: {', '.join(report.failed)}; "
                           f"run the same command again to retry them")
