"""Crash-safe trace writer (DESIGN §5).

A round is on disk before the next one starts: its image (and latents) first, then its line in
`rounds.jsonl`, fsynced. A line therefore always has its image, and a killed run leaves a trace that
loads with every finished round. Whole files are written atomically (temp file in the same folder,
fsync, `os.replace`, fsync of the folder so the rename itself survives a power cut); only the round
log is appended. Every string is passed through `redact` before it reaches the disk.

One writer per run folder: a writer holds an exclusive `flock` on `<run>/.lock` (which names the
holder's pid) from `start()` (a new run) or construction (`resume=True`) until `close()`. A second
writer, in another process or this one, gets `RunLockedError` instead of interleaving its rounds
with the first's. The kernel drops the lock when its process dies, so a SIGKILLed run never leaves
a stale lock behind; the `.lock` file itself stays (readers ignore it).

Nothing outside the run folder is written or followed: record file names are plain names, and a
resume refuses a folder whose `rounds.jsonl`, `latents/` or any other entry is a symbolic link.
Each round's record keeps the SHA-256 of its latents file, which `load_latents` checks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import io
import json
import os
import re
import secrets
import stat
import time
import unicodedata
from pathlib import Path

import structlog
import torch
from PIL import Image
from pydantic import BaseModel
from safetensors.torch import save as safetensors_bytes

from milr.traces.files import (
    UnsafePathError,
    atomic_write_bytes,
    atomic_write_text,
    fsync_dir,
    member,
    read_member,
    write_all,
)
from milr.traces.reader import Trace, read_latents, read_records, read_summary
from milr.traces.redaction import redact, redact_data, secret_values
from milr.traces.schema import RoundRecord, RunInfo, RunSummary

log = structlog.get_logger(__name__)

MAX_NAME = 80  # a run id is a folder name: keep it well under every file system's limit (255)
MAX_SLUG = 40
ROUNDS_FILE = "rounds.jsonl"
LATENTS_DIR = "latents"
LOCK_FILE = ".lock"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class RunLockedError(OSError):
    """Another writer holds the run folder's lock: a second writer is refused, never merged."""


# ----------------------------------------------------------------------------- run ids
def new_run_id(prompt: str, name: str | None = None) -> str:
    """A folder name for a run.

    With `name`: the name sanitised (letters, digits, `.`, `_`, `-`; anything else, path separators
    included, becomes `-`; no leading dots or dashes, so no `..`, hidden folder or CLI flag), at most
    80 characters; ValueError if nothing usable remains. Without: timestamp + slug of the prompt +
    random suffix, e.g. `20261128-201500-a-red-cat-3f9a1c`. Both pass through `redact` first: a key
    pasted into a prompt never becomes part of a folder name."""
    if name is not None:
        clean = _redacted_until_stable(name, _clean_name)
        if not clean:
            raise ValueError(f"run name {name!r} has no usable characters; use letters, digits, '-', '_' or '.'")
        return clean
    slug = _redacted_until_stable(prompt, _slug) or "run"
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{slug}-{secrets.token_hex(3)}"
    return _redacted_until_stable(run_id, _clean_name)


def _clean_name(text: str) -> str:
    clean = re.sub(r"[^A-Za-z0-9._-]+", "-", _ascii(text))
    return re.sub(r"\.{2,}", ".", clean).strip(".-")[:MAX_NAME].rstrip(".-")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", _ascii(text).lower()).strip("-")[:MAX_SLUG].strip("-")


def _redacted_until_stable(text: str, clean) -> str:
    """`clean(redact(text))`, again until redacting changes nothing: slugging can itself make a
    key-shaped string ("sk abc..." → "sk-abc..."), which the trace writer would then redact in
    run.json, and the run id on disk would no longer match the folder."""
    out = clean(redact(text))
    while redact(out, warn=False) != out:
        out = clean(redact(out, warn=False))
    return out


