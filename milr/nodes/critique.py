"""`critique` node: score every run's new image (one batch through the critic), write each finished
round to its trace, decide per run whether to stop. A round is on disk (image, record, latents)
before the next one starts.

When the critic asks a person (`HumanCritic`, alone or in a `Mixer`), scoring may pause the graph
with LangGraph's `interrupt`, and LangGraph re-runs this node from its start on resume. So the node
stays cheap to re-run: the images come from `generate` (checkpointed, never re-run), the mixer holds
its machine critiques across the pause, and each round's image and latents go to disk once, before
anyone is asked: the person opens that file, and a resume in another process (a persistent
checkpointer, a rebuilt server context) reads the round back from it instead of drawing it again.
Until the round's record is appended, these files are only pending: a run stopped at a question
leaves a valid trace whose last finished round is the one before.
"""

from __future__ import annotations

import io
import time
import weakref
from pathlib import Path

import structlog
from langgraph.runtime import Runtime
from PIL import Image

from milr.config import MILRConfig
from milr.critics.base import Critique, PromptSpec, score_many
from milr.critics.human import ReviewedImage, asks_person, under_review
from milr.mug.latents import reward_from_score
from milr.nodes.context import LatentStore, MILRContext, MILRState, RunState, active, concurrently, with_runs
from milr.traces import CriticScore, RoundRecord
from milr.traces.files import atomic_write_bytes, member, read_member
from milr.traces.writer import png_bytes

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
    images = [_round_image(ctx, run) for run in runs]
    reviewed = _pending_rounds(ctx, runs, images) if asks_person(ctx.critic) else []
    started = time.perf_counter()
    with under_review(reviewed):
        verdicts = score_many(
            ctx.critic,
            images,
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


def _image_name(round_: int) -> str:
    return f"round_{round_:02d}.png"


def _image_path(ctx: MILRContext, run: RunState) -> Path:
    """Where the run's current round's image goes (the path its `round_end` event names)."""
    return ctx.writer(run["run_id"]).run_dir / _image_name(run["round"])


# image path -> the image whose pending files are on disk; weak, so that a finished round's image is
# not kept alive by this table
_PENDING: weakref.WeakValueDictionary[str, Image.Image] = weakref.WeakValueDictionary()


def _pending_rounds(ctx: MILRContext, runs: list[RunState], images: list) -> list[tuple[Image.Image, ReviewedImage]]:
    """Before a person is asked: each round's image and latents on disk, once per drawn image (not again
    on the node's re-runs), then each image paired with its run, round, file and reasoning."""
    paths = [str(_image_path(ctx, run)) for run in runs]
    todo = [
        (run, image) for run, image, path in zip(runs, images, paths, strict=True) if _PENDING.get(path) is not image
    ]
    concurrently(lambda pair: _write_pending(ctx, *pair), todo)  # their fsyncs overlap
    for path, image in zip(paths, images, strict=True):
        _PENDING[path] = image
    return [
        (image, ReviewedImage(run["run_id"], run["round"], path, run["reasoning"]))
        for run, image, path in zip(runs, images, paths, strict=True)
    ]


def _write_pending(ctx: MILRContext, run: RunState, image: Image.Image) -> None:
    writer, k = ctx.writer(run["run_id"]), run["round"]
    tensors, meta = ctx.store(run["run_id"]).tensors()
    writer.save_latents(k, tensors, meta)  # saved again with the record: the same bytes
    atomic_write_bytes(member(writer.run_dir, _image_name(k), "round image"), png_bytes(image))


def _round_image(ctx: MILRContext, run: RunState) -> Image.Image:
    """The image `generate` drew for the run's round: in memory, or, drawn by another process that then
    paused at a question, read back from its pending files with the run's latents."""
    store = ctx.store(run["run_id"])
    if store.image_out is None:
        _restore_pending(ctx, run, store)
        _PENDING[str(_image_path(ctx, run))] = store.image_out  # its files are the ones just read
    return store.image_out


def _restore_pending(ctx: MILRContext, run: RunState, store: LatentStore) -> None:
    writer, k = ctx.writer(run["run_id"]), run["round"]
    try:
        tensors, meta = writer.load_latents(k)
        data = read_member(writer.run_dir, _image_name(k), "round image")
    except FileNotFoundError:
        raise RuntimeError(
            f"run {run['run_id']}: round {k} was drawn by another process and is not on disk; continue the "
            f"run from its trace folder instead (milr resume {writer.run_dir})"
        ) from None
    store.restore(ctx.mug, ctx.run_config(run), tensors, meta)
    image = Image.open(io.BytesIO(data))
    image.load()
    store.image_out = image


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
            "image": str(_image_path(ctx, run)),
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
        image=_image_name(k),
        image_prefix_ids=run["image_prefix_ids"],
        score=verdict.score,
        reward=None if verdict.score is None else reward_from_score(verdict.score),
        critiques=critiques,
        grad_norm={m: s["grad_norm"] for m, s in run["update_stats"].items()},
        step_norm={m: s["step_norm"] for m, s in run["update_stats"].items()},
        seconds=seconds,
        latents=latents,
    )
