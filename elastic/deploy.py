"""Deployment: measured latency, verified ONNX / TorchScript export, int8.

MACs are not speed: `measure_latency` times the real forward pass, and
`speedup_efficiency` says how much of a MAC cut turned into a speed-up. The
export functions hand over files that were run and compared with PyTorch
before they are returned.

Every function here works on a private copy of the model in eval mode on the
CPU (latency: on `device`), so models shared between app sessions are never
changed, not even their train/eval flag.

ONNX exporter. torch >= 2.9 defaults to the torch.export-based ("dynamo")
exporter, which needs the `onnxscript` package and emits opset >= 18 (weights in
a side file unless told otherwise). The TorchScript-based exporter
(`dynamo=False`) is deprecated but still shipped in torch 2.11 to 2.14 (tested
on 2.14; it only uses arguments torch.onnx.export has had since 2.5), needs no
extra package, writes one self-contained file at opset 17 and is several times
faster. It is the default here (`exporter="torchscript"`); `exporter="dynamo"`
uses the new one (pip install onnxscript) and is the way forward once the old
one is removed. Both are verified the same way with onnxruntime.

TorchScript (`torch.jit.trace` / `save` / `load`) is deprecated in torch 2.14
(FutureWarning, silenced here) but works; model.pt is a traced module that
`torch.jit.load` runs without the Elastic code.

Int8. `quantize_int8` uses PyTorch's own FX graph-mode post-training
quantization (`torch.ao.quantization.quantize_fx`) with the CPU engine torch is
set to use ('x86' / 'fbgemm' on Intel and AMD, 'qnnpack' on ARM). PyTorch marks
it deprecated in favour of torchao but ships it in 2.11 to 2.14; where it is
missing or fails, an ElasticError says so.
"""
from __future__ import annotations

import copy
import gc
import importlib.util
import json
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from elastic.data import DatasetSpec, ImageSet
from elastic.errors import ElasticError
from elastic.explore import INEFFICIENT_BELOW  # one threshold for the app and the benchmarks

INPUT_NAME, OUTPUT_NAME = "input", "logits"
BUNDLE_FILES = ("model.onnx", "model.pt", "model.json")
EXTRA_FILE = "elastic.json"   # the metadata stored inside exported files (read by elastic.filecheck)
Runtime = Literal["torch", "onnxruntime"]
_EXPORT_BATCH, _VERIFY_BATCH = 2, 3   # verifying at another batch size checks the dynamic batch axis


# ---- latency ----------------------------------------------------------------------

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
            runners = {name: _private_copy(model, device) for name, model in models.items()}
        else:
            runners = {name: _onnx_runner(model, input_shape, used_threads) for name, model in models.items()}
        return time_runners(runners, x, warmup=warmup, repeats=repeats, rounds=rounds, threads=used_threads,
                            runtime=runtime, precisions={name: precision_of(m) for name, m in models.items()})


def time_runners(runners: Mapping[str, Callable[[Tensor], Any]], x: Tensor, *, warmup: int, repeats: int,
                 rounds: int, threads: int, runtime: Runtime, precisions: Mapping[str, str] | None = None
                 ) -> dict[str, Latency]:
    """Latency of ready-made callables (a model, an onnxruntime session's run)
    on the batch `x`, in `rounds` interleaved rounds as `measure_latencies` does.
    `threads` and `runtime` are recorded, not set: the runners were made with them."""
    times: dict[str, list[float]] = {name: [] for name in runners}
    names = list(runners)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:   # each round starts elsewhere
            times[name] += _timed_passes(runners[name], x, warmup, repeats)
    from elastic.results import host_name
    host = host_name()
    out = {}
    for name, samples in times.items():
        p10, median, p90 = np.percentile(samples, [10, 50, 90])
        out[name] = Latency(float(median), float(p10), float(p90), x.shape[0], threads, str(x.device),
                            host, (precisions or {}).get(name, "fp32"), len(samples), runtime)
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


