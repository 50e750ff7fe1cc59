"""`latent_update` node: one REINFORCE step on each continuing run's prefixes, those the strategy
chooses (DESIGN §3). Every run keeps its own Adam states; the steps are small and run one by one."""

from __future__ import annotations

import time
from dataclasses import asdict

from langgraph.runtime import Runtime

from milr.config import MILRConfig
from milr.mug.latents import reward_from_score
from milr.nodes.context import MILRContext, MILRState, RunState, active, with_runs


def modalities_for_step(step: int, config: MILRConfig) -> list[str]:
    """Which prefixes update `step` (1-based) moves: joint = both; alt = text on odd steps, image on
    even; t2v = text for the first ⌊K/2⌋ steps, then image. Always within `config.optimize`."""
    if config.strategy == "joint":
        chosen = ["text", "image"]
    elif config.strategy == "alt":
        chosen = ["text"] if step % 2 == 1 else ["image"]
    else:
        chosen = ["text"] if step <= config.steps // 2 else ["image"]
    return [m for m in chosen if m in config.optimize]


def latent_update(state: MILRState, runtime: Runtime[MILRContext]) -> dict:
    """One REINFORCE step for every run whose round was critiqued and that goes on."""
    ctx = runtime.context
    runs = [run for run in active(state, "critiqued") if not run.get("stop_reason")]
    return with_runs(state, [_step(ctx, run) for run in runs]) if runs else {}


def _step(ctx: MILRContext, run: RunState) -> RunState:
    mug, cfg = ctx.mug, ctx.run_config(run)
    store = ctx.store(run["run_id"])
    if not store.ready:  # a resumed run: read the prefixes of its last finished round back
        store.restore(mug, cfg, *ctx.writer(run["run_id"]).load_latents(run["round"]))
    started = time.perf_counter()
    # An all-abstain round has no score: R = 0 leaves the latents as they are (no evidence, no push).
    reward = 0.0 if run["score"] is None else reward_from_score(run["score"])
    heads = {"text": mug.text_logits, "image": lambda z: mug.image_logits(z, cfg.cfg, cfg.temperature)}
    modalities = modalities_for_step(run["round"] + 1, cfg)
    stats = {m: asdict(store.prefix(m).step(heads[m], reward)) for m in modalities}
    updated = "both" if len(modalities) == 2 else (modalities[0] if modalities else "none")
    seconds = {"update": time.perf_counter() - started}
    return {**run, "phase": "updated", "updated": updated, "update_stats": stats, "seconds": seconds}
