"""`critique` node: score every run's new image (one batch through the critic), write each finished
round to its trace, decide per run whether to stop. A round is on disk (image, record, latents)
before the next one starts."""

from __future__ import annotations

import time

import structlog
from langgraph.runtime import Runtime

from milr.config import MILRConfig
from milr.critics.base import Critique, PromptSpec, score_many
from milr.mug.latents import reward_from_score
from milr.nodes.context import MILRContext, MILRState, RunState, active, concurrently, with_runs
from milr.traces import CriticScore, RoundRecord

log = structlog.get_logger(__name__)


def stop_reason(score: float | None, round_: int, config: MILRConfig) -> str | None:
    """Why the loop stops after `round_`, or None to keep optimising (checked before each update)."""
    if score is not None and score >= config.threshold:
        return "threshold"
    if round_ >= config.steps:
        return "steps"
    return None


def critique(state: MILRState, runtime: Runtime[MILRContext]) -> dict:
    ctx = runtime.context
    runs = active(state, "generated")
    if not runs:
        return {}
    started = time.perf_counter()
    verdicts = score_many(
        ctx.critic,
        [ctx.store(run["run_id"]).image_out for run in runs],
        [run["prompt"] for run in runs],
        [PromptSpec.model_validate(run["spec"]) if run.get("spec") else None for run in runs],
    )
    critics_seconds = time.perf_counter() - started
    # Every run's round goes to disk at once (their fsyncs overlap), then the events follow in order.
    records = concurrently(
        lambda pair: _write_round(ctx, pair[0], pair[1], dict(pair[0]["seconds"], critics=critics_seconds)),
        zip(runs, verdicts, strict=True),
    )
    return with_runs(state, [_after_round(ctx, run, rec, runtime) for run, rec in zip(runs, records, strict=True)])


def _write_round(ctx: MILRContext, run: RunState, verdict: Critique, seconds: dict) -> RoundRecord:
    record = _round_record(ctx, run, verdict, seconds)
    ctx.writer(run["run_id"]).write_round(record, ctx.store(run["run_id"]).image_out)
    return record


def _after_round(ctx: MILRContext, run: RunState, record: RoundRecord, runtime) -> RunState:
    k, run_id, score = run["round"], run["run_id"], record.score
    reason = stop_reason(score, k, ctx.config)
    per_critic = {c.critic: c.score for c in record.critiques}
    log.info("round_end", run_id=run_id, round=k, score=score, critics=per_critic, seconds=record.seconds)
    runtime.stream_writer(
        {
            "event": "round_end",
            "run_id": run_id,
            "round": k,
            "score": score,
            "critics": per_critic,
            "reasoning": run["reasoning"],
            "image": str(ctx.writer(run_id).run_dir / record.image),
            "stop_reason": reason,
        }
    )
    return {
        **run,
        "phase": "critiqued",
        "score": score,
        "scores": [*run.get("scores", []), score],
        "seconds": {},
        "stop_reason": reason,
    }


def _round_record(ctx: MILRContext, run: RunState, verdict: Critique, seconds: dict) -> RoundRecord:
    k = run["round"]
    tensors, meta = ctx.store(run["run_id"]).tensors()
    latents = ctx.writer(run["run_id"]).save_latents(k, tensors, meta)
    children = verdict.details.get("critiques")
    critiques = (
        [CriticScore.model_validate(c) for c in children] if children else [CriticScore(**verdict.model_dump())]
    )
    return RoundRecord(
        round=k,
        modality=run["updated"],
        reasoning=run["reasoning"],
        text_prefix=ctx.mug.tokenizer.decode(run["text_prefix_ids"], skip_special_tokens=True),
        text_prefix_ids=run["text_prefix_ids"],
        text_prefix_changed=run["text_prefix_changed"],
        image=f"round_{k:02d}.png",
        image_prefix_ids=run["image_prefix_ids"],
        score=verdict.score,
        reward=None if verdict.score is None else reward_from_score(verdict.score),
        critiques=critiques,
        grad_norm={m: s["grad_norm"] for m, s in run["update_stats"].items()},
        step_norm={m: s["step_norm"] for m, s in run["update_stats"].items()},
        seconds=seconds,
        latents=latents,
    )
