"""One writer per run folder, across real processes: two resumes of one run at once and a lock whose
holder was SIGKILLed; and a CLI resume of a run another writer holds.

Before the lock, two `milr resume` of one run both succeeded and the run ended with rounds
[0, 1, 2, 3, 3, 4, 4, ...]. Now the second is refused, never merged."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from milr.config import MILRConfig
from milr.mug.tiny import tiny_mug
from milr.orchestrator import MILR
from milr.traces import Trace, TraceWriter
from milr.traces.writer import RunLockedError
from tests.orchestrator.helpers import PixelCritic, SlowPixelCritic
from tests.traces.helpers import write_run

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
STEPS = 6
PROMPT = "a photo of a red cat"
CONFIG = dict(steps=STEPS, seed=3, max_reasoning_tokens=8)

# The resumer in a child loads everything, says it is ready, and starts on the parent's signal, when
# the parent (the other resumer) starts too; a slow critic keeps the winner writing for seconds, so
# the other one meets a held lock.
RESUMER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from milr.config import MILRConfig
    from milr.mug.tiny import tiny_mug
    from milr.orchestrator import MILR
    from tests.orchestrator.helpers import SlowPixelCritic

    run_dir, ready, go = map(Path, sys.argv[1:4])
    milr = MILR(tiny_mug(seed=0), SlowPixelCritic(), MILRConfig(**{config!r}), out=run_dir.parent)
    ready.touch()
    while not go.exists():
        time.sleep(0.005)
    try:
        result = milr.resume(run_dir)
    except OSError as exc:
        print(f"{{type(exc).__name__}}: {{exc}}", file=sys.stderr)
        sys.exit(3)
    print("rounds", len(result.rounds))
    """
).format(config=CONFIG)


class _StopAt(PixelCritic):
    def __init__(self, n: int):
        self.n, self.calls = n, 0

    def __call__(self, image, prompt, spec=None):
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt  # the run stops with rounds 0..n-2 on disk
        return super().__call__(image, prompt, spec)


def _rows(run_dir: Path) -> list[dict]:
    rows = []
    for r in Trace.load(run_dir).rounds:
        row = r.model_dump(exclude={"seconds"})
        row["png"] = r.image_bytes()
        rows.append(row)
    return rows


@pytest.mark.slow  # a child interpreter loading torch: 10-20 s on 2 CPU cores
def test_two_processes_resuming_one_run_at_once_one_wins_the_other_is_refused(tmp_path):
    """This test's process and a child resume the same run at the same moment."""
    mug = tiny_mug(seed=0)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        MILR(mug, _StopAt(3), MILRConfig(**CONFIG), out=out)(PROMPT, name="r")
    run_dir = out / "r"
    assert [r.round for r in Trace.load(run_dir).rounds] == [0, 1]

    mine = MILR(mug, SlowPixelCritic(), MILRConfig(**CONFIG), out=out)
    ready, go = tmp_path / "ready", tmp_path / "go"
    child = subprocess.Popen([sys.executable, "-c", RESUMER, str(run_dir), str(ready), str(go)],
                             env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 240
    while not ready.exists():
        assert child.poll() is None, child.stderr.read()[-2000:]
        assert time.monotonic() < deadline, "the child resumer did not start"
        time.sleep(0.05)
    go.touch()
    try:
        mine.resume(run_dir)
        refused = None
    except RunLockedError as exc:
        refused = str(exc)
    _, child_err = child.communicate(timeout=300)

    if refused is None:  # this process won: the child was refused, naming it
        assert child.returncode == 3, (child.returncode, child_err[-2000:])
        assert f"RunLockedError: run r is being written by process {os.getpid()}" in child_err
        assert "Traceback" not in child_err
    else:
        assert child.returncode == 0, (child.returncode, child_err[-2000:])
        assert f"run r is being written by process {child.pid}" in refused

    lines = [json.loads(line) for line in (run_dir / "rounds.jsonl").read_text().splitlines()]
    assert [line["round"] for line in lines] == list(range(STEPS + 1))  # each round once
    twin = MILR(mug, PixelCritic(), MILRConfig(**CONFIG), out=tmp_path / "twin")(PROMPT, name="r")
    assert _rows(run_dir) == _rows(twin.trace_dir)
    assert Trace.load(run_dir).summary is not None


HOLDER = textwrap.dedent(
    """
    import sys
    from milr.traces import TraceWriter
    w = TraceWriter(sys.argv[1], resume=True)
    print("locked", flush=True)
    sys.stdin.read()
    """
)


def test_the_lock_of_a_killed_holder_is_free_at_once(tmp_path):
    run = tmp_path / "run"
    write_run(run, 2).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run)], env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=f"run run is being written by process {holder.pid}"):
            TraceWriter(run, resume=True)
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    with TraceWriter(run, resume=True) as writer:  # the kernel dropped the dead process's lock
        assert writer.last_round == 1


def test_the_cli_refuses_to_resume_a_run_another_writer_holds_before_loading_the_model(tmp_path, capsys, monkeypatch):
    """`milr resume` of a folder whose lock is held (here by this process's own writer: flock locks
    conflict between open files, within one process too; across processes, see the tests above) is
    refused at once: no model is loaded for a run it cannot write."""
    from milr import cli

    with pytest.raises(KeyboardInterrupt):  # an unfinished run: rounds 0 and 1 on disk
        MILR(tiny_mug(seed=0), _StopAt(3), MILRConfig(**CONFIG), out=tmp_path)(PROMPT, name="r")
    before = (tmp_path / "r" / "rounds.jsonl").read_bytes()
    capsys.readouterr()
    loads: list[str] = []
    monkeypatch.setattr(cli, "build_model", lambda name, *a, **k: loads.append(name))
    with TraceWriter(tmp_path / "r", resume=True):
        code = cli.main(["resume", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2, (code, err[-2000:])
    assert f"run r is being written by process {os.getpid()}" in err
    assert "Traceback" not in err
    assert (tmp_path / "r" / "rounds.jsonl").read_bytes() == before and loads == []


def test_every_writer_lets_go_of_its_folder_when_a_stream_stops_or_a_batch_ends(tmp_path, monkeypatch):
    made: list[TraceWriter] = []  # holding them here: only an explicit close() can free their folders
    real_init = TraceWriter.__init__

    def init(self, *args, **kwargs):
        made.append(self)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(TraceWriter, "__init__", init)
    milr = MILR(tiny_mug(seed=0), PixelCritic(), MILRConfig(**CONFIG), out=tmp_path, max_batch=2)
    events = milr.stream_batch(["a photo of a cat", "a photo of a dog"], names=["a", "b"])
    for event in events:
        if event["event"] == "round_end":
            break  # a consumer that stops reading mid-batch
    events.close()
    assert len(made) == 2 and not any(w.locked for w in made)
    made.clear()
    milr.batch(["a photo of a cow"], names=["c"])  # finished runs are released as they finish
    assert len(made) == 1 and not made[0].locked
