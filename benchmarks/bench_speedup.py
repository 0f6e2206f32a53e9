"""Is half the MACs twice as fast? Measured CPU speed-up (batch 1) of ResNet-56
for CIFAR-10 at about 2x fewer MACs, for each compression method, against its
MAC ratio. efficiency = speed-up / MAC ratio (1.0: latency falls in proportion
to MACs; flagged below elastic.explore.INEFFICIENT_BELOW).

Configurations (fresh weights: latency does not depend on their values):
- complexity FA / PA / MA at target 0.5 (`complexity.plan`; PA and MA budget
  parameters and memory, so their MACs differ), and FA with widths rounded to 8,
  16 and 32 (where the rounded plan reaches the target), each drawn with
  seeds 0-2 (complexity pruning samples its layers, and how fast a plan runs
  depends on which layers the draw made narrow), at 0.5 and at each of
  `--targets` (default 0.7: a milder cut);
- uniform thinning to 0.5 of the MACs (`complexity.uniform_plan`), also rounded,
  and rounded at each of `--targets`;
- block removal: 12 of the 24 candidate blocks (every other one, so 4 per stage);
- the elastic 64% level (`grow.build_elastic(...).level_config`), also rounded.

Latency is measured twice by default: eager PyTorch, and the verified ONNX export
in onnxruntime (BatchNorm folded, as deployed). All configurations are timed in
interleaved rounds; the speed-up is paired (`elastic.deploy.paired_speedup`):
the median over rounds of the ratio within each round, so a load that drifts
between rounds (a shared machine, a clock that changes) cancels out.

    nice -n 10 python benchmarks/bench_speedup.py [--threads 1] [--rounds 16] [--repeats 15]
                                                  [--seeds 3] [--runtime torch onnxruntime]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_rounding import INPUT, NUM_CLASSES, format_table, planner  # noqa: E402
from elastic.deploy import measure_latencies, paired_speedup, speedup_efficiency  # noqa: E402
from elastic.explore import INEFFICIENT_BELOW  # noqa: E402
from elastic.models import build_model  # noqa: E402
from elastic.profile import count_macs  # noqa: E402

ARCH = "resnet56"
TARGET = 0.5
ELASTIC_WIDTH = 0.64
ROUNDED = (8, 16, 32)       # the multiples --round-to auto chooses among


def block_removal_config(arch: str = ARCH, remove: int = 12) -> dict:
    """Every other candidate block removed, `remove` in all."""
    model = build_model(arch, NUM_CLASSES)
    try:
        from elastic.methods.blocks import candidate_blocks
        candidates = candidate_blocks(model, INPUT)
    except ImportError:
        # Elements k > 0 of each stage's Sequential keep the width and resolution.
        candidates = [f"{stage}.{k}" for stage, seq in model.named_children()
                      if stage.startswith("layer") for k in range(1, len(seq))]
    chosen = candidates[1::2][:remove]
    if len(chosen) < remove:
        chosen += [c for c in candidates if c not in chosen][: remove - len(chosen)]
    return {"removed_blocks": chosen, "shapes": {}}


def elastic_config(arch: str = ARCH, width: float = ELASTIC_WIDTH, round_to: int = 1) -> dict:
    """The plain model of the elastic level at `width` of every group's channels
    (rounded to multiples of `round_to`, as `grow --round-to`)."""
    from elastic.methods import grow
    return grow.build_elastic(build_model(arch, NUM_CLASSES), arch, NUM_CLASSES,
                              widths=(width, 1.0), round_to=round_to).level_config(0)


def configurations(seeds: int = 3, targets: tuple[float, ...] = ()) -> dict[str, dict]:
    """The configurations timed. Complexity pruning samples the layers it prunes
    (seeded), so its rounded plans are drawn with `seeds` seeds: how fast a plan
    runs depends on which layers the draw made narrow. `targets`: further
    fractions of the MACs kept, for the rounded FA and uniform plans."""
    from elastic.errors import ElasticError
    from elastic.methods import complexity
    configs = {"baseline": {}}
    for mode in ("FA", "PA", "MA"):
        configs[f"complexity {mode} 0.5"] = planner(mode)(ARCH, TARGET, 1)
    for target in (TARGET, *targets):
        for r in ROUNDED:
            for seed in range(seeds):
                name = f"complexity FA {target:g}, round {r}" + (f", seed {seed}" if seeds > 1 else "")
                try:
                    configs[name] = complexity.plan(ARCH, NUM_CLASSES, "FA", target, round_to=r, seed=seed).config
                except ElasticError as err:      # widths this coarse cannot reach the target
                    print(f"{name}: left out ({err})")
                    break
    configs["uniform 0.5"] = planner("uniform")(ARCH, TARGET, 1)
    for target in (TARGET, *targets):
        for r in ROUNDED:
            try:
                configs[f"uniform {target:g}, round {r}"] = planner("uniform")(ARCH, target, r)
            except ElasticError as err:
                print(f"uniform {target:g}, round {r}: left out ({err})")
    configs["block removal 12/24"] = block_removal_config()
    configs[f"elastic {ELASTIC_WIDTH:.0%} level"] = elastic_config()
    for r in ROUNDED:
        configs[f"elastic {ELASTIC_WIDTH:.0%} level, round {r}"] = elastic_config(round_to=r)
    return configs


def speedup_rows(macs: dict[str, int], lat: dict) -> list[dict]:
    """One table row per configuration, against the "baseline" entry."""
    base = lat["baseline"]
    rows = []
    for name in macs:
        ratio = macs["baseline"] / macs[name]
        speedup = paired_speedup(base, lat[name])
        rows.append({
            "method": name, "MACs (M)": macs[name] / 1e6, "MAC ratio": ratio,
            "median ms": lat[name].median_ms, "p10 ms": lat[name].p10_ms,
            "speed-up": speedup, "efficiency": speedup / ratio,
            "eff. (medians)": speedup_efficiency(base.median_ms, lat[name].median_ms, macs["baseline"], macs[name]),
            "eff. (p10)": speedup_efficiency(base.p10_ms, lat[name].p10_ms, macs["baseline"], macs[name]),
            "flag": "inefficient" if speedup / ratio < INEFFICIENT_BELOW else "",
        })
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=16)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--seeds", type=int, default=3, help="seeds of the rounded complexity plans (default: 3)")
    p.add_argument("--targets", nargs="*", type=float, default=[0.7],
                   help="fractions of the MACs kept for more rounded FA and uniform plans, beside 0.5 "
                        "(default: 0.7)")
    p.add_argument("--runtime", nargs="+", choices=["torch", "onnxruntime"], default=["torch", "onnxruntime"],
                   help="eager PyTorch and / or the ONNX export in onnxruntime (default: both)")
    args = p.parse_args(argv)

    if any(not 0 < t < 1 for t in args.targets):
        p.error("--targets are fractions of the MACs kept, between 0 and 1")
    configs = configurations(args.seeds, tuple(t for t in args.targets if t != TARGET))
    models = {name: build_model(ARCH, NUM_CLASSES, config) for name, config in configs.items()}
    macs = {name: count_macs(model, INPUT) for name, model in models.items()}
    for runtime in args.runtime:
        lat = measure_latencies(models, INPUT, threads=args.threads, rounds=args.rounds, repeats=args.repeats,
                                runtime=runtime)
        base = lat["baseline"]
        rows = speedup_rows(macs, lat)
        print(f"\n{ARCH}, CIFAR-10 input, {runtime} on the CPU, batch 1, {base.threads} thread(s), "
              f"{args.rounds} interleaved rounds x {args.repeats} passes ({base.repeats} per model), "
              f"fresh weights; {base.host}")
        print("speed-up: the median over rounds of the baseline's median / the configuration's median in the "
              "same round (paired, so load drifting between rounds cancels); efficiency = speed-up / MAC ratio; "
              "eff. (medians) and eff. (p10) from the overall medians and 10th percentiles instead")
        print(format_table(rows, ["method", "MACs (M)", "MAC ratio", "median ms", "p10 ms",
                                  "speed-up", "efficiency", "eff. (medians)", "eff. (p10)", "flag"]))
        best = max(rows[1:], key=lambda r: r["efficiency"])
        print(f"best efficiency ({runtime}): {best['method']} {best['efficiency']:.2f}")
        width = [r for r in rows if r["method"].startswith(("complexity FA", "uniform")) and "round" in r["method"]]
        if width:
            best = max(width, key=lambda r: r["efficiency"])
            print(f"best rounded width pruning ({runtime}): {best['method']} {best['efficiency']:.2f} (aim: >= 0.85)")


if __name__ == "__main__":
    main()
