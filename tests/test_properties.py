"""Property tests: the profiler and the pruning dry run on random valid
architectures (random ResNet-20 widths, random VGG width lists) and random
budgets. No crash, and the invariants hold: totals are the sum of the layers
and of the model's own parameters, MACs match a count without tracing and a
hand formula, peak memory covers every layer's input and output, pruning never
increases MACs, parameters or memory, and a plan meets its target."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from elastic.errors import BadBudget
from elastic.methods.complexity import ROUNDINGS, _floor, _structure, build, plan, uniform_plan
from elastic.models import build_model
from elastic.models.width_list import CifarVGG
from elastic.profile import FP32_BYTES, ModelProfile, count_macs, profile_model

SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
INPUT = (3, 32, 32)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def check_profile(model: torch.nn.Module) -> ModelProfile:
    """Invariants of any profile of a conv / BN / linear network."""
    prof = profile_model(model, INPUT)
    assert prof.params == sum(layer.params for layer in prof.layers) == sum(p.numel() for p in model.parameters())
    assert prof.macs == sum(layer.macs for layer in prof.layers) == count_macs(model, INPUT)
    assert prof.weight_bytes == FP32_BYTES * prof.params
    largest = max(layer.activation_bytes for layer in prof.layers)
    assert prof.peak_activation_bytes >= max(largest, FP32_BYTES * math.prod(INPUT))
    assert prof.peak_memory_bytes() == prof.weight_bytes + prof.peak_activation_bytes
    return prof


# ---- random ResNet-20 widths -----------------------------------------------------------

RESNET20 = _structure("resnet20", 10)


@st.composite
def narrower_widths(draw, original: tuple[int, ...] = RESNET20.widths) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Random widths for every coupled group, and a second set no wider anywhere."""
    wide = tuple(draw(st.integers(1, c)) for c in original)
    narrow = tuple(draw(st.integers(1, w)) for w in wide)
    return wide, narrow


def resnet20_at(widths: tuple[int, ...], removed: list[str] = ()) -> torch.nn.Module:
    shapes = {name: shape for name, shape in RESNET20.shapes(widths).items()
              if not any(name.startswith(block + ".") for block in removed)}   # as arch_config lists them
    return build_model("resnet20", 10, {"removed_blocks": list(removed), "shapes": shapes})


BLOCKS = [f"layer{stage}.{i}" for stage in (1, 2, 3) for i in (1, 2)]   # blocks with an identity shortcut


@SETTINGS
@given(narrower_widths(), st.lists(st.sampled_from(BLOCKS), unique=True, max_size=3))
def test_random_resnet20_widths_profile_consistently_and_pruning_never_grows(pair, removed):
    wide, narrow = pair
    big = check_profile(resnet20_at(wide))
    small = check_profile(resnet20_at(narrow))
    fewer = check_profile(resnet20_at(narrow, removed))
    # The dry run's integer formulas agree with the profiler at any widths.
    assert RESNET20.totals(wide) == {"params": big.params, "macs": big.macs,
                                     "memory": sum(layer.memory_bytes for layer in big.layers)}
    for pruned, before in ((small, big), (fewer, small)):
        assert pruned.params <= before.params and pruned.macs <= before.macs
        assert pruned.peak_activation_bytes <= before.peak_activation_bytes


# ---- random VGG width lists --------------------------------------------------------------

@st.composite
def vgg_layers(draw) -> list:
    """Five pools (32x32 -> 1x1, as CifarVGG needs) among 1 to 6 convolutions of
    1 to 16 filters, 3x3 or another odd kernel."""
    convs = [draw(st.one_of(st.integers(1, 16), st.tuples(st.integers(1, 16), st.sampled_from([1, 3, 5]))))
             for _ in range(draw(st.integers(1, 6)))]
    slots = sorted(draw(st.lists(st.integers(0, len(convs)), min_size=5, max_size=5)))
    layers: list = []
    for i, conv in enumerate(convs + [None]):
        layers += ["M"] * slots.count(i)
        if conv is not None:
            layers.append(conv)
    return layers


def by_hand(layers: list, num_classes: int) -> tuple[int, int, int]:
    """Params, MACs and the largest (input + output) elements of one layer, from the width list."""
    params = macs = 0
    channels, size = 3, 32
    largest = 0
    for layer in layers:
        if layer == "M":
            size //= 2
            continue
        width, kernel = layer if isinstance(layer, tuple) else (layer, 3)
        params += channels * width * kernel * kernel + 2 * width          # conv (no bias) + BN
        macs += channels * width * kernel * kernel * size * size
        largest = max(largest, (channels + width) * size * size)
        channels = width
    params += channels * num_classes + num_classes
    macs += channels * num_classes
    return params, macs, max(largest, channels + num_classes)


@SETTINGS
@given(vgg_layers(), st.integers(2, 100))
def test_random_vgg_width_lists_profile_as_computed_by_hand(layers, num_classes):
    model = CifarVGG(num_classes, layers)
    prof = check_profile(model)
    params, macs, largest = by_hand(layers, num_classes)
    assert (prof.params, prof.macs) == (params, macs)
    # While a layer runs, its input and its output are both alive.
    assert prof.peak_activation_elements >= largest


# ---- the pruning dry run with random budgets ----------------------------------------------

@SETTINGS
@given(st.sampled_from(["PA", "FA", "MA"]), st.floats(0.02, 1.0), st.integers(0, 10_000),
       st.floats(0.02, 0.5), st.sampled_from(ROUNDINGS), st.one_of(st.none(), st.integers(1, 20)))
def test_random_budgets_give_a_plan_that_meets_them_or_a_clear_refusal(mode, target, seed, step, round_to,
                                                                        min_width):
    metric = {"PA": "params", "FA": "macs", "MA": "memory"}[mode]
    try:
        p = plan("resnet20", 10, mode, target, step=step, min_width=min_width, round_to=round_to, seed=seed)
    except BadBudget as err:
        # Refused only when even the narrowest allowed network is over the target.
        floors = tuple(_floor(c, min_width, round_to) for c in RESNET20.widths)
        lowest = RESNET20.totals(floors)[metric] / RESNET20.totals(RESNET20.widths)[metric]
        assert lowest > target and "smallest reachable fraction" in str(err)
        event("refused")
        return
    event("planned")
    assert p.achieved[metric] <= target + 1e-12
    for key in ("params", "macs", "memory", "peak_memory"):
        assert getattr(p, key) <= p.original[key], key              # pruning never grows anything
    for name, (kept, original) in p.kept.items():
        assert _floor(original, min_width, round_to) <= kept <= original, name
        assert kept == original or kept % round_to == 0, name
    # The dry run is what real pruning (Torch-Pruning, on a model) produces.
    pruned = profile_model(build(p), INPUT)
    assert (pruned.params, pruned.macs, pruned.peak_memory_bytes()) == (p.params, p.macs, p.peak_memory)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.floats(0.1, 1.0), st.floats(0.1, 1.0), st.sampled_from(["params", "macs", "memory"]))
def test_a_smaller_uniform_budget_never_gives_a_larger_network(a, b, metric):
    low, high = sorted((a, b))
    small, large = uniform_plan("resnet20", 10, low, metric), uniform_plan("resnet20", 10, high, metric)
    assert small.achieved[metric] <= low + 1e-12 and large.achieved[metric] <= high + 1e-12
    assert getattr(small, metric) <= getattr(large, metric)
    assert all(small.kept[name][0] <= large.kept[name][0] for name in small.kept)
