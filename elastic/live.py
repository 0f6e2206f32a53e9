"""Live measurements of a network the user changes in the app: accuracy on a
split, size, and latency, all in onnxruntime on the CPU, the runtime a deployment
uses (and on these CPUs 1.5-2x faster than eager PyTorch at evaluating a split).

`measure` takes a network (for example a baseline with blocks removed by
`elastic.methods.blocks.remove`) and returns what the Block pruning page shows;
`scan` is the direct block-pruning step (every candidate removed on its own, the
accuracy measured without it) run the same way. The network is exported to a
temporary ONNX file, verified against PyTorch, and the file deleted.

A baseline that blocks are removed from again and again is exported once
(`Exported`): each removal cuts the blocks' nodes out of that graph (ONNX
graph surgery, milliseconds) instead of exporting the smaller network anew
(0.3-0.6 s for ResNet-56 here), and the result is verified against the PyTorch
network without those blocks all the same.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from elastic.data import DatasetSpec, ImageSet
from elastic.deploy import (Latency, export_onnx, exported_sessions, onnx_session, private_copy, time_runners,
                            verify_onnx)
from elastic.errors import ElasticError
from elastic.methods.blocks import ScanProgress, block_scan, remove
from elastic.profile import profile_model
from elastic.train import evaluate

LATENCY_REPEATS = 20
BATCH_PIXELS = 1000 * 32 * 32       # images per accuracy batch times their pixels (see OnnxNetwork.accuracy)


@dataclass(frozen=True)
class Measured:
    """One network measured now: top-1 accuracy (%) on `images` images, its
    size, and batch-1 latency in onnxruntime (one thread)."""
    accuracy: float
    images: int
    params: int
    macs: int
    peak_mem_fp32: int
    latency: Latency
    seconds: float                  # wall-clock time of the whole measurement


class OnnxNetwork:
    """A network as an onnxruntime session (all threads, for accuracy) and a
    one-thread session (for latency), from a verified temporary export, or from
    `onnx_model` (a serialized ONNX model of the same network), verified too."""

    def __init__(self, model: nn.Module, input_shape: tuple[int, int, int], onnx_model: bytes | None = None) -> None:
        if onnx_model is None:
            self.session, self.single = exported_sessions(model, input_shape, (None, 1), verify=True)
        else:
            self.session, self.single = onnx_session(onnx_model, None), onnx_session(onnx_model, 1)
            verify_onnx(model, "the ONNX graph with blocks cut out", input_shape, relative=True, session=self.single)
        self.input = self.session.get_inputs()[0].name

    def __call__(self, x: Tensor) -> Tensor:
        return torch.from_numpy(self.session.run(None, {self.input: x.numpy()})[0])

    def accuracy(self, images: ImageSet, spec: DatasetSpec) -> float:
        # Large batches run faster in onnxruntime (1,000 32-pixel images at once: 9 % faster than
        # 250); larger images in proportionally smaller batches, so memory stays about the same.
        return evaluate(self, images, spec, batch_size=max(1, BATCH_PIXELS // spec.input_size ** 2))

    def run_single(self, x: Tensor) -> Any:
        return self.single.run(None, {self.input: x.numpy()})


class Exported:
    """A network exported to ONNX once, for measuring it with blocks removed:
    `without(blocks)` gives the PyTorch network and its ONNX model, cut from
    this export (`cut_blocks`). Holds a private copy: the caller's model stays as it is."""

    def __init__(self, model: nn.Module, input_shape: tuple[int, int, int]) -> None:
        import onnx
        self.model = private_copy(model)
        self.input_shape = input_shape
        with tempfile.TemporaryDirectory(prefix="elastic-live-") as tmp:
            self.graph = onnx.load(str(export_onnx(self.model, Path(tmp) / "model.onnx", input_shape)))

    def without(self, blocks: Sequence[str]) -> tuple[nn.Module, bytes]:
        graph = cut_blocks(self.graph, blocks).SerializeToString()       # first: it checks the names
        return without(self.model, blocks), graph


