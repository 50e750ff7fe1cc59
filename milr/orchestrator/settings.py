"""The graph's context from plain settings: model name or path, critic names, config, out folder.

`build_context(model="shapes", critics="shapes", config={"steps": 10}, out="traces")` is what lets
anyone compile `build_graph()` and get complete trace folders without the `MILR` facade, and what a
LangGraph server builds from JSON settings. Models and critics are loaded once per process and cached
by their settings, so many graph runs share one model.
"""

from __future__ import annotations

import functools
from pathlib import Path

from milr.config import MILRConfig
from milr.nodes.context import MILRContext
from milr.orchestrator.registry import build_model, build_reward


def build_context(
    model: str = "shapes",
    critics: str = "shapes",
    config: MILRConfig | dict | None = None,
    out: str | Path = "traces",
    max_batch: int = 16,
) -> MILRContext:
    """A `MILRContext` for `build_graph()` from settings only.

    Args:
        model: `shapes` (packaged), `tiny` (random), a hub id or a local Janus-Pro folder.
        critics: critic names with optional weights, as `--critic` takes them (`gpt4o:0.5,detector:0.5`).
        config: `MILRConfig` or its fields as a dict; the checkpoint's recommendations fill the rest.
        out: folder that receives one trace folder per run.
        max_batch: how many runs share one decode.
    """
    config = config if isinstance(config, MILRConfig) else MILRConfig(**(config or {}))
    mug = _model(model, _placement(config))
    return MILRContext(
        mug=mug,
        critic=_critic(critics, model, _placement(config)),
        config=config.with_recommended(mug.recommended),
        out=Path(out),
        max_batch=max_batch,
    )


def _placement(config: MILRConfig) -> MILRConfig:
    """Only the fields that decide how a model is loaded: the cache key."""
    return MILRConfig(
        device=config.device,
        dtype=config.dtype,
        max_reasoning_tokens=config.max_reasoning_tokens,
        compile=config.compile,
    )


@functools.lru_cache(maxsize=4)
def _model(model: str, placement: MILRConfig):
    return build_model(model, placement)


@functools.lru_cache(maxsize=16)
def _critic(critics: str, model: str, placement: MILRConfig):
    return build_reward(critics, _model(model, placement))
