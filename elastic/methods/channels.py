"""The network as torch.fx sees it: which channels are tied together
(`channel_structure`), the one analysis of coupled channels that complexity
planning and prune-and-grow share, and a functional copy of the graph that
reads every tensor from a dict (`functional`), so an elastic level runs on
leading slices of shared weights.

Why a small fx pass and not Torch-Pruning's DependencyGraph for the analysis:
from one trace prune-and-grow needs, beyond the groups, each conv / linear's
input and output group with the features per input channel (a linear after a
flatten), every BatchNorm's group, the layers that write the output (one head
per level), the rewritten graph `ElasticNet.forward(x, level)` runs, and a
refusal, by name, of any operation it cannot slice. Torch-Pruning's graph does
what it is best at: the tensor surgery of `complexity.build`, and a test
(tests/test_models.py) checks on every registered architecture that both find
the same groups.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.nn.modules.batchnorm import _BatchNorm

from elastic.errors import ElasticError
from elastic.profile import symbolic_trace

# Modules without parameters whose output has the input's channels.
_PASS_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.SiLU, nn.GELU, nn.Hardswish, nn.Sigmoid, nn.Tanh,
                 nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Dropout, nn.Identity)
_PASS_FUNCTIONS = (F.relu, torch.relu, F.relu6, F.silu, F.gelu, torch.sigmoid, torch.tanh,
                   F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d, F.dropout)
_PASS_METHODS = ("relu", "relu_", "sigmoid", "tanh", "contiguous")
_ADDS = (operator.add, torch.add, operator.iadd)


# ---- structure: which channels are tied together ------------------------------------

@dataclass(frozen=True)
class Layer:
    """How a conv / linear layer is sliced: the groups of its output and input
    channels (None: fixed, never sliced) and how many input features each input
    channel feeds (H*W for a linear layer after a flatten, else 1)."""
    name: str
    out_group: int | None
    in_group: int | None
    per_channel: int = 1


@dataclass(frozen=True)
class Structure:
    """The channel groups of a network. Group g has `sizes[g]` channels; every
    layer writing it (out_group == g, added together where residuals join),
    every batch norm over it and every layer reading it share one order."""
    sizes: tuple[int, ...]
    layers: tuple[Layer, ...]                    # every conv / linear, in call order
    norms: tuple[tuple[str, int | None], ...]    # every batch norm and its group
    heads: tuple[str, ...]                       # layers writing the model's output: one copy per level


def channel_structure(model: nn.Module) -> Structure:
    """Trace `model` with torch.fx and find its channel groups. Raises
    ElasticError naming the first operation that prune-and-grow cannot slice."""
    traced = _trace(model)
    modules = dict(traced.named_modules())
    parent: list[int] = []         # union-find over channel spaces
    size: list[int] = []           # channels of each space (0: not known yet)

    def new_space(channels: int) -> int:
        parent.append(len(parent))
        size.append(channels)
        return len(parent) - 1

    def find(space: int) -> int:
        while parent[space] != space:
            parent[space] = parent[parent[space]]
            space = parent[space]
        return space

    def union(a: int, b: int, where: str) -> None:
        a, b = find(a), find(b)
        if a != b:
            if size[a] and size[b] and size[a] != size[b]:
                raise ElasticError(f"{where} adds tensors of {size[a]} and {size[b]} channels")
            parent[b] = a
            size[a] = size[a] or size[b]

    # node -> (channel space, kind): kind "map" (N, C, H, W), "flat" (N, C*H*W) or "vec" (N, C)
    value: dict[fx.Node, tuple[int, str]] = {}
    layers: list[tuple[str, int, int, int]] = []    # (name, out space, in space, per channel)
    norms: list[tuple[str, int]] = []
    fixed_in: int | None = None
    fixed_out: int | None = None
    called: set[str] = set()

    def source(node: fx.Node) -> tuple[int, str]:
        arg = node.args[0] if node.args else None
        if not isinstance(arg, fx.Node) or arg not in value:
            raise ElasticError(f"prune-and-grow cannot follow the channels into {node.format_node()}")
        return value[arg]

    for node in traced.graph.nodes:
        where = f"{node.op} {node.target}"
        if node.op == "placeholder":
            if fixed_in is not None:
                raise ElasticError("prune-and-grow supports networks with one input")
            fixed_in = new_space(0)
            value[node] = (fixed_in, "map")
        elif node.op == "output":
            out = node.args[0]
            if not isinstance(out, fx.Node) or out not in value:
                raise ElasticError("prune-and-grow supports networks with one tensor output")
            fixed_out = value[out][0]
        elif node.op == "call_module":
            module = modules[node.target]
            space, kind = source(node)
            name = str(node.target)
            if isinstance(module, (nn.Conv2d, nn.Linear, _BatchNorm)):
                if name in called:
                    raise ElasticError(f"{name} is called twice; prune-and-grow needs one call per layer")
                called.add(name)
            if isinstance(module, nn.Conv2d):
                if module.groups != 1 or module.padding_mode != "zeros" or kind != "map":
                    raise ElasticError(f"{name}: prune-and-grow supports plain convolutions only "
                                       f"(groups=1, zero padding)")
                if size[find(space)] and size[find(space)] != module.in_channels:
                    raise ElasticError(f"{name} reads {module.in_channels} channels, "
                                       f"its input has {size[find(space)]}")
                size[find(space)] = module.in_channels
                out = new_space(module.out_channels)
                layers.append((name, out, space, 1))
                value[node] = (out, "map")
            elif isinstance(module, nn.Linear):
                if kind == "map":
                    raise ElasticError(f"{name}: a linear layer on a feature map is not supported; flatten first")
                channels = size[find(space)]
                per = module.in_features // channels if channels else 1
                if channels and (module.in_features != channels * per or (kind == "vec" and per != 1)):
                    raise ElasticError(f"{name} reads {module.in_features} features from {channels} channels")
                out = new_space(module.out_features)
                layers.append((name, out, space, per))
                value[node] = (out, "vec")
            elif isinstance(module, _BatchNorm):
                if not (module.affine and module.track_running_stats) or module.momentum is None:
                    raise ElasticError(f"{name}: prune-and-grow needs batch norms with affine parameters, "
                                       f"running statistics and a momentum")
                norms.append((name, space))
                value[node] = (space, kind)
            elif isinstance(module, nn.Flatten):
                if module.start_dim != 1 or module.end_dim != -1:
                    raise ElasticError(f"{name}: only flatten(start_dim=1) is supported")
                value[node] = (space, "flat" if kind == "map" else kind)
            elif isinstance(module, _PASS_MODULES):
                value[node] = (space, kind)
            else:
                raise ElasticError(f"prune-and-grow does not support {type(module).__name__} ({name})")
        elif node.op == "call_function" and node.target in _ADDS:
            tensors = [a for a in node.args if isinstance(a, fx.Node)]
            if not tensors or any(a not in value for a in tensors):
                raise ElasticError(f"prune-and-grow cannot follow {node.format_node()}")
            first, kind = value[tensors[0]]
            for other in tensors[1:]:
                if value[other][1] != kind:
                    raise ElasticError(f"{where} adds tensors of different layouts")
                union(first, value[other][0], where)
            value[node] = (first, kind)
        elif node.op == "call_function" and node.target in _PASS_FUNCTIONS:
            value[node] = source(node)
        elif node.op == "call_function" and node.target is torch.flatten:
            space, kind = source(node)
            if tuple(node.args[1:]) + tuple(node.kwargs.values()) not in ((1,), (1, -1)):
                raise ElasticError(f"{where}: only flatten(x, 1) is supported")
            value[node] = (space, "flat" if kind == "map" else kind)
        elif node.op == "call_method" and node.target == "flatten":
            space, kind = source(node)
            if tuple(node.args[1:]) + tuple(node.kwargs.values()) not in ((1,), (1, -1)):
                raise ElasticError(f"{where}: only x.flatten(1) is supported")
            value[node] = (space, "flat" if kind == "map" else kind)
        elif node.op == "call_method" and node.target in _PASS_METHODS:
            value[node] = source(node)
        else:
            raise ElasticError(f"prune-and-grow does not support the operation {node.format_node()}; "
                               f"supported: conv, linear, batch norm, additions, flatten, "
                               f"activations, pooling, dropout")
    if fixed_in is None or fixed_out is None:
        raise ElasticError("prune-and-grow found no input or output in the traced network")

    fixed = {find(fixed_in), find(fixed_out)}
    groups: dict[int, int] = {}                     # root space -> group index, in call order
    for _, out, _, _ in layers:
        root = find(out)
        if root not in fixed and root not in groups:
            groups[root] = len(groups)

    def group(space: int) -> int | None:
        return groups.get(find(space))

    return Structure(
        sizes=tuple(size[root] for root in groups),
        layers=tuple(Layer(name, group(out), group(inp), per) for name, out, inp, per in layers),
        norms=tuple((name, group(space)) for name, space in norms),
        heads=tuple(name for name, out, _, _ in layers if find(out) == find(fixed_out)),
    )


def _trace(model: nn.Module) -> fx.GraphModule:
    try:
        return symbolic_trace(model)
    except Exception as err:  # fx raises many types; all mean "not traceable"
        raise ElasticError(f"prune-and-grow cannot trace {type(model).__name__} with torch.fx: "
                           f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from None


def functional(model: nn.Module) -> fx.GraphModule:
    """The network as a pure function `f(x, params, training)`: every conv,
    linear and batch norm reads its tensors from `params` (a dict keyed like the
    model's state dict) instead of from its module. Stateless modules (ReLU,
    pooling) are called as they are; dropout becomes F.dropout(training)."""
    traced = _trace(model)
    modules = dict(traced.named_modules())
    graph = fx.Graph()
    x = graph.placeholder("x")
    params = graph.placeholder("params")
    training = graph.placeholder("training")
    env: dict[fx.Node, Any] = {}

    def tensor(name: str) -> fx.Node:
        return graph.call_function(operator.getitem, (params, name))

    for node in traced.graph.nodes:
        name = str(node.target)
        if node.op == "placeholder":
            env[node] = x
        elif node.op == "output":
            graph.output(fx.map_arg(node.args[0], env.__getitem__))
        elif node.op == "call_module":
            module = modules[name]
            (inp,) = fx.map_arg(node.args, env.__getitem__)
            bias = tensor(f"{name}.bias") if getattr(module, "bias", None) is not None else None
            if isinstance(module, nn.Conv2d):
                env[node] = graph.call_function(F.conv2d, (inp, tensor(f"{name}.weight"), bias, module.stride,
                                                           module.padding, module.dilation, module.groups))
            elif isinstance(module, nn.Linear):
                env[node] = graph.call_function(F.linear, (inp, tensor(f"{name}.weight"), bias))
            elif isinstance(module, _BatchNorm):
                env[node] = graph.call_function(F.batch_norm, (
                    inp, tensor(f"{name}.running_mean"), tensor(f"{name}.running_var"),
                    tensor(f"{name}.weight"), bias, training, module.momentum, module.eps))
            elif isinstance(module, nn.Dropout):
                env[node] = graph.call_function(F.dropout, (inp, module.p, training, module.inplace))
            else:
                env[node] = graph.call_module(name, (inp,))
        else:
            env[node] = graph.node_copy(node, env.__getitem__)
    return fx.GraphModule(traced, graph, class_name="ElasticFunctional")


__all__ = ["Layer", "Structure", "channel_structure", "functional"]
