"""Resume after a real SIGKILL: no round lost, none repeated, identical to an uninterrupted run."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from milr.config import MILRConfig
from milr.mug.tiny import tiny_mug
from milr.orchestrator import MILR
from milr.traces import Trace
from tests.orchestrator.helpers import PixelCritic

STEPS = 5

SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from milr.config import MILRConfig
    from milr.mug.tiny import tiny_mug
    from milr.orchestrator import MILR
    from tests.orchestrator.helpers import PixelCritic

    class KillingCritic(PixelCritic):
        calls = 0
        def __call__(self, image, prompt, spec=None):
            KillingCritic.calls += 1
            if KillingCritic.calls == 4:  # round 3 is being scored: rounds 0..2 are finished
                os.kill(os.getpid(), signal.SIGKILL)
            return super().__call__(image, prompt, spec)

    milr = MILR(tiny_mug(seed=0), KillingCritic(), MILRConfig(steps={steps}, seed=3, max_reasoning_tokens=12),
                out=sys.argv[1], checkpoint=True)
    milr("a photo of a red cat", name="killed")
    """
)


def _rows(trace):
    out = []
    for r in trace.rounds:
        d = r.model_dump(exclude={"seconds"})
        d["pixels"] = r.image.tobytes()
        out.append(d)
    return out


@pytest.mark.parametrize("checkpoint", [True])
def test_sigkilled_run_resumes_to_the_same_trace(tmp_path, checkpoint):
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(steps=STEPS), str(tmp_path / "killed")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    run_dir = next((tmp_path / "killed").iterdir())
    assert [r.round for r in Trace.load(run_dir).rounds] == [0, 1, 2]
    assert (run_dir / "checkpoints.sqlite").exists()

    mug = tiny_mug(seed=0)
    resumed = MILR(mug, PixelCritic(), MILRConfig(), out=tmp_path / "killed", checkpoint=True).resume(run_dir)
    assert [r.round for r in resumed.rounds] == list(range(STEPS + 1))

    config = MILRConfig(steps=STEPS, seed=3, max_reasoning_tokens=12)
    straight = MILR(mug, PixelCritic(), config, out=tmp_path / "straight")("a photo of a red cat")
    assert _rows(Trace.load(run_dir)) == _rows(Trace.load(straight.trace_dir))
    lines = (run_dir / "rounds.jsonl").read_text().splitlines()
    assert len(lines) == STEPS + 1  # each round exactly once on disk
    assert resumed.final_round == straight.final_round and resumed.score == straight.score
