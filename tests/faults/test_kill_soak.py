"""Kill soak: SIGKILL at random moments, resume, and every run equals its uninterrupted twin.

Each seed drives one batch through a chain of real processes, each SIGKILLed at a moment a seeded
RNG picks: before its n-th fsync (before round 0 and between `run.json` and round 0 included), in
the middle of its n-th write (half the bytes on disk: a torn temp file or a half line), or after a
random delay (inside a decode, a critique, an update). The next process resumes the batch
(`MILR.batch(..., resume=True)`); after the chain, this process resumes it once more, and every run
must equal its uninterrupted twin: each round once in `rounds.jsonl`, same records (scores,
reasoning, image prefix ids, latents checksums), same PNG bytes, same summary.

The killed processes are forks of this one (model loaded, code warm), so a kill costs a fraction of
a run instead of an interpreter start; the fork shares no open trace writer with its parent. The
soak runs torch on one thread, twins included: a child forked from a process whose OpenMP pool is
running can hang in its first parallel matmul (GNU OpenMP is not fork-safe).
"""

from __future__ import annotations

import faulthandler
import mmap
import os
import random
import signal
import struct
import threading
import time
import traceback
from pathlib import Path

import pytest
import torch

from milr.config import MILRConfig
from milr.mug.tiny import tiny_mug
from milr.orchestrator import MILR
from milr.traces import Trace
from tests.orchestrator.helpers import PixelCritic

STEPS = 4  # PixelCritic never passes: every run makes STEPS + 1 rounds
CONFIG = MILRConfig(steps=STEPS, seed=3, max_reasoning_tokens=8)
PROMPTS = ["a photo of a red cat", "a photo of two dogs", "a photo of a blue car"]
CASES = {  # name: (prompts, max_batch, sqlite checkpoints)
    "pair": (2, 2, False),
    "refill": (3, 2, False),  # the third run takes a freed slot mid-batch
    "checkpointed": (2, 1, True),
}
SEEDS = range(8)
KILLS_PER_CHAIN = 4
MIN_KILLS = 20
CHILD_TIMEOUT = 120


def _case_for(seed: int) -> str:
    return list(CASES)[seed % len(CASES)]


def _milr(mug, case: str, out: Path) -> MILR:
    _, max_batch, checkpoint = CASES[case]
    return MILR(mug, PixelCritic(), CONFIG, out=out, max_batch=max_batch, checkpoint=checkpoint)


def _batch(milr: MILR, case: str, *, resume: bool):
    n = CASES[case][0]
    return milr.batch(PROMPTS[:n], names=[f"run{i}" for i in range(n)], seeds=list(range(n)), resume=resume)


