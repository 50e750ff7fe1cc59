"""The graph's context from plain settings: model name or path, critic names, config, out folder.

`build_context(model="shapes", critics="shapes", config={"steps": 10}, out="traces")` is what lets
anyone compile `build_graph()` and get complete trace folders without the `MILR` facade. Models and
critics are loaded once per process and cached by their settings, so many graph runs share one model.

`MILRSettings` is the graph's `context_schema`: the same settings as JSON, which is all LangGraph's
server (`langgraph dev`, `langgraph_sdk`) can send. `live_context` turns the context a node receives
into the `MILRContext` it works with: a `MILRContext` passed in (the facade, `build_context` users) is
used as is; settings get one live context per graph run, built on the run's first node and released
(trace writers closed, run-folder locks dropped, latents freed) when the run ends, fails or is
abandoned. A run paused by an `interrupt` keeps its live context for the resume on the same thread
(the resume may leave the context out: the paused run's settings go on).
"""

from __future__ import annotations

import functools
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from milr.config import MILRConfig
from milr.nodes.context import MILRContext
from milr.orchestrator.registry import build_model, build_reward


class MILRSettings(BaseModel):
    """The graph's run context as plain JSON: what `langgraph dev` and the SDK send as `context`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field("shapes", description="`shapes` (packaged), `tiny` (random), a hub id or a local folder.")
    critics: str = Field(
        "shapes", description="Critic names with optional weights, as `--critic` takes them: `gpt4o:0.5,detector:0.5`."
    )
    config: MILRConfig = Field(
        default_factory=MILRConfig,
        description="MILRConfig fields (steps, threshold, lr, ...); the checkpoint's recommendations fill the rest.",
    )
    out: str = Field("traces", description="Folder (on the server's machine) that receives one trace folder per run.")
    max_batch: int = Field(16, ge=1, description="How many runs share one decode.")

    def build(self) -> MILRContext:
        return build_context(self.model, self.critics, self.config, self.out, self.max_batch)


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


# ----------------------------------------------------------------------------- live contexts
def as_settings(context: MILRSettings | dict | None) -> MILRSettings:
    """The settings a run was given: None (no context sent) means the defaults, as `milr run` has."""
    if context is None:
        return MILRSettings()
    if isinstance(context, MILRSettings):
        return context
    if isinstance(context, dict):
        return MILRSettings(**context)
    raise TypeError(
        f"the MILR graph's context must be MILRSettings, a dict of its fields or a MILRContext, "
        f"got {type(context).__name__}"
    )


@dataclass
class _Live:
    """The live context of one graph run (or of one thread, across an interrupt and its resume)."""

    ctx: MILRContext
    settings: MILRSettings
    call: int  # id of the graph call (its stream writer) that uses it now
    paused: bool = False  # the call stopped at an interrupt: keep everything for the resume


_LIVE: dict[object, _Live] = {}
_LOCK = threading.Lock()  # the server runs many graph runs' nodes in threads at once


def live_context(runtime) -> MILRContext:
    """The `MILRContext` a node works with (see the module docstring)."""
    context = runtime.context
    if isinstance(context, MILRContext):
        return context
    settings = as_settings(context)
    call = _call(runtime)
    key = _key(runtime)
    with _LOCK:
        live = _LIVE.get(key)
        # A call that gives no settings (a resume sent without `context`) goes on with the thread's;
        # one that gives other settings starts afresh.
        if live is not None and settings.model_fields_set and live.settings != settings:
            _LIVE.pop(key).ctx.close()
            live = None
        if live is None:
            live = _LIVE[key] = _Live(settings.build(), settings, id(call))
            weakref.finalize(call, _abandon, key, id(call))
        elif live.call != id(call):  # a new call on the thread: the resume of a paused run, or new input
            live.call, live.paused = id(call), False
            weakref.finalize(call, _abandon, key, id(call))
        return live.ctx


def pause_live_context(runtime) -> None:
    """The run stopped at an interrupt: its latents and open trace writers wait for the resume."""
    with _LOCK:
        live = _LIVE.get(_key(runtime))
        if live is not None:
            live.paused = True


def release_live_context(runtime) -> None:
    """The run ended or failed: close its trace writers (dropping the run folders' locks) and free
    its latents. A `MILRContext` passed in belongs to its caller, who closes it (the facade does)."""
    if isinstance(runtime.context, MILRContext):
        return
    with _LOCK:
        live = _LIVE.pop(_key(runtime), None)
    if live is not None:
        live.ctx.close()


def live_runs() -> int:
    """How many graph runs hold a live context in this process (for tests and health checks)."""
    with _LOCK:
        return len(_LIVE)


def _call(runtime) -> object:
    """An object LangGraph makes once per graph call (`stream`, `invoke`, a server run) and drops
    when the call is over: the call's stream writer (its `RunControl` takes no weak reference)."""
    return runtime.stream_writer


def _key(runtime) -> object:
    """Runs on a thread share it across calls (an interrupt's resume is a new call); runs without a
    checkpointer have no thread and live exactly as long as their call."""
    thread = runtime.execution_info.thread_id if runtime.execution_info is not None else None
    return ("thread", thread) if thread is not None else ("call", id(_call(runtime)))


def _abandon(key: object, call: int) -> None:
    """The call is gone (its consumer stopped reading, the server cancelled the run): release its
    context unless it paused at an interrupt or a newer call on the thread took it over."""
    with _LOCK:
        live = _LIVE.get(key)
        if live is None or live.call != call or live.paused:
            return
        del _LIVE[key]
    live.ctx.close()