def onnx_session(path: str | Path, threads: int | None = 1):
    """An onnxruntime CPU session for the file (`threads` None: onnxruntime's default)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ElasticError("running ONNX files needs onnxruntime (pip install onnxruntime)") from None
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


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
    """The results schema's latency columns: eager PyTorch and the verified ONNX
    export in onnxruntime, measured interleaved (the two runtimes alternate in
    `rounds` rounds of `repeats` passes, so a change in the machine's load hits
    both alike) at every batch size and thread count (None: all threads).
    latency_ms and ort_latency_ms are batch 1, one thread (the steadiest figure
    on a shared machine); latency_detail keeps them all with their spread."""
    shape = (3, input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    detail: dict[str, dict[str, dict[str, float]]] = {"torch": {}, "onnxruntime": {}}
    with tempfile.TemporaryDirectory(prefix="elastic-latency-") as tmp:
        path = export_onnx(model, Path(tmp) / "model.onnx", shape)
        verify_onnx(model, path, shape, relative=True)      # rebuilt from configs: fresh weights
        net = _private_copy(model)
        for count in threads:
            with _num_threads(count), torch.inference_mode():
                used = torch.get_num_threads()
                session = onnx_session(path, used)
                for batch in batches:
                    x = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(0))
                    runners = {"torch": net, "onnxruntime": lambda t, s=session: s.run(None, {INPUT_NAME: t.numpy()})}
                    measured = time_runners(runners, x, warmup=3, repeats=repeats, rounds=rounds, threads=used,
                                            runtime="torch")
                    key = f"batch {batch}, {used} thread{'s' if used != 1 else ''}"
                    for runtime, lat in measured.items():
                        detail[runtime][key] = {"median_ms": round(lat.median_ms, 4), "p10_ms": round(lat.p10_ms, 4),
                                                "p90_ms": round(lat.p90_ms, 4), "passes": lat.repeats}
    first = "batch 1, 1 thread"
    from elastic.results import host_name
    return {"latency_ms": detail["torch"][first]["median_ms"],
            "ort_latency_ms": detail["onnxruntime"][first]["median_ms"],
            "latency_host": f"{host_name()}; 1 thread, torch and onnxruntime interleaved",
            "latency_detail": json.dumps(detail, sort_keys=True)}


def fill_latency(results: Path, *, repeats: int = 20, redo: bool = False,
                 on_row: Callable[[str, dict[str, Any]], None] | None = None) -> int:
    """Measure `latency_columns` for the rows of a results file that lack either
    runtime's figure (every row with `redo`), one after the other on this
    machine, so that all figures of one file compare. Latency depends on the
    architecture, not on the trained weights, so each model is rebuilt from its
    config. Returns the count."""
    from elastic.data import DATASETS
    from elastic.results import append_row, read_results

    frame = read_results(results)
    todo = frame if redo else frame[frame["latency_ms"].isna() | frame["ort_latency_ms"].isna()]
    for row in todo.to_dict("records"):
        spec = DATASETS.get(row["dataset"])
        try:
            model = checked_model(row["arch"], spec.num_classes, json.loads(row["config"]))
        except ElasticError as err:
            raise ElasticError(f"{results}: row {row['run_id']}: {err}") from None
        row.update(latency_columns(model, spec.input_size, repeats=repeats))
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


def is_inefficient(base_latency_ms: float, latency_ms: float, base_macs: float, macs: float,
                   *, threshold: float = INEFFICIENT_BELOW) -> bool:
    """True when a configuration turns less than `threshold` of its MAC cut into speed."""
    return speedup_efficiency(base_latency_ms, latency_ms, base_macs, macs) < threshold


# ---- export -----------------------------------------------------------------------

def export_onnx(model: nn.Module, path: str | Path, input_shape: tuple[int, int, int], *,
                opset: int = 17, exporter: Literal["torchscript", "dynamo"] = "torchscript",
                meta: dict[str, Any] | None = None) -> Path:
    """Write `model` (a copy, in eval mode, on the CPU) as one ONNX file with a
    dynamic batch axis; input "input" (N, C, H, W) float32, output "logits".
    `meta` (JSON-serialisable) is stored in the model's metadata_props under
    "elastic.json", where `python -m elastic check` reads it.
    See the module docstring for the choice of exporter."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = _private_copy(model)
    x = torch.randn(_EXPORT_BATCH, *input_shape)
    names = {"input_names": [INPUT_NAME], "output_names": [OUTPUT_NAME]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        if exporter == "torchscript":
            torch.onnx.export(net, (x,), str(path), dynamo=False, opset_version=opset,
                              dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}, **names)
        elif exporter == "dynamo":
            if importlib.util.find_spec("onnxscript") is None:
                raise ElasticError("the dynamo ONNX exporter needs the onnxscript package "
                                   "(pip install onnxscript), or use exporter='torchscript'")
            program = torch.onnx.export(net, (x,), dynamo=True, opset_version=max(opset, 18),
                                        dynamic_shapes=({0: torch.export.Dim("batch")},),
                                        verbose=False, **names)
            program.save(str(path), external_data=False)
        else:
            raise ValueError(f"unknown exporter {exporter!r}: use 'torchscript' or 'dynamo'")
    if meta is not None:
        import onnx
        proto = onnx.load(str(path))
        entry = proto.metadata_props.add()
        entry.key, entry.value = EXTRA_FILE, json.dumps(meta, default=str)
        onnx.save(proto, str(path))
    return path


