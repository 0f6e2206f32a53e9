"""Deployment: measured latency, verified ONNX / TorchScript export, int8, and
the checks a deployment is held to. One module a concern, read through this
package:

    export    ONNX and TorchScript files run and compared with PyTorch before they are returned
    latency   the one timer: eager PyTorch or onnxruntime, interleaved; efficiency of a MAC cut
    checked   a row's accuracy reproduced by its ONNX file; models from user input, checked first
    int8      PyTorch's FX post-training quantization, its accuracy and latency against fp32

Every function works on a private copy of the model in eval mode on the CPU
(latency: on `device`), so models shared between app sessions are never
changed, not even their train/eval flag.
"""
from __future__ import annotations

from elastic.deploy.export import (BUNDLE_FILES, EXTRA_FILE, INPUT_NAME, OUTPUT_NAME, export_bundle, export_bytes,
                                   export_onnx, export_torchscript, onnx_session, private_copy,
                                   verify_onnx, verify_torchscript)
from elastic.deploy.latency import (exported_sessions, fill_latency, is_inefficient, Latency, latency_columns,
                                    measure_latencies, measure_latency, paired_speedup, precision_of, Runtime,
                                    speedup_efficiency, time_runners)
from elastic.deploy.checked import (ACCURACY_TOLERANCE, AccuracyCheck, check_onnx_accuracy, checked_model,
                                    onnx_accuracy, parse_config, row_meta)
from elastic.deploy.int8 import (int8_report, Int8Report, quantize_int8)

__all__ = ["BUNDLE_FILES", "EXTRA_FILE", "INPUT_NAME", "OUTPUT_NAME", "export_bundle", "export_bytes", "export_onnx",
           "export_torchscript", "onnx_session", "private_copy", "verify_onnx", "verify_torchscript",
           "exported_sessions", "fill_latency", "is_inefficient", "Latency", "latency_columns", "measure_latencies",
           "measure_latency", "paired_speedup", "precision_of", "Runtime", "speedup_efficiency", "time_runners",
           "ACCURACY_TOLERANCE",
           "AccuracyCheck", "check_onnx_accuracy", "checked_model", "onnx_accuracy", "parse_config", "row_meta",
           "int8_report", "Int8Report", "quantize_int8"]