def _ascii(text: str) -> str:
    # "café" → "cafe" rather than "caf-": folder names stay readable and portable.
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def dump_json(obj: BaseModel | dict | list, indent: int | None = None) -> str:
    """JSON of a model or plain data with every string redacted (numbers untouched, NaN as "NaN")."""
    # Through pydantic's JSON first: it applies the models' NaN-as-string rule, so the output is strict JSON.
    data = json.loads(obj.model_dump_json()) if isinstance(obj, BaseModel) else obj
    return json.dumps(redact_data(data, secret_values()), ensure_ascii=False, indent=indent, allow_nan=False)


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _plain_name(name: str, what: str) -> str:
    # Record fields name files inside the run folder; refuse anything that would land elsewhere.
    parts = Path(name).parts
    if not parts or Path(name).is_absolute() or any(p in ("..", ".") or p.startswith(".") for p in parts):
        raise ValueError(f"{what} must be a file name inside the run folder, got {name!r}")
    return name


def _is_leftover(entry: Path) -> bool:
    """What a run killed before its `run.json` was on disk leaves: the lock, temp files, an empty
    latents folder. A folder holding only these holds no run."""
    if entry.name == LOCK_FILE or (entry.name.startswith(".") and entry.name.endswith(".tmp")):
        return not entry.is_symlink()
    if entry.name == LATENTS_DIR and entry.is_dir() and not entry.is_symlink():
        return all(_is_leftover(e) and e.name != LOCK_FILE for e in entry.iterdir())
    return False


