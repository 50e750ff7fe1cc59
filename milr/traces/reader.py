"""Read traces back: `Trace.load(run_dir)` gives typed run info, rounds (images loaded lazily),
summary and latents; `Trace.scan(folder)` finds every run under a folder."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import load_file

from milr.traces.schema import SCHEMA_VERSION, RoundRecord, RunInfo, RunSummary


class LoadedRound:
    """A round read from disk: every `RoundRecord` field, except that `.image` is the PIL image
    (opened on first use) and `.image_file` its file name."""

    def __init__(self, record: RoundRecord, run_dir: Path):
        self.record = record
        self.run_dir = run_dir

    def __getattr__(self, name: str):
        # Only called for names not found on the wrapper: the record's fields.
        return getattr(self.record, name)

    def __repr__(self) -> str:
        return f"LoadedRound(round={self.record.round}, score={self.record.score}, image={self.image_file!r})"

    @property
    def image_file(self) -> str:
        return self.record.image

    @property
    def image(self) -> Image.Image:
        path = self.run_dir / self.record.image
        if not path.is_file():
            raise FileNotFoundError(
                f"round {self.record.round}: image file {path.name!r} is missing from {self.run_dir.name}"
            )
        with Image.open(path) as img:
            return img.convert("RGB")

    def model_dump(self, **kwargs) -> dict:
        return self.record.model_dump(**kwargs)


@dataclass
class Trace:
    path: Path
    run: RunInfo
    rounds: list[LoadedRound] = field(default_factory=list)
    summary: RunSummary | None = None

    @classmethod
    def load(cls, path: str | Path) -> Trace:
        path = Path(path)
        run_file = path / "run.json"
        if not run_file.is_file():
            raise FileNotFoundError(f"{path.name}: not a milr trace (no run.json)")
        raw = json.loads(run_file.read_text(encoding="utf-8"))
        version = raw.get("schema_version", 1)
        if version > SCHEMA_VERSION:
            raise ValueError(
                f"{path.name} was written by a newer milr (trace schema {version}, this milr reads up to "
                f"{SCHEMA_VERSION}); upgrade milr to read it"
            )
        summary_file = path / "summary.json"
        summary = RunSummary.model_validate_json(summary_file.read_text()) if summary_file.is_file() else None
        return cls(path=path, run=RunInfo.model_validate(raw), rounds=_read_rounds(path), summary=summary)

    @classmethod
    def scan(cls, folder: str | Path) -> list[Trace]:
        """Every run folder directly under `folder`, oldest first."""
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"no trace folder {folder.name!r}")
        runs = [cls.load(p) for p in sorted(folder.iterdir()) if (p / "run.json").is_file()]
        return sorted(runs, key=lambda t: t.run.created)

    @property
    def best(self) -> LoadedRound | None:
        scored = [r for r in self.rounds if r.score is not None]
        return max(scored, key=lambda r: (r.score, -r.round)) if scored else None

    def latents(self, round_: int) -> dict[str, torch.Tensor]:
        record = self.rounds[round_]
        if record.latents is None or not (self.path / record.latents).is_file():
            raise FileNotFoundError(f"round {round_}: latents file is missing from {self.path.name}")
        return load_file(str(self.path / record.latents))


def _read_rounds(path: Path) -> list[LoadedRound]:
    rounds_file = path / "rounds.jsonl"
    if not rounds_file.is_file():
        return []
    lines = rounds_file.read_text(encoding="utf-8").split("\n")
    out = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = RoundRecord.model_validate_json(line)
        except ValueError:
            if i >= len(lines) - 2:  # the last line, cut by a crash mid-write: skip it
                warnings.warn(f"{path.name}: skipping a half-written last line of rounds.jsonl", stacklevel=3)
                continue
            raise ValueError(f"{path.name}/rounds.jsonl line {i + 1} is not a valid round record") from None
        out.append(LoadedRound(record, path))
    return out
