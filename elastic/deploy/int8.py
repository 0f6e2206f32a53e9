"""Int8. `quantize_int8` uses PyTorch's own FX graph-mode post-training
quantization (`torch.ao.quantization.quantize_fx`) with the CPU engine torch is
set to use ('x86' / 'fbgemm' on Intel and AMD, 'qnnpack' on ARM). PyTorch marks
it deprecated in favour of torchao but ships it in 2.11 to 2.14; where it is
missing or fails, an ElasticError says so.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from elastic.data import DatasetSpec, ImageSet
from elastic.deploy.export import first_line, private_copy
from elastic.deploy.latency import Latency, measure_latencies
from elastic.errors import ElasticError

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
    net = private_copy(model)
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
                               f"{torch.__version__} ({type(err).__name__}: {first_line(err)})") from None
    return quantized.eval()


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
    fp32_pred = predict(private_copy(model), test, spec)
    int8_pred = predict(quantized, test, spec)
    rounds = min(5, repeats)
    lat = measure_latencies({"fp32": model, "int8": quantized}, shape, batch_size=batch_size,
                            threads=threads, repeats=max(1, repeats // rounds), rounds=rounds)
    return Int8Report(
        fp32_acc=100.0 * float((fp32_pred == test.labels).float().mean()),
        int8_acc=100.0 * float((int8_pred == test.labels).float().mean()),
        agreement=100.0 * float((fp32_pred == int8_pred).float().mean()), images=len(test),
        fp32=lat["fp32"], int8=lat["int8"])
