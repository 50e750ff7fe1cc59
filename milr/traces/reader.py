"""Read traces back (DESIGN §5).

`Trace.load(run_dir)` gives the typed run info, the rounds (images opened lazily), the summary (None
while a run is unfinished or was killed) and the latents; `Trace.scan(folder)` lists the runs under a
folder cheaply, without parsing their rounds.

A killed writer can leave a half-written last line in `rounds.jsonl` (or, after a power cut, a tail of
NUL bytes): it is skipped with a `TraceWarning`, never raised, so every finished round stays readable.
Damage followed by valid rounds is not a crash artefact and raises, naming the line.

Every file is read through `milr.traces.files.read_member`: only plain files inside the run folder,
never through a symbolic link, never a name with `..` or an absolute path taken from a record. Latents
are checked against the SHA-256 in their round's record before they are parsed, so a changed or
damaged file gives one clear `LatentsDamagedError`, never a half-read state or a parser's traceback.
The writer's `.lock` file is not part of a trace and is never read.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image
from safetensors.torch import load as safetensors_load

from milr.traces.files import member, read_member
from milr.traces.schema import SCHEMA_VERSION, CriticScore, Modality, RoundRecord, RunInfo, RunSummary


class TraceWarning(UserWarning):
    """A trace was readable but not intact (e.g. a half-written last round was skipped)."""


class LatentsDamagedError(ValueError):
    """A round's latents file does not match its checksum, or cannot be parsed."""


class LoadedRound:
    """A round read from disk: every `RoundRecord` field as an attribute (`r.score`, `r.reasoning`, ...),
    except that `.image` is the PIL image, opened from disk on each use (rounds of a long run are not
    all held in memory), and `.image_file` is its file name. `.record` is the plain `RoundRecord`."""

    __slots__ = ("record", "run_dir")

    if TYPE_CHECKING:  # what `__getattr__` serves, typed for type checkers (a test keeps it equal to RoundRecord)
        round: int
        modality: Modality
        reasoning: str
        text_prefix: str
        text_prefix_ids: list[int]
        text_prefix_changed: bool
        image_prefix_ids: list[int]
        score: float | None
        reward: float | None
        critiques: list[CriticScore]
        grad_norm: dict[str, float]
        step_norm: dict[str, float]
        seconds: dict[str, float]
        latents: str | None
        latents_sha256: str | None

    def __init__(self, record: RoundRecord, run_dir: Path):
        self.record = record
        self.run_dir = run_dir

    def __getattr__(self, name: str) -> Any:
        # Called only for names not on the wrapper: the record's fields. Private names are refused
        # so copy/pickle, which probe them before `record` is set, get AttributeError, not recursion.
        if name.startswith("_") or name in self.__slots__:
            raise AttributeError(name)
        return getattr(self.record, name)

    def __getstate__(self) -> tuple[RoundRecord, Path]:
        return self.record, self.run_dir

    def __setstate__(self, state: tuple[RoundRecord, Path]) -> None:
        self.record, self.run_dir = state

    def __repr__(self) -> str:
        return f"LoadedRound(round={self.record.round}, score={self.record.score}, image={self.image_file!r})"

    @property
    def image_file(self) -> str:
        return self.record.image

    @property
    def image_path(self) -> Path:
        """The image file, checked to lie inside the run folder (`UnsafePathError` otherwise)."""
        return member(self.run_dir, self.record.image, f"round {self.record.round} image")

    def image_bytes(self) -> bytes:
        """The image file's bytes; FileNotFoundError if missing, `UnsafePathError` if it is not a
        plain file inside the run folder."""
        try:
            return read_member(self.run_dir, self.record.image, f"round {self.record.round} image")
        except FileNotFoundError:
            raise FileNotFoundError(
                f"round {self.record.round}: image file {self.record.image!r} is missing from trace "
                f"{self.run_dir.name!r}"
            ) from None

    @property
    def image(self) -> Image.Image:
        with Image.open(io.BytesIO(self.image_bytes())) as img:
            return img.convert("RGB")

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:
        return self.record.model_dump(**kwargs)


