"""`generate` node: round 0 decodes from scratch; round k > 0 decodes the optimised prefixes
(text: argmax of Zt, image: sampled from the fused distribution of Zv) and lets the model continue."""

from __future__ import annotations

import time

import structlog
from langgraph.runtime import Runtime

from milr.mug.janus import image_prompt
from milr.mug.latents import argmax_tokens, sample_tokens
from milr.nodes.context import MILRContext, MILRState

log = structlog.get_logger(__name__)


def generate(state: MILRState, runtime: Runtime[MILRContext]) -> dict:
    ctx = runtime.context
    mug, cfg, store = ctx.mug, ctx.config, ctx.store
    k = state["round"] + 1
    runtime.stream_writer({"event": "round_start", "round": k, "run_id": state["run_id"]})
    if k > 0 and not store.ready:  # a resumed run: read the prefixes back from the trace
        store.restore(mug, cfg, *ctx.writer.load_latents(state["round"]))
    started = time.perf_counter()
    if k == 0:
        store.start(mug, cfg)
        text = mug.reason(state["prompt"], max_new_tokens=cfg.max_reasoning_tokens)
        forced: dict[int, int] = {}
    else:
        text = _decode_text(state, ctx)
        forced = _decode_image_prefix(ctx)
    image = mug.draw(
        image_prompt(state["prompt"], text.text),
        forced=forced,
        cfg=cfg.cfg,
        temperature=cfg.temperature,
        generator=store.generator,
    )
    if k == 0:
        store.capture(mug, cfg, text, image.latents)
    store.reasoning, store.image_out = text, image.image
    text_prefix = text.ids[: len(store.text.positions)] if store.text is not None else []
    image_prefix = [image.ids[p] for p in store.image.positions] if store.image is not None else []
    seconds = dict(state.get("seconds") or {}, decode=time.perf_counter() - started)
    return {
        "round": k,
        "reasoning": text.text,
        "text_prefix_ids": text_prefix,
        "text_prefix_changed": k > 0 and text_prefix != state.get("text_prefix_ids"),
        "image_prefix_ids": image_prefix,
        "seconds": seconds,
        "updated": state.get("updated", "none") if k > 0 else "none",
        "update_stats": state.get("update_stats", {}) if k > 0 else {},
    }


def _decode_text(state: MILRState, ctx: MILRContext):
    """Argmax of the optimised text latents, then greedy continuation; reuse the last decode when
    the prefix did not change (greedy decoding would reproduce it token for token)."""
    store = ctx.store
    if store.text is None:
        return store.reasoning
    prefix = argmax_tokens(ctx.mug.text_logits, store.text.z)
    if prefix == store.reasoning.ids[: len(prefix)]:
        return store.reasoning
    return ctx.mug.reason(state["prompt"], prefix_ids=prefix, max_new_tokens=ctx.config.max_reasoning_tokens)


def _decode_image_prefix(ctx: MILRContext) -> dict[int, int]:
    store, cfg = ctx.store, ctx.config
    if store.image is None:
        return {}  # image not optimised: the whole image is sampled afresh (the authors' text-only mode)
    tokens = sample_tokens(lambda z: ctx.mug.image_logits(z, cfg.cfg, cfg.temperature), store.image.z, store.generator)
    return dict(zip(store.image.positions, tokens, strict=True))
