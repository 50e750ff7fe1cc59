"""Builders for traces written through the real `TraceWriter` (no model, no critic)."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from milr.traces import CriticScore, RoundRecord, RunInfo, RunSummary, TraceWriter

EVIL = '<script>alert(1)</script> "quoted" & \'single\' "><img src=x onerror=alert(2)>'
SPEC = {"tag": "colors", "include": [{"class": "circle", "count": 1, "color": "red"}]}


def image(k: int, size: int = 16) -> Image.Image:
    """A distinct flat image per round, so round trips can compare pixels."""
    return Image.new("RGB", (size, size), (k * 40 % 256, 100, 200))


def record(k: int, reasoning: str = "a red circle in row one.", score: float | None = 0.5, **kw) -> RoundRecord:
    fields = dict(
        round=k,
        modality="none" if k == 0 else "both",
        reasoning=reasoning,
        text_prefix=reasoning.split()[0],
        text_prefix_ids=[4, k],
        text_prefix_changed=k > 0,
        image=f"round_{k:02d}.png",
        image_prefix_ids=[7, k],
        score=score,
        reward=None if score is None else score - 1,
        critiques=[CriticScore(critic="shapes", score=score, rationale=f"round {k}", details={"k": k}, seconds=0.01)],
        grad_norm={"text": 0.1 * k},
        step_norm={"text": 0.01 * k},
        seconds={"decode": 0.1, "critics": 0.01, "update": 0.001},
    )
    return RoundRecord(**{**fields, **kw})


def summary(rounds: int, final_round: int | None = None, **kw) -> RunSummary:
    last = rounds - 1
    fields = dict(
        stop_reason="steps",
        best_round=last,
        last_round=last,
        final_round=last if final_round is None else final_round,
        final_score=0.5,
        rounds=rounds,
        seconds=1.5,
    )
    return RunSummary(**{**fields, **kw})


def write_run(
    path: Path, rounds: int, prompt: str = "a photo of a red circle", spec: dict | None = SPEC, **info
) -> TraceWriter:
    """A run with `rounds` rounds (scores 0.1, 0.2, ...) and latents, not finished."""
    writer = TraceWriter(path)
    writer.start(RunInfo(run_id=path.name, prompt=prompt, spec=spec, config={"threshold": 0.9}, **info))
    for k in range(rounds):
        latents = writer.save_latents(k, {"text.z": torch.full((2, 4), float(k))}, {"reasoning": f"r{k}"})
        writer.write_round(record(k, score=round(0.1 * (k + 1), 3), latents=latents), image(k))
    return writer
