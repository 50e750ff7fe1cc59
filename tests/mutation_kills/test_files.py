"""Mutation survivors of milr/traces/files.py, killed (benchmarks/mutate.py; results in
benchmarks/results/mutation.json): no descriptor leaks, a crash's leftover temp file does not block
the next write, a link swapped in after the check is still refused, a missing file is named, a FIFO
or folder posing as a trace file is refused."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

import pytest

from milr.traces import files
from milr.traces.files import UnsafePathError, atomic_write_bytes, fsync_dir, is_member_file, read_member

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors in /proc")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_syncing_writing_and_reading_leave_no_descriptor_open(tmp_path):
    before = open_fds()
    for i in range(20):
        fsync_dir(tmp_path)
        atomic_write_bytes(tmp_path / "a.bin", b"x" * i)
        assert read_member(tmp_path, "a.bin") == b"x" * i
    assert open_fds() == before


def test_a_temp_file_left_by_a_crash_does_not_block_the_next_write(tmp_path):
    (tmp_path / ".a.bin.tmp").write_bytes(b"half")  # killed between write and rename
    atomic_write_bytes(tmp_path / "a.bin", b"whole")
    assert (tmp_path / "a.bin").read_bytes() == b"whole" and not (tmp_path / ".a.bin.tmp").exists()


def test_a_link_swapped_in_after_the_check_is_refused_at_open(tmp_path, monkeypatch):
    secret = tmp_path / "secret.txt"
    secret.write_text("private")
    run = tmp_path / "run"
    run.mkdir()
    (run / "round_00.png").symlink_to(secret)
    # `member` passed when the name was still a plain file; the link appeared just after (a race).
    monkeypatch.setattr(files, "member", lambda run_dir, name, what="file": run_dir / name)
    with pytest.raises(UnsafePathError, match="'round_00.png' is a symbolic link; refused"):
        read_member(run, "round_00.png", "round image")


def test_a_missing_file_is_named_with_its_run(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"trace '{tmp_path.name}': round image 'round_03.png' is missing"):
        read_member(tmp_path, "round_03.png", "round image")


def test_every_file_written_is_read_write_for_its_owner_and_readable_by_others(tmp_path):
    atomic_write_bytes(tmp_path / "a.bin", b"x")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == 0o644 & ~umask


def test_is_member_file_answers_a_bool_for_every_kind_of_name(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "folder").mkdir()
    assert is_member_file(tmp_path, "a.png") is True
    for name in ("missing.png", "folder", "../a.png", "/etc/passwd"):
        assert is_member_file(tmp_path, name) is False


def test_a_socket_posing_as_a_trace_file_raises_the_open_error(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(run / "round_00.png"))
        with pytest.raises(OSError) as err:
            read_member(run, "round_00.png", "round image")
    assert err.value.errno == errno.ENXIO  # open() of a socket: the error itself, not a later one


def test_a_fifo_or_a_folder_posing_as_a_trace_file_is_refused(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    os.mkfifo(run / "round_00.png")  # opens at once (non-blocking) and reads as empty
    (run / "round_01.png").mkdir()  # opens read-only; reading it fails
    for name in ("round_00.png", "round_01.png"):
        with pytest.raises(UnsafePathError, match=f"round image '{name}' is not a regular file; refused"):
            read_member(run, name, "round image")
