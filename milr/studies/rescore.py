"""Score the round images of finished runs with other critics, without regenerating (DESIGN §5, §7).

    rescore(["bench/milr"], "shapes-countblind,shapes-lenient")

finds every run folder under the folders given (a trace folder, a folder of traces, a bench folder
with its `traces/`, a study folder: anything holding `run.json` files), skips runs that have not
finished, and scores every round image of the others with each critic, `batch` images per
`score_many` call (one forward for a critic that batches). Each critic's verdicts go to
`<run>/rescore/<critic>.jsonl` beside the run's own files, which are never written: one JSON line
per round, appended and fsynced chunk by chunk, keyed by run id, round and the PNG's SHA-256. A
killed rescore resumes where it stopped; an image that changed since it was scored is scored again
(readers take the line matching the image's current hash).

`round_verdicts(trace, critic)` reads a critic's verdicts on a run back, from the run's own record
when the run was scored by that critic alone, else from its rescore file.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import re
import stat
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from PIL import Image

from milr.bench.runner import correct_of
from milr.critics.base import Critic, Critique, PromptSpec, score_many
from milr.traces import Trace
from milr.traces.files import member
from milr.traces.redaction import redact_data

log = structlog.get_logger(__name__)

RESCORE_DIR = "rescore"
DEFAULT_THRESHOLD = 0.9
DEFAULT_BATCH = 32
_SKIP_DIRS = {RESCORE_DIR, "latents"}


@dataclass
class RescoreResult:
    """What one critic's rescore did: runs seen, images scored now, images already on disk, runs
    skipped as unfinished, wall seconds, and the rescore files written."""

    critic: str
    runs: int = 0
    scored: int = 0
    reused: int = 0
    unfinished: int = 0
    seconds: float = 0.0
    files: list[Path] = field(default_factory=list)


def rescore_file_name(critic_name: str) -> str:
    """`rescore/<critic>.jsonl`, the critic's name made a plain file name (`shapes-noisy:flip=0.3`
    → `shapes-noisy_flip=0.3.jsonl`): no separators, no leading dot."""
    safe = re.sub(r"[^A-Za-z0-9._=+-]", "_", critic_name).lstrip(".") or "critic"
    return f"{safe}.jsonl"


def run_folders(dirs: Iterable[str | Path]) -> list[Path]:
    """Every run folder (one holding `run.json`) at or under `dirs`, in sorted order, without
    following symbolic links or looking inside a run folder."""
    found: list[Path] = []
    for top in map(Path, dirs):
        if not top.is_dir():
            raise FileNotFoundError(f"rescore: {top.name!r} is not a folder (give trace, bench or study folders)")
        for root, subdirs, files in os.walk(top, followlinks=False):
            if "run.json" in files:
                found.append(Path(root))
                subdirs.clear()  # a run folder holds no runs
            else:
                subdirs[:] = sorted(d for d in subdirs if d not in _SKIP_DIRS)
    unique = sorted(set(found))
    if not unique:
        raise ValueError(f"rescore: no milr runs (run.json) under {', '.join(Path(d).name for d in dirs)}")
    return unique


# ----------------------------------------------------------------------------- the rescore files
def rescore_path(run_dir: Path, critic_name: str) -> Path:
    """The critic's rescore file of a run, confined to the run folder (no links, no `..`)."""
    return member(run_dir, f"{RESCORE_DIR}/{rescore_file_name(critic_name)}", "rescore file")


def read_rescore(run_dir: Path, critic_name: str) -> dict[tuple[int, str], dict]:
    """{(round, png sha256): line} of a run's rescore file (empty when absent); a line cut by a
    crash is skipped, and a later line for the same image wins."""
    path = rescore_path(run_dir, critic_name)
    if not path.is_file():
        return {}
    lines = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        try:
            line = json.loads(raw)
            lines[(int(line["round"]), str(line["sha256"]))] = line
        except (ValueError, KeyError, TypeError):
            continue
    return lines


