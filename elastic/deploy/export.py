"""Verified export: ONNX and TorchScript files that were run and compared with
PyTorch before they are returned, one-file bundles for download.

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
"""
from __future__ import annotations

import copy
import importlib.util
import json
import tempfile
import warnings
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from elastic.errors import ElasticError

INPUT_NAME, OUTPUT_NAME = "input", "logits"
BUNDLE_FILES = ("model.onnx", "model.pt", "model.json")
EXTRA_FILE = "elastic.json"   # the metadata stored inside exported files (read by elastic.filecheck)
_EXPORT_BATCH, _VERIFY_BATCH = 2, 3   # verifying at another batch size checks the dynamic batch axis


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
    net = private_copy(model)
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
    net = private_copy(model)
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



def private_copy(model: nn.Module, device: str | torch.device = "cpu") -> nn.Module:
    """A copy in eval mode on `device`: callers' (possibly shared) models stay untouched."""
    return copy.deepcopy(model).eval().to(device)


def _verify_input(input_shape: tuple[int, int, int]) -> Tensor:
    return torch.randn(_VERIFY_BATCH, *input_shape, generator=torch.Generator().manual_seed(1))


def _reference(model: nn.Module, x: Tensor) -> Tensor:
    with torch.inference_mode():
        return private_copy(model)(x)


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
        return int(private_copy(model)(torch.zeros(1, *input_shape)).shape[-1])


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


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def onnx_session(path: str | Path | bytes, threads: int | None = 1):
    """An onnxruntime CPU session for the file, or for a serialized model given
    as bytes (`threads` None: onnxruntime's default)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ElasticError("running ONNX files needs onnxruntime (pip install onnxruntime)") from None
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    model = path if isinstance(path, bytes) else str(path)
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
