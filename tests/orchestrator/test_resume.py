"""Resume after a real SIGKILL: no round lost, none repeated, identical to an uninterrupted run;
for a single run (with and without the sqlite checkpointer) and for a batch whose slots refill."""

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
PROMPTS = ["a photo of a red cat", "a photo of two dogs", "a photo of a blue car", "a cat", "a photo of a bench"]
NAMES = [f"run{i}" for i in range(len(PROMPTS))]

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
            if KillingCritic.calls == {kill_at}:
                os.kill(os.getpid(), signal.SIGKILL)
            return super().__call__(image, prompt, spec)

    milr = MILR(tiny_mug(seed=0), KillingCritic(), MILRConfig(steps={steps}, seed=3, max_reasoning_tokens=12),
                out=sys.argv[1], checkpoint={checkpoint}, max_batch=2)
    prompts, names = {prompts!r}, {names!r}
    if len(prompts) == 1:
        milr(prompts[0], name=names[0])
    else:
        milr.batch(prompts, names=names, seeds=list(range(len(prompts))))
    """
)


def _kill(tmp_path, *, kill_at: int, checkpoint: bool, prompts: list[str], names: list[str]):
    script = SCRIPT.format(kill_at=kill_at, steps=STEPS, checkpoint=checkpoint, prompts=prompts, names=names)
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "killed")], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    return tmp_path / "killed"


def _rows(trace):
    """Every round as it is on disk, timings aside: its record (score, reasoning, prefixes, latents
    checksum), its image file's bytes and its latents file's bytes."""
    out = []
    for r in trace.rounds:
        d = r.model_dump(exclude={"seconds"})
        d["png"] = (trace.path / r.image_file).read_bytes()
        d["latents_file"] = (trace.path / r.latents).read_bytes()
        out.append(d)
    return out


def _outcome(result):
    """What a caller gets back, timings and folder aside."""
    return (result.score, result.reasoning, result.final_round, result.best_round, result.stop_reason,
            [r.score for r in result.rounds], (result.trace_dir / "final.png").read_bytes())  # fmt: skip


@pytest.mark.slow  # a second interpreter loads torch, then is killed
@pytest.mark.parametrize("checkpoint", [True, False], ids=["sqlite-checkpointer", "no-checkpointer"])
def test_sigkilled_run_resumes_to_the_same_trace(tmp_path, checkpoint):
    # The 4th critic call scores round 3: rounds 0..2 are finished.
    out = _kill(tmp_path, kill_at=4, checkpoint=checkpoint, prompts=PROMPTS[:1], names=["killed"])
    run_dir = out / "killed"
    assert [r.round for r in Trace.load(run_dir).rounds] == [0, 1, 2]
    assert (out / "checkpoints.sqlite").exists() == checkpoint

    mug = tiny_mug(seed=0)
    resumed = MILR(mug, PixelCritic(), MILRConfig(), out=out, checkpoint=checkpoint).resume(run_dir)
    assert [r.round for r in resumed.rounds] == list(range(STEPS + 1))
    assert (out / "checkpoints.sqlite").exists() == checkpoint  # without it, resuming wrote none either

    # Equal to a run never interrupted: the same scores, reasoning, image and latents bytes, result.
    config = MILRConfig(steps=STEPS, seed=3, max_reasoning_tokens=12)
    straight = MILR(mug, PixelCritic(), config, out=tmp_path / "straight")(PROMPTS[0])
    assert _rows(Trace.load(run_dir)) == _rows(Trace.load(straight.trace_dir))
    assert _outcome(resumed) == _outcome(straight)
    lines = (run_dir / "rounds.jsonl").read_text().splitlines()
    assert len(lines) == STEPS + 1  # each round exactly once on disk


@pytest.mark.slow  # a second interpreter loads torch, then is killed
def test_sigkilled_batch_resumes_every_run_without_losing_or_repeating_a_round(tmp_path):
    # Two slots, five prompts, PixelCritic never passes: each run makes STEPS + 1 rounds. Killed at the
    # 15th critic call, some runs are finished, one or two are midway and some never started.
    out = _kill(tmp_path, kill_at=15, checkpoint=False, prompts=PROMPTS, names=NAMES)
    before = {d.name: len(Trace.load(d).rounds) for d in out.iterdir() if (d / "run.json").is_file()}
    assert 0 < len(before) < len(PROMPTS) and sum(before.values()) == 14

    mug = tiny_mug(seed=0)
    config = MILRConfig(steps=STEPS, seed=3, max_reasoning_tokens=12)
    milr = MILR(mug, PixelCritic(), config, out=out, max_batch=2)
    resumed = milr.batch(PROMPTS, names=NAMES, seeds=list(range(len(PROMPTS))), resume=True)
    assert [r.trace_dir.name for r in resumed] == NAMES

    straight = MILR(mug, PixelCritic(), config, out=tmp_path / "straight", max_batch=2)
    reference = straight.batch(PROMPTS, names=NAMES, seeds=list(range(len(PROMPTS))))
    for got, want in zip(resumed, reference, strict=True):
        lines = (got.trace_dir / "rounds.jsonl").read_text().splitlines()
        assert len(lines) == STEPS + 1, got.trace_dir.name  # no round lost, none repeated
        assert _rows(Trace.load(got.trace_dir)) == _rows(Trace.load(want.trace_dir))
        assert (got.trace_dir / "summary.json").is_file() and (got.trace_dir / "report.html").is_file()


def test_resume_refuses_a_folder_run_with_other_settings(tmp_path):
    mug = tiny_mug(seed=0)
    MILR(mug, PixelCritic(), MILRConfig(steps=1, max_reasoning_tokens=12), out=tmp_path)(PROMPTS[0], name="r")
    other = MILR(mug, PixelCritic(), MILRConfig(steps=3, max_reasoning_tokens=12), out=tmp_path)
    with pytest.raises(ValueError, match="other settings \\(steps\\)"):
        other.batch([PROMPTS[0]], names=["r"], resume=True)
    with pytest.raises(FileExistsError, match="already holds a run"):
        other.batch([PROMPTS[0]], names=["r"])
