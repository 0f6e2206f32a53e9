"""The elastic network of prune-and-grow: one model, several nested widths.

Level k of an ElasticNet uses the leading slices of the shared weight tensors
(`level_channels` says how many channels of each coupled group), with its own
BatchNorm parameters and statistics and its own classifier head. Running level
k is a pure function of (input, level): `ElasticNet.forward(x, level)` feeds a
dict of leading-slice views (`params_at(level)`) to a functional copy of the
network's graph, so one cached model can serve different levels to different
threads at once. `extract` turns a level into a plain, smaller model;
`save_elastic` / `load_elastic` are its checkpoint (tensors and plain data only).

How the levels are made (importance order, the core, growing) is in
elastic.methods.grow. Levels are numbered from the smallest (0, the core) to
the full width (-1).
"""
from __future__ import annotations

import copy
import statistics
import time
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from elastic.checkpoints import load_checkpoint, save_checkpoint
from elastic.errors import BadCheckpoint, ElasticError
from elastic.methods.channels import Structure, channel_structure, functional
from elastic.models import ARCHS, arch_config, build_model, layer_channels, layer_shape, resized

DEFAULT_LEVELS = (0.512, 0.64, 0.8, 1.0)
FORMAT = "elastic-net"
FORMAT_VERSION = 1

# ---- the elastic network ------------------------------------------------------------

def level_channels(sizes: Sequence[int], widths: Sequence[float], round_to: int = 1) -> list[tuple[int, ...]]:
    """Channels of every group at every width: size * width rounded to the
    nearest multiple of `round_to`, at least one multiple; the full width keeps
    every channel, and so does a group of at most `round_to` channels. Raises
    ElasticError when the rounding makes two levels the same network."""
    def channels(size: int, width: float) -> int:
        if width == 1.0 or size <= round_to:
            return size
        return min(size, max(round_to, int(size * width / round_to + 0.5) * round_to))

    out = [tuple(channels(size, width) for size in sizes) for width in widths]
    for k in range(1, len(out)):
        if out[k] == out[k - 1]:
            raise ElasticError(f"with channels rounded to multiples of {round_to}, the levels of width "
                               f"{widths[k - 1]:g} and {widths[k]:g} are the same network; give fewer levels "
                               "or a smaller --round-to")
    return out


def check_widths(widths: Sequence[float]) -> tuple[float, ...]:
    """Sorted, distinct fractions in (0, 1] that include 1 (the full network)."""
    out = tuple(sorted({float(w) for w in widths}))
    if not out or out[0] <= 0 or out[-1] != 1.0:
        raise ElasticError(f"levels must be fractions in (0, 1] that include 1 (the full width), "
                           f"got {list(widths)}")
    return out


