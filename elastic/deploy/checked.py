"""What a deployment is checked against: a results row's accuracy reproduced by
its ONNX file in onnxruntime, and models built from user input (a config) that
are checked before they are built.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from elastic.data import DatasetSpec, ImageSet
from elastic.deploy.export import first_line, onnx_session
from elastic.errors import ElasticError

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
        raise ElasticError(f"the config does not fit {arch}: {first_line(err)}") from None
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, spec.input_size, spec.input_size))
    except RuntimeError as err:
        raise ElasticError(f"the config gives {arch} layers whose widths do not connect: "
                           f"{first_line(err)}") from None
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
