"""Mutation survivors of milr/traces/writer.py, killed (benchmarks/mutate.py; results in
benchmarks/results/mutation.json): strict UTF-8 JSON, the folder synced when the round log is
created, the round log's mode, the checksum of latents saved before their record, a resumed
folder whose round log or latents folder is the wrong kind of file or a link, a refused start that
lets go of the lock, a round log swapped for a link, aligned latents files, and the lock holder named
in the error of a second writer."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest
import torch

from milr.traces import RunInfo, TraceWriter, writer
from milr.traces.files import UnsafePathError
from milr.traces.reader import LatentsDamagedError
from milr.traces.writer import RunLockedError, dump_json
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


def info(run_id: str = "run") -> RunInfo:
    return RunInfo(run_id=run_id, prompt="a photo of a cat", config={})


def test_a_start_refused_on_a_folder_holding_a_run_lets_go_of_its_lock(tmp_path):
    write_run(tmp_path / "run", rounds=1).close()
    w = TraceWriter(tmp_path / "run")
    with pytest.raises(FileExistsError, match="already holds a run"):
        w.start(info())
    assert not w.locked
    TraceWriter(tmp_path / "run", resume=True).close()  # the resume the error suggests is not locked out


def test_resuming_a_folder_whose_round_log_is_a_link_names_the_round_log(tmp_path):
    write_run(tmp_path / "run", rounds=1).close()
    (tmp_path / "run" / "rounds.jsonl").rename(tmp_path / "elsewhere.jsonl")
    (tmp_path / "run" / "rounds.jsonl").symlink_to(tmp_path / "elsewhere.jsonl")
    with pytest.raises(UnsafePathError) as err:
        TraceWriter(tmp_path / "run", resume=True)
    assert str(err.value) == (
        "trace 'run': 'rounds.jsonl' is a symbolic link; milr reads and writes only plain files inside the run "
        "folder: replace the link by the file itself"
    )


def test_a_round_log_swapped_for_a_link_after_the_checks_is_refused_and_other_errors_pass(tmp_path, monkeypatch):
    w = write_run(tmp_path / "run", rounds=1)
    outside = tmp_path / "elsewhere.jsonl"
    outside.write_text("")
    rounds = tmp_path / "run" / "rounds.jsonl"
    rounds.unlink()
    rounds.symlink_to(outside)
    # `member` passed when the name was still a plain file; the link appeared just after (a race).
    monkeypatch.setattr(writer, "member", lambda run_dir, name, what="file": run_dir / name)
    with pytest.raises(UnsafePathError, match="trace 'run': rounds.jsonl is a symbolic link"):
        w.write_round(record(1), image(1))
    assert outside.read_text() == ""  # nothing written through the link
    rounds.unlink()
    rounds.mkdir()  # not a link: the system's own error, unchanged
    with pytest.raises(IsADirectoryError):
        w.write_round(record(2), image(2))
    w.close()


def test_latents_files_keep_the_tensor_data_8_byte_aligned(tmp_path):
    """As safetensors writes them: the data start at a multiple of 8, so a reader can map float64s."""
    w = TraceWriter(tmp_path / "run")
    w.start(info())
    for k in range(8):
        rel = w.save_latents(k, {"text.z": torch.arange(3, dtype=torch.float64)}, {"reasoning": "x" * k})
        data = (tmp_path / "run" / rel).read_bytes()
        start = 8 + int.from_bytes(data[:8], "little")
        assert start % 8 == 0 and data[start:] == torch.arange(3, dtype=torch.float64).numpy().tobytes()
    w.close()


def hold_lock(run_dir: Path, pid: bytes) -> int:
    """Another writer's lock on the folder, with `pid` in the lock file (b"": not written yet)."""
    run_dir.mkdir()
    fd = os.open(run_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, pid)
    return fd


def test_a_lock_holder_that_never_wrote_its_pid_is_another_process(tmp_path):
    fd = hold_lock(tmp_path / "run", b"")
    try:
        with pytest.raises(RunLockedError, match="run run is being written by another process; wait"):
            TraceWriter(tmp_path / "run").start(info())
    finally:
        os.close(fd)


def test_a_lock_holder_that_writes_its_pid_a_moment_late_is_named(tmp_path, monkeypatch):
    fd = hold_lock(tmp_path / "run", b"4242\n")
    reads = []
    pid_in = writer._pid_in

    def late(lock_fd):  # the first read comes between the holder's flock and its pid write
        reads.append(lock_fd)
        return None if len(reads) == 1 else pid_in(lock_fd)

    monkeypatch.setattr(writer, "_pid_in", late)
    try:
        with pytest.raises(RunLockedError, match="run run is being written by process 4242; wait"):
            TraceWriter(tmp_path / "run").start(info())
    finally:
        os.close(fd)
    assert len(reads) >= 2
