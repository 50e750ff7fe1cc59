"""Crash-safe trace writer (DESIGN §5).

A round is on disk before the next one starts: its image (and latents) first, then its line in
`rounds.jsonl`, fsynced. A line therefore always has its image, and a killed run leaves a trace that
loads with every finished round. Whole files are written atomically (temp file in the same folder,
fsync, `os.replace`, fsync of the folder so the rename itself survives a power cut); only the round
log is appended. Every string is passed through `redact` before it reaches the disk.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import time
import unicodedata
from pathlib import Path

import structlog
import torch
from PIL import Image
from pydantic import BaseModel
from safetensors import safe_open
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from milr.traces.files import atomic_write_bytes, atomic_write_text, fsync_dir
from milr.traces.redaction import redact_data, secret_values
from milr.traces.schema import RoundRecord, RunInfo, RunSummary

log = structlog.get_logger(__name__)

MAX_NAME = 80  # a run id is a folder name: keep it well under every file system's limit (255)
MAX_SLUG = 40
ROUNDS_FILE = "rounds.jsonl"
LATENTS_DIR = "latents"


# ----------------------------------------------------------------------------- run ids
def new_run_id(prompt: str, name: str | None = None) -> str:
    """A folder name for a run.

    With `name`: the name sanitised (letters, digits, `.`, `_`, `-`; anything else, path separators
    included, becomes `-`; no leading dots or dashes, so no `..`, hidden folder or CLI flag), at most
    80 characters; ValueError if nothing usable remains. Without: timestamp + slug of the prompt +
    random suffix, e.g. `20261128-201500-a-red-cat-3f9a1c`."""
    if name is not None:
        clean = re.sub(r"[^A-Za-z0-9._-]+", "-", _ascii(name))
        clean = re.sub(r"\.{2,}", ".", clean).strip(".-")[:MAX_NAME].rstrip(".-")
        if not clean:
            raise ValueError(f"run name {name!r} has no usable characters; use letters, digits, '-', '_' or '.'")
        return clean
    slug = re.sub(r"[^a-z0-9]+", "-", _ascii(prompt).lower()).strip("-")[:MAX_SLUG].strip("-") or "run"
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{slug}-{secrets.token_hex(3)}"


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


# ----------------------------------------------------------------------------- writer
class TraceWriter:
    """Writes one run folder (`run.json`, `rounds.jsonl`, `round_XX.png`, `latents/`, `final.png`,
    `summary.json`, `report.html`).

    A new run: `TraceWriter(dir).start(info)`, then `write_round` per round, then `finish`.
    `resume=True` reopens a killed run to append further rounds: a half-written last line is cut and
    rounds must continue after the last one on disk."""

    def __init__(self, run_dir: str | Path, *, resume: bool = False):
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.last_round: int | None = None
        if resume:
            if not (self.run_dir / "run.json").is_file():
                raise FileNotFoundError(f"{self.run_dir.name}: not a milr trace (no run.json)")
            self._drop_partial_last_line()
            self._remove_temp_files()
            self.last_round = self._last_round_on_disk()

    @property
    def rounds_path(self) -> Path:
        return self.run_dir / ROUNDS_FILE

    def start(self, info: RunInfo, *, resume: bool | None = None) -> None:
        """Create the run folder and write `run.json`. An existing non-empty folder is refused (a run
        is never overwritten) unless resuming, which keeps the `run.json` already there."""
        resume = self.resume if resume is None else resume
        run_json = self.run_dir / "run.json"
        if resume and run_json.is_file():
            on_disk = json.loads(run_json.read_text(encoding="utf-8")).get("run_id")
            if on_disk != info.run_id:
                raise ValueError(f"{self.run_dir.name} holds run {on_disk!r}, not {info.run_id!r}")
            return
        if not resume and self.run_dir.is_dir() and any(self.run_dir.iterdir()):
            raise FileExistsError(f"trace folder {self.run_dir.name!r} already holds a run; pick another name")
        (self.run_dir / LATENTS_DIR).mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_json, dump_json(info, indent=2))

    def write_round(self, record: RoundRecord, image: Image.Image | bytes) -> None:
        """Write the round's image (a PIL image or PNG bytes), then append its record line and fsync.

        Image first: a line on disk always has its image. Rounds must go up: writing a round twice
        (a resumed run replaying one) would leave two lines for it."""
        if self.last_round is not None and record.round <= self.last_round:
            raise ValueError(f"round {record.round} comes after round {self.last_round}, which is already on disk")
        _plain_name(record.image, "RoundRecord.image")
        if record.latents is not None:
            _plain_name(record.latents, "RoundRecord.latents")
        atomic_write_bytes(self.run_dir / record.image, image if isinstance(image, bytes) else png_bytes(image))
        self._append_line(dump_json(record))
        self.last_round = record.round

    def _append_line(self, line: str) -> None:
        new = not self.rounds_path.exists()
        # One write() of the whole line: a crash leaves at most one partial last line, which
        # readers skip and `resume` cuts.
        with open(self.rounds_path, "ab") as f:
            f.write(line.encode("utf-8") + b"\n")
            f.flush()
            os.fsync(f.fileno())
        if new:
            fsync_dir(self.run_dir)

    def latents_path(self, round_: int) -> Path:
        return self.run_dir / LATENTS_DIR / f"round_{round_:02d}.safetensors"

    def save_latents(
        self, round_: int, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
    ) -> str:
        """Write `latents/round_XX.safetensors` atomically; returns its path relative to the run folder.

        `metadata` values must be strings (safetensors' rule); they are redacted like everything else."""
        path = self.latents_path(round_)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = None if metadata is None else redact_data(dict(metadata), secret_values())
        data = safetensors_bytes({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata=meta)
        atomic_write_bytes(path, data)
        return path.relative_to(self.run_dir).as_posix()

    def load_latents(self, round_: int) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """The tensors and metadata `save_latents` wrote for `round_` (on the CPU)."""
        path = self.latents_path(round_)
        if not path.is_file():
            raise FileNotFoundError(f"{self.run_dir.name}: no latents for round {round_} ({path.name})")
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        return load_file(str(path)), meta

    def finish(self, summary: RunSummary, final_image: Image.Image | bytes) -> Path | None:
        """Write `final.png` and `summary.json` (atomically), then `report.html`; returns the report.

        The run's data are complete once `summary.json` is on disk, so a failing report is logged,
        not raised: the run's result stays usable and `milr traces report` can build it later."""
        png = final_image if isinstance(final_image, bytes) else png_bytes(final_image)
        atomic_write_bytes(self.run_dir / "final.png", png)
        atomic_write_text(self.run_dir / "summary.json", dump_json(summary, indent=2))
        from milr.traces.report import write_report  # report imports the reader, which is heavier

        try:
            return write_report(self.run_dir)
        except Exception as exc:  # see the docstring: never lose a finished run to its report
            log.warning("report_failed", run=self.run_dir.name, error=f"{type(exc).__name__}: {exc}")
            return None

    # ------------------------------------------------------------------ resume helpers
    def _drop_partial_last_line(self) -> None:
        """A crash mid-append leaves a line without its newline; cut it before appending again."""
        if not self.rounds_path.is_file():
            return
        data = self.rounds_path.read_bytes()
        if data and not data.endswith(b"\n"):
            atomic_write_bytes(self.rounds_path, data[: data.rfind(b"\n") + 1])

    def _remove_temp_files(self) -> None:
        # Left by a crash between writing a temp file and renaming it; never read by anyone.
        for folder in (self.run_dir, self.run_dir / LATENTS_DIR):
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)

    def _last_round_on_disk(self) -> int | None:
        from milr.traces.reader import read_records

        records = read_records(self.run_dir)
        return records[-1].round if records else None
