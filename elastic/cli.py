"""`python -m elastic COMMAND ...`: a thin command line over the package.

Each command is a pair of functions, `add_<name>(parser)` and `run_<name>(args)`,
listed in COMMANDS. User errors (ElasticError) print one line and exit 2.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable

import torch

from elastic.argtypes import OneLineParser, device, integer, number
from elastic.atomic import check_creatable
from elastic.errors import ElasticError


# ---- shared options ---------------------------------------------------------------

def add_model_args(p: argparse.ArgumentParser, *, arch: str | None = "resnet20") -> None:
    from elastic.data import DATASETS
    from elastic.models import ARCHS
    p.add_argument("--arch", default=arch, required=arch is None, choices=ARCHS.names(),
                   help="architecture (default: %(default)s)")
    p.add_argument("--dataset", default="cifar10", choices=DATASETS.names(),
                   help="dataset; sets the class count and input size (default: %(default)s)")


def add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=None,
                   help="folder holding the dataset archive or torchvision files "
                        "(default: $ELASTIC_DATA, else ./data and ../shared/data)")
    p.add_argument("--data", default="auto", choices=["auto", "archive", "torchvision", "synthetic"],
                   help="where images come from (default: %(default)s)")
    p.add_argument("--download", action="store_true", help="download with torchvision if not found")
    p.add_argument("--seed", type=integer(0), default=0, help="random seed (default: %(default)s)")
    p.add_argument("--device", type=device, default="auto",
                   help="cpu, cuda, cuda:N or auto (default: %(default)s)")


def add_recipe_args(p: argparse.ArgumentParser, epochs: int = 60) -> None:
    p.add_argument("--epochs", type=integer(1), default=epochs, help="training epochs (default: %(default)s)")
    p.add_argument("--batch-size", type=integer(1), default=256, help="(default: %(default)s)")
    p.add_argument("--lr", type=number(above=0), default=0.2, help="peak learning rate (default: %(default)s)")
    p.add_argument("--weight-decay", type=number(at_least=0), default=5e-4, help="(default: %(default)s)")
    p.add_argument("--train-subset", type=integer(0), default=0,
                   help="train on a fixed subset of this many images (0: all)")
    p.add_argument("--out", default=None,
                   help="results CSV to append the row to (default: cached_results/<dataset>.csv)")
    p.add_argument("--label", default="", help="a note stored with the row, e.g. 'short CPU schedule'")
    add_precision_arg(p)


def add_precision_arg(p: argparse.ArgumentParser) -> None:
    from elastic.precision import PRECISIONS
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="training arithmetic: bf16 autocast with channels_last, or fp32; auto: bf16 on CUDA "
                        "and on a CPU with native bf16 (AMX, AVX512-BF16) where a probe shows it faster, "
                        "else fp32 (default: %(default)s)")


def precision_for(args: argparse.Namespace, device: torch.device) -> str:
    """The arithmetic this command trains in ('fp32' or 'bf16') on `device`."""
    from elastic.precision import resolve
    return resolve(args.precision, device)


def recipe_from(args: argparse.Namespace, precision: str, *, epochs: int | None = None, lr: float | None = None):
    from elastic.train import Recipe
    return Recipe(epochs=args.epochs if epochs is None else epochs, batch_size=args.batch_size,
                  lr=args.lr if lr is None else lr, weight_decay=args.weight_decay,
                  train_subset=args.train_subset, precision=precision)


def run_settings(recipe, data_source: str, start: str = "", **options) -> dict:
    """The settings a run id's tag covers (elastic.identity.settings) for `recipe`."""
    from elastic.identity import settings
    return settings(batch_size=recipe.batch_size, lr=recipe.lr, weight_decay=recipe.weight_decay,
                    train_subset=recipe.train_subset, data_source=data_source, start=start, **options)


