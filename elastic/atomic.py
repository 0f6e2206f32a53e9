"""Atomic file replacement: write a private temporary file, then rename it into place.

A killed process never leaves a half-written file, and several processes writing the
same path at once (a sweep's workers decoding one dataset) never collide."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def replace_atomically(target: Path | str, write: Callable[[BinaryIO], object]) -> None:
    """Call `write` with a binary file in target's folder, then rename it to target."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