def append_lines(path: Path, lines: Sequence[dict]) -> None:
    """Append JSON lines under an exclusive lock (two rescores of one critic never interleave),
    first cutting a line a crash left half-written; fsynced."""
    path.parent.mkdir(exist_ok=True)
    if stat.S_ISLNK(os.lstat(path.parent).st_mode):
        raise ValueError(f"{path.parent} is a symbolic link; rescore writes only inside the run folder")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size:
            os.lseek(fd, 0, os.SEEK_SET)
            data = os.read(fd, size) if size < 1 << 26 else b""
            if data and not data.endswith(b"\n"):
                os.ftruncate(fd, data.rfind(b"\n") + 1)
        os.lseek(fd, 0, os.SEEK_END)
        payload = "".join(json.dumps(line, allow_nan=False) + "\n" for line in lines).encode("utf-8")
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def verdict_line(
    run_id: str, round_: int, image: str, sha256: str, verdict: Critique, threshold: float, share: float
) -> dict:
    """One rescore line: the key (run id, round, PNG hash), the critic's verdict, `correct` (the
    critic's own boolean where it gives one, else score >= the run's threshold), and `share_seconds`:
    this image's share of the batched call's wall time (a batch critic's `seconds` is the whole call's)."""
    return {
        "run_id": run_id,
        "round": round_,
        "image": image,
        "sha256": sha256,
        "critic": verdict.critic,
        "score": verdict.score,
        "correct": correct_of(verdict, threshold),
        # what the critic wrote may carry a secret (a judge echoing a key); the key fields never do
        "rationale": redact_data(verdict.rationale),
        "details": redact_data(verdict.model_dump(mode="json")["details"]),
        "error": redact_data(verdict.error),
        "seconds": round(verdict.seconds, 6),
        "share_seconds": round(share, 6),
    }


# ----------------------------------------------------------------------------- rescoring
@dataclass
class _Pending:
    run_dir: Path
    run_id: str
    round: int
    image: str
    sha256: str
    png: bytes
    prompt: str
    spec: PromptSpec | None
    threshold: float


