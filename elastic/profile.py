"""Per-layer complexity of a model: parameters, MACs, memory, peak activation memory.

Pure: a model goes in, numbers come out; no printing, no files.

Conventions, for one input sample (batch 1):
- MACs are multiply-accumulates as counted by
  ``torch.utils.flop_counter.FlopCounterMode``, halved: convolutions, linear
  layers and matmuls count; BatchNorm, activations, pooling, additions and
  biases count zero. FLOPs = 2 x MACs.
- Bytes are fp32 (4 per element) unless a method takes ``dtype_bytes``.
- Peak activation memory is MCUNet's liveness analysis over the torch.fx
  graph: a tensor lives from the node that allocates it until its last user
  has run, and the peak is the largest total alive while any one node runs.
  The input counts; views and in-place ops allocate nothing and keep the
  storage they alias alive. Ops traced as out-of-place count a new tensor even
  where eager code is in place (torchvision's ``out += identity`` traces as an
  add), which is what a deployed graph without that rewrite would need.
"""
from __future__ import annotations

import dataclasses
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import fx, nn
from torch.utils.flop_counter import FlopCounterMode

FP32_BYTES = 4

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
_ALWAYS_LISTED = ("conv", "linear", "bn")
_SHARES = {"params": "params_share", "macs": "macs_share", "memory_bytes": "memory_share"}


@dataclass(frozen=True)
class LayerProfile:
    """Complexity of one leaf module for one input sample."""

    name: str
    kind: str
    params: int
    macs: int
    weight_bytes: int
    activation_bytes: int
    out_shape: tuple[int, ...]

    @property
    def memory_bytes(self) -> int:
        """Weights plus output activation: the memory the "MA" criterion ranks layers by."""
        return self.weight_bytes + self.activation_bytes


@dataclass(frozen=True)
class ModelProfile:
    """Complexity of a whole model for one input sample."""

    layers: tuple[LayerProfile, ...]
    params: int
    macs: int
    weight_bytes: int
    peak_activation_bytes: int
    peak_activation_elements: int

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def peak_memory_bytes(self, dtype_bytes: int = FP32_BYTES) -> int:
        """Weights plus peak live activations, every element stored in `dtype_bytes`."""
        return (self.params + self.peak_activation_elements) * dtype_bytes

    def peak_memory_int8(self) -> int:
        return self.peak_memory_bytes(dtype_bytes=1)

    def to_rows(self) -> list[dict[str, Any]]:
        """One dict per layer for a table; shares are fractions of the sums over `layers`."""
        totals = {key: sum(getattr(layer, key) for layer in self.layers) for key in _SHARES}
        rows = []
        for layer in self.layers:
            row = dataclasses.asdict(layer)
            row["memory_bytes"] = layer.memory_bytes
            for key, share in _SHARES.items():
                row[share] = getattr(layer, key) / totals[key] if totals[key] else 0.0
            rows.append(row)
        return rows


def profile_model(model: nn.Module, input_shape: tuple[int, int, int]) -> ModelProfile:
    """Profile `model` on one zero input of shape (C, H, W).

    Traces with torch.fx and runs the graph once in eval mode without
    gradients; every module's train/eval flag is restored and nothing else is
    changed. `layers` lists, in first-call order, the fx leaf modules that are
    conv, linear or BatchNorm or that have parameters or MACs; a module called
    twice is one row with its MACs summed and its first output. Raises
    ValueError if torch.fx cannot trace the model (`count_macs` still works).
    """
    with _eval_mode(model), torch.no_grad():
        # Traced in eval mode because forward code may branch on self.training.
        graph_module = _trace(model)
        counter = FlopCounterMode(display=False)
        recorder = _Recorder(graph_module, counter)
        with counter:
            recorder.run(_example_input(model, input_shape))

    params = sum(p.numel() for p in model.parameters())
    peak_elements = _peak_activation_elements(graph_module.graph, recorder.outputs, _weight_storages(model))
    return ModelProfile(
        layers=_layers(model, graph_module.graph, recorder),
        params=params,
        macs=counter.get_total_flops() // 2,
        weight_bytes=params * FP32_BYTES,
        peak_activation_bytes=peak_elements * FP32_BYTES,
        peak_activation_elements=peak_elements,
    )


