"""Files of a trace: crash-safe writes and confined reads.

Writes: a file is replaced in one step (write a temporary, fsync, rename, fsync the folder), so a
reader or a resumed run sees the old file or the new one, never half of one. Text passes through
`redact` on its way to disk.

Reads and writes inside a run folder are confined to it (DESIGN §5): a name taken from a trace file
must be relative, without `..`, and no symbolic link is followed on the way from the run folder to the
file (`member`, `read_member`). A crafted `rounds.jsonl` naming `../../etc/passwd`, an absolute path
or a symlink to a private file therefore gets `UnsafePathError`, never the file's bytes. The run
folder itself is the one the user named, and may sit behind a link.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from milr.traces.redaction import redact

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO planted in a trace must not hang its reader


class UnsafePathError(ValueError):
    """A trace names a file outside its run folder, or reaches one through a symbolic link."""


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace `path` by `data` in one step: readers see the old file or the new one, never half.

    The rename replaces a symbolic link at `path` rather than writing through it, and the temporary
    file is created afresh (O_EXCL, O_NOFOLLOW), so a planted link cannot redirect the write."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)  # left by a crash between write and rename
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o644)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    """`atomic_write_bytes` for text, with secrets redacted."""
    atomic_write_bytes(path, redact(text).encode("utf-8"))


# ----------------------------------------------------------------------------- confinement
def member(run_dir: Path, name: str, what: str = "file") -> Path:
    """`run_dir / name`, checked to stay inside `run_dir`: `name` is relative, has no `..` or `.`
    part, and no part of it that exists is a symbolic link. Raises `UnsafePathError` naming `what`."""
    name = str(name)
    rel = Path(name)
    if not name or rel.is_absolute() or rel.drive or any(p in ("..", ".") for p in rel.parts) or "\x00" in name:
        raise UnsafePathError(
            f"trace {run_dir.name!r}: {what} {name!r} is not a file name inside the run folder; refused"
        )
    path = run_dir
    for part in rel.parts:
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            break  # the rest does not exist yet: nothing to follow
        if stat.S_ISLNK(mode):
            rel_name = path.relative_to(run_dir).as_posix()
            label = repr(rel_name) if what in ("file", rel_name) else f"{what} {rel_name!r}"
            raise UnsafePathError(
                f"trace {run_dir.name!r}: {label} is a symbolic link; milr reads and writes only plain files "
                "inside the run folder: replace the link by the file itself"
            )
    return run_dir / rel


def read_member(run_dir: Path, name: str, what: str = "file") -> bytes:
    """The bytes of the regular file `name` inside `run_dir` (see `member`). FileNotFoundError if
    it is missing; `UnsafePathError` if it escapes the folder, is a link, or is not a regular file."""
    path = member(run_dir, name, what)
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _CLOEXEC | _NONBLOCK)
    except OSError as exc:
        if os.path.islink(path):  # swapped for a link after the check above
            raise UnsafePathError(f"trace {run_dir.name!r}: {what} {name!r} is a symbolic link; refused") from None
        if isinstance(exc, FileNotFoundError):
            raise FileNotFoundError(f"trace {run_dir.name!r}: {what} {name!r} is missing") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafePathError(f"trace {run_dir.name!r}: {what} {name!r} is not a regular file; refused")
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def is_member_file(run_dir: Path, name: str) -> bool:
    """Whether `name` is a regular file inside `run_dir` reached without a link (no exception)."""
    try:
        path = member(run_dir, name)
    except UnsafePathError:
        return False
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False
