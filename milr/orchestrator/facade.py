"""`MILR`: the one entry point. Load a model, pass critics, call it with a prompt.

    >>> from milr import MILR, MILRConfig
    >>> from milr.shapes import ShapesOracle
    >>> milr = MILR.from_pretrained("shapes", critics=[ShapesOracle()], config=MILRConfig(steps=10))
    >>> result = milr("a photo of a triangle above a circle")
    >>> result.image, result.score, result.trace_dir

Each call runs the LangGraph loop of `build_graph()`, writes a trace folder and returns a
`MILRResult`. `stream()` yields the per-round events live; `resume()` continues a killed run from
its last finished round with the same latents, optimiser state and sampling generator.
"""

from __future__ import annotations

import contextlib
import platform
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata, resources
from pathlib import Path

import structlog
import torch
import transformers
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from PIL import Image

from milr.config import MILRConfig
from milr.critics import Mixer, PromptSpec
from milr.critics.base import Critic
from milr.mug.janus import JanusMUG
from milr.nodes.context import LatentStore, MILRContext, MILRState
from milr.nodes.critique import stop_reason
from milr.orchestrator.graph import build_graph, recursion_limit
from milr.traces import RoundRecord, RunInfo, RunSummary, Trace, TraceWriter, new_run_id

log = structlog.get_logger(__name__)

PACKAGED_MODELS = {"shapes": "milr.shapes"}  # name -> package holding a `checkpoint/` folder
MIN_REASONING_ROOM = 16  # tokens of context a prompt must leave for the reasoning


def resolve_model(name_or_path: str | Path) -> str | Path:
    """`shapes` → the ShapesWorld checkpoint shipped inside milr; anything else unchanged."""
    if str(name_or_path) in PACKAGED_MODELS:
        folder = resources.files(PACKAGED_MODELS[str(name_or_path)]) / "checkpoint"
        if not folder.is_dir():
            raise FileNotFoundError(
                f"the packaged {name_or_path!r} checkpoint is missing from this install; "
                "train it with `python -m milr.shapes.train --out milr/shapes/checkpoint`"
            )
        return Path(str(folder))
    return name_or_path


def load_mug(model: str | Path, config: MILRConfig) -> JanusMUG:
    """The model named `model`, placed as `config` says; packaged models keep their short name
    (so no local path ends up in a trace)."""
    mug = JanusMUG.from_pretrained(
        resolve_model(model),
        dtype=config.dtype,
        device=config.device,
        max_reasoning_tokens=config.max_reasoning_tokens,
        compile=config.compile,
    )
    if str(model) in PACKAGED_MODELS:
        mug.name = str(model)
    return mug


def _final_result(events: Iterator[dict]) -> MILRResult | None:
    """Drain an event stream; the result rides on its last (`done`) event."""
    result = None
    for event in events:
        if event["event"] == "done":
            result = event["result"]
    return result


@dataclass
class MILRResult:
    """What one MILR run returns: the chosen image and everything needed to inspect the run."""

    image: Image.Image
    score: float | None
    final_round: int  # the returned round (best or last, per `select`)
    best_round: int
    last_round: int
    rounds: list[RoundRecord]
    trace_dir: Path
    stop_reason: str
    seconds: float

    @property
    def reasoning(self) -> str:
        return self.rounds[self.final_round].reasoning

    def __repr__(self) -> str:
        return (
            f"MILRResult(score={self.score}, final_round={self.final_round}, rounds={len(self.rounds)}, "
            f"stop_reason={self.stop_reason!r}, trace_dir={self.trace_dir.name!r})"
        )