def export_torchscript(model: nn.Module, path: str | Path, input_shape: tuple[int, int, int],
                       meta: dict[str, Any] | None = None) -> Path:
    """Write `model` (a copy, in eval mode, on the CPU) as a traced TorchScript
    file, loadable with torch.jit.load without the Elastic code; `meta`
    (JSON-serialisable) goes in as the extra file "elastic.json"."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = _private_copy(model)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", FutureWarning)   # torch.jit is deprecated, still shipped
        traced = torch.jit.trace(net, torch.randn(_EXPORT_BATCH, *input_shape), check_trace=False)
        extra = {EXTRA_FILE: json.dumps(meta, default=str)} if meta is not None else None
        torch.jit.save(traced, str(path), _extra_files=extra)
    return path


def verify_onnx(model: nn.Module, path: str | Path, input_shape: tuple[int, int, int],
                atol: float = 1e-4, *, relative: bool = False, session: Any = None) -> float:
    """Largest absolute difference between onnxruntime (CPU) running the file and
    PyTorch running `model`, on a random batch. Raises ElasticError above `atol`
    (with `relative`, above atol times the largest PyTorch output, at least 1:
    for untrained weights, whose outputs can be in the thousands). `session`:
    one already open on the file (else a one-thread session is opened)."""
    x = _verify_input(input_shape)
    if session is None:
        session = onnx_session(path, threads=1)   # a small batch; threads only add contention
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    expected = _reference(model, x)
    if relative:
        atol *= max(1.0, float(expected.abs().max()))
    return _checked_difference("ONNX", path, torch.from_numpy(got), expected, atol)


def verify_torchscript(model: nn.Module, path: str | Path, input_shape: tuple[int, int, int],
                       atol: float = 1e-4) -> float:
    """Largest absolute difference between the loaded TorchScript file and
    `model` on a random batch. Raises ElasticError above `atol`."""
    x = _verify_input(input_shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        loaded = torch.jit.load(str(path), map_location="cpu")
    with torch.inference_mode():
        got = loaded(x)
    return _checked_difference("TorchScript", path, got, _reference(model, x), atol)


def export_bundle(model: nn.Module, out_dir: str | Path, input_shape: tuple[int, int, int],
                  meta: dict[str, Any], *, opset: int = 17, atol: float = 1e-4,
                  exporter: Literal["torchscript", "dynamo"] = "torchscript") -> dict[str, Path]:
    """Write model.onnx, model.pt (TorchScript) and model.json into `out_dir`,
    verifying both model files first. model.json holds `meta` (arch, method,
    config, metrics, ...; JSON-serialisable), the input / output description,
    preprocessing when meta names a dataset, and the measured differences.
    Returns {file name: path}."""
    out_dir = Path(out_dir)
    onnx_path = export_onnx(model, out_dir / "model.onnx", input_shape, opset=opset, exporter=exporter, meta=meta)
    ts_path = export_torchscript(model, out_dir / "model.pt", input_shape, meta=meta)
    description = {
        **meta,
        "input": {"name": INPUT_NAME, "shape": ["batch", *input_shape], "dtype": "float32"},
        "output": {"name": OUTPUT_NAME, "shape": ["batch", _output_size(model, input_shape)]},
        **_preprocessing(meta.get("dataset")),
        "verification": {
            "onnx_max_abs_diff": verify_onnx(model, onnx_path, input_shape, atol),
            "torchscript_max_abs_diff": verify_torchscript(model, ts_path, input_shape, atol),
            "atol": atol, "batch_size": _VERIFY_BATCH, "runtime": _runtime_versions(),
            "onnx_exporter": exporter, "onnx_opset": _onnx_opset(onnx_path),
        },
    }
    json_path = out_dir / "model.json"
    json_path.write_text(json.dumps(description, indent=2, default=str) + "\n")
    return {"model.onnx": onnx_path, "model.pt": ts_path, "model.json": json_path}


def export_bytes(model: nn.Module, input_shape: tuple[int, int, int], meta: dict[str, Any],
                 **options: Any) -> dict[str, bytes]:
    """The bundle's files as bytes, {file name: contents}, for download buttons;
    written to and read back from a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="elastic-export-") as tmp:
        paths = export_bundle(model, tmp, input_shape, meta, **options)
        return {name: path.read_bytes() for name, path in paths.items()}


