"""--round-to auto: the channel multiple whose networks run fastest here.

Rounding every width to a multiple of 8, 16 or 32 lets onnxruntime's CPU
kernels use their blocked layouts (benchmarks/bench_speedup.py); which multiple
is fastest depends on the machine, so `auto` builds the networks each multiple
gives, times them in onnxruntime (batch 1, one thread, interleaved rounds) and
keeps the fastest. The one place in elastic.methods that measures: its callers
record the timings with the choice.
"""
from __future__ import annotations

from typing import Callable, Sequence

from torch import nn

from elastic.argtypes import AUTO_ROUNDINGS
from elastic.deploy import measure_latencies
from elastic.errors import BadBudget, ElasticError
from elastic.methods.channels import channel_structure
from elastic.methods.complexity import PrunePlan, build
from elastic.methods.elastic_net import ElasticNet
from elastic.models import build_model


def fastest_plan_rounding(plan_for: Callable[[int], PrunePlan], input_shape: tuple[int, int, int], *,
                          target: float, arch: str) -> tuple[int, dict[int, float]]:
    """--round-to auto: of the plans `plan_for(r)` for each multiple r of
    AUTO_ROUNDINGS (the same method, mode and target), the one with the lowest
    onnxruntime latency here, batch 1, one thread, the candidates timed in
    interleaved rounds; and each one's median latency in ms."""
    models, unreachable = {}, []
    for r in AUTO_ROUNDINGS:
        try:
            models[r] = build(plan_for(r))
        except ElasticError:          # widths this coarse cannot reach the target
            unreachable.append(str(r))
    if not models:
        raise BadBudget(f"--round-to auto: no multiple of {', '.join(unreachable)} reaches --target {target:g} "
                        f"for {arch}; give a smaller --round-to")
    measured = measure_latencies(models, input_shape, threads=1, warmup=3, repeats=10, rounds=5,
                                 runtime="onnxruntime")
    timings = {r: round(lat.median_ms, 4) for r, lat in measured.items()}
    return min(timings, key=lambda r: (timings[r], r)), timings


def fastest_level_rounding(base: nn.Module, arch: str, num_classes: int, widths: Sequence[float],
                           input_shape: tuple[int, int, int]) -> tuple[int, dict[int, float]]:
    """--round-to auto: the multiple of AUTO_ROUNDINGS whose levels run fastest
    in onnxruntime here (batch 1, one thread, every level of every candidate
    timed in interleaved rounds; the sum of the levels' medians decides), and
    each candidate's sum in ms. Only the shapes matter, so `base` need not be
    trained."""
    structure = channel_structure(base)
    models = {}
    for r in AUTO_ROUNDINGS:
        try:
            net = ElasticNet(base, arch, num_classes, widths, structure, r)
        except ElasticError:               # this multiple merges two levels (level_channels)
            continue
        models.update({(r, k): build_model(arch, num_classes, net.level_config(k)) for k in range(net.num_levels)})
    if not models:
        raise ElasticError(f"--round-to auto: every multiple of {', '.join(map(str, AUTO_ROUNDINGS))} makes two "
                           f"of the levels {', '.join(f'{w:g}' for w in widths)} the same network for {arch}; "
                           "give fewer levels or a --round-to")
    measured = measure_latencies(models, input_shape, threads=1, warmup=3, repeats=10, rounds=5,
                                 runtime="onnxruntime")
    sums: dict[int, float] = {}
    for (r, _), latency in measured.items():
        sums[r] = round(sums.get(r, 0.0) + latency.median_ms, 4)
    return min(sums, key=lambda r: (sums[r], r)), sums


__all__ = ["fastest_level_rounding", "fastest_plan_rounding"]