def positive_fraction(text: str) -> float:
    """argparse type for a target in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not in (0, 1]: give the fraction to keep, e.g. 0.5")
    return value


def load_data(args: argparse.Namespace):
    from elastic.data import load_dataset
    return load_dataset(args.dataset, args.data_dir, source=args.data, download=args.download, seed=args.seed)


def check_arch_fits(arch: str, dataset: str) -> None:
    from elastic.data import DATASETS
    from elastic.models import ARCHS
    if ARCHS.get(arch).family != DATASETS.get(dataset).family:
        raise ElasticError(f"{arch} is built for {ARCHS.get(arch).family} images; "
                           f"{dataset} needs one of the {DATASETS.get(dataset).family} architectures")


def progress_bar(desc: str) -> Callable:
    """A tqdm bar driven by the training engine's Progress callback."""
    from tqdm import tqdm
    bar = None

    def update(p) -> None:
        nonlocal bar
        if bar is None or bar.total != p.steps:
            if bar is not None:
                bar.close()
            bar = tqdm(total=p.steps, desc=desc, leave=False, file=sys.stderr)
        if p.val_acc is None:
            bar.n = p.step
            bar.set_postfix(epoch=f"{p.epoch}/{p.epochs}", loss=f"{p.loss:.3f}", refresh=False)
            bar.refresh()
        else:
            bar.write(f"{desc} epoch {p.epoch}/{p.epochs}: loss {p.loss:.3f}, val acc {p.val_acc:.2f}%")
            bar.reset()
    return update


def results_path(args: argparse.Namespace):
    from elastic.results import results_dir
    return Path(args.out) if args.out else results_dir() / f"{args.dataset}.csv"


def check_outputs(results: Path) -> None:
    """Before any work starts: the results file is a valid results file or can be
    created, and the checkpoint folder can be written, so that an hour of
    training is never lost to a bad --out at the end."""
    from elastic.data import cache_dir
    from elastic.results import read_results
    if results.is_dir():
        raise ElasticError(f"--out {results} is a folder; name a results file, e.g. {results / 'results.csv'}")
    if results.exists():
        read_results(results)                      # a file that is not a valid results file says so now
        if not os.access(results, os.W_OK):
            raise ElasticError(f"--out {results} cannot be written (permission denied)")
    else:
        check_creatable(results.parent, f"--out {results}")
    check_creatable(cache_dir() / "checkpoints", "the checkpoint folder (set $ELASTIC_CACHE to move it)")


# ---- profile ----------------------------------------------------------------------

