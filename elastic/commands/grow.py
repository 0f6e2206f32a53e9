"""`grow`: elastic prune-and-grow from the command line: options, the driver
(data, the core's and each level's training, one results row per level, the
elastic checkpoint) around elastic.methods.grow, and `--eval-level`."""
from __future__ import annotations

import argparse
from pathlib import Path

from elastic import identity
from elastic.argtypes import AUTO_ROUNDINGS, ROUNDINGS, integer, rounding
from elastic.commands.options import (add_data_args, add_model_args, add_recipe_args, baseline_for, check_arch_fits,
                                      check_outputs, load_data, precision_for,
                                      progress_bar, recipe_from, results_path,
                                      run_settings)
from elastic.data import REPO_ROOT
from elastic.deploy import measure_latencies
from elastic.errors import ElasticError
from elastic.methods import METHODS
from elastic.methods.elastic_net import (DEFAULT_LEVELS, check_widths, extract, LevelView, load_elastic, save_elastic,
                                         switch_time_us)
from elastic.methods.grow import build_elastic, ElasticTraining, LevelDone, schedule
from elastic.methods.rounding import fastest_level_rounding
from elastic.profile import count_macs
from elastic.results import append_row, results_dir
from elastic.runs import checkpoint_path, load_start, result_row
from elastic.train import evaluate, pick_device, Recipe


