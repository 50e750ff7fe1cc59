"""Crash-safe trace writer. A round is on disk (image, latents, then its line in `rounds.jsonl`,
fsynced) before the next one starts, so a killed run leaves a trace that loads with every finished
round. Whole files are written atomically (temp file in the same folder + `os.replace`); only the
round log is appended."""

from __future__ import annotations

import io
import os
import re
import secrets
import time
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from milr.traces.schema import RoundRecord, RunInfo, RunSummary
from milr.traces.secrets import redact, secret_values

MAX_NAME = 80


def new_run_id(prompt: str, name: str | None = None) -> str:
    """`name` sanitised, or timestamp + slug of the prompt + random suffix (`20261128-201500-a-red-cat-3f9a`)."""
    if name is not None:
        clean = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-")[:MAX_NAME]
        if not clean or set(clean) <= {"."}:
            raise ValueError(f"run name {name!r} has no usable characters; use letters, digits, '-', '_' or '.'")
        return clean
    slug = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:40].strip("-") or "run"
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{slug}-{secrets.token_hex(2)}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, redact(text).encode("utf-8"))


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


class TraceWriter:
    """Writes one run folder. `resume=True` reopens an existing run to append further rounds."""

    def __init__(self, run_dir: str | Path, *, resume: bool = False):
        self.run_dir = Path(run_dir)
        self.resume = resume
        if resume:
            if not (self.run_dir / "run.json").is_file():
                raise FileNotFoundError(f"{self.run_dir.name}: not a milr trace (no run.json)")
            self._drop_partial_last_line()

    @property
    def rounds_path(self) -> Path:
        return self.run_dir / "rounds.jsonl"

    def start(self, info: RunInfo) -> None:
        if self.run_dir.exists() and any(self.run_dir.iterdir()):
            raise FileExistsError(f"trace folder {self.run_dir.name!r} already holds a run; pick another name")
        (self.run_dir / "latents").mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.run_dir / "run.json", info.model_dump_json(indent=2))

    def write_round(self, record: RoundRecord, image: Image.Image) -> None:
        """Image first, then the record line: a line on disk always has its image."""
        atomic_write_bytes(self.run_dir / record.image, png_bytes(image))
        line = redact(record.model_dump_json(), secret_values()) + "\n"
        with open(self.rounds_path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def latents_path(self, round_: int) -> Path:
        return self.run_dir / "latents" / f"round_{round_:02d}.safetensors"

    def save_latents(self, round_: int, tensors: dict[str, torch.Tensor], metadata: dict | None = None) -> str:
        path = self.latents_path(round_)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
        os.replace(tmp, path)
        return str(path.relative_to(self.run_dir))

    def load_latents(self, round_: int) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        from safetensors import safe_open

        path = self.latents_path(round_)
        if not path.is_file():
            raise FileNotFoundError(f"{self.run_dir.name}: no latents for round {round_} ({path.name})")
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        return load_file(str(path)), meta

    def finish(self, summary: RunSummary, final_image: Image.Image) -> None:
        atomic_write_bytes(self.run_dir / "final.png", png_bytes(final_image))
        atomic_write_text(self.run_dir / "summary.json", summary.model_dump_json(indent=2))
        from milr.traces.report import write_report

        write_report(self.run_dir)

    def _drop_partial_last_line(self) -> None:
        """A crash mid-append leaves a line without its newline; cut it before appending again."""
        if not self.rounds_path.is_file():
            return
        data = self.rounds_path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data[: data.rfind(b"\n") + 1]
            atomic_write_bytes(self.rounds_path, keep)