def add_profile(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument("--checkpoint", default=None, help="profile the (pruned) model saved in this checkpoint")


def run_profile(args: argparse.Namespace) -> None:
    from elastic.data import DATASETS
    from elastic.models import build_model
    from elastic.profile import format_table, profile_model
    from elastic.runs import load_model
    spec = DATASETS.get(args.dataset)
    check_arch_fits(args.arch, args.dataset)
    if args.checkpoint:
        model, _ = load_model(args.checkpoint, arch=args.arch, num_classes=spec.num_classes)
    else:
        model = build_model(args.arch, spec.num_classes)
    prof = profile_model(model, (3, spec.input_size, spec.input_size))
    print(f"{args.arch} on {args.dataset} (input 3x{spec.input_size}x{spec.input_size}, batch 1)")
    print(format_table(prof))


# ---- train ------------------------------------------------------------------------

def add_train(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    add_data_args(p)
    add_recipe_args(p)
    p.add_argument("--checkpoint", default=None,
                   help="checkpoint file, resumed from if it exists (default: in the cache folder)")


def run_train(args: argparse.Namespace) -> None:
    from elastic import identity
    from elastic.models import build_model
    from elastic.results import append_row
    from elastic.runs import checkpoint_path, result_row, save_model
    from elastic.train import pick_device, train
    check_arch_fits(args.arch, args.dataset)
    check_outputs(results_path(args))
    device = _init_distributed(pick_device(args.device))
    data = load_data(args)
    precision = precision_for(args, device)
    recipe = recipe_from(args, precision)
    name = identity.baseline_name(args.dataset, args.arch, epochs=args.epochs, seed=args.seed,
                                  data_source=data.source)
    run_id = identity.run(name, precision, run_settings(recipe, data.source))
    torch.manual_seed(args.seed)
    model = build_model(args.arch, data.num_classes)
    final = checkpoint_path(run_id)
    resume = args.checkpoint or final.with_suffix(".resume.pt")
    result = train(model, data.train, data.spec, recipe, device=device, seed=args.seed,
                   val_set=data.val, on_progress=progress_bar(f"train {args.arch}"), checkpoint=resume)
    if result.resumed_from_epoch:
        print(f"resumed from epoch {result.resumed_from_epoch} of {args.epochs} (checkpoint {resume})")
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun, the first process writes the checkpoint and the row
    schedule = identity.schedule(args.epochs)
    save_model(final, model, args.arch, data.num_classes, args.dataset, run_id=run_id, recipe=recipe.to_dict(),
               seed=args.seed, schedule=schedule)
    if not args.checkpoint:
        Path(resume).unlink(missing_ok=True)  # finished: the next run with these options starts afresh
    row = result_row(model, args.arch, data, run_id=run_id, method="baseline", device=device,
                     seed=args.seed, epochs=args.epochs, seconds=result.seconds, precision=precision,
                     recipe=recipe.to_dict(), label=args.label, schedule=schedule)
    append_row(results_path(args), row)
    print(f"{run_id}: test {row['test_acc']:.2f}%, val {row['val_acc']:.2f}%, "
          f"{row['macs'] / 1e6:.1f} M MACs, {row['params'] / 1e3:.1f} K params, "
          f"{result.seconds / 60:.1f} min. Checkpoint: {final}")


def _init_distributed(device: torch.device) -> torch.device:
    """Join the process group when started by torchrun (WORLD_SIZE > 1): NCCL on
    GPUs (one per process), gloo on CPUs. Returns this process's device."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return device
    import torch.distributed as dist
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


# ---- evaluate ---------------------------------------------------------------------

def add_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a checkpoint written by train / prune")
    p.add_argument("--dataset", default="cifar10", help="(default: %(default)s)")
    add_data_args(p)
    p.add_argument("--split", default="test", choices=["test", "val", "train"], help="(default: %(default)s)")
    p.add_argument("--limit", type=integer(0), default=0, help="evaluate a fixed subset of this many images")


def run_evaluate(args: argparse.Namespace) -> None:
    from elastic.runs import load_model
    from elastic.train import evaluate, pick_device
    data = load_data(args)
    device = pick_device(args.device)
    model, state = load_model(args.checkpoint, num_classes=data.num_classes, device=device)
    subset = getattr(data, args.split)
    if args.limit:
        subset = subset.head(args.limit)
    acc = evaluate(model, subset, data.spec, device=device)
    print(f"{state['arch']} on {args.dataset} {args.split} ({len(subset)} images): {acc:.2f}%")


# ---- method and deployment commands: options and drivers live with their modules ----

def add_prune(p: argparse.ArgumentParser) -> None:
    from elastic.methods import blocks, complexity
    p.add_argument("--method", required=True,
                   choices=["complexity", "uniform", "block", "block-l1", "block-random"],
                   help="complexity: PA/FA/MA filter pruning; uniform: every layer thinned alike; "
                        "block: residual blocks by measured accuracy; block-l1 / block-random: proxy orders")
    p.add_argument("--target", type=positive_fraction, default=0.5,
                   help="fraction of the budget metric to keep, in (0, 1] (default: %(default)s)")
    p.add_argument("--dry-run", action="store_true", help="show the pruned architecture, do not train")
    add_model_args(p)
    add_data_args(p)
    add_recipe_args(p)
    complexity.add_options(p)
    blocks.add_options(p)


def run_prune(args: argparse.Namespace) -> None:
    from elastic.methods import blocks, complexity
    from elastic.train import pick_device
    check_arch_fits(args.arch, args.dataset)
    if not args.dry_run:
        check_outputs(results_path(args))
        pick_device(args.device)
    (complexity if args.method in ("complexity", "uniform") else blocks).run_cli(args)


def add_grow(p: argparse.ArgumentParser) -> None:
    from elastic.methods import grow
    add_model_args(p)
    add_data_args(p)
    add_recipe_args(p, epochs=10)
    grow.add_options(p)


def run_grow(args: argparse.Namespace) -> None:
    from elastic.methods import grow
    from elastic.train import pick_device
    check_arch_fits(args.arch, args.dataset)
    if args.eval_level is None:
        check_outputs(results_path(args))
    pick_device(args.device)
    grow.run_cli(args)


def add_bench(p: argparse.ArgumentParser) -> None:
    from elastic import deploy
    deploy.add_bench_options(p)


def run_bench(args: argparse.Namespace) -> None:
    from elastic import deploy
    deploy.run_bench_cli(args)


def add_export(p: argparse.ArgumentParser) -> None:
    from elastic import deploy
    deploy.add_export_options(p)


def run_export(args: argparse.Namespace) -> None:
    from elastic import deploy
    deploy.run_export_cli(args)


def add_check(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="a model checkpoint, training resume file, elastic checkpoint, or TorchScript / ONNX export")


def run_check(args: argparse.Namespace) -> None:
    from elastic.filecheck import check_file, with_recorded
    from elastic.results import load_all, results_dir
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
    from elastic.data import cache_dir, load_dataset
    from elastic.results import load_all, results_dir
    from elastic.shipping import ship
    frame = load_all(results_dir())[0]
    folder = results_dir() / "checkpoints"
    unknown = [r for r in args.run_ids if not (frame["run_id"] == r).any()
               and not frame["run_id"].str.startswith(f"{r}/level").any()]
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


# ---- sweep ------------------------------------------------------------------------

def add_sweep(p: argparse.ArgumentParser) -> None:
    from elastic.sweep import GRIDS
    p.add_argument("--grid", required=True, choices=GRIDS.names(), help="which grid of configurations")
    p.add_argument("--out", default=None,
                   help="results CSV (default: cached_results/<grid>.csv; the smoke grid: a temporary folder); "
                        "the ledger of finished jobs is <out>.sweep.jsonl beside it. The cpu grid writes its rows "
                        "to cifar10.csv and imagenette.csv beside --out")
    from elastic.models import ARCHS
    from elastic.sweep import GRID_METHODS
    p.add_argument("--epochs", type=integer(1), default=None, help="override the grid's training epochs")
    p.add_argument("--archs", nargs="*", default=[], choices=ARCHS.names(), help="only these architectures")
    p.add_argument("--methods", nargs="*", default=[], choices=GRID_METHODS,
                   help="only these methods (default: all)")
    p.add_argument("--workers", type=integer(0), default=0,
                   help="jobs at once (default: 4 on a GPU, to keep it busy; 1 on a CPU)")
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="run the jobs on a Ray cluster: 'auto', an address, or 'local' to start one here")
    p.add_argument("--device", type=device, default=None, help="passed to every job (cpu, cuda)")
    p.add_argument("--stop-after", type=number(at_least=0), default=None, metavar="MINUTES",
                   help="start a job only if it is expected to end within this many minutes (its "
                        "duration estimated from a probe of this machine, its MACs and epochs); running "
                        "jobs finish, the rest wait for the next run (for machines lent for a fixed time)")
    add_precision_arg(p)
    p.add_argument("--list", action="store_true", help="print the jobs and whether they are done, run nothing")


def run_sweep(args: argparse.Namespace) -> None:
    import tempfile
    from pathlib import Path

    from elastic.results import results_dir
    from elastic.sweep import GRIDS, Estimator, GridOptions, finished, ledger_path, run_sweep as sweep
    from elastic.train import pick_device
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
    precision = precision_for(args, pick_device(args.device or "auto"))
    extra = (*(("--device", args.device) if args.device else ()), "--precision", precision)
    opts = GridOptions(out, args.epochs, tuple(args.archs), tuple(args.methods), extra)
    jobs = GRIDS.get(args.grid).make(opts)
    done = finished(out)
    if args.list:
        for job in jobs:
            print(f"{'done' if job.key in done else 'todo'}  {job.name:<40} {job.command}")
        return
    workers = args.workers or (4 if torch.cuda.is_available() else 1)
    from tqdm import tqdm
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
    estimate = Estimator(precision, ledger_path(out)) if stop_after is not None else None
    report = sweep(jobs, out, workers=workers, ray_address=args.ray, stop_after=stop_after, estimate=estimate,
                   on_event=on_event)
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


COMMANDS: dict[str, tuple[Callable, Callable, str]] = {
    "profile": (add_profile, run_profile, "per-layer parameters, MACs and memory of a model"),
    "train": (add_train, run_train, "train a baseline and record it in the results"),
    "evaluate": (add_evaluate, run_evaluate, "accuracy of a checkpoint on a split"),
    "prune": (add_prune, run_prune, "complexity-driven filter pruning or block pruning"),
    "grow": (add_grow, run_grow, "elastic prune-and-grow: one model with nested widths"),
    "bench": (add_bench, run_bench, "measure inference latency"),
    "export": (add_export, run_export, "export a model to ONNX and TorchScript"),
    "ship": (add_ship, run_ship, "copy a row's trained checkpoint into cached_results, checked against its row"),
    "check": (add_check, run_check, "say what a file is: checkpoint, resume file, elastic checkpoint or export"),
    "sweep": (add_sweep, run_sweep, "run a grid of configurations, resumably"),
}


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m elastic", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for name, (add, _, help_text) in COMMANDS.items():
        add(sub.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    from elastic.results import code_commit
    code_commit()            # the commit of the code this process runs, whatever the checkout does later
    try:
        COMMANDS[args.command][1](args)
    except ElasticError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished rows and checkpoints are kept", file=sys.stderr)
        return 130
    return 0
