"""`prune --method complexity|uniform`: options and the driver (data, training,
checkpoint, results row) around elastic.methods.complexity."""
from __future__ import annotations

import argparse
import time

import torch

from elastic import identity
from elastic.argtypes import AUTO_ROUNDINGS, ROUNDINGS, integer, rounding
from elastic.checkpoints import save_model
from elastic.commands.options import (baseline_for, load_data, precision_for, progress_bar, recipe_from, results_path,
                                      run_settings)
from elastic.data import DATASETS
from elastic.errors import BadCheckpoint
from elastic.methods import METHODS
from elastic.methods.complexity import DEFAULT_STEP, FilterOptions, INITS, MODES, build, PrunePlan
from elastic.methods.rounding import fastest_plan_rounding
from elastic.results import append_row
from elastic.runs import checkpoint_path, load_start, result_row
from elastic.train import evaluate, pick_device, train


def add_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("complexity / uniform pruning")
    g.add_argument("--mode", choices=list(MODES), default="FA",
                   help="PA: parameters, FA: MACs, MA: memory; sets the share layers are sampled by "
                        "and the metric --target applies to (uniform: the metric only) (default: %(default)s)")
    g.add_argument("--step", type=_step_fraction, default=DEFAULT_STEP,
                   help="fraction of a sampled layer's filters removed at a time (default: %(default)s)")
    g.add_argument("--min-width", type=integer(1), default=None,
                   help="fewest channels a layer keeps (default: 10%% of its original width, at least 1)")
    g.add_argument("--round-to", type=rounding, default=1, metavar="{" + ",".join(map(str, ROUNDINGS)) + ",auto}",
                   help="channel counts are multiples of this; auto: the multiple of "
                        f"{', '.join(map(str, AUTO_ROUNDINGS))} whose plan runs fastest in onnxruntime on this "
                        "machine (measured, batch 1, one thread; the rounded plan still meets --target) "
                        "(default: %(default)s)")
    g.add_argument("--init", choices=INITS, default="scratch",
                   help="train the pruned network from scratch (the paper) or fine-tune the trained "
                        "baseline's kept filters (default: %(default)s)")


def _resolve_rounding(args: argparse.Namespace, num_classes: int, input_size: int) -> dict[int, float]:
    """Replace --round-to auto by the measured choice (printed); the timings."""
    if args.round_to != "auto":
        return {}
    args.round_to, timings = fastest_plan_rounding(
        lambda r: plan_from_args(argparse.Namespace(**{**vars(args), "round_to": r}), num_classes),
        (3, input_size, input_size), target=args.target, arch=args.arch)
    print("round-to auto (onnxruntime, batch 1, 1 thread): "
          + ", ".join(f"{r}: {ms:.4f} ms" for r, ms in timings.items()) + f"; chose {args.round_to}")
    return timings


def _step_fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not in (0, 1)")
    return value


def plan_from_args(args: argparse.Namespace, num_classes: int) -> PrunePlan:
    """The plan of the registered method --method (its `algorithm`) for these options."""
    options = FilterOptions(mode=args.mode, target=args.target, step=args.step, min_width=args.min_width,
                            round_to=args.round_to, seed=args.seed)
    return METHODS.get(args.method).implementation()(args.arch, num_classes, options)


def run_name(args: argparse.Namespace, data_source: str) -> str:
    """The readable part of the run id (elastic.identity.pruned_name)."""
    complexity = args.method == "complexity"
    return identity.pruned_name(args.dataset, args.arch, args.method, mode=args.mode, target=args.target,
                       round_to=args.round_to, step=args.step if complexity and args.step != DEFAULT_STEP else None,
                       min_width=args.min_width if complexity else None, init=args.init, epochs=args.epochs,
                       seed=args.seed, data_source=data_source)


