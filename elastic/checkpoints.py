"""Checkpoints: the one module that writes and reads them, and checks what
users hand us.

`save_checkpoint` writes atomically; `load_checkpoint` reads only with
`weights_only=True` (tensors and plain values, never pickled code), after
checks on the file itself (format by magic bytes, size, zip checksums).
`save_model` / `load_model` are the model checkpoint: the architecture, its
config and class count travel with the weights, and the weights are checked
to fit the architecture the file claims before any memory is allocated for
it (`skeleton`, `weights_mismatch`). The other kinds (training resume files,
elastic checkpoints) are dicts written with `save_checkpoint` by the training
engine and elastic.methods.elastic_net; elastic.filecheck tells them apart.
"""
from __future__ import annotations

import pickle
import re
import unicodedata
import zipfile
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from elastic.atomic import replace_atomically
from elastic.errors import BadCheckpoint
from elastic.models import ARCHS, arch_config, build_model

MAX_UPLOAD_BYTES = 200 * 1024 * 1024
ZIP_MAGIC = b"PK\x03\x04"             # torch.save's format since PyTorch 1.6
EXPECTED = "a checkpoint written by torch.save (python -m elastic train, prune or grow)"


# ---- checkpoint files --------------------------------------------------------------

def checkpoint_format(head: bytes) -> str:
    """'zip' or 'pickle' (torch.save's legacy format: a pickle of protocol 2 to 5)
    from a file's first bytes; '' for anything else."""
    if head.startswith(ZIP_MAGIC):
        return "zip"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    return ""


def format_problem(path: Path | str) -> str:
    """Why `path` cannot be a torch checkpoint, judged without unpickling anything
    ('' if it may be one): empty, unknown magic bytes, a zip with a compressed
    part (torch.save never compresses; a compressed part could expand without
    limit), a zip cut short, or a part whose CRC-32 does not match."""
    with open(path, "rb") as file:
        head = file.read(8)
    if not head:
        return "the file is empty"
    kind = checkpoint_format(head)
    if not kind:
        return f"it is not a PyTorch checkpoint (it starts with {head[:4]!r}, not a zip archive or a pickle)"
    if kind == "pickle":
        return ""          # the legacy format carries no checksum: torch.load judges it
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.compress_type != zipfile.ZIP_STORED:
                    return f"its part {info.filename!r} is compressed, which torch.save never does"
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as err:
        return f"the file is cut short or damaged (not a complete zip archive: {err})"
    if bad is not None:
        return (f"the file is corrupted: its part {bad!r} does not match its checksum "
                f"(changed or incompletely copied after it was saved)")
    return ""


def load_failure(err: BaseException) -> str:
    """What a torch.load(weights_only=True) error means, in one line."""
    text = str(err)
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return (f"it contains pickled Python code ({found.group(1)}), which is refused for safety: "
                f"only tensors and plain values are loaded")
    if isinstance(err, pickle.UnpicklingError) or "Unsupported operand" in text:
        return "its pickled data is damaged or uses pickle operations that are refused for safety"
    if isinstance(err, EOFError) or "central directory" in text:
        return "the file is cut short (truncated)"
    first = text.strip().splitlines()
    return first[0] if first else type(err).__name__


