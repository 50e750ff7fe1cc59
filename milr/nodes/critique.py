"""`critique` node: score the round's image, write the finished round to the trace, decide whether
to stop. A round is on disk (image, record, latents) before the next one starts."""

from __future__ import annotations

import time

import structlog
from langgraph.runtime import Runtime

from milr.config import MILRConfig
from milr.critics.base import Critique, PromptSpec
from milr.mug.latents import reward_from_score
from milr.nodes.context import MILRContext, MILRState
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
    k = state["round"]
    spec = PromptSpec.model_validate(state["spec"]) if state.get("spec") else None
    started = time.perf_counter()
    verdict = ctx.critic(ctx.store.image_out, state["prompt"], spec)
    seconds = dict(state["seconds"], critics=time.perf_counter() - started)
    score = verdict.score
    record = _round_record(state, ctx, verdict, seconds)
    ctx.writer.write_round(record, ctx.store.image_out)
    reason = stop_reason(score, k, ctx.config)
    per_critic = {c.critic: c.score for c in record.critiques}
    log.info("round_end", run_id=state["run_id"], round=k, score=score, critics=per_critic, seconds=seconds)
    runtime.stream_writer(
        {
            "event": "round_end",
            "run_id": state["run_id"],
            "round": k,
            "score": score,
            "critics": per_critic,
            "reasoning": state["reasoning"],
            "image": str(ctx.writer.run_dir / record.image),
            "stop_reason": reason,
        }
    )
    return {"score": score, "scores": [*state.get("scores", []), score], "seconds": {}, "stop_reason": reason}


def _round_record(state: MILRState, ctx: MILRContext, verdict: Critique, seconds: dict) -> RoundRecord:
    k = state["round"]
    tensors, meta = ctx.store.tensors()
    latents = ctx.writer.save_latents(k, tensors, meta)
    children = verdict.details.get("critiques")
    critiques = (
        [CriticScore.model_validate(c) for c in children] if children else [CriticScore(**verdict.model_dump())]
    )
    tokenizer = ctx.mug.tokenizer
    return RoundRecord(
        round=k,
        modality=state["updated"],
        reasoning=state["reasoning"],
        text_prefix=tokenizer.decode(state["text_prefix_ids"], skip_special_tokens=True),
        text_prefix_ids=state["text_prefix_ids"],
        text_prefix_changed=state["text_prefix_changed"],
        image=f"round_{k:02d}.png",
        image_prefix_ids=state["image_prefix_ids"],
        score=verdict.score,
        reward=None if verdict.score is None else reward_from_score(verdict.score),
        critiques=critiques,
        grad_norm={m: s["grad_norm"] for m, s in state["update_stats"].items()},
        step_norm={m: s["step_norm"] for m, s in state["update_stats"].items()},
        seconds=seconds,
        latents=latents,
    )