@dataclass
class Trace:
    """One run folder, read back. `rounds` are in the order they were written (round 0 first)."""

    path: Path
    run: RunInfo
    rounds: list[LoadedRound] = field(default_factory=list)
    summary: RunSummary | None = None

    @classmethod
    def load(cls, path: str | Path) -> Trace:
        path = Path(path)
        rounds = [LoadedRound(r, path) for r in read_records(path)]
        return cls(path=path, run=read_run_info(path), rounds=rounds, summary=read_summary(path))

    @classmethod
    def scan(cls, folder: str | Path) -> list[TraceInfo]:
        """Every run folder directly under `folder`, oldest first, without parsing rounds. A run that
        cannot be read is listed with its `error` rather than hiding the others."""
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"no trace folder {folder.name!r}")
        infos = [TraceInfo.read(p) for p in folder.iterdir() if (p / "run.json").is_file()]
        return sorted(infos, key=lambda t: (t.run.created if t.run else "", t.path.name))

    @property
    def finished(self) -> bool:
        return self.summary is not None

    def __repr__(self) -> str:
        state = f"stop_reason={self.summary.stop_reason!r}" if self.summary is not None else "unfinished"
        return f"Trace({self.path.name!r}, rounds={len(self.rounds)}, {state})"

    def _repr_html_(self) -> str:
        """The notebook view: every round's image and score, the returned round marked, its reasoning."""
        from milr.traces.views import rounds_html

        s = self.summary
        status = (
            f"stopped: {s.stop_reason} after {s.rounds} rounds in {s.seconds:.1f}s"
            if s is not None
            else f"unfinished: {len(self.rounds)} rounds on disk"
        )
        return rounds_html(
            self.rounds,
            title=self.run.prompt,
            returned=None if s is None else s.final_round,
            best=None if self.best is None else self.best.round,
            status=status,
        )

    @property
    def best(self) -> LoadedRound | None:
        """The highest-scoring round (the earliest on ties); None if no round has a score."""
        scored = [r for r in self.rounds if r.score is not None]
        return max(scored, key=lambda r: (r.score, -r.round)) if scored else None

    @property
    def final(self) -> LoadedRound | None:
        """The round whose image the run returned; None while the run is unfinished."""
        return None if self.summary is None else self.round(self.summary.final_round)

    def round(self, k: int) -> LoadedRound:
        """The round numbered `k` (not the k-th in the list, which differs only for damaged traces)."""
        for r in self.rounds:
            if r.round == k:
                return r
        raise KeyError(f"trace {self.path.name!r} has no round {k} (rounds on disk: {len(self.rounds)})")

    def latents(self, k: int) -> dict[str, torch.Tensor]:
        """The tensors saved with round `k` (optimised prefixes, Adam state, generator state), checked
        against the record's checksum (`LatentsDamagedError` when they differ)."""
        record = self.round(k)
        rel = record.latents or f"latents/round_{k:02d}.safetensors"
        try:
            return read_latents(self.path, k, rel, record.latents_sha256)[0]
        except FileNotFoundError:
            missing = f"round {k}: latents file {rel!r} is missing from trace {self.path.name!r}"
            raise FileNotFoundError(missing) from None


@dataclass
class TraceInfo:
    """What `Trace.scan` lists: run info, summary and round count, read without parsing rounds."""

    path: Path
    run: RunInfo | None
    summary: RunSummary | None
    rounds: int
    error: str | None = None

    @classmethod
    def read(cls, path: Path) -> TraceInfo:
        try:
            return cls(path, read_run_info(path), read_summary(path), _count_lines(path))
        except (OSError, ValueError) as exc:
            return cls(path, None, None, 0, error=str(exc))

    def load(self) -> Trace:
        return Trace.load(self.path)