def weights_mismatch(model: nn.Module, weights: Any) -> str:
    """'' if `weights` (a state dict) has exactly `model`'s tensor names and shapes,
    else what differs. `model` may live on the meta device (shapes only)."""
    if not isinstance(weights, Mapping) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        return "its 'model' entry is not a dict of tensors"
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    missing = [name for name in expected if name not in weights]
    unexpected = [name for name in weights if name not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} tensor(s) missing, e.g. {missing[0]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected, e.g. {unexpected[0]}")
        return "; ".join(parts)
    for name, shape in expected.items():
        if tuple(weights[name].shape) != shape:
            return f"{name} has shape {list(weights[name].shape)}, expected {list(shape)}"
    return ""


def skeleton(arch: str, num_classes: int, config: Any) -> nn.Module:
    """`build_model(arch, num_classes, config)` on the meta device: the shapes a
    checkpoint claims, with no memory allocated (a checkpoint's config and class
    count are not trusted until its weights are seen to fit them). Raises
    ValueError, with the reason, for a class count or config that does not fit."""
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"its num_classes entry ({num_classes!r}) is not a positive whole number")
    if config is not None and not isinstance(config, dict):
        raise ValueError(f"its config entry is a {type(config).__name__}, not a dict")
    try:
        with torch.device("meta"):
            return build_model(arch, num_classes, config)
    except (AttributeError, KeyError, IndexError, TypeError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()
        raise ValueError(f"its config does not describe a {arch} ({first[0] if first else type(err).__name__})") \
            from None


# ---- uploads -----------------------------------------------------------------------

def display_name(filename: str) -> str:
    """A user's file name, safe to show: the last path part, no control
    characters, no Markdown backticks, at most 80 characters."""
    name = re.split(r"[\\/]", filename or "")[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").replace("`", "'").strip()
    return (name[:77] + "...") if len(name) > 80 else (name or "the uploaded file")


# ---- writing and reading -----------------------------------------------------------

def save_checkpoint(path: Path | str, state: dict[str, Any]) -> None:
    """Write then rename, so a killed process never leaves a half-written file."""
    replace_atomically(path, lambda f: torch.save(state, f))


def load_checkpoint(path: Path | str, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Load with weights_only=True: a file carrying pickled code is refused, not run.
    Empty, foreign, truncated or corrupted (zip checksum) files are refused first."""
    path = Path(path)
    if not path.is_file():
        raise BadCheckpoint(f"checkpoint {path} does not exist")
    problem = format_problem(path)
    if problem:
        raise BadCheckpoint(f"cannot load checkpoint {path}: {problem}; expected {EXPECTED}")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # torch raises many types for bad files
        raise BadCheckpoint(f"cannot load checkpoint {path}: {load_failure(err)}; expected {EXPECTED}") from None
    if not isinstance(state, dict):
        raise BadCheckpoint(f"checkpoint {path} holds a {type(state).__name__}, not a dict of tensors")
    return state


# ---- model checkpoints ------------------------------------------------------------

def save_model(path: Path | str, model: nn.Module, arch: str, num_classes: int,
               dataset: str, *, run_id: str = "", **meta: Any) -> None:
    """A checkpoint that says what it is: architecture, config and class count
    travel with the weights, so loading can check them; `run_id` names the row it
    belongs to, and is what runs that start from it record."""
    save_checkpoint(path, {"arch": arch, "num_classes": num_classes, "dataset": dataset, "run_id": run_id,
                           "config": arch_config(model, arch, num_classes),
                           "model": model.state_dict(), **meta})


def load_model(path: Path | str, *, arch: str | None = None, num_classes: int | None = None,
               device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a `save_model` checkpoint describes. If arch or
    num_classes are given they must match the checkpoint's."""
    state = load_checkpoint(path, device)
    if "model" not in state or "arch" not in state:
        bare = " (it looks like a bare state_dict: wrap it with elastic.checkpoints.save_model)" if all(
            isinstance(v, torch.Tensor) for v in state.values()) else ""
        raise BadCheckpoint(f"{path} is not an Elastic model checkpoint: expected 'arch', 'num_classes' and "
                            f"'model' entries, as elastic.checkpoints.save_model writes{bare}")
    if not isinstance(state["arch"], str) or state["arch"] not in ARCHS:
        raise BadCheckpoint(f"{path} is for architecture {state['arch']!r}, which is not supported")
    if arch is not None and state["arch"] != arch:
        raise BadCheckpoint(f"{path} holds a {state['arch']} model, expected {arch}")
    if num_classes is not None and state.get("num_classes") != num_classes:
        raise BadCheckpoint(f"{path} was trained for {state.get('num_classes', 'an unrecorded number of')} "
                            f"classes, expected {num_classes}")
    try:  # shapes first, on the meta device: a crafted config or class count allocates nothing
        unfit = weights_mismatch(skeleton(state["arch"], state.get("num_classes"), state.get("config")),
                                 state["model"])
    except ValueError as err:
        raise BadCheckpoint(f"{path}: {err}") from None
    if unfit:
        raise BadCheckpoint(f"{path}: weights do not fit the {state['arch']} it describes ({unfit})")
    model = build_model(state["arch"], int(state["num_classes"]), state.get("config"))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        first = str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else str(err)
        raise BadCheckpoint(f"{path}: weights do not fit a {state['arch']} model ({first})") from None
    return model.to(device), state