# ---- a results row's trained model ---------------------------------------------------

ACCURACY_TOLERANCE = 0.05   # percentage points: onnxruntime and PyTorch may split a near-tie differently


@dataclass(frozen=True)
class AccuracyCheck:
    """The exported ONNX model's accuracy in onnxruntime on the whole test
    split, against the accuracy the row recorded with PyTorch."""
    onnx_acc: float
    recorded_acc: float
    images: int
    source: str

    @property
    def agrees(self) -> bool:
        return abs(self.onnx_acc - self.recorded_acc) <= ACCURACY_TOLERANCE

    def __str__(self) -> str:
        verdict = "matches" if self.agrees else "DOES NOT match"
        return (f"onnxruntime test accuracy {self.onnx_acc:.2f}% on {self.images:,} test images ({self.source}) "
                f"{verdict} the row's {self.recorded_acc:.2f}% (difference "
                f"{abs(self.onnx_acc - self.recorded_acc):.2f} points, tolerance {ACCURACY_TOLERANCE})")


def onnx_accuracy(path: str | Path, data: ImageSet, spec: DatasetSpec, *, batch_size: int = 250) -> float:
    """Top-1 accuracy (%) of an ONNX file run by onnxruntime on the CPU."""
    from elastic.train import evaluate
    session = onnx_session(path, threads=None)
    name = session.get_inputs()[0].name
    return evaluate(lambda x: torch.from_numpy(session.run(None, {name: x.numpy()})[0]), data, spec,
                    batch_size=batch_size)


def check_onnx_accuracy(path: str | Path, row: Mapping[str, Any], data: ImageSet, spec: DatasetSpec,
                        source: str) -> AccuracyCheck:
    """`onnx_accuracy` on `data` (the whole test split) against `row`'s test accuracy."""
    return AccuracyCheck(onnx_accuracy(path, data, spec), float(row["test_acc"]), len(data), source)


def row_meta(row: Mapping[str, Any], weights: str) -> dict[str, Any]:
    """What an export of a results row says about itself (model.json, and the
    metadata inside model.onnx and model.pt): the row's id, method, config and
    numbers, where the weights came from, and the command that made the row."""
    def plain(value: Any) -> Any:
        if value is None or (isinstance(value, float) and value != value):
            return None
        return value.item() if hasattr(value, "item") else value
    config = row["config"]
    return {"run_id": row["run_id"], "arch": row["arch"], "dataset": row["dataset"], "method": row["method"],
            "mode": plain(row.get("mode")) or None, "target": plain(row.get("target")),
            "level": plain(row.get("level")), "config": json.loads(config) if isinstance(config, str) else config,
            "test_acc": plain(row.get("test_acc")), "val_acc": plain(row.get("val_acc")),
            "params": int(row["params"]), "macs": int(row["macs"]), "weights": weights,
            "command": plain(row.get("command")) or ""}


# ---- int8 -------------------------------------------------------------------------

