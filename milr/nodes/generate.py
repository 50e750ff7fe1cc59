"""`generate` node: every active run decodes in one batch, round-0 runs from scratch and round-k runs
from their optimised prefixes (text: argmax of Zt, then greedy continuation; image: sampled from the
fused distribution of Zv, then the rest with CFG), side by side. Each run samples from its own
generator, so its image does not depend on which runs share the batch."""

from __future__ import annotations

import time

from langgraph.runtime import Runtime

from milr.mug.janus import TextRollout, image_prompt
from milr.mug.latents import argmax_tokens, sample_tokens
from milr.nodes.context import MILRContext, MILRState, RunState, active, with_runs


def generate(state: MILRState, runtime: Runtime[MILRContext]) -> dict:
    ctx = runtime.context
    runs = active(state, "new") + active(state, "updated")
    if not runs:
        return {}
    for run in runs:
        runtime.stream_writer({"event": "round_start", "round": run["round"] + 1, "run_id": run["run_id"]})
    started = time.perf_counter()
    texts = _reasoning(ctx, runs)
    forced = [_image_prefix(ctx, run) for run in runs]  # after the text: each run's sampling order
    cfg = ctx.config
    images = ctx.mug.draw_batch(
        [image_prompt(run["prompt"], text.text) for run, text in zip(runs, texts, strict=True)],
        forced=forced,
        cfg=cfg.cfg,
        temperature=cfg.temperature,
        generators=[ctx.store(run["run_id"]).generator for run in runs],
    )
    seconds = time.perf_counter() - started
    out = []
    for run, text, image in zip(runs, texts, images, strict=True):
        k = run["round"] + 1
        store = ctx.store(run["run_id"])
        if k == 0:
            store.capture(ctx.mug, ctx.run_config(run), text, image.latents)
        store.reasoning, store.image_out = text, image.image
        text_prefix = text.ids[: len(store.text.positions)] if store.text is not None else []
        image_prefix = [image.ids[p] for p in store.image.positions] if store.image is not None else []
        out.append(
            {
                **run,
                "phase": "generated",
                "round": k,
                "reasoning": text.text,
                "text_prefix_ids": text_prefix,
                "text_prefix_changed": k > 0 and text_prefix != run.get("text_prefix_ids"),
                "image_prefix_ids": image_prefix,
                # The batch decoded together: each run waited for all of it.
                "seconds": dict(run.get("seconds") or {}, decode=seconds, batch=float(len(runs))),
                "updated": run.get("updated", "none") if k > 0 else "none",
                "update_stats": run.get("update_stats", {}) if k > 0 else {},
            }
        )
    return with_runs(state, out)


def _reasoning(ctx: MILRContext, runs: list[RunState]) -> list[TextRollout]:
    """Each run's reasoning for this round; the runs that need a decode share one batch.

    Round 0 decodes from scratch. Round k decodes the argmax prefix of the optimised text latents,
    or reuses the last decode when that prefix did not change (greedy decoding would reproduce it)."""
    texts: list[TextRollout | None] = []
    todo: list[tuple[int, list[int]]] = []
    for i, run in enumerate(runs):
        store = ctx.store(run["run_id"])
        if run["round"] < 0:
            store.start(ctx.mug, ctx.run_config(run))
            texts.append(None)
            todo.append((i, []))
        elif store.text is None:
            texts.append(store.reasoning)  # text not optimised: the plan stays
        else:
            prefix = argmax_tokens(ctx.mug.text_logits, store.text.z)
            if prefix == store.reasoning.ids[: len(prefix)]:
                texts.append(store.reasoning)
            else:
                texts.append(None)
                todo.append((i, prefix))
    if todo:
        decoded = ctx.mug.reason_batch(
            [runs[i]["prompt"] for i, _ in todo],
            [prefix for _, prefix in todo],
            max_new_tokens=ctx.config.max_reasoning_tokens,
        )
        for (i, _), text in zip(todo, decoded, strict=True):
            texts[i] = text
    return texts


def _image_prefix(ctx: MILRContext, run: RunState) -> dict[int, int]:
    store, cfg = ctx.store(run["run_id"]), ctx.config
    if run["round"] < 0 or store.image is None:
        return {}  # round 0, or image not optimised: the whole image is sampled (the authors' text-only mode)
    head = lambda z: ctx.mug.image_logits(z, cfg.cfg, cfg.temperature)  # noqa: E731
    tokens = sample_tokens(head, store.image.z, store.generator)
    return dict(zip(store.image.positions, tokens, strict=True))
