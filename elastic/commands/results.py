"""`table`: the measured rows of each architecture, as a table to read or paste."""
from __future__ import annotations

import argparse
from pathlib import Path

from elastic import catalog, explore
from elastic.data import DATASETS
from elastic.errors import ElasticError
from elastic.models import ARCHS
from elastic.results import load_all, results_dir


def add_table(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", type=Path, default=None, help="results folder (default: cached_results/)")
    p.add_argument("--dataset", choices=DATASETS.names(), default="cifar10", help="default: %(default)s")
    p.add_argument("--archs", nargs="+", choices=ARCHS.names(), default=None,
                   help="default: every architecture with rows")


def run_table(args: argparse.Namespace) -> None:
    folder = args.results or results_dir()
    frame, problems = load_all(folder)
    if problems:
        raise ElasticError(problems[0])
    if frame.empty:
        raise ElasticError(f"no results in {folder}")
    frame = explore.prepare(frame)
    archs = args.archs or explore.archs(frame, args.dataset) or catalog.archs_for(args.dataset)
    for arch in archs:
        table = explore.measured_table(frame, dataset=args.dataset, arch=arch)
        print(f"### {arch} on {args.dataset}\n")
        print(explore.markdown(table) if len(table) else "not yet run: " + "; ".join(
            explore.run_commands(args.dataset, arch)))
        print()
