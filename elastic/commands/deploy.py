"""`bench` (latency, int8) and `export` (verified ONNX and TorchScript) around elastic.deploy."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from torch import nn

from elastic.argtypes import integer, number
from elastic.atomic import check_creatable
from elastic.checkpoints import load_model
from elastic.commands.options import add_data_args, add_model_args, check_arch_fits, load_data
from elastic.data import DATASETS, load_dataset
from elastic.deploy import (check_onnx_accuracy, checked_model, export_bundle, fill_latency, int8_report,
                            measure_latency, parse_config, row_meta)
from elastic.errors import ElasticError
from elastic.models import arch_config
from elastic.profile import count_macs
from elastic.results import load_all, results_dir
from elastic.runs import complexity_columns, trained_model


def _add_model_source(p: argparse.ArgumentParser, *, run_id: bool = False) -> None:
    add_model_args(p)
    if run_id:
        p.add_argument("--run-id", default=None, metavar="ID",
                       help="a results row: its trained checkpoint (cached or shipped) is exported, and the ONNX "
                            "file's test accuracy in onnxruntime is checked against the row's")
    p.add_argument("--checkpoint", default=None, help="a model saved by train / prune / grow")
    p.add_argument("--config", default=None,
                   help="architecture config as JSON text or a .json file, e.g. "
                        "'{\"removed_blocks\": [\"layer1.1\"]}' (fresh weights)")


def add_bench(parser: argparse.ArgumentParser) -> None:
    _add_model_source(parser)
    parser.add_argument("--batch-size", type=integer(1), nargs="+", default=[1],
                        help="one or more batch sizes (default: 1)")
    parser.add_argument("--threads", type=integer(1), default=None,
                        help="torch intra-op threads (default: torch's setting)")
    parser.add_argument("--runtime", nargs="+", choices=["torch", "onnxruntime"], default=["torch"],
                        help="torch: eager PyTorch; onnxruntime: the ONNX export (default: torch)")
    parser.add_argument("--warmup", type=integer(0), default=10, help="untimed passes (default: %(default)s)")
    parser.add_argument("--repeats", type=integer(1), default=50, help="timed passes (default: %(default)s)")
    parser.add_argument("--fill-results", default=None, metavar="CSV",
                        help="instead of one model: measure latency in PyTorch and onnxruntime at batch 1 and 8, "
                             "one thread and all, for every row of this results file that lacks it, every "
                             "network and runtime interleaved in 5 rounds of --repeats passes, and store it in "
                             "the rows")
    parser.add_argument("--redo", action="store_true", help="--fill-results: measure every row again")
    parser.add_argument("--int8", action="store_true",
                        help="also quantize to int8 (calibrated on training images) and compare "
                             "accuracy on test images and latency")
    parser.add_argument("--calibration", type=integer(1), default=256,
                        help="--int8: calibration images (default: %(default)s)")
    parser.add_argument("--limit", type=integer(1), default=1000,
                        help="--int8: test images to compare accuracy on (default: %(default)s)")
    add_data_args(parser)
    parser.set_defaults(device="cpu")


def run_bench(args: argparse.Namespace) -> None:
    bad_threads = args.threads is not None and args.threads < 1
    if min(args.batch_size) < 1 or args.repeats < 1 or args.warmup < 0 or bad_threads:
        raise ElasticError("--batch-size, --repeats and --threads must be >= 1, --warmup >= 0")
    if args.fill_results:
        count = fill_latency(Path(args.fill_results), repeats=args.repeats, redo=args.redo,
                             on_row=lambda run_id, row: print(f"  torch {row['latency_ms']:8.3f} ms · onnxruntime "
                                                              f"{row['ort_latency_ms']:8.3f} ms  {run_id}"))
        print(f"measured {count} row(s) of {args.fill_results}")
        return
    model, info = _model_from_args(args)
    shape = info["input_shape"]
    device = "cpu" if args.device == "auto" else args.device
    print(f"{args.arch} ({info['weights']}), {count_macs(model, shape) / 1e6:.2f} M MACs, "
          f"input {'x'.join(map(str, shape))}")
    lat = None
    for runtime in args.runtime:
        for batch in args.batch_size:
            lat = measure_latency(model, shape, batch_size=batch, threads=args.threads, warmup=args.warmup,
                                  repeats=args.repeats, device="cpu" if runtime == "onnxruntime" else device,
                                  runtime=runtime)
            print(f"  {lat}")
    print(f"  host: {lat.host}")
    if args.int8:
        data = load_data(args)
        report = int8_report(model, data.train.head(args.calibration, args.seed), data.test.head(args.limit),
                             data.spec, batch_size=args.batch_size[0], threads=args.threads,
                             repeats=args.repeats)
        print(f"  int8 ({data.source}, {report.images} test images): accuracy {report.int8_acc:.2f}% "
              f"(fp32 {report.fp32_acc:.2f}%), same prediction as fp32 on {report.agreement:.1f}%")
        print(f"  fp32: {report.fp32}")
        print(f"  int8: {report.int8}")


def add_export(parser: argparse.ArgumentParser) -> None:
    _add_model_source(parser, run_id=True)
    parser.add_argument("--out-dir", required=True, help="folder for model.onnx, model.pt, model.json")
    parser.add_argument("--opset", type=integer(7), default=17, help="ONNX opset (default: %(default)s)")
    parser.add_argument("--exporter", choices=["torchscript", "dynamo"], default="torchscript",
                        help="torch.onnx exporter; dynamo needs onnxscript (default: %(default)s)")
    parser.add_argument("--atol", type=number(above=0), default=1e-4,
                        help="largest accepted difference from PyTorch (default: %(default)s)")
    add_data_args(parser)
    parser.set_defaults(device="cpu")


def run_export(args: argparse.Namespace) -> None:
    out = Path(args.out_dir)
    check_creatable(out, f"--out-dir {out}")
    if args.run_id:
        _export_row(args, out)
        return
    model, info = _model_from_args(args)
    shape = info["input_shape"]
    state = info["state"]
    config = arch_config(model, args.arch, info["num_classes"])
    meta = {
        "arch": args.arch, "dataset": info["dataset"], "num_classes": info["num_classes"],
        "method": state.get("method") or ("baseline" if not any(config.values()) else "custom"),
        "config": config, "weights": info["weights"],
        "metrics": {**complexity_columns(model, shape[-1]),
                    **{k: state[k] for k in ("test_acc", "val_acc") if k in state}},
    }
    paths = export_bundle(model, args.out_dir, shape, meta, opset=args.opset, atol=args.atol,
                          exporter=args.exporter)
    check = json.loads(paths["model.json"].read_text())["verification"]
    print(f"exported {args.arch} ({info['weights']}) to {Path(args.out_dir)}")
    for name, path in paths.items():
        print(f"  {name:<11} {path.stat().st_size / 1024:9.1f} KB")
    print(f"  onnxruntime vs PyTorch: max |diff| {check['onnx_max_abs_diff']:.2e}; "
          f"TorchScript vs PyTorch: {check['torchscript_max_abs_diff']:.2e} (atol {check['atol']:g}, "
          f"opset {check['onnx_opset']}, batch {check['batch_size']})")


def _export_row(args: argparse.Namespace, out: Path) -> None:
    """export --run-id: the row's trained model, exported and verified, then its
    ONNX file's accuracy in onnxruntime on the whole test split against the row's."""
    if args.checkpoint or args.config:
        raise ElasticError("give --run-id, or --checkpoint / --config, not both: the row names its checkpoint")
    frame = load_all(results_dir())[0]
    rows = frame[frame["run_id"] == args.run_id].to_dict("records")
    if not rows:
        raise ElasticError(f"no results row has run id {args.run_id!r} in {results_dir()}; the Explorer's "
                           f"table and `python -m elastic check` show run ids")
    row = rows[0]
    spec = DATASETS.get(row["dataset"])
    found = trained_model(row["run_id"], arch=row["arch"], num_classes=spec.num_classes)
    if found is None:
        raise ElasticError(f"row {args.run_id} has no trained checkpoint on this machine (neither in the cache "
                           f"nor shipped); its command trains it: {row['command']}")
    model, path = found
    synthetic = str(row.get("data_source", "")).startswith("synthetic")
    data = None if synthetic else load_dataset(row["dataset"], args.data_dir, source=args.data,
                                               download=args.download)     # found before exporting
    shape = (3, spec.input_size, spec.input_size)
    meta = row_meta(row, f"trained, from {path.name}")
    paths = export_bundle(model, out, shape, meta, opset=args.opset, atol=args.atol, exporter=args.exporter)
    print(f"exported row {row['run_id']} (trained weights from {path}) to {out}")
    for name, file in paths.items():
        print(f"  {name:<11} {file.stat().st_size / 1024:9.1f} KB")
    if data is None:
        print("  test accuracy not checked: the row was measured on synthetic images")
        return
    check = check_onnx_accuracy(paths["model.onnx"], row, data.test, data.spec, data.source)
    report = json.loads(paths["model.json"].read_text())
    report["verification"]["test_accuracy"] = {"onnxruntime": check.onnx_acc, "recorded": check.recorded_acc,
                                               "images": check.images, "agrees": check.agrees}
    paths["model.json"].write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"  {check}")
    if not check.agrees:
        raise ElasticError(f"the exported ONNX model does not reproduce row {row['run_id']}'s accuracy; "
                           f"do not deploy it")


def _model_from_args(args: argparse.Namespace) -> tuple[nn.Module, dict[str, Any]]:
    """The model the command line names: a checkpoint, or the architecture with
    an optional config (fresh weights)."""
    check_arch_fits(args.arch, args.dataset)
    spec = DATASETS.get(args.dataset)
    state: dict[str, Any] = {}
    if args.checkpoint and args.config:
        raise ElasticError("give --checkpoint or --config, not both: a checkpoint carries its own config")
    if args.checkpoint:
        model, state = load_model(args.checkpoint, arch=args.arch, num_classes=spec.num_classes)
        weights = f"weights from {args.checkpoint}"
        state = {k: v for k, v in state.items() if k != "model"}
    else:
        config = parse_config(args.config) if args.config else None
        model = checked_model(args.arch, spec.num_classes, config)
        weights = "untrained: fresh weights" + (", config given" if config else "")
    return model.eval(), {"input_shape": (3, spec.input_size, spec.input_size), "weights": weights,
                          "num_classes": spec.num_classes, "dataset": spec.name, "state": state}