def add_grow(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    add_data_args(p)
    add_recipe_args(p, epochs=10, lr=0.05)     # fine-tuning a trained network: a gentler peak
    add_options(p)


def run_grow(args: argparse.Namespace) -> None:
    check_arch_fits(args.arch, args.dataset)
    if args.eval_level is None:
        check_outputs(results_path(args))
    pick_device(args.device)
    if args.eval_level is not None:
        _run_eval(args)
    else:
        _run_training(args)


def _levels(text: str) -> tuple[float, ...]:
    try:
        return check_widths([float(part) for part in text.split(",") if part.strip()])
    except (ValueError, ElasticError) as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_options(parser: argparse.ArgumentParser) -> None:
    """Options of `python -m elastic grow`."""
    group = parser.add_argument_group("prune-and-grow")
    group.add_argument("--levels", type=_levels, default=DEFAULT_LEVELS,
                       help="width of each level as a fraction of every layer's channels "
                            "(default: 1,0.8,0.64,0.512: three pruning steps of 20%%)")
    group.add_argument("--baseline", default=None,
                       help="checkpoint of the trained network to start from "
                            "(default: the trained baseline of --arch on --dataset)")
    group.add_argument("--round-to", type=rounding, default=1, metavar="{" + ",".join(map(str, ROUNDINGS)) + ",auto}",
                       help="each level's channel counts are multiples of this (the full width keeps all); "
                            f"auto: the multiple of {', '.join(map(str, AUTO_ROUNDINGS))} whose levels run "
                            "fastest in onnxruntime on this machine (measured, batch 1, one thread) "
                            "(default: %(default)s)")
    group.add_argument("--importance", choices=["l2", "l1"], default="l2",
                       help="filter norm that ranks channels (default: %(default)s)")
    group.add_argument("--core-epochs", type=integer(0), default=None,
                       help="epochs fine-tuning the smallest level (default: half of --epochs)")
    group.add_argument("--grow-epochs", type=integer(0), default=None,
                       help="epochs training each grown level (default: the other half of --epochs, "
                            "split over the grown levels, at least 1)")
    group.add_argument("--joint", action="store_true",
                       help="instead, train all levels jointly for --epochs (slimmable style; "
                            "method elastic-joint)")
    group.add_argument("--ship", action="store_true",
                       help="write the elastic checkpoint to cached_results/checkpoints (shipped with "
                            "the app) instead of the cache folder")
    group.add_argument("--eval-level", default=None, metavar="K",
                       help="do not train: evaluate level K (0 = smallest, -1 = full, or 'all') of "
                            "--checkpoint and time its switch and inference")
    group.add_argument("--checkpoint", default=None, help="elastic checkpoint for --eval-level")


def _run_training(args: argparse.Namespace) -> None:
    """Prune, train the core, grow level by level (or train jointly); one results
    row per level and one elastic checkpoint."""

    if args.checkpoint:
        raise ElasticError("--checkpoint is for --eval-level; training writes its own checkpoint")
    device = pick_device(args.device)
    widths = tuple(args.levels)
    core_epochs, grow_epochs = schedule(args.epochs, args.core_epochs, args.grow_epochs, len(widths))
    baseline = baseline_for(args)
    data = load_data(args)
    base, base_state, origin = load_start(baseline, args.arch, data.num_classes, device)
    auto: dict[int, float] = {}
    if args.round_to == "auto":
        size = data.spec.input_size
        args.round_to, auto = fastest_level_rounding(base, args.arch, data.num_classes, widths, (3, size, size))
        print("round-to auto (onnxruntime, batch 1, 1 thread, sum over the levels): "
              + ", ".join(f"{r}: {ms:.4f} ms" for r, ms in auto.items()) + f"; chose {args.round_to}")
    model = build_elastic(base, args.arch, data.num_classes, widths, args.importance, args.round_to).to(device)
    method = "elastic-joint" if args.joint else "elastic"     # the registry's argv: grow [--joint]
    precision = precision_for(args, device)
    levels = "-".join(f"{w:g}" for w in widths) if widths != DEFAULT_LEVELS else ""
    name = identity.elastic_name(args.dataset, args.arch, joint=args.joint, epochs=args.epochs, core=core_epochs,
                                 grow=grow_epochs, seed=args.seed, levels=levels, importance=args.importance,
                                 round_to=args.round_to, data_source=data.source)
    prefix = identity.run(name, precision, run_settings(recipe_from(args, precision), data.source, origin))
    resume = checkpoint_path(prefix)                     # + .levelK.resume.pt: per-epoch resume files
    final = results_dir() / "checkpoints" / resume.name if args.ship else resume
    options = {"levels": list(widths), "importance": args.importance, "baseline": str(baseline),
               "joint": args.joint, "core_epochs": core_epochs, "grow_epochs": grow_epochs,
               "round_to": args.round_to, **({"round_to_auto_ms": auto} if auto else {})}
    meta = {"dataset": args.dataset, "method": method, "run": prefix, "options": options}

    def recipe_for(epochs: int) -> Recipe:
        return recipe_from(args, precision, epochs=epochs)

    def write_row(done: LevelDone) -> None:
        level = done.level
        switch_us = switch_time_us(model, level)
        row = result_row(
            extract(model, level), args.arch, data, run_id=identity.level(prefix, level), method=method,
            device=device, seed=args.seed, epochs=done.epochs, seconds=done.seconds, precision=precision,
            recipe={**recipe_for(done.stage_epochs).to_dict(), **options}, level=str(level),
            acc_before_ft=done.acc_before, label=args.label, schedule=base_state["schedule"],
            details={"width": widths[level], "levels": list(widths), "channels": list(model.channels[level]),
                     "switch_us": round(switch_us, 2),
                     "switch_cached_us": round(switch_time_us(model, level, cached=True), 3),
                     "checkpoint": _shown(final), "history": done.history})
        append_row(results_path(args), row)
        print(f"level {level} (width {widths[level]:g}): val {done.acc_before:.2f}% before training, "
              f"{row['val_acc']:.2f}% after (test {row['test_acc']:.2f}%), {row['macs'] / 1e6:.1f} M MACs, "
              f"switch {switch_us:.1f} us")

    saved = 0

    def level_done(done: LevelDone) -> None:
        nonlocal saved
        if done.trained_levels > saved:      # the checkpoint first, so a row never names levels it lacks
            save_elastic(final, model, **meta, trained_levels=done.trained_levels)
            saved = done.trained_levels
        write_row(done)

    training = ElasticTraining(
        data.train, data.val, data.spec, recipe_for, args.epochs, core_epochs, grow_epochs, device, args.seed,
        progress=progress_bar, level_done=level_done,
        resume=lambda stage: resume.with_suffix(f".{stage}.resume.pt" if stage else ".resume.pt"))
    METHODS.get(method).implementation()(model, training)      # elastic.methods.grow: prune_and_grow or joint
    for leftover in resume.parent.glob(resume.stem + ".*resume.pt"):   # finished: a rerun starts afresh
        leftover.unlink(missing_ok=True)
    print(f"{prefix}: {len(widths)} levels; checkpoint {final}; rows in {results_path(args)}")


def _shown(path: Path) -> str:
    """A path relative to the repository when it is inside it."""
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def _run_eval(args: argparse.Namespace) -> None:
    """`--eval-level K --checkpoint PATH`: accuracy, switch time and batch-1
    latency of one level (or all), elastic and extracted."""

    if not args.checkpoint:
        raise ElasticError("--eval-level needs --checkpoint PATH (an elastic checkpoint)")
    device = pick_device(args.device)
    model = load_elastic(args.checkpoint, device)
    data = load_data(args)
    if model.num_classes != data.num_classes:
        raise ElasticError(f"{args.checkpoint} has {model.num_classes} classes, {args.dataset} has {data.num_classes}")
    if args.eval_level == "all":
        levels = list(range(model.num_levels))
    else:
        try:
            levels = [model.index(int(args.eval_level))]
        except ValueError:
            raise ElasticError(f"--eval-level takes a level number or 'all', not {args.eval_level!r}") from None
    size = data.spec.input_size
    print(f"{args.checkpoint}: {model.arch}, levels {', '.join(f'{w:g}' for w in model.widths)}")
    for k in levels:
        view = LevelView(model, k).eval()
        small = extract(model, k)
        acc = evaluate(view, data.test, data.spec, device=device)
        latency = measure_latencies({"elastic": view, "extracted": small}, (3, size, size), device=device,
                                    warmup=3, repeats=10, rounds=3)      # batch 1, interleaved
        print(f"level {k} (width {model.widths[k]:g}): test {acc:.2f}%, "
              f"{count_macs(view, (3, size, size)) / 1e6:.1f} M MACs, "
              f"switch {switch_time_us(model, k):.1f} us to prepare, "
              f"{switch_time_us(model, k, cached=True):.2f} us cached, "
              f"batch-1 latency {latency['elastic'].median_ms:.2f} ms elastic, "
              f"{latency['extracted'].median_ms:.2f} ms extracted")
