"""What a bench folder is: `bench.json` records the settings of the sweep whose records fill
`results.jsonl`, and a folder is only ever continued by the same sweep.

A rerun with other settings would skip every prompt already on disk and report the old method's
records under the new name (a MILR K=5 folder rerun as best-of-N K=10 did exactly that). So the
runner compares the new settings with `bench.json` first and refuses a difference, naming every
differing field and the fix: another `--out` folder, or `new_folder=True` (`--new-folder`), which
continues in the first sibling `<out>-2`, `<out>-3`, ... that is free or holds this same sweep (so the
same command run twice resumes the same sibling). Nothing in a folder is ever deleted or rewritten to
make room.

Compared: method, best-of-N budget, every `MILRConfig` field except where it runs (`device`, `dtype`,
`compile`: a sweep may continue on another machine, as a resumed run may), reward and evaluation
critics (names and weights), whether rounds are evaluated (`curve`), and the prompt selection
(benchmark, file name, tags, per-tag, limit and its seed; not the shard, since shards of one sweep
may share a folder). A field an
older `bench.json` lacks cannot be compared and is not. `samples` may grow: more samples only add
records.
"""

from __future__ import annotations

import json
from pathlib import Path

import structlog

from milr.config import PLACEMENT_FIELDS
from milr.traces.files import atomic_write_text

log = structlog.get_logger(__name__)

BENCH_JSON = "bench.json"
COMPARED = ("method", "n", "config", "reward_critic", "eval_critic", "curve", "benchmark")
MAX_SIBLINGS = 1000


class SweepMismatchError(ValueError):
    """The folder holds records of a sweep with other settings; they must not be mixed."""


def read_settings(out: Path) -> dict | None:
    """The folder's `bench.json`, or None for a new folder; a damaged one is an error naming the fix."""
    path = out / BENCH_JSON
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{out.name}/{BENCH_JSON} is not valid JSON ({err}); use another --out folder") from None
    if not isinstance(data, dict):
        raise ValueError(f"{out.name}/{BENCH_JSON} is not a JSON object; use another --out folder")
    return data


def differences(on_disk: dict, new: dict) -> list[str]:
    """Each compared field whose value differs, as `field: X on disk, Y now` (config per field)."""
    found = []
    for key in COMPARED:
        if key not in on_disk or key not in new:
            continue  # an older bench.json did not record it: nothing to compare against
        old, now = on_disk[key], new[key]
        if key == "config" and isinstance(old, dict) and isinstance(now, dict):
            for field in sorted((set(old) | set(now)) - set(PLACEMENT_FIELDS)):
                if old.get(field) != now.get(field):
                    found.append(f"config.{field}: {_show(old.get(field))} on disk, {_show(now.get(field))} now")
        elif old != now:
            found.append(f"{key}: {_show(old)} on disk, {_show(now)} now")
    return found


def _show(value) -> str:
    return json.dumps(value, sort_keys=True)


def check_folder(out: Path, settings: dict) -> None:
    """`SweepMismatchError` unless `out` is new or holds this same sweep."""
    on_disk = read_settings(out)
    if on_disk is None:
        return
    found = differences(on_disk, settings)
    if found:
        raise SweepMismatchError(
            f"bench folder {out.name!r} holds a sweep with other settings ({'; '.join(found)}); its records "
            f"would be mixed with the new ones. Use another --out folder, or --new-folder (new_folder=True) "
            f"to continue in a fresh folder beside it"
        )


def choose_folder(out: Path, settings: dict, new_folder: bool) -> Path:
    """`out` when it is new or holds this sweep; with `new_folder`, else the first sibling
    `<out>-k` (k = 2, 3, ...) that is new or holds this sweep; otherwise `SweepMismatchError`."""
    try:
        check_folder(out, settings)
        return out
    except SweepMismatchError:
        if not new_folder:
            raise
    for k in range(2, MAX_SIBLINGS):
        sibling = out.with_name(f"{out.name}-{k}")
        on_disk = read_settings(sibling) if sibling.is_dir() else None
        fresh = on_disk is None and not _has_records(sibling)
        if fresh or (on_disk is not None and not differences(on_disk, settings)):
            log.info("bench_new_folder", folder=sibling.name, instead_of=out.name)
            return sibling
    raise SweepMismatchError(f"no free folder beside {out.name!r} ({out.name}-2 to -{MAX_SIBLINGS - 1}); use --out")


def _has_records(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())


def write_settings(out: Path, settings: dict, samples: int) -> None:
    """Record the sweep (atomically); `samples` only grows, since records of more samples stay valid."""
    on_disk = read_settings(out) or {}
    samples = max(samples, int(on_disk.get("samples", 0) or 0))
    atomic_write_text(out / BENCH_JSON, json.dumps({**settings, "samples": samples}, indent=2) + "\n")