class MILR:
    """Test-time latent reasoning around a Janus model and a set of critics.

    Args:
        mug: the model (`JanusMUG`).
        critics: one critic, or several (mixed by `Mixer` with `weights`, equal by default).
        config: `MILRConfig` (paper defaults, `select="best"`).
        out: folder that receives one trace folder per run.
        checkpoint: keep LangGraph checkpoints in `<run>/checkpoints.sqlite` (the CLI does).
    """

    def __init__(
        self,
        mug: JanusMUG,
        critics: Critic | Sequence[Critic],
        config: MILRConfig | None = None,
        *,
        weights: Sequence[float] | None = None,
        out: str | Path = "traces",
        checkpoint: bool = False,
    ):
        self.mug = mug
        self.critic = _one_critic(critics, weights)
        self.config = config or MILRConfig()
        self.out = Path(out)
        self.checkpoint = checkpoint

    @classmethod
    def from_pretrained(
        cls,
        model: str | Path = "shapes",
        critics: Critic | Sequence[Critic] | None = None,
        config: MILRConfig | None = None,
        **kwargs,
    ) -> MILR:
        """Load `model` ("shapes", a Janus-Pro hub id such as `deepseek-community/Janus-Pro-7B`, or a
        local folder) on `config.device` / `config.dtype`, and wrap it with `critics`."""
        if critics is None:
            raise ValueError("critics is required: pass e.g. critics=[ShapesOracle()] or [OpenAIJudge()]")
        config = config or MILRConfig()
        mug = load_mug(model, config)
        return cls(mug, critics, config.with_recommended(mug.recommended), **kwargs)

    # ------------------------------------------------------------------ running
    def __call__(self, prompt: str, spec: PromptSpec | dict | None = None, *, name: str | None = None) -> MILRResult:
        """Run MILR on `prompt` and return the result (see `MILRResult`)."""
        return _final_result(self.stream(prompt, spec, name=name))

    def stream(self, prompt: str, spec: PromptSpec | dict | None = None, *, name: str | None = None) -> Iterator[dict]:
        """Run MILR and yield events as they happen: `run_start`, per round `round_start` and
        `round_end` (score, per-critic scores, reasoning, image path), finally `done` with the result."""
        spec = self.check_inputs(prompt, spec)
        run_id = new_run_id(prompt, name)
        writer = TraceWriter(self.out / run_id)
        writer.start(self._run_info(run_id, prompt, spec))
        yield {"event": "run_start", "run_id": run_id, "trace_dir": str(writer.run_dir)}
        state: MILRState = {
            "prompt": prompt,
            "spec": spec.to_geneval() if spec else None,
            "run_id": run_id,
            "round": -1,
            "scores": [],
            "seconds": {},
        }
        yield from self._drive(writer, self.config, state, None)

    def resume(self, run_dir: str | Path) -> MILRResult:
        """Continue a killed run from its last finished round: no round lost, none repeated."""
        return _final_result(self.stream_resume(run_dir))

    def stream_resume(self, run_dir: str | Path) -> Iterator[dict]:
        """`resume()` as a stream of the same events as `stream()`."""
        trace = Trace.load(run_dir)
        config = MILRConfig(**trace.run.config)
        writer = TraceWriter(Path(run_dir), resume=True)
        if trace.summary is not None or not trace.rounds:
            if not trace.rounds:
                raise ValueError(f"{Path(run_dir).name}: no finished round to resume from; start the run again")
            yield {"event": "done", "result": _result_from_trace(trace)}
            return
        state = _state_from_trace(trace, config)
        log.info("resume", run_id=trace.run.run_id, from_round=state["round"])
        yield {"event": "run_start", "run_id": trace.run.run_id, "trace_dir": str(writer.run_dir)}
        yield from self._drive(writer, config, state, trace)

    def _drive(self, writer: TraceWriter, config: MILRConfig, state: MILRState, resumed: Trace | None):
        started = time.perf_counter()
        ctx = MILRContext(self.mug, self.critic, config, writer, LatentStore())
        run_cfg = {"configurable": {"thread_id": state["run_id"]}, "recursion_limit": recursion_limit(config.steps)}
        with self._compiled(writer.run_dir, resumed is not None) as graph:
            graph_input = state
            if resumed is not None and not state.get("stop_reason"):
                run_cfg, graph_input = _resume_point(graph, run_cfg, state)
            final = state
            if not state.get("stop_reason"):
                try:
                    for mode, chunk in graph.stream(
                        graph_input, run_cfg, context=ctx, stream_mode=["custom", "values"]
                    ):
                        if mode == "custom":
                            yield chunk
                        else:
                            final = chunk
                except Exception:
                    # Finished rounds are already on disk; say how to continue from them.
                    log.error(
                        "run_failed",
                        run_id=state["run_id"],
                        hint="finished rounds are kept: milr resume <out>/<run_id>",
                    )
                    raise
        result = self._finish(writer, config, final, time.perf_counter() - started)
        yield {"event": "done", "result": result}

    @contextlib.contextmanager
    def _compiled(self, run_dir: Path, resuming: bool = False):
        db = run_dir / "checkpoints.sqlite"
        if not (self.checkpoint or db.exists()):
            # Resuming needs a checkpointer to enter the graph after `critique`; in memory is enough.
            yield build_graph().compile(checkpointer=InMemorySaver() if resuming else None)
            return
        with SqliteSaver.from_conn_string(str(db)) as saver:
            yield build_graph().compile(checkpointer=saver)

    @property
    def graph(self):
        """The compiled LangGraph (no checkpointer); pass `context=MILRContext(...)` to run it."""
        return build_graph().compile()

    # ------------------------------------------------------------------ checks and records
    def check_inputs(self, prompt: str, spec: PromptSpec | dict | None) -> PromptSpec | None:
        """Fail early, before any trace is written, with the argument named."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"prompt must be a non-empty string, got {prompt!r}")
        n_prompt = len(self.mug.reasoning_ids(prompt))
        # The image is drawn under prompt + reasoning: leave room for a short plan and every image token.
        room = self.mug.context_length - n_prompt - self.mug.num_image_tokens
        if room < MIN_REASONING_ROOM:
            raise ValueError(
                f"prompt is too long: {n_prompt} tokens with the reasoning instruction leave {room} of the model's "
                f"{self.mug.context_length}-token context for the reasoning and the image; shorten the prompt"
            )
        if spec is None:
            return _parse_or_none(prompt)
        if isinstance(spec, dict):
            return PromptSpec.model_validate(spec)
        if isinstance(spec, PromptSpec):
            return spec
        raise TypeError(f"spec must be a PromptSpec, a GenEval metadata dict or None, got {type(spec).__name__}")

    def _run_info(self, run_id: str, prompt: str, spec: PromptSpec | None) -> RunInfo:
        return RunInfo(
            run_id=run_id,
            prompt=prompt,
            spec=spec.to_geneval() if spec else None,
            config=self.config.to_json_dict(),
            model=self.mug.name,
            model_revision=None,
            critics=_critic_list(self.critic),
            seed=self.config.seed,
            versions={
                "milr": metadata.version("milr"),
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "python": platform.python_version(),
            },
            device=str(self.mug.device),
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )

    def _finish(self, writer: TraceWriter, config: MILRConfig, final: MILRState, seconds: float) -> MILRResult:
        trace = Trace.load(writer.run_dir)
        best = best_round(trace.rounds)
        last = trace.rounds[-1].round
        chosen = best if config.select == "best" else last
        summary = RunSummary(
            stop_reason=final.get("stop_reason") or "steps",
            best_round=best,
            last_round=last,
            final_round=chosen,
            final_score=trace.rounds[chosen].score,
            rounds=len(trace.rounds),
            seconds=seconds,
            select=config.select,
        )
        writer.finish(summary, trace.rounds[chosen].image)
        return _result_from_trace(Trace.load(writer.run_dir))


def best_round(rounds: Sequence[RoundRecord]) -> int:
    """Highest score wins; ties go to the earliest round; abstained rounds rank last."""
    scored = [(r.score if r.score is not None else -1.0, -r.round) for r in rounds]
    return -max(scored)[1]


def _one_critic(critics: Critic | Sequence[Critic], weights: Sequence[float] | None) -> Critic:
    if isinstance(critics, Critic):
        critics = [critics]
    critics = list(critics)
    if not critics:
        raise ValueError("critics must hold at least one critic")
    if len(critics) == 1 and weights is None:
        return critics[0]
    return Mixer(critics, weights=weights)


def _critic_list(critic: Critic) -> list[dict]:
    if isinstance(critic, Mixer):
        return [{"name": c.name, "weight": w} for c, w in zip(critic.critics, critic.weights, strict=True)]
    return [{"name": critic.name, "weight": 1.0}]


def _parse_or_none(prompt: str) -> PromptSpec | None:
    try:
        return PromptSpec.parse(prompt)
    except ValueError:
        return None  # free-form prompt: spec-based critics abstain, judges still score


def _state_from_trace(trace: Trace, config: MILRConfig) -> MILRState:
    last = trace.rounds[-1]
    return {
        "prompt": trace.run.prompt,
        "spec": trace.run.spec,
        "run_id": trace.run.run_id,
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
    }


def _resume_point(graph, run_cfg: dict, state: MILRState) -> tuple[dict, None]:
    """The checkpoint right after the last finished round's critique; if the process died before
    LangGraph saved it, write that state as the critique's output (LangGraph's fork mechanism)."""
    for snapshot in graph.get_state_history(run_cfg):
        if snapshot.values.get("round") == state["round"] and snapshot.next == ("latent_update",):
            return {**run_cfg, "configurable": dict(snapshot.config["configurable"])}, None
    forked = graph.update_state(run_cfg, state, as_node="critique")
    return {**run_cfg, "configurable": dict(forked["configurable"])}, None


def _result_from_trace(trace: Trace) -> MILRResult:
    summary = trace.summary
    return MILRResult(
        image=trace.rounds[summary.final_round].image,
        score=summary.final_score,
        final_round=summary.final_round,
        best_round=summary.best_round,
        last_round=summary.last_round,
        rounds=list(trace.rounds),
        trace_dir=Path(trace.path),
        stop_reason=summary.stop_reason,
        seconds=summary.seconds,
    )
