"""Mutation survivors of milr/traces/writer.py, killed (benchmarks/mutate.py; results in
benchmarks/results/mutation.json): strict UTF-8 JSON, the folder synced when the round log is
created, the round log's mode, the checksum of latents saved before their record, and a resumed
folder whose round log or latents folder is the wrong kind of file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from milr.traces import RunInfo, TraceWriter, writer
from milr.traces.files import UnsafePathError
from milr.traces.reader import LatentsDamagedError
from milr.traces.writer import dump_json
from tests.traces.helpers import image, record, write_run


def test_json_is_strict_and_keeps_text_as_utf8():
    assert dump_json({"reasoning": "café ✓"}) == '{"reasoning": "café ✓"}'  # readable in rounds.jsonl
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        dump_json({"score": float("nan")})


def test_the_run_folder_is_synced_once_the_round_log_is_created(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(writer, "fsync_dir", lambda path: synced.append(Path(path)))
    w = TraceWriter(tmp_path / "run")
    w.start(RunInfo(run_id="run", prompt="a photo of a cat", config={}))
    w.write_round(record(0), image(0))
    assert (tmp_path / "run" / "rounds.jsonl").is_file() and synced[-1] == tmp_path / "run"
    synced.clear()
    w.write_round(record(1), image(1))
    assert tmp_path / "run" not in synced  # appending to an existing log adds no folder entry
    w.close()


def test_the_round_log_is_read_write_for_its_owner_and_readable_by_others(tmp_path):
    write_run(tmp_path / "run", rounds=1).close()
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "run" / "rounds.jsonl").stat().st_mode & 0o777 == 0o644 & ~umask


def test_latents_saved_before_their_record_are_still_checked_on_load(tmp_path):
    w = TraceWriter(tmp_path / "run")
    w.start(RunInfo(run_id="run", prompt="a photo of a cat", config={}))
    w.save_latents(0, {"text.z": torch.ones(3)}, {"reasoning": "x"})  # pending: no round record yet
    path = w.latents_path(0)
    data = bytearray(path.read_bytes())
    data[-1] ^= 1  # one bit of the tensor data
    path.write_bytes(bytes(data))
    with pytest.raises(LatentsDamagedError):
        w.load_latents(0)
    w.close()


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("rounds.jsonl", lambda p: p.mkdir(), "rounds.jsonl is not a regular file; refused"),
        ("latents", lambda p: p.write_bytes(b"not a folder"), "latents is not a folder; refused"),
    ],
)
def test_resuming_a_folder_with_the_wrong_kind_of_file_is_refused(tmp_path, name, make, message):
    write_run(tmp_path / "run", rounds=1).close()
    target = tmp_path / "run" / name
    if target.is_dir():
        for f in target.iterdir():
            f.unlink()
        target.rmdir()
    else:
        target.unlink()
    make(target)
    with pytest.raises(UnsafePathError, match=message):
        TraceWriter(tmp_path / "run", resume=True)
