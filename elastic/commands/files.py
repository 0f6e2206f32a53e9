"""`check` (what a file is) and `ship` (a row's trained checkpoint into cached_results)."""
from __future__ import annotations

import argparse
import sys

from elastic import identity
from elastic.data import cache_dir, load_dataset
from elastic.errors import ElasticError
from elastic.filecheck import check_file, with_recorded
from elastic.results import load_all, results_dir
from elastic.shipping import ship


def add_check(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="a model checkpoint, training resume file, elastic checkpoint, or TorchScript / ONNX export")


def run_check(args: argparse.Namespace) -> None:
    frame = load_all(results_dir())[0]
    refused = []
    for name in args.files:
        try:
            report = check_file(name)
        except ElasticError as err:
            if len(args.files) == 1:
                raise
            print(f"error: {err}", file=sys.stderr)
            refused.append(name)
            continue
        print("\n".join(with_recorded(report, frame).lines()))
    if refused:
        raise ElasticError(f"{len(refused)} of {len(args.files)} files are not files Elastic writes")


def add_ship(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_ids", nargs="+", metavar="RUN_ID",
                   help="results rows whose trained checkpoint ships (an elastic run: its run or any level id)")
    p.add_argument("--half", action="store_true",
                   help="store float weights in half precision (shipped only if every row's accuracy holds)")
    p.add_argument("--data-dir", default=None, help="folder holding the dataset archive (default: as train)")


def run_ship(args: argparse.Namespace) -> None:
    frame = load_all(results_dir())[0]
    folder = results_dir() / "checkpoints"
    unknown = [r for r in args.run_ids if not (frame["run_id"] == r).any()
               and not any(identity.is_level_of(k, r) for k in frame["run_id"])]
    if unknown:
        raise ElasticError(f"no results row has run id {unknown[0]!r} in {results_dir()}")
    datasets = {}
    for run_id in args.run_ids:
        dataset = run_id.split("/", 1)[0]
        if dataset not in datasets:
            datasets[dataset] = load_dataset(dataset, args.data_dir)
        print(f"{run_id}:")
        entry = ship(run_id, frame, datasets[dataset], folder, half=args.half,
                     sources=[cache_dir() / "checkpoints", folder])
        print(f"  shipped {entry['bytes'] / 1024:.0f} KB ({entry['storage']}) to {folder}")
