"""What a file is: one checker for every kind of file the project writes.

`check_file(path)` recognises

- a model checkpoint (`train`, `prune`, `elastic.checkpoints.save_model`),
- a training resume file (`*.resume.pt`, written after every epoch),
- an elastic checkpoint (`grow`), with a profile of each level,
- a TorchScript export (`export`, the Export page's model.pt),
- an ONNX export (model.onnx),

and says which one it is and what it holds; any other file is refused with one
line saying what it is not. The CLI (`python -m elastic check FILE`) and the
"Check a checkpoint" page both use it.

Safety. torch.save files are loaded with `weights_only=True` only (tensors and
plain values; pickled code is refused, not run). A TorchScript file is TorchScript
code and constants, loaded by `torch.jit.load`, which runs no Python: it is only
loaded here (to read its parameters and the metadata Elastic stores in it), never
run; its size when unpacked is checked first. An ONNX file is read as protobuf
without external data.
"""
from __future__ import annotations

import json
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import torch

from elastic import identity
from elastic.checkpoints import MAX_UPLOAD_BYTES, ZIP_MAGIC, checkpoint_format, display_name
from elastic.deploy import EXTRA_FILE
from elastic.errors import BadCheckpoint

KINDS = ("model checkpoint", "training resume file", "elastic checkpoint", "TorchScript export", "ONNX export")
EXPECTED = ("a model checkpoint, a training resume file or an elastic checkpoint (torch.save), "
            "or a TorchScript or ONNX export")
MAX_UNPACKED_BYTES = 1024 ** 3     # a TorchScript archive larger than this when unpacked is refused
_FOREIGN = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
            (b"%PDF", "a PDF document"), (b"\x1f\x8b", "a gzip archive"), (b"BZh", "a bzip2 archive"),
            (b"\x7fELF", "a program (ELF)"), (b"\x93NUMPY", "a NumPy array file"),
            (b"\x89HDF", "an HDF5 file (Keras / h5py)"))


