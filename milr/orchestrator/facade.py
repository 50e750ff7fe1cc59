"""`MILR`: the one entry point. Load a model, pass critics, call it with a prompt or a batch.

    >>> from milr import MILR, MILRConfig
    >>> from milr.shapes import ShapesOracle
    >>> milr = MILR.from_pretrained("shapes", critics=[ShapesOracle()], config=MILRConfig(steps=10))
    >>> result = milr("a photo of a triangle above a circle")
    >>> result.image, result.score, result.trace_dir
    >>> results = milr.batch(["a photo of two circles", "a photo of a red square"], max_batch=16)

Every call runs the LangGraph loop of `build_graph()` over a batch of runs (a single prompt is a
batch of one), writes one trace folder per run and returns `MILRResult`s. `stream()` and
`stream_batch()` yield the per-round events live, each tagged with its `run_id`; `resume()` continues
killed runs from their last finished round with the same latents, optimiser state and sampling state.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import structlog
from PIL import Image

from milr.config import MILRConfig
from milr.critics import Mixer, PromptSpec
from milr.critics.base import Critic, check_critic
from milr.mug.janus import JanusMUG
from milr.nodes.context import MILRContext, QueuedRun
from milr.orchestrator.graph import build_graph, recursion_limit
from milr.orchestrator.scheduler import best_round, check_prompt, queued
from milr.orchestrator.serde import memory_saver, sqlite_saver
from milr.traces import RoundRecord, Trace

log = structlog.get_logger(__name__)

PACKAGED_MODELS = {"shapes": "milr.shapes"}  # name -> package holding a `checkpoint/` folder
DEFAULT_MAX_BATCH = 16
__all__ = ["MILR", "MILRResult", "best_round", "load_mug", "resolve_model"]


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
        checkpoint: keep LangGraph checkpoints in `<out>/checkpoints.sqlite` (the CLI does). Resume
            does not need them: it reads the trace folders.
        max_batch: how many runs share one decode (default 16); `batch()` can override it.
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
        max_batch: int = DEFAULT_MAX_BATCH,
    ):
        self.mug = mug
        self.critic = _one_critic(critics, weights)
        self.config = config or MILRConfig()
        self.out = Path(out)
        self.checkpoint = checkpoint
        self.max_batch = _check_max_batch(max_batch)

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
        return self.batch([prompt], None if spec is None else [spec], names=None if name is None else [name])[0]

    def stream(self, prompt: str, spec: PromptSpec | dict | None = None, *, name: str | None = None) -> Iterator[dict]:
        """Run MILR and yield events as they happen: `run_start`, per round `round_start` and
        `round_end` (score, per-critic scores, reasoning, image path), finally `done` with the result."""
        yield from self.stream_batch(
            [prompt], None if spec is None else [spec], names=None if name is None else [name]
        )

    def batch(
        self,
        prompts: Sequence[str],
        specs: Sequence[PromptSpec | dict | None] | None = None,
        *,
        names: Sequence[str | None] | None = None,
        seeds: Sequence[int] | None = None,
        max_batch: int | None = None,
        resume: bool = False,
    ) -> list[MILRResult]:
        """Run MILR on every prompt, `max_batch` at a time sharing each decode; results in input order.

        A run that stops frees its slot for the next prompt at round 0, so the batch stays full while
        stragglers run on. `seeds` default to `config.seed` for every prompt (each run samples from its
        own generator, so a run's result does not depend on its batch mates). `resume=True` continues
        the trace folders already under `out` (same `names`) and runs what is missing: re-running a
        killed batch with it loses and repeats no round."""
        entries = self._queue(prompts, specs, names, seeds, resume)
        return _results_in_order(self._drive(entries, self.config, max_batch), [e["run_id"] for e in entries])

    def stream_batch(
        self,
        prompts: Sequence[str],
        specs: Sequence[PromptSpec | dict | None] | None = None,
        *,
        names: Sequence[str | None] | None = None,
        seeds: Sequence[int] | None = None,
        max_batch: int | None = None,
        resume: bool = False,
    ) -> Iterator[dict]:
        """`batch()` as a stream of events, each with its `run_id`: `run_start`, `round_start`,
        `round_end`, and `done` (with that run's `MILRResult`) as each run finishes."""
        entries = self._queue(prompts, specs, names, seeds, resume)
        yield from self._drive(entries, self.config, max_batch)

    def resume(self, run_dir: str | Path) -> MILRResult:
        """Continue a killed run from its last finished round: no round lost, none repeated."""
        return self.resume_batch([run_dir])[0]

    def stream_resume(self, *run_dirs: str | Path, max_batch: int | None = None) -> Iterator[dict]:
        """`resume()` of one or several runs (batched together) as a stream of the same events as
        `stream_batch()`. The runs' settings come from their `run.json`; they must agree but for the seed."""
        check_critic(self.critic)  # a critic that cannot work fails now, not after a round
        traces = [Trace.load(d) for d in run_dirs]
        if not traces:
            raise ValueError("stream_resume needs at least one run folder")
        config = _shared_config(traces)
        folders = {Path(t.path).parent.resolve() for t in traces}
        if len(folders) != 1:
            raise ValueError("runs resumed together must sit in one folder; resume them one folder at a time")
        entries: list[QueuedRun] = [
            {"run_id": t.path.name, "prompt": t.run.prompt, "spec": t.run.spec, "seed": t.run.seed, "resume": True}
            for t in traces
        ]
        yield from self._drive(entries, config, max_batch, out=Path(traces[0].path).parent)

    def resume_batch(self, run_dirs: Sequence[str | Path], *, max_batch: int | None = None) -> list[MILRResult]:
        """`resume()` for several runs of one folder, decoded together; results in input order."""
        return _results_in_order(self.stream_resume(*run_dirs, max_batch=max_batch), [Path(d).name for d in run_dirs])

    # ------------------------------------------------------------------ the graph
    def context(self, config: MILRConfig | None = None, *, out: Path | None = None, max_batch: int | None = None):
        """The `MILRContext` this facade runs the graph with."""
        return MILRContext(
            self.mug,
            self.critic,
            config or self.config,
            out or self.out,
            max_batch=_check_max_batch(max_batch or self.max_batch),
        )

    def _queue(self, prompts, specs, names, seeds, resume: bool) -> list[QueuedRun]:
        """Checked queue entries for every prompt, before any trace folder is written."""
        check_critic(self.critic)  # a critic that cannot work fails now, not after round 0
        if isinstance(prompts, str):
            raise TypeError("prompts must be a list of strings; for one prompt call milr(prompt)")
        prompts = list(prompts)
        specs = list(specs) if specs is not None else [None] * len(prompts)
        names = list(names) if names is not None else [None] * len(prompts)
        seeds = list(seeds) if seeds is not None else [self.config.seed] * len(prompts)
        for what, values in (("specs", specs), ("names", names), ("seeds", seeds)):
            if len(values) != len(prompts):
                raise ValueError(f"{what} has {len(values)} entries for {len(prompts)} prompts; give one per prompt")
        entries = [
            queued(self.mug, p, s, seed=seed, name=n, resume=resume)
            for p, s, n, seed in zip(prompts, specs, names, seeds, strict=True)
        ]
        ids = [e["run_id"] for e in entries]
        if len(set(ids)) != len(ids):
            raise ValueError("names must be distinct: each run gets its own trace folder")
        if not resume:
            for run_id in ids:
                folder = self.out / run_id
                if folder.is_dir() and any(folder.iterdir()):
                    raise FileExistsError(f"trace folder {run_id!r} already holds a run; pick another name")
        return entries

    def _drive(self, entries: list[QueuedRun], config: MILRConfig, max_batch: int | None, out: Path | None = None):
        if not entries:
            return
        ctx = self.context(config, out=out, max_batch=max_batch)
        thread = entries[0]["run_id"] if len(entries) == 1 else f"batch-{entries[0]['run_id']}-{len(entries)}"
        run_cfg = {
            "configurable": {"thread_id": thread},
            "recursion_limit": recursion_limit(config.steps, len(entries)),
        }
        # The trace folders are the truth: a checkpointed thread of an earlier, killed process must not
        # bring back its active runs (their latents lived in that process), so the input resets them.
        start = {"queue": entries, "runs": {}, "finished": []}
        try:
            with self._compiled(ctx.out) as graph:
                try:
                    for _mode, chunk in graph.stream(start, run_cfg, context=ctx, stream_mode=["custom"]):
                        yield _with_result(chunk)
                except Exception:
                    # Finished rounds are already on disk; say how to continue from them.
                    log.error(
                        "run_failed", runs=len(entries), hint="finished rounds are kept: milr resume <out>/<run_id>"
                    )
                    raise
        finally:
            ctx.close()  # release the run folders' locks, however the stream ended

    @contextlib.contextmanager
    def _compiled(self, out: Path):
        if not self.checkpoint:
            yield build_graph().compile(checkpointer=memory_saver())
            return
        out.mkdir(parents=True, exist_ok=True)
        with sqlite_saver(out / "checkpoints.sqlite") as saver:  # checkpoints redacted (serde.py)
            yield build_graph().compile(checkpointer=saver)

    @property
    def graph(self):
        """The compiled LangGraph (no checkpointer); pass `context=milr.context()` to run it."""
        return build_graph().compile()

    # ------------------------------------------------------------------ checks
    def check_inputs(self, prompt: str, spec: PromptSpec | dict | None) -> PromptSpec | None:
        """Fail early, before any trace is written, with the argument named."""
        return check_prompt(self.mug, prompt, spec)


def _results_in_order(events: Iterator[dict], run_ids: list[str]) -> list[MILRResult]:
    """Drain a batch's event stream; each run's result rides on its `done` event."""
    results = {event["run_id"]: event["result"] for event in events if event["event"] == "done"}
    return [results[run_id] for run_id in run_ids]


def _with_result(event: dict) -> dict:
    """A scheduler's `run_done` event becomes the facade's `done`, carrying the run's `MILRResult`."""
    if event["event"] != "run_done":
        return event
    return {"event": "done", "run_id": event["run_id"], "result": _result_from_trace(Trace.load(event["trace_dir"]))}


def _shared_config(traces: list[Trace]) -> MILRConfig:
    configs = {t.path.name: {k: v for k, v in t.run.config.items() if k != "seed"} for t in traces}
    first_name, first = next(iter(configs.items()))
    for name, cfg in configs.items():
        if cfg != first:
            raise ValueError(f"{name} and {first_name} were run with other settings; resume them separately")
    return MILRConfig(**traces[0].run.config)


def _check_max_batch(max_batch: int) -> int:
    if not isinstance(max_batch, int) or max_batch < 1:
        raise ValueError(f"max_batch must be an integer >= 1, got {max_batch!r}")
    return max_batch


def _one_critic(critics: Critic | Sequence[Critic], weights: Sequence[float] | None) -> Critic:
    if isinstance(critics, Critic):
        critics = [critics]
    critics = list(critics)
    if not critics:
        raise ValueError("critics must hold at least one critic")
    if len(critics) == 1 and weights is None:
        return critics[0]
    return Mixer(critics, weights=weights)


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