def quantize_int8(model: nn.Module, calibration_batches: Tensor, input_shape: tuple[int, int, int],
                  *, chunk: int = 64) -> nn.Module:
    """A static int8 copy of `model` for the CPU: FX graph-mode post-training
    quantization (BatchNorm folded, per-channel weights), activation ranges
    calibrated on `calibration_batches` (normalised images, (N, C, H, W)). The
    result takes and returns float tensors. Raises ElasticError where this
    PyTorch build cannot quantize (no quantized CPU engine, no quantize_fx)."""
    engine = torch.backends.quantized.engine
    if engine not in ("x86", "fbgemm", "qnnpack", "onednn"):
        raise ElasticError(f"int8 quantization is not available: this PyTorch build has no quantized "
                           f"CPU engine (engine {engine!r}, supported {torch.backends.quantized.supported_engines})")
    try:
        from torch.ao.quantization import get_default_qconfig_mapping
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    except ImportError as err:
        raise ElasticError(f"int8 quantization is not available in torch {torch.__version__}: "
                           f"torch.ao.quantization.quantize_fx is missing ({err})") from None
    if calibration_batches.ndim != 4 or tuple(calibration_batches.shape[1:]) != tuple(input_shape):
        raise ElasticError(f"calibration images must have shape (N, {', '.join(map(str, input_shape))}), "
                           f"got {tuple(calibration_batches.shape)}")
    net = _private_copy(model)
    with warnings.catch_warnings():
        # The quantization API warns that it is deprecated in favour of torchao.
        for category in (UserWarning, DeprecationWarning, FutureWarning):
            warnings.simplefilter("ignore", category)
        try:
            prepared = prepare_fx(net, get_default_qconfig_mapping(engine), (torch.zeros(1, *input_shape),))
            with torch.inference_mode():
                for batch in calibration_batches.split(chunk):
                    prepared(batch)
            quantized = convert_fx(prepared)
        except (RuntimeError, NotImplementedError, TypeError, AttributeError, ValueError) as err:
            raise ElasticError(f"int8 quantization failed for this model with torch "
                               f"{torch.__version__} ({type(err).__name__}: {_first_line(err)})") from None
    return quantized.eval()


def precision_of(model: nn.Module) -> str:
    """"int8" if the model holds PyTorch quantized modules, else "fp32"."""
    quantized = any(type(m).__module__.startswith("torch.ao.nn.")
                    and "quantized" in type(m).__module__.split(".") for m in model.modules())
    return "int8" if quantized else "fp32"


@dataclass(frozen=True)
class Int8Report:
    """Accuracy and latency of a model and of its int8 copy, on the same images."""

    fp32_acc: float
    int8_acc: float
    agreement: float        # percent of images where both predict the same class
    images: int
    fp32: Latency
    int8: Latency


def int8_report(model: nn.Module, calibration: ImageSet, test: ImageSet, spec: DatasetSpec, *,
                batch_size: int = 1, threads: int | None = None, repeats: int = 50) -> Int8Report:
    """Quantize with images from `calibration` and compare with the float model
    on `test`: accuracy from elastic.train.predict (as evaluate computes it),
    agreement between the two, and CPU latency at `batch_size`."""
    from elastic.train import normalize, predict
    shape = (3, spec.input_size, spec.input_size)
    quantized = quantize_int8(model, normalize(calibration.images, spec), shape)
    fp32_pred = predict(_private_copy(model), test, spec)
    int8_pred = predict(quantized, test, spec)
    rounds = min(5, repeats)
    lat = measure_latencies({"fp32": model, "int8": quantized}, shape, batch_size=batch_size,
                            threads=threads, repeats=max(1, repeats // rounds), rounds=rounds)
    return Int8Report(
        fp32_acc=100.0 * float((fp32_pred == test.labels).float().mean()),
        int8_acc=100.0 * float((int8_pred == test.labels).float().mean()),
        agreement=100.0 * float((fp32_pred == int8_pred).float().mean()), images=len(test),
        fp32=lat["fp32"], int8=lat["int8"])


# ---- models from user input -------------------------------------------------------

def parse_config(text: str) -> dict[str, Any]:
    """An architecture config from JSON text or from a .json file (e.g. a results
    row's config column): {"removed_blocks": [...], "shapes": {...}}."""
    source = "--config"
    if not text.lstrip().startswith(("{", "[")):
        path = Path(text)
        if not path.is_file():
            raise ElasticError(f"config file {path} does not exist")
        try:
            text, source = path.read_text(encoding="utf-8-sig"), str(path)   # a byte-order mark is fine
        except UnicodeDecodeError:
            raise ElasticError(f"config file {path} is not text (not UTF-8); give a .json file") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ElasticError(f"{source} is not valid JSON ({err}); give JSON text such as "
                           f"'{{\"removed_blocks\": [\"layer1.1\"]}}' or a .json file") from None


def checked_model(arch: str, num_classes: int, config: dict[str, Any] | None) -> nn.Module:
    """build_model(arch, num_classes, config), with a config that does not fit
    the architecture reported as an ElasticError instead of a traceback: unknown
    keys or layer names, malformed shapes, or widths that do not connect (checked
    with one forward pass). The model is returned in train mode, as built."""
    from elastic.models import ARCHS, build_model
    spec = ARCHS.get(arch)
    config = config or {}
    if not isinstance(config, dict) or set(config) - {"removed_blocks", "shapes"}:
        found = sorted(config) if isinstance(config, dict) else type(config).__name__
        raise ElasticError(f"a config is a JSON object with 'removed_blocks' (a list of block names) "
                           f"and 'shapes' ({{layer: [in, out] or [features]}}); got {found}")
    _check_config_entries(spec.build(num_classes), arch, config)
    try:
        model = build_model(arch, num_classes, config)
    except (AttributeError, KeyError, IndexError, TypeError, ValueError, RuntimeError) as err:
        raise ElasticError(f"the config does not fit {arch}: {_first_line(err)}") from None
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, spec.input_size, spec.input_size))
    except RuntimeError as err:
        raise ElasticError(f"the config gives {arch} layers whose widths do not connect: "
                           f"{_first_line(err)}") from None
    return model.train()