class ElasticNet(nn.Module):
    """A network holding nested subnetworks at several widths.

    `base` is the full-width network (channels already in importance order); its
    conv / linear weights are shared by all levels, its batch norms and head are
    the full level's own. Every smaller level k has its own batch norms and heads
    in `levels[k]`. `forward(x, level)` never changes the module.
    """

    def __init__(self, base: nn.Module, arch: str, num_classes: int, widths: Sequence[float],
                 structure: Structure | None = None, round_to: int = 1) -> None:
        super().__init__()
        self.base = base
        self.arch = arch
        self.num_classes = num_classes
        self.widths = check_widths(widths)
        self.round_to = round_to           # the levels' channel counts are multiples of it (level_channels)
        self.structure = structure or channel_structure(base)
        self.channels = level_channels(self.structure.sizes, self.widths, round_to)
        own = [name for name, _ in self.structure.norms] + list(self.structure.heads)
        self._own_names = tuple(own)
        self.levels = nn.ModuleList(
            nn.ModuleDict({_key(name): self._sliced_copy(name, k) for name in own})
            for k in range(self.num_levels - 1))
        self.__dict__["_fn"] = functional(base)     # not a submodule: it holds no tensors
        self._shared = tuple((layer, base.get_submodule(layer.name)) for layer in self.structure.layers
                             if layer.name not in self.structure.heads)
        # What level_params reads, per level, looked up in the modules' own tensor
        # dicts at call time (`.to()` may replace the tensors, never the dicts):
        # (key, dict, attr, out, in) for shared slices, (key, dict, attr, is_param) for own tensors.
        self._slices = [self._slice_table(k) for k in range(self.num_levels)]
        self._owned = [[(f"{name}.{attr}", tensors, attr, tensors is module._parameters)
                        for name, module in self.own_modules(k).items()
                        for tensors in (module._parameters, module._buffers)
                        for attr, tensor in tensors.items() if tensor is not None]
                       for k in range(self.num_levels)]
        self._views: list[dict[str, Tensor]] | None = None
        self._configs = self._level_configs()
        self.meta: dict[str, Any] = {}

    @property
    def num_levels(self) -> int:
        return len(self.widths)

    def index(self, level: int) -> int:
        """Level number in 0..num_levels-1 (negative counts from the full width)."""
        k = level + self.num_levels if level < 0 else level
        if not 0 <= k < self.num_levels:
            raise ElasticError(f"level {level} does not exist; this model has levels 0..{self.num_levels - 1}")
        return k

    def forward(self, x: Tensor, level: int = -1) -> Tensor:
        # Under autograd the views are made afresh so gradients reach the shared tensors.
        params = self.level_params(level) if torch.is_grad_enabled() else self.params_at(level)
        return self._fn.forward(x, params, self.training)

    def own_modules(self, level: int) -> dict[str, nn.Module]:
        """The batch norms and heads that belong to `level` alone, by base name."""
        k = self.index(level)
        if k == self.num_levels - 1:
            return {name: self.base.get_submodule(name) for name in self._own_names}
        return {name: self.levels[k][_key(name)] for name in self._own_names}

    def level_params(self, level: int, *, detach: bool = False) -> dict[str, Tensor]:
        """Every tensor of `base`'s state dict as used at `level`, made now: leading
        slices (views) of the shared conv / linear weights, the level's own batch
        norm tensors and head. `detach`: views without autograd links."""
        params: dict[str, Tensor] = {}
        for key, tensors, attr, out, inp in self._slices[self.index(level)]:
            tensor = tensors[attr]
            if detach:
                tensor = tensor.detach()
            params[key] = tensor[:out, :inp] if inp else tensor[:out]   # (out, in, kh, kw): a view
        for key, tensors, attr, is_param in self._owned[self.index(level)]:
            tensor = tensors[attr]
            params[key] = tensor.detach() if detach and is_param else tensor
        return params

    def params_at(self, level: int) -> dict[str, Tensor]:
        """Level `level`'s tensors for inference: views made once and kept (no
        copies, no autograd links). Do not modify the dict."""
        views = self._views
        if views is None:
            views = [self.level_params(k, detach=True) for k in range(self.num_levels)]
            self._views = views
        return views[self.index(level)]

    def level_config(self, level: int) -> dict[str, Any]:
        """`arch_config` of level `level`: `build_model(arch, num_classes, config)`
        builds its standalone structure."""
        return copy.deepcopy(self._configs[self.index(level)])

    def _slice_table(self, k: int) -> list[tuple[str, dict, str, int, int]]:
        table = []
        channels = self.channels[k]
        for layer, module in self._shared:
            weight = module.weight
            out = channels[layer.out_group] if layer.out_group is not None else weight.shape[0]
            inp = channels[layer.in_group] * layer.per_channel if layer.in_group is not None else weight.shape[1]
            table.append((f"{layer.name}.weight", module._parameters, "weight", out, inp))
            if module.bias is not None:
                table.append((f"{layer.name}.bias", module._parameters, "bias", out, 0))
        return table

    def _level_configs(self) -> list[dict[str, Any]]:
        reference = {name: layer_shape(module) for name, module in ARCHS.get(self.arch).build(self.num_classes)
                     .named_modules()}
        removed = arch_config(self.base, self.arch, self.num_classes)["removed_blocks"]
        configs = []
        for k in range(self.num_levels):
            params = self.level_params(k, detach=True)
            shapes = {}
            for name, module in self.base.named_modules():
                if layer_shape(module) is None:
                    continue
                weight = params[f"{name}.weight"]
                shape = [weight.shape[0]] if isinstance(module, _BatchNorm) else [weight.shape[1], weight.shape[0]]
                if shape != reference.get(name):
                    shapes[name] = shape
            configs.append({"removed_blocks": list(removed), "shapes": shapes})
        return configs

    def _sliced_copy(self, name: str, level: int) -> nn.Module:
        """A copy of base module `name` cut to level `level`'s channels."""
        module = self.base.get_submodule(name)
        channels = self.channels[level]
        if isinstance(module, _BatchNorm):
            group = dict(self.structure.norms)[name]
            shape = [channels[group] if group is not None else module.num_features]
        else:
            layer = next(layer for layer in self.structure.layers if layer.name == name)
            inp = (channels[layer.in_group] * layer.per_channel if layer.in_group is not None
                   else module.weight.shape[1])
            shape = [inp, layer_channels(module)[1]]
        new = resized(module, shape)
        copy_leading(module, new)
        return new.to(module.weight.device, module.weight.dtype)

    def _apply(self, fn, *args, **kwargs):  # .to(), .cuda(), .float() may replace tensors
        self._views = None
        result = super()._apply(fn, *args, **kwargs)
        self._views = None
        return result

    def _load_from_state_dict(self, *args, **kwargs):  # load_state_dict(assign=True) replaces tensors
        self._views = None
        return super()._load_from_state_dict(*args, **kwargs)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_views"] = None
        return state

    def extra_repr(self) -> str:
        rounding = f", round_to={self.round_to}" if self.round_to > 1 else ""
        return f"arch={self.arch}, widths={list(self.widths)}{rounding}"