def run(args: argparse.Namespace) -> None:
    """Plan, build and train the pruned network; one results row and checkpoint."""

    started = time.perf_counter()
    spec = DATASETS.get(args.dataset)
    auto = _resolve_rounding(args, spec.num_classes, spec.input_size)
    if args.dry_run:
        # Planning only runs batch-1 profiles of small nets: one thread is fastest, and
        # on a busy CPU OpenMP workers spinning against other jobs make it many times slower.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            pruned_plan = plan_from_args(args, DATASETS.get(args.dataset).num_classes)
        finally:
            torch.set_num_threads(threads)
        print(format_plan(pruned_plan))
        print(f"planned in {time.perf_counter() - started:.1f} s (no training: --dry-run)")
        return
    pruned_plan = plan_from_args(args, DATASETS.get(args.dataset).num_classes)

    data = load_data(args)
    device = pick_device(args.device)
    precision = precision_for(args, device)
    recipe = recipe_from(args, precision)
    details = {**pruned_plan.details(), "init": args.init}
    if auto:
        details["round_to_auto"] = {str(r): ms for r, ms in auto.items()}
    torch.manual_seed(args.seed)
    acc_before, start, schedule = None, "", identity.schedule(args.epochs)
    if args.init == "finetune":
        path = baseline_for(args)
        source, state, start = load_start(path, args.arch, data.num_classes)
        schedule = state["schedule"]
        if state.get("config", {}).get("shapes") or state.get("config", {}).get("removed_blocks"):
            raise BadCheckpoint(f"{path} holds an already pruned {args.arch}; fine-tuning starts from a baseline")
        model = build(pruned_plan, source).to(device)
        acc_before = evaluate(model, data.val, data.spec, device=device)
        details["baseline"] = str(path)
    else:
        model = build(pruned_plan)
    run_id = identity.run(run_name(args, data.source), precision, run_settings(recipe, data.source, start))
    print(format_plan(pruned_plan).splitlines()[0])
    final = checkpoint_path(run_id)
    result = train(model, data.train, data.spec, recipe, device=device, seed=args.seed, val_set=data.val,
                   on_progress=progress_bar(f"{args.method} {args.mode} {args.arch}"),
                   checkpoint=final.with_suffix(".resume.pt"))
    save_model(final, model, args.arch, data.num_classes, args.dataset, run_id=run_id, recipe=recipe.to_dict(),
               seed=args.seed, method=args.method, details=details, schedule=schedule)
    final.with_suffix(".resume.pt").unlink(missing_ok=True)  # finished: a rerun starts afresh
    row = result_row(model, args.arch, data, run_id=run_id, method=args.method, device=device,
                     seed=args.seed, epochs=args.epochs, seconds=result.seconds, precision=precision,
                     recipe={**recipe.to_dict(), "init": args.init}, label=args.label,
                     mode=args.mode, target=args.target, details=details, acc_before_ft=acc_before,
                     schedule=schedule)
    append_row(results_path(args), row)
    print(f"{run_id}: test {row['test_acc']:.2f}%, val {row['val_acc']:.2f}%, "
          f"{row['macs'] / 1e6:.2f} M MACs ({pruned_plan.achieved['macs']:.3f}), "
          f"{row['params'] / 1e3:.1f} K params ({pruned_plan.achieved['params']:.3f}), "
          f"{result.seconds / 60:.1f} min. Checkpoint: {final}")


def format_plan(p: PrunePlan) -> str:
    """The per-layer kept/original table and the complexity summary, for the CLI."""
    coupled = {name: group[0] for group in p.groups if len(group) > 1 for name in group}
    header = ("layer", "kept", "original", "kept %", "coupled group")
    rows = [(name, str(k), str(o), f"{100 * k / o:.0f}", coupled.get(name, "")) for name, (k, o) in p.kept.items()]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(c.rjust(w) if 0 < i < 4 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    rule = "-" * len(line(header))
    how = (f"mode {p.mode} (budget: {p.metric}), seed {p.seed}, step {p.step:g}, min width "
           f"{p.min_width if p.min_width is not None else '10% of the original'}" if p.mode != "uniform"
           else f"uniform, every width x {p.options.get('fraction', 0):.3f} before rounding (budget: {p.metric})")
    figures = [
        ("params", f"{p.params / 1e6:.3f} M", f"{p.original['params'] / 1e6:.3f} M", p.achieved["params"]),
        ("MACs", f"{p.macs / 1e6:.2f} M", f"{p.original['macs'] / 1e6:.2f} M", p.achieved["macs"]),
        ("memory", f"{p.memory / 1024:.0f} KB", f"{p.original['memory'] / 1024:.0f} KB", p.achieved["memory"]),
        ("peak memory", f"{p.peak_memory / 1024:.0f} KB", f"{p.original['peak_memory'] / 1024:.0f} KB",
         p.achieved["peak_memory"]),
    ]
    return "\n".join([
        f"{p.arch}: {how}, round to {p.round_to}, target {p.target:g} of {p.metric}",
        line(header), rule, *map(line, rows), rule,
        *(f"{name:<12} {now:>12} of {before:>12}  = {fraction:.3f}" for name, now, before, fraction in figures),
        "memory = sum over layers of weight + output activation bytes (fp32); "
        "peak memory = weights + peak live activations (fp32, batch 1).",
    ])