def _check_config_entries(reference: nn.Module, arch: str, config: dict[str, Any]) -> None:
    """Every removed block and resized layer exists in `reference` (the default
    `arch`), and every shape is a list of positive integers of the right length,
    none wider than the layer it resizes."""
    from elastic.models import layer_shape
    removed, shapes = config.get("removed_blocks", []), config.get("shapes", {})
    if not isinstance(removed, list) or not all(isinstance(name, str) for name in removed):
        raise ElasticError(f"'removed_blocks' must be a list of block names such as \"layer1.1\", got {removed!r}")
    if not isinstance(shapes, dict):
        raise ElasticError(f"'shapes' must map layer names to [in, out] or [features], got {shapes!r}")
    modules = dict(reference.named_modules())
    for name in removed:
        if name not in modules:
            raise ElasticError(f"{arch} has no block {name!r} to remove")
    for name, shape in shapes.items():
        module = modules.get(name)
        if module is None:
            raise ElasticError(f"{arch} has no layer {name!r} (in 'shapes')")
        original = layer_shape(module)
        if original is None:
            raise ElasticError(f"{name} is a {type(module).__name__}; only conv, linear and batch-norm "
                               f"layers can be resized")
        if (not isinstance(shape, list) or len(shape) != len(original)
                or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)):
            what = "[features]" if len(original) == 1 else "[in, out]"
            raise ElasticError(f"shapes[{name!r}] must be {what} with positive integers, got {shape!r}")
        if any(v > o for v, o in zip(shape, original)):
            raise ElasticError(f"shapes[{name!r}] = {shape} is wider than {arch}'s own {name} "
                               f"({original}); a compressed network never widens a layer")


# ---- helpers ----------------------------------------------------------------------

def _private_copy(model: nn.Module, device: str | torch.device = "cpu") -> nn.Module:
    """A copy in eval mode on `device`: callers' (possibly shared) models stay untouched."""
    return copy.deepcopy(model).eval().to(device)


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


def _verify_input(input_shape: tuple[int, int, int]) -> Tensor:
    return torch.randn(_VERIFY_BATCH, *input_shape, generator=torch.Generator().manual_seed(1))


def _reference(model: nn.Module, x: Tensor) -> Tensor:
    with torch.inference_mode():
        return _private_copy(model)(x)


def _checked_difference(kind: str, path: str | Path, got: Tensor, expected: Tensor, atol: float) -> float:
    if got.shape != expected.shape:
        raise ElasticError(f"{kind} file {path} gives outputs of shape {tuple(got.shape)}, "
                           f"PyTorch {tuple(expected.shape)}")
    diff = float((got.float() - expected.float()).abs().max())
    if not diff <= atol:   # also catches NaN
        raise ElasticError(f"{kind} file {path} differs from the PyTorch model by up to {diff:.3g} "
                           f"(allowed {atol:g}); do not deploy it")
    return diff


def _output_size(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    with torch.inference_mode():
        return int(_private_copy(model)(torch.zeros(1, *input_shape)).shape[-1])


def _preprocessing(dataset: str | None) -> dict[str, Any]:
    """How to turn an RGB uint8 image into the model's input, when the dataset is known."""
    from elastic.data import DATASETS
    if not dataset or dataset not in DATASETS:
        return {}
    spec = DATASETS.get(dataset)
    return {"preprocess": {"size": [spec.input_size, spec.input_size], "layout": "NCHW, RGB",
                           "formula": "(pixel / 255 - mean) / std", "mean": list(spec.mean),
                           "std": list(spec.std)}}


def _onnx_opset(path: Path) -> int | None:
    try:
        import onnx
    except ImportError:
        return None
    model = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def _runtime_versions() -> dict[str, str]:
    import onnxruntime
    return {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__}


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