# ----------------------------------------------------------------------------- the killed child
def _child(mug, case: str, out: Path, resume: bool, mode: str, at: float, shared: mmap.mmap) -> None:
    """In the forked child: arm the kill, run the batch; `shared` counts the fsyncs that completed."""
    lock = threading.Lock()
    real_fsync, real_write = os.fsync, os.write
    seen = {"fsync": 0, "write": 0}

    def die():
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(60)

    def fsync(fd):
        with lock:
            seen["fsync"] += 1
            if mode == "fsync" and seen["fsync"] >= at:
                die()  # holding the lock: no other thread gets past its fsync either
        real_fsync(fd)
        with lock:
            struct.pack_into("q", shared, 0, struct.unpack_from("q", shared, 0)[0] + 1)

    def write(fd, data):
        with lock:
            seen["write"] += 1
            if mode == "torn" and seen["write"] >= at:
                data = bytes(data)
                real_write(fd, data[: len(data) // 2])
                die()
        return real_write(fd, data)

    os.fsync, os.write = fsync, write
    # Should the child hang, its stacks are in this file when the parent gives up on it.
    hang = open(out.parent / f"hang-{os.getpid()}.txt", "w")  # open until the child dies
    faulthandler.dump_traceback_later(CHILD_TIMEOUT - 10, file=hang)
    if mode == "delay":
        threading.Timer(at, die).start()
    _batch(_milr(mug, case, out), case, resume=resume)


def _run_killed(mug, case: str, out: Path, resume: bool, mode: str, at: float) -> tuple[bool, int]:
    """Fork a child that runs the batch and is killed as armed: (killed?, fsyncs it completed)."""
    shared = mmap.mmap(-1, 8)
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 0
        try:
            _child(mug, case, out, resume, mode, at, shared)
        except BaseException:
            (out.parent / f"child-{os.getpid()}.err").write_text(traceback.format_exc())
            code = 1
        os._exit(code)
    deadline = time.monotonic() + CHILD_TIMEOUT
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            stacks = (out.parent / f"hang-{pid}.txt").read_text()[-6000:]
            pytest.fail(f"a child ({case}, {mode} {at}) ran for more than {CHILD_TIMEOUT} s:\n{stacks}")
        time.sleep(0.005)
    errors = list(out.parent.glob(f"child-{pid}.err"))
    assert not errors, f"child ({case}, resume={resume}, {mode} {at}) failed:\n" + errors[0].read_text()[-3000:]
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert killed or os.WEXITSTATUS(status) == 0, f"child exited with {status}"
    return killed, struct.unpack_from("q", shared, 0)[0]


# ----------------------------------------------------------------------------- twins
def _twin(mug, case: str, root: Path, monkeypatch) -> dict:
    """The uninterrupted batch: its folder, its fsync count, its wall time."""
    count = {"fsync": 0}
    real = os.fsync

    def counting(fd):
        count["fsync"] += 1
        real(fd)

    out = root / f"twin-{case}"
    with monkeypatch.context() as m:
        m.setattr(os, "fsync", counting)
        started = time.perf_counter()
        results = _batch(_milr(mug, case, out), case, resume=False)
        seconds = time.perf_counter() - started
    return {"out": out, "fsyncs": count["fsync"], "seconds": seconds, "results": results}


def _snapshot(run_dir: Path) -> dict:
    trace = Trace.load(run_dir)
    lines = (run_dir / "rounds.jsonl").read_text().splitlines()
    return {
        "lines": len(lines),
        "rounds": [r.model_dump(exclude={"seconds"}) for r in trace.rounds],
        "pngs": [r.image_bytes() for r in trace.rounds],
        "final": (run_dir / "final.png").read_bytes(),
        "summary": trace.summary.model_dump(exclude={"seconds"}),
    }


def _state(out: Path, case: str) -> list[tuple[bool, int]]:
    """Per run of the case: (run.json on disk, finished rounds on disk)."""
    states = []
    for i in range(CASES[case][0]):
        run = out / f"run{i}"
        rounds = (run / "rounds.jsonl").read_bytes().count(b"\n") if (run / "rounds.jsonl").exists() else 0
        states.append(((run / "run.json").is_file(), rounds))
    return states


# ----------------------------------------------------------------------------- the soak
def test_kill_soak_every_run_equals_its_uninterrupted_twin(tmp_path, monkeypatch):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see the module's docstring
    try:
        _soak(tmp_path, monkeypatch)
    finally:
        torch.set_num_threads(threads)


def _soak(tmp_path, monkeypatch):
    mug = tiny_mug(seed=0)
    _batch(_milr(mug, "pair", tmp_path / "warm-up"), "pair", resume=False)  # code paths warm before timing
    twins = {case: _twin(mug, case, tmp_path, monkeypatch) for case in CASES}
    kills: list[tuple[int, str, float]] = []
    windows = set()

    for seed in SEEDS:
        rng = random.Random(seed)
        case = _case_for(seed)
        twin = twins[case]
        total, out = twin["fsyncs"], tmp_path / f"seed{seed}"
        done = 0  # fsyncs completed by the killed processes: what is left is at least total - done
        for k in range(KILLS_PER_CHAIN):
            left = total - done
            if left < 1:
                break
            if k == 0 and seed == 0:
                mode, at = "fsync", 1  # inside the first run.json write: no run.json anywhere yet
            elif k == 0 and seed == 1:
                mode, at = "fsync", 2 * min(CASES[case][:2]) + 1  # every run.json written, round 0 not
            else:
                mode = rng.choice(["fsync", "fsync", "torn", "delay"])
                if mode == "fsync":
                    at = rng.randint(1, left)
                elif mode == "torn":  # a write is followed by at most two fsyncs
                    at = rng.randint(1, max(1, left // 2))
                else:
                    at = rng.uniform(0.0, 0.9 * twin["seconds"] * left / total)
            killed, completed = _run_killed(mug, case, out, resume=k > 0, mode=mode, at=at)
            done += completed
            if not killed:
                break  # a delay longer than what was left: the batch finished
            kills.append((seed, mode, at))
            if k == 0 and seed == 0:
                assert not all(has_json for has_json, _ in _state(out, case))
                windows.add("before run.json")
            if k == 0 and seed == 1:
                assert all(has_json and rounds == 0 for has_json, rounds in _state(out, case)[: CASES[case][1]])
                windows.add("between run.json and round 0")
            if any(rounds for _, rounds in _state(out, case)):
                windows.add("mid-batch")

        resumed = _batch(_milr(mug, case, out), case, resume=True)
        for got, want in zip(resumed, twin["results"], strict=True):
            snap, ref = _snapshot(got.trace_dir), _snapshot(want.trace_dir)
            assert snap["lines"] == STEPS + 1, f"seed {seed}: {got.trace_dir.name} lost or repeated a round"
            assert [r["round"] for r in snap["rounds"]] == list(range(STEPS + 1))
            assert snap == ref, f"seed {seed}: {got.trace_dir.name} differs from its twin after {kills}"
            assert got.score == want.score and got.reasoning == want.reasoning
            assert got.final_round == want.final_round
            assert not list(got.trace_dir.rglob(".*.tmp"))

    print(f"kill soak: {len(kills)} kills over {len(SEEDS)} seeds: {kills}")  # shown with -s
    assert len(kills) >= MIN_KILLS, kills
    assert {mode for _, mode, _ in kills} == {"fsync", "torn", "delay"}, kills
    assert windows == {"before run.json", "between run.json and round 0", "mid-batch"}
