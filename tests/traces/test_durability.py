"""Durability of a real run's trace, watched through spies on `os.fsync` and `os.replace`: every file
of a run folder reaches its name by a rename of a temp file that was fsynced first, with its folder
fsynced after; every round's line in `rounds.jsonl` is fsynced once it is written, after that round's
image and latents are in place (DESIGN §5). A write in place, or a sync left out, fails here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from milr.config import MILRConfig
from milr.orchestrator import MILR
from tests.orchestrator.helpers import ScriptedCritic

PROMPTS = ["a photo of a red cat", "a photo of two dogs"]
STEPS = 2

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name a synced fd")


def _real(path) -> Path:
    """The path with its folder's links resolved (a temp file is gone after its rename: no resolve())."""
    path = Path(os.fspath(path))
    return Path(os.path.realpath(path.parent)) / path.name


class DiskSpy:
    """Records, in order, each `os.fsync` (the file or folder the descriptor names, and for a file
    its complete lines at that moment) and each `os.replace` (source and target)."""

    def __init__(self, monkeypatch):
        self.events: list[tuple] = []
        real_fsync, real_replace = os.fsync, os.replace

        def fsync(fd):
            real_fsync(fd)
            path = Path(os.readlink(f"/proc/self/fd/{fd}"))
            lines = path.read_bytes().count(b"\n") if path.is_file() else None
            self.events.append(("fsync", path, lines))

        def replace(src, dst, **kw):
            real_replace(src, dst, **kw)
            self.events.append(("replace", _real(src), _real(dst)))

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace)

    def index(self, *event) -> list[int]:
        return [i for i, e in enumerate(self.events) if e[: len(event)] == event]

    def fsyncs_of(self, path: Path) -> list[int]:
        return self.index("fsync", path)


@pytest.fixture(scope="module")
def watched_runs(mug, tmp_path_factory):
    """Two runs decoded together (their rounds are written from threads) under the spies."""
    out = tmp_path_factory.mktemp("durability")
    config = MILRConfig(steps=STEPS, max_reasoning_tokens=8)
    with pytest.MonkeyPatch.context() as monkeypatch:
        spy = DiskSpy(monkeypatch)
        results = MILR(mug, ScriptedCritic([0.2]), config, out=out, max_batch=2).batch(PROMPTS, names=["a", "b"])
    return spy, [_real(r.trace_dir) for r in results]


def _files(run: Path) -> list[Path]:
    return sorted(_real(p) for p in run.rglob("*") if p.is_file() and p.name != ".lock")


def test_every_file_is_a_synced_temp_file_renamed_into_place_then_its_folder_synced(watched_runs):
    spy, runs = watched_runs
    for run in runs:
        names = {p.relative_to(run).as_posix() for p in _files(run)}
        rounds = range(STEPS + 1)
        expected = {"run.json", "rounds.jsonl", "final.png", "summary.json", "report.html"}
        expected |= {f"round_{k:02d}.png" for k in rounds} | {f"latents/round_{k:02d}.safetensors" for k in rounds}
        assert names == expected  # nothing written that this test does not check
        for path in _files(run):
            if path.name == "rounds.jsonl":
                continue  # appended, not replaced: see the next test
            tmp = path.with_name(f".{path.name}.tmp")
            renames = spy.index("replace", tmp, path)
            assert len(renames) == 1, f"{path.name}: not renamed into place from its temp file"
            assert [i for i in spy.fsyncs_of(tmp) if i < renames[0]], f"{path.name}: renamed before it was synced"
            assert [i for i in spy.fsyncs_of(path.parent) if i > renames[0]], f"{path.name}: folder not synced"
        assert not list(run.rglob("*.tmp"))


def test_each_round_line_is_synced_after_its_image_and_latents_are_in_place(watched_runs):
    spy, runs = watched_runs
    for run in runs:
        log = run / "rounds.jsonl"
        syncs = spy.fsyncs_of(log)
        # one fsync per round, each with one more complete line than the last
        assert [spy.events[i][2] for i in syncs] == [k + 1 for k in range(STEPS + 1)]
        for k, synced in enumerate(syncs):
            for name in (f"round_{k:02d}.png", f"latents/round_{k:02d}.safetensors"):
                placed = spy.index("replace", _real(run / name).with_name(f".{Path(name).name}.tmp"))
                assert placed and placed[0] < synced, f"round {k}: {name} not in place before its line"
        # the log's creation is itself synced: the run folder is fsynced after the first line
        assert [i for i in spy.fsyncs_of(run) if i > syncs[0]]
        summary = spy.index("replace", run / ".summary.json.tmp", run / "summary.json")
        assert summary and summary[0] > syncs[-1]  # the summary comes after the last round is durable
