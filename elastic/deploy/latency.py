"""Latency, the one timer: measured forward passes in eager PyTorch or in
onnxruntime on the model's verified ONNX export, interleaved across models, and
how much of a MAC cut became a speed-up (efficiency).
"""
from __future__ import annotations

import gc
import json
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from elastic.deploy.checked import checked_model
from elastic.deploy.export import INPUT_NAME, export_onnx, onnx_session, private_copy, verify_onnx
from elastic.errors import ElasticError
from elastic.explore import INEFFICIENT_BELOW  # one threshold for the app and the benchmarks

Runtime = Literal["torch", "onnxruntime"]


@dataclass(frozen=True)
class Latency:
    """Wall-clock time of one forward pass of a batch, in milliseconds."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    batch_size: int
    threads: int
    device: str
    host: str
    precision: str = "fp32"     # "int8" for a model quantized by quantize_int8
    repeats: int = 0
    runtime: str = "torch"      # "torch" (eager PyTorch) or "onnxruntime" (the ONNX export)
    round_medians_ms: tuple[float, ...] = ()   # the median of each interleaved round (see paired_speedup)

    @property
    def per_image_ms(self) -> float:
        return self.median_ms / self.batch_size

    def __str__(self) -> str:
        return (f"{self.median_ms:.3f} ms median (p10 {self.p10_ms:.3f}, p90 {self.p90_ms:.3f}), "
                f"{self.per_image_ms:.3f} ms/image, batch {self.batch_size}, {self.precision}, "
                f"{self.threads} thread{'s' if self.threads != 1 else ''}, {self.runtime} on {self.device}")


def measure_latency(model: nn.Module, input_shape: tuple[int, int, int], *, batch_size: int = 1,
                    threads: int | None = None, warmup: int = 10, repeats: int = 50,
                    device: str | torch.device = "cpu", runtime: Runtime = "torch") -> Latency:
    """Median and 10th / 90th percentile of `repeats` timed forward passes on a
    random batch (after `warmup` untimed ones), each timed on its own with
    perf_counter (PyTorch: eager, under inference_mode). `threads` sets the
    intra-op thread count for the measurement only (None: torch's setting).
    runtime "onnxruntime" times the model's ONNX export (`export_onnx`) in an
    onnxruntime CPU session instead: what a deployment would run."""
    return measure_latencies({"model": model}, input_shape, batch_size=batch_size, threads=threads,
                             warmup=warmup, repeats=repeats, rounds=1, device=device,
                             runtime=runtime)["model"]


def measure_latencies(models: Mapping[str, nn.Module], input_shape: tuple[int, int, int], *,
                      batch_size: int = 1, threads: int | None = None, warmup: int = 10,
                      repeats: int = 50, rounds: int = 5, device: str | torch.device = "cpu",
                      runtime: Runtime = "torch") -> dict[str, Latency]:
    """Latency of several models (see `measure_latency`), measured in `rounds`
    interleaved rounds (each model `warmup` untimed then `repeats` timed passes
    per round, the order rotated every round), so that changes in the machine's
    load during the measurement hit every model alike. The figures summarise
    all rounds' passes; `repeats` in the result is the total."""
    if batch_size < 1 or repeats < 1 or rounds < 1 or warmup < 0:
        raise ValueError("batch_size, repeats and rounds must be >= 1 and warmup >= 0")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if runtime not in ("torch", "onnxruntime"):
        raise ValueError(f"unknown runtime {runtime!r}: use 'torch' or 'onnxruntime'")
    device = torch.device(device)
    if runtime == "onnxruntime" and device.type != "cpu":
        raise ValueError("onnxruntime latency is measured on the CPU")
    x = torch.randn(batch_size, *input_shape, generator=torch.Generator().manual_seed(0)).to(device)
    with _num_threads(threads), torch.inference_mode():
        used_threads = torch.get_num_threads()
        if runtime == "torch":
            runners = {name: private_copy(model, device) for name, model in models.items()}
        else:
            runners = {name: _onnx_runner(model, input_shape, used_threads) for name, model in models.items()}
        return time_runners(runners, x, warmup=warmup, repeats=repeats, rounds=rounds, threads=used_threads,
                            runtime=runtime, precisions={name: precision_of(m) for name, m in models.items()})


def time_runners(runners: Mapping[Any, Callable[[Tensor], Any]], x: Tensor, *, warmup: int, repeats: int,
                 rounds: int, threads: int, runtime: Runtime, precisions: Mapping[Any, str] | None = None
                 ) -> dict[Any, Latency]:
    """Latency of ready-made callables (a model, an onnxruntime session's run)
    on the batch `x`, in `rounds` interleaved rounds as `measure_latencies` does.
    `threads` and `runtime` are recorded, not set: the runners were made with them."""
    times: dict[str, list[float]] = {name: [] for name in runners}
    per_round: dict[str, list[float]] = {name: [] for name in runners}
    names = list(runners)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:   # each round starts elsewhere
            passes = _timed_passes(runners[name], x, warmup, repeats)
            times[name] += passes
            per_round[name].append(float(np.median(passes)))
    from elastic.results import host_name
    host = host_name()
    out = {}
    for name, samples in times.items():
        p10, median, p90 = np.percentile(samples, [10, 50, 90])
        out[name] = Latency(float(median), float(p10), float(p90), x.shape[0], threads, str(x.device),
                            host, (precisions or {}).get(name, "fp32"), len(samples), runtime,
                            tuple(per_round[name]))
    return out


def _onnx_runner(model: nn.Module, input_shape: tuple[int, int, int], threads: int) -> Callable[[Tensor], Any]:
    """A function running `model`'s ONNX export in an onnxruntime CPU session."""
    session, = exported_sessions(model, input_shape, (threads,))
    return lambda x: session.run(None, {INPUT_NAME: x.numpy()})


def exported_sessions(model: nn.Module, input_shape: tuple[int, int, int], threads: Sequence[int | None], *,
                      verify: bool = False) -> list[Any]:
    """onnxruntime CPU sessions of a temporary ONNX export of `model`, one per
    entry of `threads` (see onnx_session); with `verify`, the export's outputs
    are first checked against PyTorch's (verify_onnx, relative tolerance)."""
    with tempfile.TemporaryDirectory(prefix="elastic-onnx-") as tmp:
        path = export_onnx(model, Path(tmp) / "model.onnx", input_shape)
        sessions = [onnx_session(path, count) for count in threads]
    if verify:
        verify_onnx(model, path, input_shape, relative=True, session=sessions[-1])
    return sessions


def _timed_passes(run: Callable[[Tensor], Any], x: Tensor, warmup: int, repeats: int) -> list[float]:
    """Milliseconds of each of `repeats` calls run(x), after `warmup` untimed ones."""
    sync = torch.cuda.synchronize if x.device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        run(x)
    sync()
    times = []
    with _gc_paused():
        for _ in range(repeats):
            start = time.perf_counter()
            run(x)
            sync()
            times.append((time.perf_counter() - start) * 1e3)
    return times


def latency_columns(model: nn.Module, input_size: int | tuple[int, int, int], *, repeats: int = 20,
                    rounds: int = 5, batches: tuple[int, ...] = (1, 8), threads: tuple[int | None, ...] = (1, None)
                    ) -> dict[str, Any]:
    """The results schema's latency columns of one model (see latency_columns_of)."""
    return latency_columns_of({"model": model}, input_size, repeats=repeats, rounds=rounds, batches=batches,
                              threads=threads)["model"]


def latency_columns_of(models: Mapping[str, nn.Module], input_size: int | tuple[int, int, int], *,
                       repeats: int = 20, rounds: int = 5, batches: tuple[int, ...] = (1, 8),
                       threads: tuple[int | None, ...] = (1, None)) -> dict[str, dict[str, Any]]:
    """The results schema's latency columns of every model ({name: columns}):
    eager PyTorch and the verified ONNX export in onnxruntime, at every batch
    size and thread count (None: all threads), all measured together: in each
    of `rounds` rounds every model runs `repeats` passes in both runtimes, the
    order rotated each round (time_runners), so that a change in the machine's
    load or clock hits every model and runtime alike and the figures compare.
    latency_ms and ort_latency_ms are batch 1, one thread (the steadiest figure
    on a shared machine); latency_detail keeps them all with their spread."""
    shape = (3, input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    detail = {name: {"torch": {}, "onnxruntime": {}} for name in models}
    with tempfile.TemporaryDirectory(prefix="elastic-latency-") as tmp:
        paths, nets = {}, {}
        for i, (name, model) in enumerate(models.items()):
            paths[name] = export_onnx(model, Path(tmp) / f"model{i}.onnx", shape)
            verify_onnx(model, paths[name], shape, relative=True)      # rebuilt from configs: fresh weights
            nets[name] = private_copy(model)
        for count in threads:
            with _num_threads(count), torch.inference_mode():
                used = torch.get_num_threads()
                sessions = {name: onnx_session(path, used) for name, path in paths.items()}
                for batch in batches:
                    x = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(0))
                    runners: dict[Any, Callable[[Tensor], Any]] = {}
                    for name in models:
                        runners[name, "torch"] = nets[name]
                        runners[name, "onnxruntime"] = lambda t, s=sessions[name]: s.run(None, {INPUT_NAME: t.numpy()})
                    measured = time_runners(runners, x, warmup=3, repeats=repeats, rounds=rounds, threads=used,
                                            runtime="torch")
                    key = f"batch {batch}, {used} thread{'s' if used != 1 else ''}"
                    for (name, runtime), lat in measured.items():
                        detail[name][runtime][key] = {"median_ms": round(lat.median_ms, 4),
                                                      "p10_ms": round(lat.p10_ms, 4),
                                                      "p90_ms": round(lat.p90_ms, 4), "passes": lat.repeats}
    first = "batch 1, 1 thread"
    from elastic.results import host_name
    others = f" with {len(models) - 1} other network{'s' if len(models) > 2 else ''}" if len(models) > 1 else ""
    host = f"{host_name()}; 1 thread, torch and onnxruntime interleaved{others}"
    return {name: {"latency_ms": d["torch"][first]["median_ms"], "ort_latency_ms": d["onnxruntime"][first]["median_ms"],
                   "latency_host": host, "latency_detail": json.dumps(d, sort_keys=True)}
            for name, d in detail.items()}


def fill_latency(results: Path, *, repeats: int = 20, redo: bool = False,
                 on_row: Callable[[str, dict[str, Any]], None] | None = None) -> int:
    """Measure `latency_columns_of` for the rows of a results file that lack
    either runtime's figure (every row with `redo`), all in one interleaved
    measurement on this machine, so that the figures of one file compare.
    Latency depends on the network, not on the trained weights, so each model
    is rebuilt from its config, and rows of the same network (an elastic level
    and the baseline it grew back to, a row and its rerun in another precision)
    share one measurement. Every config is built before anything is timed.
    Returns the count of rows."""
    from elastic.data import DATASETS
    from elastic.results import append_row, read_results

    frame = read_results(results)
    todo = (frame if redo else frame[frame["latency_ms"].isna() | frame["ort_latency_ms"].isna()]).to_dict("records")
    networks: dict[int, dict[str, nn.Module]] = {}       # {input size: {network key: model}}
    network_of: dict[str, tuple[int, str]] = {}
    for row in todo:
        spec = DATASETS.get(row["dataset"])
        config = json.loads(row["config"])
        key = json.dumps([row["arch"], spec.num_classes, config], sort_keys=True)
        group = networks.setdefault(spec.input_size, {})
        if key not in group:
            try:
                group[key] = checked_model(row["arch"], spec.num_classes, config)
            except ElasticError as err:
                raise ElasticError(f"{results}: row {row['run_id']}: {err}") from None
        network_of[row["run_id"]] = (spec.input_size, key)
    columns = {size: latency_columns_of(models, size, repeats=repeats) for size, models in networks.items()}
    for row in todo:
        size, key = network_of[row["run_id"]]
        row.update(columns[size][key])
        append_row(results, {k: v for k, v in row.items() if v is not None and v == v})
        if on_row:
            on_row(row["run_id"], row)
    return len(todo)


def speedup_efficiency(base_latency_ms: float, latency_ms: float, base_macs: float, macs: float) -> float:
    """Measured speed-up divided by the MAC ratio: 1.0 when latency falls in
    proportion to MACs, less when the MAC cut buys less speed than it promises."""
    if min(base_latency_ms, latency_ms, base_macs, macs) <= 0:
        raise ValueError("latencies and MACs must be positive")
    return (base_latency_ms / latency_ms) / (base_macs / macs)


def paired_speedup(base: Latency, other: Latency) -> float:
    """How many times faster `other` runs than `base`, from the same interleaved
    measurement (time_runners): the median over rounds of each round's ratio of
    medians. Both were timed within moments of each other in every round, so a
    drift in the machine's load or clock between rounds cancels out of each
    ratio, which the ratio of the overall medians does not do."""
    if not base.round_medians_ms or len(base.round_medians_ms) != len(other.round_medians_ms):
        raise ValueError("paired_speedup needs two latencies from the same interleaved measurement")
    return float(np.median([b / o for b, o in zip(base.round_medians_ms, other.round_medians_ms)]))


def is_inefficient(base_latency_ms: float, latency_ms: float, base_macs: float, macs: float,
                   *, threshold: float = INEFFICIENT_BELOW) -> bool:
    """True when a configuration turns less than `threshold` of its MAC cut into speed."""
    return speedup_efficiency(base_latency_ms, latency_ms, base_macs, macs) < threshold



def precision_of(model: nn.Module) -> str:
    """"int8" if the model holds PyTorch quantized modules, else "fp32"."""
    quantized = any(type(m).__module__.startswith("torch.ao.nn.")
                    and "quantized" in type(m).__module__.split(".") for m in model.modules())
    return "int8" if quantized else "fp32"




@contextmanager
def _num_threads(threads: int | None) -> Iterator[None]:
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No garbage collection inside timed loops (as timeit does)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
