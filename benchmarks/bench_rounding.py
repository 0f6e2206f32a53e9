"""Do hardware-friendly widths pay? CPU latency of pruned CIFAR ResNets whose
channel counts are free (round_to=1) or multiples of 8 (round_to=8), at about
equal MACs.

Widths come from the complexity-driven method (`elastic.methods.complexity`:
`plan` in FA mode and `uniform_plan`). For each
(arch, method, target) the rounded plan's target is nudged so that its MACs land
as close as possible to the free plan's. Latencies are measured interleaved
(`elastic.deploy.measure_latencies`), batch 1, fresh weights, in eager PyTorch
and in onnxruntime (the ONNX export).

    nice -n 10 python benchmarks/bench_rounding.py [--archs resnet20 resnet56] [--targets 0.5]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from torch import nn  # noqa: E402

from elastic.deploy import measure_latencies  # noqa: E402
from elastic.models import build_model  # noqa: E402
from elastic.profile import count_macs  # noqa: E402

NUM_CLASSES = 10
INPUT = (3, 32, 32)


# ---- width configurations ---------------------------------------------------------

def planner(method: str) -> Callable[[str, float, int], dict]:
    """(arch, target fraction of MACs, round_to) -> config, for a complexity mode
    ("FA", "PA", "MA") or "uniform"."""
    from elastic.methods import complexity
    if method == "uniform":
        return lambda arch, target, r: complexity.uniform_plan(arch, NUM_CLASSES, target, round_to=r).config
    return lambda arch, target, r: complexity.plan(arch, NUM_CLASSES, method, target, round_to=r).config


def macs_of(arch: str, config: dict) -> int:
    return count_macs(build_model(arch, NUM_CLASSES, config), INPUT)


def matched_rounded(plan: Callable[[str, float, int], dict], arch: str, target: float,
                    macs_goal: int, round_to: int = 8) -> dict:
    """The round_to plan whose MACs come closest to `macs_goal`, trying targets
    at and a little above `target` (rounding down usually lands below it)."""
    best = None
    for nudge in (0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1):
        try:
            config = plan(arch, min(1.0, target + nudge), round_to)
        except Exception:  # a target the rounded widths cannot meet
            continue
        gap = abs(macs_of(arch, config) - macs_goal)
        if best is None or gap < best[0]:
            best = (gap, config)
    if best is None:
        raise RuntimeError(f"no round_to={round_to} plan near {target} for {arch}")
    return best[1]


def odd_layers(arch: str, config: dict, multiple: int = 8) -> str:
    """How many conv layers have an output width that is not a multiple of `multiple`."""
    convs = [m for m in build_model(arch, NUM_CLASSES, config).modules() if isinstance(m, nn.Conv2d)]
    odd = sum(m.out_channels % multiple != 0 for m in convs)
    return f"{odd}/{len(convs)}"


# ---- output -----------------------------------------------------------------------

def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Fixed-width text table; floats with 2 decimals (3 below 10)."""
    def text(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 10 else f"{v:.2f}"
        return str(v)
    cells = [[text(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths)))
              for r in cells]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archs", nargs="+", default=["resnet20", "resnet56"])
    p.add_argument("--methods", nargs="+", default=["FA", "uniform"])
    p.add_argument("--targets", nargs="+", type=float, default=[0.5, 0.3])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--runtime", nargs="+", choices=["torch", "onnxruntime"], default=["torch", "onnxruntime"],
                   help="eager PyTorch and / or the ONNX export in onnxruntime (default: both)")
    args = p.parse_args(argv)

    rows = []
    for arch in args.archs:
        base_macs = count_macs(build_model(arch, NUM_CLASSES), INPUT)
        configs: dict[str, tuple[dict, dict]] = {"baseline": ({"method": "baseline"}, {})}
        for method in args.methods:
            plan = planner(method)
            for target in args.targets:
                free = plan(arch, target, 1)
                rounded = matched_rounded(plan, arch, target, macs_of(arch, free))
                for round_to, config in ((1, free), (8, rounded)):
                    configs[f"{method}/{target}/{round_to}"] = (
                        {"method": method, "target": target, "round_to": round_to}, config)
        models = {key: build_model(arch, NUM_CLASSES, config) for key, (_, config) in configs.items()}
        for runtime in args.runtime:
            lat = measure_latencies(models, INPUT, threads=args.threads, rounds=args.rounds,
                                    repeats=args.repeats, runtime=runtime)
            for key, (info, config) in configs.items():
                macs = macs_of(arch, config)
                row = {"arch": arch, "runtime": runtime, "method": info["method"],
                       "target": info.get("target", ""), "round": info.get("round_to", ""),
                       "MACs (M)": macs / 1e6, "MAC frac": macs / base_macs,
                       "odd widths": odd_layers(arch, config), "median ms": lat[key].median_ms,
                       "p10 ms": lat[key].p10_ms, "us/MMAC": 1e3 * lat[key].median_ms / (macs / 1e6)}
                if info.get("round_to") == 8:
                    free_key = f"{info['method']}/{info['target']}/1"
                    row["r8 speed-up"] = lat[free_key].median_ms / lat[key].median_ms
                    row["r8 (p10)"] = lat[free_key].p10_ms / lat[key].p10_ms
                rows.append(row)
            host = next(iter(lat.values())).host
    columns = ["arch", "runtime", "method", "target", "round", "MACs (M)", "MAC frac", "odd widths",
               "median ms", "p10 ms", "us/MMAC", "r8 speed-up", "r8 (p10)"]
    print(f"CPU latency, batch 1, {args.threads} thread(s), {args.rounds} interleaved rounds x "
          f"{args.repeats} passes, fresh weights; {host}")
    print("r8 speed-up: latency of the round_to=1 plan / the round_to=8 plan at about the same MACs "
          "(medians; r8 (p10): 10th percentiles)")
    print(format_table(rows, columns))


if __name__ == "__main__":
    main()
