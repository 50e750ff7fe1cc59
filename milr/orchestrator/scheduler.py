"""The scheduler: which runs share the batch (DESIGN §2, round-level continuous batching).

`schedule` is the graph's fourth node, run after each critique (and once at the start). It finishes
every run that stopped (summary, final image, report; its slot is freed), then fills the free slots
from the queue: a new prompt starts its trace folder at round 0, and a queued run whose folder is
already on disk (`resume`) continues after its last finished round. So starting and finishing a
run's trace happen inside the graph, and a batch killed at any moment resumes by queueing the same
runs again: the trace folders, fsynced round by round, are the truth; LangGraph checkpoints are
optional. The engine (`JanusMUG`) decodes whatever batch the nodes hand it and knows nothing of runs.
"""

from __future__ import annotations

import dataclasses
import functools
import platform
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib import metadata

import structlog
import torch
import transformers
from langgraph.runtime import Runtime

from milr.config import PLACEMENT_FIELDS, MILRConfig
from milr.critics import Mixer, PromptSpec
from milr.critics.base import Critic
from milr.mug.janus import JanusMUG
from milr.nodes.context import MILRContext, MILRState, QueuedRun, RunState, concurrently
from milr.nodes.critique import stop_reason
from milr.traces import RoundRecord, RunInfo, RunSummary, Trace, TraceWriter, new_run_id
from milr.traces.reader import read_summary

log = structlog.get_logger(__name__)

MIN_REASONING_ROOM = 16  # tokens of context a prompt must leave for the reasoning


def schedule(state: MILRState, runtime: Runtime[MILRContext]) -> dict:
    ctx, emit = runtime.context, runtime.stream_writer
    queue = list(state["queue"]) if "queue" in state else initial_queue(ctx, state)
    runs = dict(state.get("runs", {}))
    finished = list(state.get("finished", []))
    stopped = [run for run in runs.values() if run.get("stop_reason")]
    # The finished runs' files go to disk at once (their fsyncs overlap); events follow in slot order.
    for run, trace in zip(stopped, concurrently(lambda run: write_summary(ctx, run), stopped), strict=True):
        emit(_done_event(trace))
        del runs[run["run_id"]]
        finished.append(run["run_id"])
    while queue and len(runs) < ctx.max_batch:
        entries = [queue.pop(0) for _ in range(min(len(queue), ctx.max_batch - len(runs)))]
        admitted = concurrently(lambda entry: _admit_quietly(ctx, entry), entries)
        for entry, (run, events) in zip(entries, admitted, strict=True):
            for event in events:
                emit(event)
            if run is None:  # already finished on disk, or stopped before it was summarised
                finished.append(entry["run_id"])
            else:
                runs[run["run_id"]] = run
    return {"queue": queue, "runs": runs, "finished": finished}


def _admit_quietly(ctx: MILRContext, entry: QueuedRun) -> tuple[RunState | None, list[dict]]:
    """`admit`, keeping its events for the caller to emit in queue order."""
    events: list[dict] = []
    return admit(ctx, entry, events.append), events


# ----------------------------------------------------------------------------- the queue
def initial_queue(ctx: MILRContext, state: MILRState) -> list[QueuedRun]:
    """The queue of a graph started from `{"prompt": ...}` or `{"prompts": [...], "specs", "seeds"}`.
    Every prompt is checked before any trace folder is written."""
    prompts = state.get("prompts") or ([state["prompt"]] if "prompt" in state else [])
    if not prompts:
        raise ValueError("the MILR graph needs an input: {'prompt': '...'} or {'prompts': [...]}")
    specs = state.get("specs") or [None] * len(prompts)
    seeds = state.get("seeds") or [ctx.config.seed] * len(prompts)
    if not len(specs) == len(seeds) == len(prompts):
        raise ValueError(f"{len(prompts)} prompts need as many specs and seeds, got {len(specs)} and {len(seeds)}")
    return [queued(ctx.mug, prompt, spec, seed=seed) for prompt, spec, seed in zip(prompts, specs, seeds, strict=True)]


def queued(
    mug: JanusMUG, prompt: str, spec: PromptSpec | dict | None, *, seed: int, name: str | None = None, resume=False
) -> QueuedRun:
    """A checked queue entry: the prompt fits the model, the spec is GenEval's schema (parsed from a
    prompt in GenEval's grammar when not given)."""
    spec = check_prompt(mug, prompt, spec)
    return {
        "run_id": new_run_id(prompt, name),
        "prompt": prompt,
        "spec": spec.to_geneval() if spec else None,
        "seed": seed,
        "resume": resume,
    }


