"""Atomic file replacement: write a private temporary file, then rename it into place.

A killed process never leaves a half-written file, and several processes writing the
same path at once (a sweep's workers decoding one dataset) never collide."""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import BinaryIO, Callable

from elastic.errors import ElasticError


def replace_atomically(target: Path | str, write: Callable[[BinaryIO], object]) -> None:
    """Call `write` with a binary file in target's folder, then rename it to target.
    The file gets the usual permissions (0666 less the umask), like a plain open."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_creatable(folder: Path | str, what: str) -> None:
    """Raise ElasticError (naming `what`) unless `folder` exists as a writable
    folder or can be made: its nearest existing ancestor is a writable folder.
    Commands call it before any long work, so nothing is lost at the end."""
    existing = Path(folder)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ElasticError(f"{what}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ElasticError(f"{what}: cannot write in {existing} (permission denied)")