@dataclass(frozen=True)
class FileReport:
    """What `check_file` found. `facts` are (label, value) lines to show;
    `levels` one row per level of an elastic checkpoint; `model` the loaded
    network (an nn.Module, an ElasticNet or a TorchScript module; None for a
    resume file or an ONNX file); `dataset` the dataset the file names, if any."""
    name: str
    kind: str
    summary: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    levels: list[dict[str, Any]] = field(default_factory=list)
    model: Any = None
    arch: str | None = None
    dataset: str | None = None
    run_id: str = ""

    def lines(self) -> list[str]:
        """The report as text, for the command line."""
        out = [f"{self.name}: {self.summary}"]
        width = max((len(label) for label, _ in self.facts), default=0)
        out += [f"  {label:<{width}}  {value}" for label, value in self.facts]
        if self.levels:
            keys = list(self.levels[0])
            cells = [[_cell(row[k]) for k in keys] for row in self.levels]
            widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
            out.append("  " + "  ".join(k.rjust(w) for k, w in zip(keys, widths)))
            out += ["  " + "  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
        return out


def check_file(path: Path | str, *, name: str | None = None) -> FileReport:
    """Recognise `path` as one of KINDS and load it safely; raises BadCheckpoint
    with one line naming the file (as `name`, when given) for anything else."""
    path = Path(path)
    shown = name or str(path)
    if not path.is_file():
        raise BadCheckpoint(f"{shown} does not exist")
    with open(path, "rb") as file:
        head = file.read(16)
    if not head:
        raise BadCheckpoint(f"{shown} is empty; expected {EXPECTED}")
    try:
        if head.startswith(ZIP_MAGIC) and _is_torchscript(path, shown):
            return _torchscript(path, shown)
        if checkpoint_format(head):
            return _saved(path, shown)
        if head[0] == 0x08 and _is_onnx(path):
            return _onnx(path, shown)
    except BadCheckpoint as err:
        raise BadCheckpoint(str(err).replace(str(path), shown)) from None
    raise BadCheckpoint(f"{shown} is not a file Elastic writes: {_what_it_is(head)}; expected {EXPECTED}")


def check_bytes(blob: bytes, filename: str, max_bytes: int = MAX_UPLOAD_BYTES) -> FileReport:
    """`check_file` on uploaded bytes (at most `max_bytes`), written to a file in
    a fresh temporary folder (never named after `filename`, which is only shown)
    that is deleted before returning."""
    name = display_name(filename)
    check_size(name, len(blob), max_bytes)
    with tempfile.TemporaryDirectory(prefix="elastic-upload-") as folder:
        path = Path(folder) / "upload.bin"
        path.write_bytes(blob)
        report = check_file(path, name=name)
    return report


def check_size(name: str, size: int, max_bytes: int = MAX_UPLOAD_BYTES) -> None:
    """Refuse a file over `max_bytes` before anything of it is read."""
    if size > max_bytes:
        raise BadCheckpoint(f"{name} is {size / 1024 ** 2:.1f} MB; the limit is {max_bytes / 1024 ** 2:.0f} MB. "
                            f"Upload a smaller file (a CIFAR ResNet-56 checkpoint is about 3.5 MB)")


def with_recorded(report: FileReport, frame: Any) -> FileReport:
    """`report` with the accuracy its results row(s) recorded (`frame`: the
    results table): the model's row, each elastic level's row, or the row an
    export came from. Unchanged when the file names no row or its row is not in
    `frame`."""
    if not report.run_id or frame is None or frame.empty:
        return report
    rows = {str(r["run_id"]): r for r in frame.to_dict("records")}
    if report.levels:
        levels = [{**level, **_accuracies(rows.get(identity.level(report.run_id, level['level'])))}
                  for level in report.levels]
        return replace(report, levels=levels)
    row = rows.get(report.run_id)
    if row is None:
        return replace(report, facts=[*report.facts, ("recorded accuracy", "its row is not in the results")])
    found = _accuracies(row)
    text = (f"test {found['test acc (recorded)']}, validation {found['val acc (recorded)']} "
            f"({row['date']}, {row['precision']})")
    return replace(report, facts=[*report.facts, ("recorded accuracy", text)])


def _accuracies(row: Mapping[str, Any] | None) -> dict[str, str]:
    def percent(value: Any) -> str:
        return "-" if value is None or value != value else f"{float(value):.2f}%"
    return {"test acc (recorded)": percent(row and row.get("test_acc")),
            "val acc (recorded)": percent(row and row.get("val_acc"))}


# ---- torch.save files --------------------------------------------------------------

def _saved(path: Path, shown: str) -> FileReport:
    from elastic.checkpoints import load_checkpoint
    state = load_checkpoint(path)
    if state.get("format") == "elastic-net":
        return _elastic(path, shown)
    if {"model", "optimizer", "scheduler", "epoch"} <= set(state):
        return _resume(shown, state)
    if "arch" in state and "model" in state:
        return _model(path, shown)
    if state and all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BadCheckpoint(f"{shown} is a bare state_dict ({len(state)} tensors), not a file Elastic writes: "
                            f"it does not say its architecture; save it with elastic.checkpoints.save_model")
    keys = ", ".join(sorted(map(str, state))[:6]) or "nothing"
    raise BadCheckpoint(f"{shown} is a torch.save file but not one Elastic writes (its entries: {keys}); "
                        f"expected {EXPECTED}")


def _model(path: Path, shown: str) -> FileReport:
    from elastic.data import DATASETS
    from elastic.profile import profile_model
    from elastic.checkpoints import load_model
    model, state = load_model(path)
    arch, classes = state["arch"], int(state["num_classes"])
    dataset = state.get("dataset") if state.get("dataset") in DATASETS else None
    size = DATASETS.get(dataset).input_size if dataset else _input_size(arch)
    prof = profile_model(model, (3, size, size))
    config = state.get("config") or {}
    recipe = state.get("recipe") if isinstance(state.get("recipe"), Mapping) else {}
    facts = [("architecture", f"{arch}, {_structure(config)}"),
             ("classes", f"{classes}" + (f" (trained on {dataset})" if dataset else "")),
             ("parameters", f"{prof.params:,}"), ("MACs", f"{prof.macs:,} at {size}x{size}"),
             ("peak memory", f"{prof.peak_memory_bytes(4) / 2 ** 20:.2f} MiB (fp32, batch 1)")]
    if recipe:
        facts.append(("recipe", _recipe(recipe)))
    run_id = str(state.get("run_id") or "")
    if run_id:
        facts.append(("row", run_id))
    return FileReport(shown, "model checkpoint",
                      f"a model checkpoint: {arch} for {classes} classes, {_structure(config)}",
                      facts, model=model.eval(), arch=arch, dataset=dataset, run_id=run_id)


def _resume(shown: str, state: dict[str, Any]) -> FileReport:
    recipe = state.get("recipe") if isinstance(state.get("recipe"), Mapping) else {}
    weights = state["model"] if isinstance(state["model"], Mapping) else {}
    tensors = [v for v in weights.values() if isinstance(v, torch.Tensor)]
    params = sum(v.numel() for k, v in weights.items() if isinstance(v, torch.Tensor) and not _buffer(k))
    arch = _arch_of(weights)
    epochs = recipe.get("epochs", "?")
    history = state.get("history") if isinstance(state.get("history"), list) else []
    last = history[-1] if history and isinstance(history[-1], Mapping) else {}
    network = f"an unpruned {arch}" if arch else "a pruned or custom network"
    facts = [("network", f"{network} ({len(tensors)} tensors, {params:,} parameters)"),
             ("progress", f"epoch {state['epoch']} of {epochs} done"
                          + (f", {float(state['seconds']) / 60:.1f} minutes so far"
                             if isinstance(state.get("seconds"), (int, float)) else ""))]
    if isinstance(last.get("val_acc"), (int, float)):
        facts.append(("last validation accuracy", f"{last['val_acc']:.2f}% (after epoch {last.get('epoch')})"))
    if recipe:
        facts.append(("recipe", _recipe(recipe)))
    facts.append(("to continue", "rerun the command that wrote it: it resumes from this file"))
    return FileReport(shown, "training resume file",
                      f"a training resume file: {network}, epoch {state['epoch']} of {epochs}", facts, arch=arch)


def _elastic(path: Path, shown: str) -> FileReport:
    from elastic.data import DATASETS
    from elastic.methods.elastic_net import extract, load_elastic
    from elastic.profile import profile_model
    model = load_elastic(path)
    dataset = model.meta.get("dataset") if model.meta.get("dataset") in DATASETS else None
    size = DATASETS.get(dataset).input_size if dataset else _input_size(model.arch)
    levels = []
    for k, width in enumerate(model.widths):
        prof = profile_model(extract(model, k), (3, size, size))
        channels = model.channels[k]
        levels.append({"level": k, "width": f"{width:.0%}", "channels": f"{min(channels)}-{max(channels)}",
                       "params": prof.params, "MACs": prof.macs})
    run = str(model.meta.get("run") or "")
    trained = model.meta.get("trained_levels", model.num_levels)
    facts = [("architecture", f"{model.arch}, {model.num_classes} classes"
                              + (f" (trained on {dataset})" if dataset else "")),
             ("levels", f"{model.num_levels} nested widths ({trained} trained), switched at run time"),
             ("method", str(model.meta.get("method", "elastic")))]
    if run:
        facts.append(("rows", f"{run}/level0 ... level{model.num_levels - 1}"))
    return FileReport(shown, "elastic checkpoint",
                      f"an elastic checkpoint: {model.arch} with {model.num_levels} levels "
                      f"({', '.join(f'{w:.0%}' for w in model.widths)} width)",
                      facts, levels, model=model, arch=model.arch, dataset=dataset, run_id=run)


# ---- exports -----------------------------------------------------------------------

def _is_torchscript(path: Path, shown: str) -> bool:
    """A zip whose parts include TorchScript code (torch.save archives have none).
    Refuses an archive that would unpack to more than MAX_UNPACKED_BYTES."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return False                         # torch.save's checks say what is wrong with it
    if not any("/code/" in info.filename for info in infos):
        return False
    unpacked = sum(info.file_size for info in infos)
    if unpacked > MAX_UNPACKED_BYTES:
        raise BadCheckpoint(f"{shown} is a TorchScript archive that unpacks to {unpacked / 2 ** 30:.1f} GiB; "
                            f"the limit is {MAX_UNPACKED_BYTES / 2 ** 30:.0f} GiB")
    return True


def _torchscript(path: Path, shown: str) -> FileReport:
    extra = {EXTRA_FILE: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)      # torch.jit is deprecated, still shipped
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as err:  # torch raises RuntimeError and others for damaged archives
        first = str(err).strip().splitlines()
        raise BadCheckpoint(f"{shown} looks like TorchScript but does not load "
                            f"({first[0] if first else type(err).__name__})") from None
    meta = _json(extra[EXTRA_FILE])
    params = sum(p.numel() for p in module.parameters())
    facts = [("parameters", f"{params:,}")]
    facts += _export_facts(meta)
    origin = "exported by Elastic" if meta else "not exported by Elastic (no elastic.json inside)"
    return FileReport(shown, "TorchScript export", f"a TorchScript export: {_what_model(meta)}, {origin}",
                      facts, model=module.eval(), arch=meta.get("arch"), dataset=_dataset(meta),
                      run_id=str(meta.get("run_id") or ""))


def _is_onnx(path: Path) -> bool:
    try:
        import onnx
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # not protobuf, or not a ModelProto
        return False
    return len(model.graph.node) > 0


def _onnx(path: Path, shown: str) -> FileReport:
    import onnx
    model = onnx.load(str(path), load_external_data=False)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as err:
        first = str(err).strip().splitlines()
        raise BadCheckpoint(f"{shown} is an ONNX model that fails onnx's checker ({first[0] if first else err})") \
            from None
    meta = _json(next((p.value for p in model.metadata_props if p.key == EXTRA_FILE), ""))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    params = sum(int(torch.tensor(list(t.dims)).prod()) if t.dims else 1 for t in model.graph.initializer)
    inputs = ", ".join(f"{i.name} {_onnx_shape(i)}" for i in model.graph.input)
    facts = [("opset", str(opset)), ("inputs", inputs), ("initializer values", f"{params:,}")]
    facts += _export_facts(meta)
    origin = "exported by Elastic" if meta else "not exported by Elastic (no elastic.json metadata)"
    return FileReport(shown, "ONNX export", f"an ONNX export: {_what_model(meta)}, {origin}", facts,
                      arch=meta.get("arch"), dataset=_dataset(meta), run_id=str(meta.get("run_id") or ""))


def _export_facts(meta: Mapping[str, Any]) -> list[tuple[str, str]]:
    facts = []
    if meta.get("dataset"):
        facts.append(("dataset", str(meta["dataset"])))
    if meta.get("run_id"):
        facts.append(("row", str(meta["run_id"])))
    if meta.get("weights"):
        facts.append(("weights", str(meta["weights"])))
    if isinstance(meta.get("test_acc"), (int, float)):
        facts.append(("test accuracy at export", f"{meta['test_acc']:.2f}% (the row's)"))
    return facts


def _what_model(meta: Mapping[str, Any]) -> str:
    if not meta.get("arch"):
        return "a network"
    return f"{meta['arch']}, {_structure(meta.get('config') or {})}"


def _onnx_shape(value: Any) -> str:
    dims = value.type.tensor_type.shape.dim
    return "[" + ", ".join(d.dim_param or str(d.dim_value) for d in dims) + "]"


# ---- helpers -----------------------------------------------------------------------

def _structure(config: Mapping[str, Any]) -> str:
    resized, removed = len(config.get("shapes") or {}), len(config.get("removed_blocks") or [])
    if not resized and not removed:
        return "the unpruned architecture"
    parts = ([f"{resized} layer(s) narrowed"] if resized else []) + ([f"{removed} block(s) removed"] if removed else [])
    return "pruned: " + ", ".join(parts)


def _recipe(recipe: Mapping[str, Any]) -> str:
    return (f"{recipe.get('epochs')} epochs, lr {recipe.get('lr')}, batch {recipe.get('batch_size')}, "
            f"{recipe.get('precision', 'fp32')}")


def _buffer(name: str) -> bool:
    return name.endswith(("running_mean", "running_var", "num_batches_tracked"))


def _arch_of(weights: Mapping[str, Any]) -> str | None:
    """The registered architecture whose unpruned network has exactly these
    tensor names and shapes (checked on the meta device), or None."""
    from elastic.checkpoints import skeleton, weights_mismatch
    from elastic.models import ARCHS
    linears = [v for k, v in weights.items() if isinstance(v, torch.Tensor) and k.endswith("weight") and v.ndim == 2]
    if not linears:
        return None
    classes = int(linears[-1].shape[0])
    for arch in ARCHS:
        try:
            if not weights_mismatch(skeleton(arch, classes, None), weights):
                return arch
        except ValueError:
            continue
    return None


def _input_size(arch: str) -> int:
    from elastic.models import ARCHS
    return ARCHS.get(arch).input_size


def _dataset(meta: Mapping[str, Any]) -> str | None:
    from elastic.data import DATASETS
    return meta.get("dataset") if meta.get("dataset") in DATASETS else None


def _json(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _what_it_is(head: bytes) -> str:
    for magic, what in _FOREIGN:
        if head.startswith(magic):
            return f"it is {what}"
    if head.startswith(ZIP_MAGIC):
        return "it is a zip archive without a PyTorch model in it"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return f"it starts with {head[:4]!r}, which is none of these formats"
    if head.lstrip().startswith(b"{"):
        return "it is a JSON text file (an export's model.json describes the model; check model.onnx or model.pt)"
    return "it is a text file"


def _cell(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


__all__ = ["EXPECTED", "KINDS", "FileReport", "check_bytes", "check_file", "check_size", "with_recorded"]