class LevelView(nn.Module):
    """One level of an elastic model as a module, for the training engine,
    `evaluate` and the profiler. Shares everything with the model."""

    def __init__(self, model: ElasticNet, level: int) -> None:
        super().__init__()
        self.model = model
        self.level = model.index(level)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x, self.level)


def _key(name: str) -> str:
    return name.replace(".", "-")     # module names never contain "-"


@torch.no_grad()
def copy_leading(source: nn.Module, target: nn.Module) -> None:
    """Copy the leading slice of each of `source`'s tensors into the tensor of the
    same name in `target`, as much as the smaller of the two holds."""
    src = source.state_dict(keep_vars=True)
    for name, tensor in target.state_dict(keep_vars=True).items():
        if tensor.dim() == 0:
            tensor.copy_(src[name])
            continue
        region = tuple(slice(0, min(a, b)) for a, b in zip(tensor.shape, src[name].shape))
        tensor[region].copy_(src[name][region])


def extract(model: ElasticNet, level: int) -> nn.Module:
    """Level `level` as a standalone plain model with real, smaller tensors
    (built with `build_model(arch, num_classes, level_config)`), in eval mode."""
    small = build_model(model.arch, model.num_classes, model.level_config(level))
    small.load_state_dict(model.params_at(level))   # copies the values
    device = next(model.parameters()).device
    return small.to(device).eval()


def switch_time_us(model: ElasticNet, level: int, repeats: int = 200, *, cached: bool = False) -> float:
    """Median microseconds to prepare level `level`'s parameter views from
    scratch (what `params_at` does once per level), or with `cached` to fetch
    the precomputed views (what every later switch costs)."""
    prepare = model.params_at if cached else lambda k: model.level_params(k, detach=True)
    times = []
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter_ns()
            prepare(level)
            times.append(time.perf_counter_ns() - start)
    return statistics.median(times) / 1000


# ---- checkpoints ------------------------------------------------------------------------

def save_elastic(path: Path | str, model: ElasticNet, **meta: Any) -> None:
    """Tensors and plain data only (loadable with weights_only=True): the
    architecture, class count, base config, widths, channels per level and the
    state dict, plus `meta` (plain values)."""
    save_checkpoint(path, {
        "format": FORMAT, "version": FORMAT_VERSION, "arch": model.arch, "num_classes": model.num_classes,
        "config": arch_config(model.base, model.arch, model.num_classes), "levels": list(model.widths),
        "round_to": model.round_to,
        "channels": [list(c) for c in model.channels],
        "level_configs": [model.level_config(k) for k in range(model.num_levels)],
        "state": {name: t.detach().cpu() for name, t in model.state_dict().items()},
        "meta": {**model.meta, **meta},
    })


def load_elastic(path: Path | str, device: torch.device | str = "cpu") -> ElasticNet:
    """Rebuild an elastic network saved by `save_elastic`; raises BadCheckpoint
    for anything else. The saved `meta` is in `model.meta`."""
    from elastic.checkpoints import skeleton, weights_mismatch

    state = load_checkpoint(path, device)
    if state.get("format") != FORMAT:
        raise BadCheckpoint(f"{path} is not an elastic checkpoint (write one with python -m elastic grow)")
    if int(state.get("version", 0)) > FORMAT_VERSION:
        raise BadCheckpoint(f"{path} was written by a newer version (format {state['version']})")
    try:
        arch, num_classes = state["arch"], int(state["num_classes"])
        if arch not in ARCHS:
            raise BadCheckpoint(f"{path} is for architecture {arch!r}, which is not supported")
        # Check the claimed shapes on the meta device before allocating anything.
        base_weights = {k[5:]: v for k, v in state["state"].items() if k.startswith("base.")}
        mismatch = weights_mismatch(skeleton(arch, num_classes, state.get("config")), base_weights)
        if mismatch:
            raise BadCheckpoint(f"{path}: weights do not fit the {arch} it describes ({mismatch})")
        model = ElasticNet(build_model(arch, num_classes, state.get("config")), arch, num_classes, state["levels"],
                           round_to=int(state.get("round_to", 1)))       # files before --round-to: 1
        configs = [model.level_config(k) for k in range(model.num_levels)]
        if [list(c) for c in model.channels] != state["channels"] or configs != state["level_configs"]:
            raise BadCheckpoint(f"{path}: its channels per level do not match the {arch} structure")
        model.load_state_dict(state["state"])
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as err:
        first = str(err).strip().splitlines()
        raise BadCheckpoint(f"{path}: not a valid elastic checkpoint ({first[-1] if first else err!r})") from None
    except ElasticError as err:
        if isinstance(err, BadCheckpoint):
            raise
        raise BadCheckpoint(f"{path}: {err}") from None
    model.meta = dict(state.get("meta", {}))
    return model.to(device).eval()


__all__ = ["DEFAULT_LEVELS", "ElasticNet", "LevelView", "check_widths", "copy_leading", "extract", "level_channels",
           "load_elastic", "save_elastic", "switch_time_us"]