def check_prompt(mug: JanusMUG, prompt: str, spec: PromptSpec | dict | None) -> PromptSpec | None:
    """Fail early, before any trace is written, with the argument named."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"prompt must be a non-empty string, got {prompt!r}")
    _check_known_words(mug, prompt)
    n_prompt = len(mug.reasoning_ids(prompt))
    # The image is drawn under prompt + reasoning: leave room for a short plan and every image token.
    room = mug.context_length - n_prompt - mug.num_image_tokens
    if room < MIN_REASONING_ROOM:
        raise ValueError(
            f"prompt is too long: {n_prompt} tokens with the reasoning instruction leave {room} of the model's "
            f"{mug.context_length}-token context for the reasoning and the image; shorten the prompt"
        )
    if spec is None:
        try:
            return PromptSpec.parse(prompt)
        except ValueError:
            return None  # free-form prompt: spec-based critics abstain, judges still score
    if isinstance(spec, dict):
        return PromptSpec.model_validate(spec)
    if isinstance(spec, PromptSpec):
        return spec
    raise TypeError(f"spec must be a PromptSpec, a GenEval metadata dict or None, got {type(spec).__name__}")


def _check_known_words(mug: JanusMUG, prompt: str) -> None:
    """A prompt the tokenizer reads as nothing but `<unk>` would run every round blind (the model
    cannot see it and spec critics cannot parse it): refuse it before any trace is written."""
    unk = mug.tokenizer.unk_token_id
    ids = mug.tokenizer.encode(prompt, add_special_tokens=False)
    if unk is not None and ids and all(i == unk for i in ids):
        raise ValueError(
            f"prompt {prompt[:60]!r} has no word the model's tokenizer knows (every token is "
            f"{mug.tokenizer.unk_token!r}); write it in the model's vocabulary"
        )


# ----------------------------------------------------------------------------- admission
def admit(ctx: MILRContext, entry: QueuedRun, emit) -> RunState | None:
    """Give `entry` a slot: start its trace, or continue the one on disk. None: nothing left to run."""
    run_dir = ctx.out / entry["run_id"]
    if entry.get("resume") and (run_dir / "run.json").is_file():
        return _continue(ctx, entry, emit)
    writer = TraceWriter(run_dir)
    writer.start(run_info(ctx, entry))
    ctx.writers[entry["run_id"]] = writer
    emit({"event": "run_start", "run_id": entry["run_id"], "trace_dir": str(run_dir), "from_round": 0})
    return _fresh(entry)


def _fresh(entry: QueuedRun) -> RunState:
    return {
        "run_id": entry["run_id"],
        "prompt": entry["prompt"],
        "spec": entry.get("spec"),
        "seed": entry["seed"],
        "phase": "new",
        "round": -1,
        "scores": [],
        "seconds": {},
        "stop_reason": None,
        "started": time.time(),
    }


def _continue(ctx: MILRContext, entry: QueuedRun, emit) -> RunState | None:
    # The folder's lock before anything is read: what is read next cannot change under us, and a
    # second process resuming the same run fails here (RunLockedError) instead of repeating rounds.
    writer = TraceWriter(ctx.out / entry["run_id"], resume=True)
    try:
        trace = Trace.load(writer.run_dir)
        _check_same_run(ctx, entry, trace)
    except BaseException:
        writer.close()
        raise
    if trace.summary is not None:
        writer.close()
        emit(_done_event(trace))
        return None
    ctx.writers[entry["run_id"]] = writer
    run = state_from_trace(trace, ctx.config) if trace.rounds else _fresh(entry)
    log.info("resume", run_id=entry["run_id"], from_round=run["round"] + 1)
    emit(
        {"event": "run_start", "run_id": entry["run_id"], "trace_dir": str(trace.path), "from_round": run["round"] + 1}
    )
    if run.get("stop_reason"):  # killed after its last round was written, before its summary
        finish_run(ctx, run, emit)
        return None
    return run


def _check_same_run(ctx: MILRContext, entry: QueuedRun, trace: Trace) -> None:
    """A queued run continues a folder only if the folder holds that very run under these settings."""
    name = trace.path.name
    if trace.run.prompt != entry["prompt"]:
        raise ValueError(f"{name} holds the prompt {trace.run.prompt!r}, not {entry['prompt']!r}; pick another name")
    if trace.run.model_revision and trace.run.model_revision != ctx.mug.revision:
        raise ValueError(
            f"{name} was run with {trace.run.model} at revision {trace.run.model_revision!r}, and this model is "
            f"at {ctx.mug.revision or 'its default revision'}; load it with "
            f"revision={trace.run.model_revision!r} to resume"
        )
    ignored = {"seed", *PLACEMENT_FIELDS}
    on_disk = {k: v for k, v in trace.run.config.items() if k not in ignored}
    here = {k: v for k, v in ctx.config.to_json_dict().items() if k not in ignored}
    differ = sorted(k for k in on_disk.keys() | here.keys() if on_disk.get(k) != here.get(k))
    if differ:
        raise ValueError(
            f"{name} was run with other settings ({', '.join(differ)}); resume it with the config in its "
            "run.json (`milr resume`), or run into another folder"
        )


def state_from_trace(trace: Trace, config: MILRConfig) -> RunState:
    """The state of a run whose last finished round is on disk: critiqued, its update not yet made."""
    last = trace.rounds[-1]
    return {
        "run_id": trace.run.run_id,
        "prompt": trace.run.prompt,
        "spec": trace.run.spec,
        "seed": trace.run.seed,
        "phase": "critiqued",
        "round": last.round,
        "score": last.score,
        "scores": [r.score for r in trace.rounds],
        "reasoning": last.reasoning,
        "text_prefix_ids": last.text_prefix_ids,
        "text_prefix_changed": last.text_prefix_changed,
        "image_prefix_ids": last.image_prefix_ids,
        "updated": last.modality,
        "update_stats": {},
        "seconds": {},
        "stop_reason": stop_reason(last.score, last.round, config),
        "started": time.time(),
    }


def run_info(ctx: MILRContext, entry: QueuedRun) -> RunInfo:
    return RunInfo(
        run_id=entry["run_id"],
        prompt=entry["prompt"],
        spec=entry.get("spec"),
        config=ctx.run_config(entry).to_json_dict(),
        model=ctx.mug.name,
        model_revision=ctx.mug.revision,
        critics=critic_list(ctx.critic),
        seed=entry["seed"],
        versions=dict(software_versions()),  # a copy: the cached one is shared
        device=str(ctx.mug.device),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


@functools.cache
def software_versions() -> dict[str, str]:
    """What every run.json records of the software; read once (metadata.version scans the
    installed distributions: about 1 ms, once per run started)."""
    return {
        "milr": metadata.version("milr"),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


def critic_list(critic: Critic) -> list[dict]:
    if isinstance(critic, Mixer):
        return [{"name": c.name, "weight": w} for c, w in zip(critic.critics, critic.weights, strict=True)]
    return [{"name": critic.name, "weight": 1.0}]


# ----------------------------------------------------------------------------- finishing
def finish_run(ctx: MILRContext, run: RunState, emit) -> None:
    """Write the run's summary, final image and report, free its slot, and say so."""
    emit(_done_event(write_summary(ctx, run)))


