"""Checks on what users hand us: checkpoint files, uploaded checkpoints and the
query parameters of a shared link. Each check either passes or says, in one
line, which file or value is wrong, what is wrong with it and what was expected.

Checkpoints are only ever read with `weights_only=True` (elastic.train.load_checkpoint):
tensors and plain values, never pickled code. The checks here run before that load
(format by magic bytes, size, zip checksums) and after it (the weights fit the
architecture the checkpoint claims, before any memory is allocated for it).
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

from elastic.errors import BadCheckpoint

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
    from elastic.models import build_model
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


__all__ = ["MAX_UPLOAD_BYTES", "BadCheckpoint", "checkpoint_format", "display_name",
           "format_problem", "load_failure", "skeleton", "weights_mismatch"]
