"""A writer killed with SIGKILL mid-run leaves a trace that loads with every finished round."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest

from milr.traces import Trace, TraceWarning, TraceWriter
from tests.traces.helpers import image, record

REPO = Path(__file__).resolve().parents[2]

# Rounds carry a long reasoning and latents, so the kill often lands inside a write.
WRITER = textwrap.dedent(
    """
    import sys
    import torch
    from PIL import Image
    from milr.traces import CriticScore, RoundRecord, RunInfo, TraceWriter
    w = TraceWriter(sys.argv[1])
    w.start(RunInfo(run_id="k", prompt="p"))
    k = 0
    while True:
        latents = w.save_latents(k, {"text.z": torch.randn(64, 256)}, {"reasoning": "x"})
        w.write_round(
            RoundRecord(round=k, image=f"round_{k:02d}.png", reasoning="a red circle " * 2000, latents=latents,
                        critiques=[CriticScore(critic="c", score=0.5, rationale="y" * 5000)]),
            Image.new("RGB", (64, 64), (k % 256, 0, 0)),
        )
        k += 1
    """
)


@pytest.mark.parametrize("rounds_before_kill", [1, 5, 12])
def test_sigkilled_writer_leaves_a_trace_with_every_finished_round(tmp_path, rounds_before_kill):
    run = tmp_path / "k"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(run)], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while _complete_lines(run / "rounds.jsonl") < rounds_before_kill:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the writer did not write its rounds in 60 s"
            time.sleep(0.001)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TraceWarning)  # the kill may have cut the last line: allowed
        trace = Trace.load(run)
    assert len(trace.rounds) >= rounds_before_kill
    assert [r.round for r in trace.rounds] == list(range(len(trace.rounds)))
    for r in trace.rounds:  # every round on record has its image and latents, complete
        assert r.image.getpixel((0, 0)) == (r.round % 256, 0, 0)
        assert trace.latents(r.round)["text.z"].shape == (64, 256)

    # The killed run can be continued: the next round lands right after the last finished one.
    writer = TraceWriter(run, resume=True)
    writer.write_round(record(len(trace.rounds)), image(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resumed = Trace.load(run)
    assert [r.round for r in resumed.rounds] == list(range(len(trace.rounds) + 1))
    assert not list(run.rglob(".*.tmp"))


def _complete_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0