# ----------------------------------------------------------------------------- writer
class TraceWriter:
    """Writes one run folder (`run.json`, `rounds.jsonl`, `round_XX.png`, `latents/`, `final.png`,
    `summary.json`, `report.html`), holding the folder's lock from `start()` (or from construction
    with `resume=True`) until `close()`; also a context manager.

    A new run: `TraceWriter(dir).start(info)`, then `write_round` per round, then `finish`, `close`.
    `resume=True` reopens a killed run to append further rounds: the lock is taken before anything
    is read, a half-written last line is cut and rounds must continue after the last one on disk."""

    def __init__(self, run_dir: str | Path, *, resume: bool = False):
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.last_round: int | None = None
        self._lock_fd: int | None = None
        self._latents_sha: dict[int, tuple[str, str]] = {}  # round -> (file, sha256) saved by this writer
        if resume:
            run_json = member(self.run_dir, "run.json", "run.json")
            if not run_json.is_file():
                raise FileNotFoundError(f"{self.run_dir.name}: not a milr trace (no run.json)")
            self._lock()
            try:
                self._check_layout()
                self._drop_partial_last_line()
                self._remove_temp_files()
                self.last_round = self._last_round_on_disk()
            except BaseException:
                self.close()
                raise

    @property
    def rounds_path(self) -> Path:
        return self.run_dir / ROUNDS_FILE

    @classmethod
    def check_free(cls, run_dir: str | Path) -> None:
        """Raise `RunLockedError` (naming the holder) when another writer holds `run_dir`'s lock; the
        lock is taken for an instant and let go. A quick refusal before slow work, e.g. loading a
        model: the writer that resumes the run takes the lock again, and is refused then if it lost it."""
        probe = cls(run_dir)
        try:
            probe._lock()
        finally:
            probe.close()

    @property
    def locked(self) -> bool:
        """Whether this writer holds the run folder's lock."""
        return self._lock_fd is not None

    def start(self, info: RunInfo, *, resume: bool | None = None) -> None:
        """Take the folder's lock, create the run folder and write `run.json`. A folder holding a run
        is refused (a run is never overwritten) unless resuming, which keeps the `run.json` already
        there. A folder holding only what a run killed before its `run.json` leaves is taken over."""
        resume = self.resume if resume is None else resume
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            run_json = member(self.run_dir, "run.json", "run.json")
            if resume and run_json.is_file():
                on_disk = json.loads(read_member(self.run_dir, "run.json", "run.json")).get("run_id")
                if on_disk != info.run_id:
                    raise ValueError(f"{self.run_dir.name} holds run {on_disk!r}, not {info.run_id!r}")
                return
            if not all(_is_leftover(e) for e in self.run_dir.iterdir()):
                raise FileExistsError(f"trace folder {self.run_dir.name!r} already holds a run; pick another name")
            self._remove_temp_files()
            atomic_write_text(run_json, dump_json(info, indent=2))
            member(self.run_dir, LATENTS_DIR, "latents folder").mkdir(exist_ok=True)
        except BaseException:
            self.close()
            raise

    def write_round(self, record: RoundRecord, image: Image.Image | bytes) -> None:
        """Write the round's image (a PIL image or PNG bytes), then append its record line and fsync.

        Image first: a line on disk always has its image. Rounds must go up: writing a round twice
        (a resumed run replaying one) would leave two lines for it. A record naming the latents this
        writer saved for its round gets their checksum (`latents_sha256`)."""
        self._check_locked()
        if self.last_round is not None and record.round <= self.last_round:
            raise ValueError(f"round {record.round} comes after round {self.last_round}, which is already on disk")
        image_path = member(self.run_dir, _plain_name(record.image, "RoundRecord.image"), "RoundRecord.image")
        if record.latents is not None:
            member(self.run_dir, _plain_name(record.latents, "RoundRecord.latents"), "RoundRecord.latents")
            saved = self._latents_sha.get(record.round)
            if record.latents_sha256 is None and saved is not None and saved[0] == record.latents:
                record = record.model_copy(update={"latents_sha256": saved[1]})
        atomic_write_bytes(image_path, image if isinstance(image, bytes) else png_bytes(image))
        self._append_line(dump_json(record))
        self.last_round = record.round

    def _append_line(self, line: str) -> None:
        path = member(self.run_dir, ROUNDS_FILE, ROUNDS_FILE)
        new = not os.path.lexists(path)
        # One write() of the whole line: a crash leaves at most one partial last line, which
        # readers skip and `resume` cuts. O_NOFOLLOW: a link planted after the checks is refused.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW | _CLOEXEC, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafePathError(f"trace {self.run_dir.name!r}: {ROUNDS_FILE} is a symbolic link") from None
            raise
        try:
            write_all(fd, line.encode("utf-8") + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        if new:
            fsync_dir(self.run_dir)

    def latents_path(self, round_: int) -> Path:
        return self.run_dir / LATENTS_DIR / f"round_{round_:02d}.safetensors"

    def save_latents(
        self, round_: int, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
    ) -> str:
        """Write `latents/round_XX.safetensors` atomically; returns its path relative to the run folder.
        Its SHA-256 goes into the round's record when `write_round` writes it.

        `metadata` values must be strings (safetensors' rule); they are redacted like everything else."""
        self._check_locked()
        path = self.latents_path(round_)
        rel = path.relative_to(self.run_dir).as_posix()
        member(self.run_dir, rel, "latents file").parent.mkdir(parents=True, exist_ok=True)
        meta = None if metadata is None else redact_data(dict(metadata), secret_values())
        data = _canonical(
            safetensors_bytes({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata=meta)
        )
        atomic_write_bytes(path, data)
        self._latents_sha[round_] = (rel, hashlib.sha256(data).hexdigest())
        return rel

    def load_latents(self, round_: int) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """The tensors and metadata saved for `round_` (on the CPU), checked against the checksum in
        the round's record: a changed, truncated or damaged file raises `LatentsDamagedError` naming
        the round and the file, never a half-read state."""
        record = next((r for r in read_records(self.run_dir) if r.round == round_), None)
        default = self.latents_path(round_).relative_to(self.run_dir).as_posix()
        rel = record.latents if record is not None and record.latents else default
        sha = record.latents_sha256 if record is not None else None
        if sha is None and self._latents_sha.get(round_, ("", ""))[0] == rel:
            sha = self._latents_sha[round_][1]
        try:
            return read_latents(self.run_dir, round_, rel, sha)
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.run_dir.name}: no latents for round {round_} ({Path(rel).name})") from None

    def finish(self, summary: RunSummary, final_image: Image.Image | bytes, trace: Trace | None = None) -> Path | None:
        """Write `final.png` and `summary.json` (atomically), then `report.html`; returns the report.

        `trace`, this run's folder as the caller already read it, spares the report reading the
        rounds back; the summary it shows is read back from disk either way, as it was written.
        The run's data are complete once `summary.json` is on disk, so a failing report is logged,
        not raised: the run's result stays usable and `milr traces report` can build it later."""
        self._check_locked()
        png = final_image if isinstance(final_image, bytes) else png_bytes(final_image)
        atomic_write_bytes(member(self.run_dir, "final.png", "final.png"), png)
        atomic_write_text(member(self.run_dir, "summary.json", "summary.json"), dump_json(summary, indent=2))
        from milr.traces.report import write_report  # brings in jinja2, which only finishing needs

        try:
            done = self.run_dir if trace is None else dataclasses.replace(trace, summary=read_summary(self.run_dir))
            return write_report(done)
        except Exception as exc:  # see the docstring: never lose a finished run to its report
            log.warning("report_failed", run=self.run_dir.name, error=f"{type(exc).__name__}: {exc}")
            return None

    # ------------------------------------------------------------------ the lock
    def close(self) -> None:
        """Release the run folder's lock (idempotent). The writer cannot write afterwards."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor drops its flock

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        # A writer dropped without close() (a test, a notebook) must not keep its folder locked.
        with contextlib.suppress(Exception):
            self.close()

    def _lock(self) -> None:
        if self._lock_fd is not None:
            return
        path = member(self.run_dir, LOCK_FILE, "lock file")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafePathError(f"trace {self.run_dir.name!r}: {LOCK_FILE} is a symbolic link") from None
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _holder_pid(fd)
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            by = f"process {holder}" if holder else "another process"
            raise RunLockedError(
                f"run {self.run_dir.name} is being written by {by}; wait for it to finish (or stop it), then resume"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _check_locked(self) -> None:
        if self._lock_fd is None:
            raise RuntimeError(
                f"the writer of {self.run_dir.name} does not hold the run's lock: call start() first "
                "(it was never started, or close() was called)"
            )

    # ------------------------------------------------------------------ resume helpers
    def _check_layout(self) -> None:
        """Refuse a run folder in which a file or folder milr would read or write is a symbolic link
        (or not what it should be): resuming would otherwise read or write outside the run folder."""
        member(self.run_dir, ROUNDS_FILE, ROUNDS_FILE)
        latents = member(self.run_dir, LATENTS_DIR, "latents folder")
        folders = [self.run_dir] + ([latents] if latents.is_dir() else [])  # a file there is refused below
        for folder in folders:
            for entry in folder.iterdir():
                rel = entry.relative_to(self.run_dir).as_posix()
                if entry.is_symlink():
                    raise UnsafePathError(
                        f"trace {self.run_dir.name!r}: {rel!r} is a symbolic link; milr reads and writes only plain "
                        "files inside the run folder: replace the link by the file itself, then resume"
                    )
        rounds = self.run_dir / ROUNDS_FILE
        if rounds.exists() and not stat.S_ISREG(os.lstat(rounds).st_mode):
            raise UnsafePathError(f"trace {self.run_dir.name!r}: {ROUNDS_FILE} is not a regular file; refused")
        if latents.exists() and not latents.is_dir():
            raise UnsafePathError(f"trace {self.run_dir.name!r}: {LATENTS_DIR} is not a folder; refused")

    def _drop_partial_last_line(self) -> None:
        """A crash mid-append leaves a line without its newline; cut it before appending again."""
        try:
            data = read_member(self.run_dir, ROUNDS_FILE, ROUNDS_FILE)
        except FileNotFoundError:
            return
        if data and not data.endswith(b"\n"):
            atomic_write_bytes(self.rounds_path, data[: data.rfind(b"\n") + 1])

    def _remove_temp_files(self) -> None:
        # Left by a crash between writing a temp file and renaming it; never read by anyone.
        # Unlinking a name never follows it; a linked latents folder is skipped (and refused elsewhere).
        for folder in (self.run_dir, self.run_dir / LATENTS_DIR):
            if folder.is_dir() and not folder.is_symlink():
                for tmp in folder.glob(".*.tmp"):
                    tmp.unlink(missing_ok=True)

    def _last_round_on_disk(self) -> int | None:
        records = read_records(self.run_dir)
        return records[-1].round if records else None


def _canonical(data: bytes) -> bytes:
    """safetensors bytes with the JSON header's keys sorted: safetensors writes the metadata in hash
    order, which changes from process to process, so the same tensors would get another checksum."""
    n = int.from_bytes(data[:8], "little")
    header = json.dumps(json.loads(data[8 : 8 + n]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # the data stay 8-byte aligned, as safetensors writes them
    return len(header).to_bytes(8, "little") + header + data[8 + n :]


def _holder_pid(fd: int, wait: float = 0.5) -> int | None:
    """The pid the lock's holder wrote. A holder writes it right after taking the lock, so a second
    writer that comes in between finds the file still empty: give the holder a moment."""
    deadline = time.monotonic() + wait
    while (pid := _pid_in(fd)) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return pid


def _pid_in(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii").strip()
        return int(text) if text.isdigit() else None
    except (OSError, UnicodeDecodeError):
        return None
