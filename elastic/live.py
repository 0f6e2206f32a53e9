"""Live measurements of a network the user changes in the app: accuracy on a
split, size, and latency, all in onnxruntime on the CPU, the runtime a deployment
uses (and on these CPUs 1.5-2x faster than eager PyTorch at evaluating a split).

`measure` takes a network (for example a baseline with blocks removed by
`elastic.methods.blocks.remove`) and returns what the Block pruning page shows;
`scan` is the direct block-pruning step (every candidate removed on its own, the
accuracy measured without it) run the same way. The network is exported to a
temporary ONNX file, verified against PyTorch, and the file deleted.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from elastic.data import DatasetSpec, ImageSet
from elastic.deploy import Latency, exported_sessions, time_runners
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
    one-thread session (for latency), from a verified temporary export."""

    def __init__(self, model: nn.Module, input_shape: tuple[int, int, int]) -> None:
        self.session, self.single = exported_sessions(model, input_shape, (None, 1), verify=True)
        self.input = self.session.get_inputs()[0].name

    def __call__(self, x: Tensor) -> Tensor:
        return torch.from_numpy(self.session.run(None, {self.input: x.numpy()})[0])

    def accuracy(self, images: ImageSet, spec: DatasetSpec) -> float:
        # Large batches run faster in onnxruntime (1,000 32-pixel images at once: 9 % faster than
        # 250); larger images in proportionally smaller batches, so memory stays about the same.
        return evaluate(self, images, spec, batch_size=max(1, BATCH_PIXELS // spec.input_size ** 2))

    def run_single(self, x: Tensor) -> Any:
        return self.single.run(None, {self.input: x.numpy()})


def measure(model: nn.Module, images: ImageSet, spec: DatasetSpec, *, repeats: int = LATENCY_REPEATS) -> Measured:
    """Accuracy on `images`, params, MACs, peak fp32 memory and onnxruntime
    latency (batch 1, one thread, median of `repeats` after 5 warm-up passes)."""
    started = time.perf_counter()
    shape = (3, spec.input_size, spec.input_size)
    net = OnnxNetwork(model, shape)
    accuracy = net.accuracy(images, spec)
    prof = profile_model(model, shape)
    x = torch.randn(1, *shape, generator=torch.Generator().manual_seed(0))
    latency = time_runners({"model": net.run_single}, x, warmup=5, repeats=repeats, rounds=1, threads=1,
                           runtime="onnxruntime")["model"]
    return Measured(accuracy, len(images), prof.params, prof.macs, prof.peak_memory_bytes(4), latency,
                    time.perf_counter() - started)


def scan(model: nn.Module, candidates: Sequence[str], images: ImageSet, spec: DatasetSpec, *,
         on_progress: ScanProgress | None = None) -> dict[str, float]:
    """The direct step of block pruning: {candidate: accuracy (%) on `images`
    with that block alone removed}, each measured in onnxruntime."""
    shape = (3, spec.input_size, spec.input_size)
    return block_scan(model, candidates, lambda m: OnnxNetwork(m, shape).accuracy(images, spec),
                      on_progress=on_progress)


def ranking(scores: dict[str, float], reference: float) -> list[dict[str, Any]]:
    """Candidates best first (highest accuracy without them; model order on
    ties, as `blocks.measured_choice` picks), with the drop from `reference`."""
    order = sorted(scores, key=lambda name: -scores[name])      # stable: ties keep model order
    return [{"rank": i + 1, "block": name, "accuracy without it (%)": scores[name],
             "drop (points)": reference - scores[name]} for i, name in enumerate(order)]


def without(model: nn.Module, blocks: Sequence[str]) -> nn.Module:
    """A copy of `model` with `blocks` removed (`blocks.remove`), in eval mode."""
    return remove(model, list(blocks)).eval()



__all__ = ["Measured", "OnnxNetwork", "measure", "ranking", "scan", "without"]