def rescore(
    dirs: str | Path | Iterable[str | Path],
    critics: str | Critic | Sequence[Critic],
    *,
    batch: int = DEFAULT_BATCH,
    mug=None,
    model: str | None = None,
    context: dict | None = None,
) -> list[RescoreResult]:
    """Score every round image of the finished runs under `dirs` with each critic (see the module
    docstring); one `RescoreResult` per critic, in order.

    `critics`: critic objects, or registry names as `--critic` takes them (`"shapes-countblind,
    shapes-lenient:margin=0.3"`: each one scored on its own, so weights are refused). `mug`/`model`:
    the model for critics that need one (`self`); by default the model named in the first run's
    `run.json` is loaded, and only when such a critic is named. `context`: as `build_critics` takes it.
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    folders = run_folders([dirs] if isinstance(dirs, str | Path) else dirs)
    critic_list = _critics(critics, folders, mug, model, context)
    return [_rescore_one(critic, folders, batch) for critic in critic_list]


def _critics(critics, folders: list[Path], mug, model: str | None, context: dict | None) -> list[Critic]:
    if not isinstance(critics, str):
        return [critics] if isinstance(critics, Critic) else list(critics)
    from milr.orchestrator.registry import build_critics, critic_params, parse_critic_list

    pairs = parse_critic_list(critics)
    weighted = [name for name, w in pairs if w != 1.0]
    if weighted:
        raise ValueError(
            f"rescore scores with each critic on its own, so a weight means nothing here ({weighted[0]}); "
            "drop the weights"
        )
    if mug is None and any(critic_params(name)[0] == "self" for name, _ in pairs):
        from milr.config import MILRConfig
        from milr.orchestrator.registry import build_model
        from milr.traces.reader import read_run_info

        mug = build_model(model or read_run_info(folders[0]).model, MILRConfig())
    built = []
    for name, _ in pairs:  # one at a time: a comma here separates critics, it does not mix them
        built += build_critics(name, mug, context=context)[0]
    return built


def _rescore_one(critic: Critic, folders: list[Path], batch: int) -> RescoreResult:
    started = time.perf_counter()
    result = RescoreResult(critic=critic.name)
    for chunk in _chunks(_pending(critic.name, folders, result), batch):
        _score_and_append(critic, chunk, result)
    result.seconds = time.perf_counter() - started
    log.info("rescore_done", critic=critic.name, runs=result.runs, scored=result.scored, reused=result.reused,
             unfinished=result.unfinished, seconds=round(result.seconds, 3))  # fmt: skip
    return result


def _pending(critic_name: str, folders: list[Path], result: RescoreResult) -> Iterator[_Pending]:
    """The round images of finished runs not yet scored by this critic, read one run at a time."""
    for run_dir in folders:
        trace = Trace.load(run_dir)
        if not trace.finished:
            result.unfinished += 1
            continue
        result.runs += 1
        done = read_rescore(run_dir, critic_name)
        spec = PromptSpec.from_geneval(trace.run.spec) if trace.run.spec else None
        threshold = float(trace.run.config.get("threshold", DEFAULT_THRESHOLD))
        for r in trace.rounds:
            png = r.image_bytes()
            sha = hashlib.sha256(png).hexdigest()
            if (r.round, sha) in done:
                result.reused += 1
                continue
            yield _Pending(
                run_dir, trace.run.run_id, r.round, r.image_file, sha, png, trace.run.prompt, spec, threshold
            )


def _score_and_append(critic: Critic, chunk: list[_Pending], result: RescoreResult) -> None:
    images = [_open_png(p.png) for p in chunk]
    started = time.perf_counter()
    verdicts = score_many(critic, images, [p.prompt for p in chunk], [p.spec for p in chunk])
    share = (time.perf_counter() - started) / len(chunk)
    by_run: dict[Path, list[dict]] = {}
    for p, v in zip(chunk, verdicts, strict=True):
        line = verdict_line(p.run_id, p.round, p.image, p.sha256, v, p.threshold, share)
        by_run.setdefault(p.run_dir, []).append(line)
    for run_dir, lines in by_run.items():
        path = rescore_path(run_dir, critic.name)
        append_lines(path, lines)
        if path not in result.files:
            result.files.append(path)
    result.scored += len(chunk)


def _open_png(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as img:
        return img.convert("RGB")


def _chunks(items: Iterator, size: int) -> Iterator[list]:
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# ----------------------------------------------------------------------------- reading back
def own_critic(trace: Trace) -> str | None:
    """The name of the one critic that scored the run in its loop (None for a mix of several)."""
    critics = trace.run.critics
    return critics[0]["name"] if len(critics) == 1 else None


def round_verdicts(trace: Trace, critic_name: str) -> list[dict | None]:
    """Per round of `trace` (in order), the critic's verdict {"score", "correct", "seconds" (its share
    of the scoring call's wall time), "details"}: the run's own record when the run was scored by
    this critic alone, else the rescore line matching the round image's current hash; None where
    there is none."""
    threshold = float(trace.run.config.get("threshold", DEFAULT_THRESHOLD))
    if own_critic(trace) == critic_name:
        return [_own_verdict(r, threshold) for r in trace.rounds]
    lines = read_rescore(trace.path, critic_name)
    if not lines:
        return [None] * len(trace.rounds)
    out = []
    for r in trace.rounds:
        line = lines.get((r.round, hashlib.sha256(r.image_bytes()).hexdigest()))
        out.append(None if line is None else {**{k: line.get(k) for k in ("score", "correct", "details")},
                                              "seconds": line.get("share_seconds", line.get("seconds"))})  # fmt: skip
    return out


def _own_verdict(r, threshold: float) -> dict:
    critique = r.critiques[0] if r.critiques else None
    details = critique.details if critique else {}
    correct = details["correct"] if isinstance(details.get("correct"), bool) else (
        r.score is not None and r.score >= threshold
    )  # fmt: skip
    # the loop scores a batch of runs in one call: `seconds["critics"]` is that call, `batch` its size
    share = r.seconds["critics"] / max(1.0, r.seconds.get("batch", 1.0)) if "critics" in r.seconds else None
    seconds = share if share is not None else sum(c.seconds for c in r.critiques)
    return {"score": r.score, "correct": bool(correct), "seconds": seconds, "details": details}