def write_summary(ctx: MILRContext, run: RunState) -> Trace:
    """The run's summary, final image and report; frees its slot. Returns the finished trace."""
    writer = ctx.writer(run["run_id"])
    trace = Trace.load(writer.run_dir)
    best = best_round(trace.rounds)
    last = trace.rounds[-1].round
    chosen = best if ctx.config.select == "best" else last
    summary = RunSummary(
        stop_reason=run.get("stop_reason") or "steps",
        best_round=best,
        last_round=last,
        final_round=chosen,
        final_score=trace.rounds[chosen].score,
        rounds=len(trace.rounds),
        seconds=time.time() - run["started"],
        select=ctx.config.select,
    )
    # The round's PNG file as it is (decoding it to encode it again gave the same pixels, slower).
    writer.finish(summary, trace.rounds[chosen].image_bytes(), trace)
    ctx.release(run["run_id"])
    log.info("run_done", run_id=run["run_id"], stop_reason=summary.stop_reason, rounds=summary.rounds)
    return dataclasses.replace(trace, summary=read_summary(writer.run_dir))  # no round changed: read the summary


def _done_event(trace: Trace) -> dict:
    return {
        "event": "run_done",
        "run_id": trace.run.run_id,
        "trace_dir": str(trace.path),
        "summary": trace.summary.model_dump(),
    }


def best_round(rounds: Sequence[RoundRecord]) -> int:
    """Highest score wins; ties go to the earliest round; abstained rounds rank last."""
    scored = [(r.score if r.score is not None else -1.0, -r.round) for r in rounds]
    return -max(scored)[1]