def count_macs(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Total MACs for one sample of shape (C, H, W); no tracing, so any model works."""
    with _eval_mode(model), torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(_example_input(model, input_shape))
    return counter.get_total_flops() // 2


def format_table(profile: ModelProfile) -> str:
    """A fixed-width per-layer table with totals, for the CLI."""
    header = ("layer", "kind", "output", "params", "MACs", "weights KB", "act. KB", "MACs %")
    rows = [
        (
            row["name"],
            row["kind"],
            "x".join(map(str, row["out_shape"])),
            _human(row["params"]),
            _human(row["macs"]),
            f"{row['weight_bytes'] / 1024:.1f}",
            f"{row['activation_bytes'] / 1024:.1f}",
            f"{100 * row['macs_share']:.1f}",
        )
        for row in profile.to_rows()
    ]
    widths = [max(len(cells[i]) for cells in [header, *rows]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        # Text columns left-aligned, numbers right-aligned.
        return "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    rule = "-" * len(line(header))
    return "\n".join([
        line(header),
        rule,
        *map(line, rows),
        rule,
        f"params {_human(profile.params)}   MACs {profile.macs / 1e6:.2f}M   FLOPs {profile.flops / 1e6:.2f}M",
        f"weights {profile.weight_bytes / 1024:.1f} KB   peak activations {profile.peak_activation_bytes / 1024:.1f} KB",
        f"peak memory {profile.peak_memory_bytes() / 1024:.1f} KB fp32, {profile.peak_memory_int8() / 1024:.1f} KB int8"
        f" ({profile.peak_memory_bytes():,} bytes fp32, {profile.peak_memory_int8():,} bytes int8)",
        "MACs are multiply-accumulates of conv/linear/matmul for one sample; FLOPs = 2 x MACs;",
        "BN, activations and pooling are not counted. 1 KB = 1024 bytes.",
    ])


class _Recorder(fx.Interpreter):
    """Runs a traced graph, keeping each node's output and the MACs it added."""

    def __init__(self, module: fx.GraphModule, counter: FlopCounterMode) -> None:
        super().__init__(module)
        self.counter = counter
        self.outputs: dict[fx.Node, Any] = {}
        self.macs: dict[fx.Node, int] = {}

    def run_node(self, node: fx.Node) -> Any:
        flops_before = self.counter.get_total_flops()
        out = super().run_node(node)
        self.macs[node] = (self.counter.get_total_flops() - flops_before) // 2
        # Holding every output also stops the allocator reusing an address,
        # which _peak_activation_elements relies on to recognise aliases.
        self.outputs[node] = out
        return out


def _layers(model: nn.Module, graph: fx.Graph, recorder: _Recorder) -> tuple[LayerProfile, ...]:
    layers: dict[str, LayerProfile] = {}  # by module name, in first-call order
    for node in graph.nodes:
        if node.op != "call_module":
            continue
        module = model.get_submodule(node.target)
        kind = _kind(module)
        # An fx leaf runs its own children, so their parameters belong to this row.
        params = sum(p.numel() for p in module.parameters())
        macs = recorder.macs[node]
        if kind not in _ALWAYS_LISTED and params == 0 and macs == 0:
            continue
        if node.target in layers:
            previous = layers[node.target]
            layers[node.target] = dataclasses.replace(previous, macs=previous.macs + macs)
            continue
        tensors = _tensors(recorder.outputs[node])
        layers[node.target] = LayerProfile(
            name=node.target,
            kind=kind,
            params=params,
            macs=macs,
            weight_bytes=params * FP32_BYTES,
            activation_bytes=sum(t.numel() for t in tensors) * FP32_BYTES,
            out_shape=tuple(tensors[0].shape[1:]) if tensors else (),
        )
    return tuple(layers.values())


def _peak_activation_elements(graph: fx.Graph, outputs: dict[fx.Node, Any], weights: set[int]) -> int:
    """The most activation elements alive at once while the graph runs.

    Tensors are grouped by storage, so a view or in-place result is the same
    allocation as its source: it adds nothing and extends the source's life.
    """
    nodes = list(graph.nodes)
    born: dict[int, int] = {}  # storage address -> index of the node that allocated it
    size: dict[int, int] = {}  # storage address -> elements
    refs: dict[fx.Node, set[int]] = {}  # storages each node's output points into
    for i, node in enumerate(nodes):
        refs[node] = set()
        for tensor in _tensors(outputs.get(node)):
            storage = tensor.untyped_storage()
            address = storage.data_ptr()
            if address in weights:
                continue
            if address not in born:
                born[address] = i
                size[address] = storage.nbytes() // tensor.element_size()
            refs[node].add(address)

    last_use = dict(born)
    for i, node in enumerate(nodes):
        for source in node.all_input_nodes:
            for address in refs[source]:
                last_use[address] = max(last_use[address], i)

    alive = [0] * len(nodes)
    for address, start in born.items():
        for i in range(start, last_use[address] + 1):
            alive[i] += size[address]
    return max(alive, default=0)


def _weight_storages(model: nn.Module) -> set[int]:
    return {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}


def _tensors(value: Any) -> list[torch.Tensor]:
    """The tensors in a node's output, which may be a tensor, a container or neither."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in _tensors(item)]
    if isinstance(value, dict):
        return [t for item in value.values() for t in _tensors(item)]
    return []


def _kind(module: nn.Module) -> str:
    if isinstance(module, _CONV):
        return "conv"
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, _BN):
        return "bn"
    return type(module).__name__.lower()


def _trace(model: nn.Module) -> fx.GraphModule:
    try:
        return symbolic_trace(model)
    except Exception as error:  # fx raises several types; all mean "not traceable"
        raise ValueError(
            f"cannot profile {type(model).__name__}: torch.fx cannot trace it ({error}); "
            "count_macs still gives its MACs"
        ) from error


def _example_input(model: nn.Module, input_shape: tuple[int, int, int]) -> torch.Tensor:
    """A zero batch of one on the model's device and dtype."""
    param = next(model.parameters(), None)
    if param is None:
        return torch.zeros(1, *input_shape)
    return torch.zeros(1, *input_shape, device=param.device, dtype=param.dtype)


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode inside the block; each module's own flag restored after."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in flags:
            module.training = training


def _human(count: int) -> str:
    if count >= 1_000_000:
        return f"{count / 1e6:.2f}M"
    if count >= 1_000:
        return f"{count / 1e3:.1f}K"
    return str(count)


# torch.fx.symbolic_trace patches nn.Module.__call__ and __getattr__ for the whole
# process while it traces: without care, a trace in one app session breaks model
# calls in every other session's thread. Traces take turns, and the patches let
# other threads' calls pass straight through.
_TRACE_LOCK = threading.RLock()


class _ThreadTracer(fx.Tracer):
    """An fx.Tracer whose process-wide patches only act in the tracing thread."""

    def trace(self, root, concrete_args=None):
        self._thread = threading.get_ident()
        return super().trace(root, concrete_args)

    def call_module(self, m, forward, args, kwargs):
        if threading.get_ident() != self._thread:
            return forward(*args, **kwargs)
        return super().call_module(m, forward, args, kwargs)

    def getattr(self, attr, attr_val, parameter_proxy_cache):
        if threading.get_ident() != self._thread:
            return attr_val
        return super().getattr(attr, attr_val, parameter_proxy_cache)


def symbolic_trace(model: nn.Module) -> fx.GraphModule:
    """torch.fx.symbolic_trace that other threads can run models beside."""
    with _TRACE_LOCK:
        tracer = _ThreadTracer()
        graph = tracer.trace(model)
    return fx.GraphModule(tracer.root, graph, type(model).__name__)