# ----------------------------------------------------------------------------- files
def read_run_info(path: Path) -> RunInfo:
    """`run.json`, checked against the schema versions this milr reads."""
    try:
        raw = _json_object(path, "run.json")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path.name!r} is not a milr trace (no run.json)") from None
    version = raw.get("schema_version", 1)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"{path.name}/run.json: schema_version must be an integer, got {version!r}")
    if version > SCHEMA_VERSION:
        raise ValueError(
            f"trace {path.name!r} was written by a newer milr (trace schema {version}; this milr reads up to "
            f"{SCHEMA_VERSION}): upgrade milr to read it"
        )
    # Older versions load as they are: fields added since have defaults. When a field changes
    # meaning, convert `raw` from `version` here before validating.
    return RunInfo.model_validate(raw)


def read_summary(path: Path) -> RunSummary | None:
    try:
        return RunSummary.model_validate(_json_object(path, "summary.json"))
    except FileNotFoundError:
        return None


def read_records(path: Path) -> list[RoundRecord]:
    """The rounds in `rounds.jsonl` (none if the file is absent), skipping a damaged tail with a warning."""
    try:
        lines = read_member(path, "rounds.jsonl", "rounds.jsonl").split(b"\n")
    except FileNotFoundError:
        return []
    records: list[RoundRecord] = []
    damaged: int | None = None  # first damaged line (1-based) not yet followed by a valid one
    for number, line in enumerate(lines, start=1):
        if not line.strip(b" \t\r\x00"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:  # JSONDecodeError and UnicodeDecodeError (a cut multi-byte character)
            damaged = damaged or number
            continue
        if damaged is not None:
            raise ValueError(f"{path.name}/rounds.jsonl line {damaged} is damaged but later rounds are not")
        try:
            records.append(RoundRecord.model_validate(obj))
        except ValueError as exc:
            raise ValueError(f"{path.name}/rounds.jsonl line {number} is not a valid round record: {exc}") from None
    if damaged is not None:
        warnings.warn(
            f"trace {path.name!r}: skipped a half-written last line of rounds.jsonl (line {damaged}); "
            f"{len(records)} finished rounds loaded",
            TraceWarning,
            stacklevel=3,
        )
    return records


def read_latents(run_dir: Path, k: int, rel: str, sha256: str | None) -> tuple[dict[str, torch.Tensor], dict]:
    """Round `k`'s latents file `rel` (tensors on the CPU, and its string metadata), verified against
    `sha256` when the record has one (older traces do not). FileNotFoundError if it is missing;
    `LatentsDamagedError` naming the round and file if it was changed, cut or damaged."""
    data = read_member(run_dir, rel, f"latents file of round {k}")
    fix = f"milr cannot continue this run from round {k}: restore the file, or run the prompt again into a new folder"
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise LatentsDamagedError(
            f"trace {run_dir.name!r}: latents of round {k} do not match their checksum: the file was changed or "
            f"damaged ({rel}, {len(data)} bytes); {fix}"
        )
    try:
        tensors = safetensors_load(data)
        header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
        meta = header.get("__metadata__") or {}
        if not isinstance(meta, dict):
            raise ValueError("metadata is not a JSON object")
    except Exception as exc:  # whatever the parser raises on bad bytes: one clear error naming the file
        raise LatentsDamagedError(
            f"trace {run_dir.name!r}: latents of round {k} cannot be read: the file is damaged ({rel}: "
            f"{type(exc).__name__}); {fix}"
        ) from None
    return tensors, meta


def _json_object(path: Path, name: str) -> dict:
    data = read_member(path, name, name)
    try:
        obj = json.loads(data)
    except ValueError as exc:
        raise ValueError(f"{path.name}/{name} is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path.name}/{name} must hold a JSON object")
    return obj


def _count_lines(path: Path) -> int:
    # Complete lines only: a half-written last one has no newline yet.
    try:
        data = read_member(path, "rounds.jsonl", "rounds.jsonl")
    except FileNotFoundError:
        return 0
    return sum(1 for line in data.split(b"\n")[:-1] if line.strip(b" \t\r\x00"))
