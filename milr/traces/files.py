"""Crash-safe files for traces: a file is replaced in one step (write a temporary, fsync, rename,
fsync the folder), so a reader or a resumed run sees the old file or the new one, never half of one.
Text passes through `redact` on its way to disk."""

from __future__ import annotations

import os
from pathlib import Path

from milr.traces.redaction import redact


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace `path` by `data` in one step: readers see the old file or the new one, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    """`atomic_write_bytes` for text, with secrets redacted."""
    atomic_write_bytes(path, redact(text).encode("utf-8"))
