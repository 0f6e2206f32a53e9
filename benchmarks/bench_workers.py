"""Training jobs side by side on a CPU: one job on every thread against N jobs at
once with the threads shared out, as `python -m elastic sweep --workers N` runs
them on a CPU.

For each network (the unpruned architecture, and with --prune also the
complexity-driven plan MODE:TARGET of it) it times, in child processes, an epoch
slice of `elastic.train.train` over the real training split (synthetic images if
the dataset is not on disk) with its validation slice, in the arithmetic
`--precision auto` picks, and prints
- alone: images/s of one job on every thread;
- side by side: images/s of N jobs at once, each on its share of the threads, summed;
- gain: side by side over alone (above 1: `--workers N` does more work per hour).

    nice -n 10 python benchmarks/bench_workers.py [--archs resnet56 alexnet] [--prune FA:0.3] [--workers 2]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ARCHS = {"resnet20": ("cifar10", 256), "resnet56": ("cifar10", 256), "vgg16": ("cifar10", 256),
         "alexnet": ("cifar10", 256), "resnet50": ("imagenette", 64)}


def child(arch: str, prune: str, batches: int) -> None:
    """One timed epoch slice; prints {"images_per_s": ...} as its last line."""
    import torch

    from elastic.data import DataNotFound, load_dataset
    from elastic.methods.complexity import FilterOptions, complexity_plan
    from elastic.models import build_model
    from elastic.precision import resolve
    from elastic.train import Recipe, train
    dataset, batch = ARCHS[arch]
    try:
        data = load_dataset(dataset)
    except DataNotFound:
        data = load_dataset(dataset, source="synthetic", synthetic_size=2 * batch * batches)
    config = None
    if prune:
        mode, target = prune.split(":")
        config = complexity_plan(arch, data.num_classes, FilterOptions(mode=mode, target=float(target))).config
    images = batch * batches
    train_set = data.train.head(images, 0)
    val_set = data.val.head(max(1, round(images * len(data.val) / len(data.train))), 0)
    recipe = Recipe(epochs=1, batch_size=batch, precision=resolve("auto", "cpu"))
    torch.manual_seed(0)
    model = build_model(arch, data.num_classes, config)
    train(model, data.train.head(batch, 0), data.spec, recipe)           # warm-up: first-call costs
    start = time.perf_counter()
    train(model, train_set, data.spec, recipe, val_set=val_set)
    print(json.dumps({"images_per_s": images / (time.perf_counter() - start)}))


def side_by_side(arch: str, prune: str, batches: int, jobs: int, threads: int) -> float:
    """Summed images/s of `jobs` child processes started together, `threads` each."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    argv = [sys.executable, __file__, "--child", arch, "--prune", prune, "--epoch-batches", str(batches)]
    procs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True) for _ in range(jobs)]
    rates = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"a timed job of {arch} failed (exit {proc.returncode})")
        rates.append(json.loads(out.strip().splitlines()[-1])["images_per_s"])
    return sum(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="*", default=["resnet56", "alexnet"], choices=list(ARCHS))
    parser.add_argument("--prune", default="", metavar="MODE:TARGET",
                        help="also time the complexity-driven plan of each network, e.g. FA:0.3")
    parser.add_argument("--workers", type=int, default=2, help="jobs side by side")
    parser.add_argument("--epoch-batches", type=int, default=12, help="batches in each timed epoch slice")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.prune, args.epoch_batches)
        return
    if args.prune:
        mode, _, target = args.prune.partition(":")
        if mode not in ("PA", "FA", "MA") or not target.replace(".", "", 1).isdigit():
            parser.exit(2, f"--prune {args.prune}: expected MODE:TARGET, e.g. FA:0.3\n")

    import torch

    from elastic.precision import cpu_name, resolve
    cores = torch.get_num_threads()
    threads = max(1, cores // args.workers)
    print(f"CPU: {cpu_name()}; {cores} threads; arithmetic: {resolve('auto', 'cpu')}; "
          f"{args.workers} jobs side by side, {threads} thread(s) each; load average {os.getloadavg()[0]:.2f}")
    header = f"{'network':<18} {'alone img/s':>11} {'side by side img/s':>18} {'gain':>6}"
    print(header)
    print("-" * len(header))
    for arch in args.archs:
        for prune in ["", args.prune] if args.prune else [""]:
            alone = side_by_side(arch, prune, args.epoch_batches, 1, cores)
            together = side_by_side(arch, prune, args.epoch_batches, args.workers, threads)
            name = f"{arch} {prune}".strip()
            print(f"{name:<18} {alone:>11.0f} {together:>18.0f} {together / alone:>5.2f}x", flush=True)


if __name__ == "__main__":
    main()
