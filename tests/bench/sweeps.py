"""Hand-made bench folders with known outcomes: `bench.json`, `results.jsonl` and, per record, a real
trace folder written by `TraceWriter` (rounds, final image, report), without a model."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from milr.traces import CriticScore, RoundRecord, RunInfo, RunSummary, TraceWriter

TAGS = {"p0": "counting", "p1": "counting", "p2": "colors", "p3": "colors", "p4": "position", "p5": "position"}


def colour(method: str, key: str) -> tuple[int, int, int]:
    """A distinct flat colour per (method, prompt), so a test can tell which image a page shows."""
    h = sum(map(ord, method + key)) * 2654435761
    return (h % 251, (h // 251) % 251, (h // 63001) % 251)


def make_sweep(
    folder: Path,
    method: str,
    outcomes: dict[str, bool],
    *,
    rounds: int = 2,
    curve: bool = True,
    prompts: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
    size: int = 16,
) -> Path:
    """A bench folder whose record for prompt key k is judged `outcomes[k]`; with `curve`, every record
    has `eval_by_round` (wrong until the last round, which is `outcomes[k]`)."""
    tags = tags or TAGS
    folder.mkdir(parents=True)
    (folder / "bench.json").write_text(json.dumps({"method": method, "n": None, "config": {"steps": rounds - 1},
                                                   "reward_critic": [{"name": "shapes", "weight": 1.0}]}))  # fmt: skip
    lines = []
    for key, correct in outcomes.items():
        prompt = (prompts or {}).get(key, f"a photo of prompt {key}")
        trace = f"traces/{key}-s0"
        _write_trace(folder / trace, prompt, method, key, rounds, size)
        record = {"key": key, "sample": 0, "prompt": prompt, "tag": tags[key], "method": method,
                  "reward_scores": [0.5] * rounds, "eval_score": 1.0 if correct else 0.0, "correct": correct,
                  "generations": rounds, "seconds": 0.1, "trace": trace}  # fmt: skip
        if curve:
            record["eval_by_round"] = [False] * (rounds - 1) + [correct]
        lines.append(json.dumps(record))
    (folder / "results.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def _write_trace(run_dir: Path, prompt: str, method: str, key: str, rounds: int, size: int) -> None:
    final = Image.new("RGB", (size, size), colour(method, key))
    with TraceWriter(run_dir) as writer:
        writer.start(RunInfo(run_id=run_dir.name, prompt=prompt, config={"threshold": 0.9}))
        for k in range(rounds):
            image = final if k == rounds - 1 else Image.new("RGB", (size, size), (k, k, k))
            critique = CriticScore(critic="shapes", score=0.5, rationale="hand-made")
            record = RoundRecord(round=k, image=f"round_{k:02d}.png", score=0.5, critiques=[critique])
            writer.write_round(record, image)
        summary = RunSummary(stop_reason="steps", best_round=rounds - 1, last_round=rounds - 1,
                             final_round=rounds - 1, final_score=0.5, rounds=rounds, seconds=0.1)  # fmt: skip
        writer.finish(summary, final)