def cut_blocks(graph_model: Any, blocks: Sequence[str]) -> Any:
    """A copy of an exported ONNX model (onnx.ModelProto) without the residual
    blocks `blocks` (module names such as "layer1.1"). The exporter names a
    block's nodes after its module scope ("/layer1/layer1.1/conv1/Conv"); those
    nodes go, and what read the block's output reads its input instead. Raises
    ElasticError when a block has no nodes, or not exactly one input and one
    output tensor (so it is not a block whose removal is a shortcut)."""
    import onnx
    cut = onnx.ModelProto()
    cut.CopyFrom(graph_model)
    graph = cut.graph
    for block in blocks:
        parts = block.split(".")
        scope = "/" + "/".join(".".join(parts[:i + 1]) for i in range(len(parts))) + "/"
        inside = [node for node in graph.node if node.name.startswith(scope)]
        if not inside:
            raise ElasticError(f"the ONNX graph has no nodes of block {block} (scope {scope})")
        made = {out for node in inside for out in node.output}
        constants = _constants(graph)
        inputs = {name for node in inside for name in node.input if name and name not in made | constants}
        outside = [node for node in graph.node if not node.name.startswith(scope)]
        read_after = {name for node in outside for name in node.input} | {out.name for out in graph.output}
        outputs = made & read_after
        if len(inputs) != 1 or len(outputs) != 1:
            raise ElasticError(f"block {block} has {len(inputs)} inputs and {len(outputs)} outputs in the "
                               "ONNX graph; only a block with one of each can be cut out")
        source, result = inputs.pop(), outputs.pop()
        for node in outside:
            for i, name in enumerate(node.input):
                if name == result:
                    node.input[i] = source
        for out in graph.output:
            if out.name == result:
                raise ElasticError(f"block {block} writes the network's output; it cannot be cut out")
        del graph.node[:]
        graph.node.extend(outside)
    # What only the cut blocks read goes too: nodes (the exporter's Identity copies of
    # shared weights) and initializers.
    needed = {out.name for out in graph.output}
    live_nodes = []
    for node in reversed(graph.node):
        if any(out in needed for out in node.output):
            live_nodes.append(node)
            needed.update(node.input)
    del graph.node[:]
    graph.node.extend(reversed(live_nodes))
    kept = [init for init in graph.initializer if init.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return cut


def _constants(graph: Any) -> set[str]:
    """The tensors that do not depend on the images: initializers and what nodes
    make of them alone (nodes are in topological order in an ONNX graph)."""
    constant = {init.name for init in graph.initializer}
    for node in graph.node:
        if all(name in constant for name in node.input if name):
            constant.update(node.output)
    return constant


def measure(model: nn.Module, images: ImageSet, spec: DatasetSpec, *, repeats: int = LATENCY_REPEATS,
            onnx_model: bytes | None = None) -> Measured:
    """Accuracy on `images`, params, MACs, peak fp32 memory and onnxruntime
    latency (batch 1, one thread, median of `repeats` after 5 warm-up passes).
    `onnx_model`: the network as ONNX already (`Exported.without`), else it is exported now."""
    started = time.perf_counter()
    shape = (3, spec.input_size, spec.input_size)
    net = OnnxNetwork(model, shape, onnx_model)
    accuracy = net.accuracy(images, spec)
    prof = profile_model(model, shape)
    x = torch.randn(1, *shape, generator=torch.Generator().manual_seed(0))
    latency = time_runners({"model": net.run_single}, x, warmup=5, repeats=repeats, rounds=1, threads=1,
                           runtime="onnxruntime")["model"]
    return Measured(accuracy, len(images), prof.params, prof.macs, prof.peak_memory_bytes(4), latency,
                    time.perf_counter() - started)


def scan(model: nn.Module, candidates: Sequence[str], images: ImageSet, spec: DatasetSpec, *,
         on_progress: ScanProgress | None = None, exported: Exported | None = None) -> dict[str, float]:
    """The direct step of block pruning: {candidate: accuracy (%) on `images`
    with that block alone removed}, each measured in onnxruntime, cut from one
    export of `model` (`exported`, if it has been exported already)."""
    shape = (3, spec.input_size, spec.input_size)
    exported = exported or Exported(model, shape)

    def accuracy(cut: tuple[nn.Module, bytes]) -> float:
        network, onnx_model = cut
        return OnnxNetwork(network, shape, onnx_model).accuracy(images, spec)
    return block_scan(model, candidates, accuracy, on_progress=on_progress,
                      remover=lambda _, names: exported.without(names))


def ranking(scores: dict[str, float], reference: float) -> list[dict[str, Any]]:
    """Candidates best first (highest accuracy without them; model order on
    ties, as `blocks.measured_choice` picks), with the drop from `reference`."""
    order = sorted(scores, key=lambda name: -scores[name])      # stable: ties keep model order
    return [{"rank": i + 1, "block": name, "accuracy without it (%)": scores[name],
             "drop (points)": reference - scores[name]} for i, name in enumerate(order)]


def without(model: nn.Module, blocks: Sequence[str]) -> nn.Module:
    """A copy of `model` with `blocks` removed (`blocks.remove`), in eval mode."""
    return remove(model, list(blocks)).eval()



__all__ = ["Exported", "Measured", "OnnxNetwork", "cut_blocks", "measure", "ranking", "scan", "without"]
