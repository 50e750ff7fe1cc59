"""`MILR`: the one entry point. Load a model, pass critics, call it with a prompt or a batch.

    >>> from milr import MILR, MILRConfig
    >>> from milr.shapes import ShapesOracle
    >>> milr = MILR.from_pretrained("shapes", critics=[ShapesOracle()], config=MILRConfig(steps=10))
    >>> result = milr("a photo of a triangle above a circle")
    >>> result.image, result.score, result.trace_dir
    >>> results = milr.batch(["a photo of two circles", "a photo of a red square"], max_batch=16)

`from_pretrained` takes what transformers' does (`dtype`, `device_map`, `revision`, further model
keywords) and checks the device before loading anything. In a notebook a `MILRResult` (and a `Trace`)
shows itself as an image strip of its rounds with their scores (`_repr_html_`).

Every call runs the LangGraph loop of `build_graph()` over a batch of runs (a single prompt is a
batch of one), writes one trace folder per run and returns `MILRResult`s. `stream()` and
`stream_batch()` yield the per-round events live, each tagged with its `run_id`; `resume()` continues
killed runs from their last finished round with the same latents, optimiser state and sampling state.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import structlog
import torch
from langgraph.types import Command
from PIL import Image

from milr.config import PLACEMENT_FIELDS, MILRConfig, check_device
from milr.critics import Mixer, PromptSpec
from milr.critics.base import Critic, check_critic
from milr.critics.human import HumanAnswer, asks_person
from milr.mug.janus import (
    DeviceMap,
    JanusMUG,
    deprecated_torch_dtype,
    dtype_label,
    dtype_name,
    parse_dtype,
    single_device,
)
from milr.nodes.context import MILRContext, QueuedRun
from milr.orchestrator.graph import build_graph, recursion_limit
from milr.orchestrator.scheduler import best_round, check_prompt, critic_list, queued
from milr.orchestrator.serde import memory_saver, sqlite_saver
from milr.traces import LoadedRound, Trace

log = structlog.get_logger(__name__)

PACKAGED_MODELS = {"shapes": "milr.shapes"}  # name -> package holding a `checkpoint/` folder
DEFAULT_MAX_BATCH = 16
# The config fields `repr(milr)` shows: what decides a run's outcome at a glance (the rest: `milr.config`).
REPR_FIELDS = ("steps", "threshold", "lr", "strategy", "optimize", "select", "cfg", "seed")
__all__ = ["MILR", "MILRResult", "best_round", "load_mug", "resolve_model", "run_config"]


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


@contextlib.contextmanager
def _no_loading_bar(quiet: bool) -> Iterator[None]:
    """transformers' "Loading weights" bar off while `quiet` (a packaged checkpoint: it loads from
    this install at once, and a library prints nothing unless asked); a hub model keeps its bars."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    if quiet and was:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if quiet and was:
            hf_logging.enable_progress_bar()


def load_mug(
    model: str | Path,
    config: MILRConfig,
    *,
    dtype: torch.dtype | str | None = None,
    device_map: DeviceMap | None = None,
    revision: str | None = None,
    **model_kwargs: Any,
) -> JanusMUG:
    """The model named `model`, placed as `config` says (`dtype`, e.g. "auto", overrides
    `config.dtype`); `device_map`, `revision` and `model_kwargs` go to `JanusMUG.from_pretrained`
    (safetensors only unless `use_safetensors=False`). Packaged models keep their short name (so no
    local path ends up in a trace)."""
    with _no_loading_bar(str(model) in PACKAGED_MODELS):
        mug = JanusMUG.from_pretrained(
            resolve_model(model),
            dtype=config.dtype if dtype is None else dtype,
            device=config.device,
            device_map=device_map,
            revision=revision,
            max_reasoning_tokens=config.max_reasoning_tokens,
            compile=config.compile,
            **model_kwargs,
        )
    if str(model) in PACKAGED_MODELS:
        mug.name = str(model)
    return mug


def available_devices() -> list[str]:
    """The torch devices of this machine, as milr names them."""
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        devices.append("mps")
    return devices


def checked_device(device: str | torch.device, field: str = "device") -> str:
    """`device` as a string, or one `ValueError` naming `field`, the device and what this machine has."""
    try:
        check_device(str(device))
    except ValueError as err:
        raise ValueError(
            f"{field}={str(device)!r} is not available: {err} (this machine has: {', '.join(available_devices())})"
        ) from None
    return str(device)


def _placement(config: MILRConfig, device: str | torch.device | None, device_map: DeviceMap | None) -> MILRConfig:
    """`config` with the device asked for in `from_pretrained`, checked against this machine before
    anything is loaded: `device`, or the one device `device_map` names (a map over several devices is
    checked device by device and left to transformers)."""
    if device is not None:
        device = checked_device(device)
    if device_map is not None:
        named = device_map.values() if isinstance(device_map, Mapping) else [device_map]
        for value in named:
            one = single_device(value)
            if one is not None:
                checked_device(one, "device_map")
        one = single_device(device_map)
        if device is None and one is not None:
            device = str(one)
    return config.override(device=device)


@dataclass
class MILRResult:
    """What one MILR run returns: the chosen image and everything needed to inspect the run.
    In a notebook it shows every round's image and score, the returned round marked, its reasoning
    and why the run stopped."""

    image: Image.Image
    score: float | None
    final_round: int  # the returned round (best or last, per `select`)
    best_round: int
    last_round: int
    rounds: list[LoadedRound]  # every round's record (`r.score`, `r.reasoning`, ...) and image (`r.image`)
    trace_dir: Path
    stop_reason: str
    seconds: float
    prompt: str = ""

    @property
    def reasoning(self) -> str:
        return self.rounds[self.final_round].reasoning

    def __repr__(self) -> str:
        return (
            f"MILRResult(score={self.score}, final_round={self.final_round}, rounds={len(self.rounds)}, "
            f"stop_reason={self.stop_reason!r}, trace_dir={self.trace_dir.name!r})"
        )

    def _repr_html_(self) -> str:
        from milr.traces.views import rounds_html

        return rounds_html(
            self.rounds,
            title=self.prompt,
            returned=self.final_round,
            best=self.best_round,
            status=f"stopped: {self.stop_reason} after {len(self.rounds)} rounds in {self.seconds:.1f}s",
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
        ask: answers a person's critic (`HumanCritic`) when no one did with `answer()`: called with the
            question (the `interrupt` event's payload), it returns `{"score": s, "rationale": r}` or a
            bare score, e.g. `milr.critics.ask_at_terminal`. Without it, `milr(prompt)` and `batch()`
            refuse a human critic: stream, and answer each `interrupt` event with `answer()`.
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
        ask: Callable[[dict], Any] | None = None,
    ):
        self.mug = mug
        self.critic = _one_critic(critics, weights)
        self.config = config or MILRConfig()
        self.out = Path(out)
        self.checkpoint = checkpoint
        self.max_batch = _check_max_batch(max_batch)
        self.ask = ask
        self._questions: dict[str, dict] = {}  # run id -> the question its stream waits on
        self._answers: dict[str, HumanAnswer] = {}  # run id -> the answer given with `answer()`

    @classmethod
    def from_pretrained(
        cls,
        model: str | Path = "shapes",
        critics: Critic | Sequence[Critic] | None = None,
        *,
        config: MILRConfig | None = None,
        dtype: torch.dtype | str | None = None,
        device: str | torch.device | None = None,
        device_map: DeviceMap | None = None,
        revision: str | None = None,
        weights: Sequence[float] | None = None,
        out: str | Path = "traces",
        checkpoint: bool = False,
        max_batch: int = DEFAULT_MAX_BATCH,
        ask: Callable[[dict], Any] | None = None,
        **model_kwargs: Any,
    ) -> MILR:
        """Load `model` and wrap it with `critics`, as transformers' `from_pretrained` loads a model.

        Args:
            model: "shapes" (packaged, runs anywhere), a Janus-Pro hub id such as
                `deepseek-community/Janus-Pro-7B`, or a local folder.
            critics: one critic or several (mixed with `weights`, equal by default).
            config: `MILRConfig`; the checkpoint's recommended settings fill the fields it leaves unset.
            dtype: `torch.bfloat16`, "bfloat16"/"bf16", "float32", "float16", or "auto" (the
                checkpoint's own); default bf16 on GPU, fp32 on CPU. `torch_dtype` is accepted as the
                deprecated alias it is in transformers. Overrides `config.dtype`.
            device: "cpu", "cuda", "cuda:N" or "mps"; overrides `config.device`. A device this machine
                lacks raises `ValueError` before anything is loaded.
            device_map: passed to transformers (`"cuda:0"`, `{"": 0}`, `"auto"` with accelerate);
                milr decodes on one device, so a map that spreads the model is refused.
            revision: hub branch, tag or commit to load.
            weights, out, checkpoint, max_batch, ask: as for `MILR(...)`.
            **model_kwargs: passed to transformers' `from_pretrained` (e.g. `attn_implementation`,
                `cache_dir`, `local_files_only`, `token`). Weights load from safetensors only; pass
                `use_safetensors=False` to load a pickle checkpoint you trust.
        """
        if critics is None:
            raise ValueError("critics is required: pass e.g. critics=[ShapesOracle()] or [OpenAIJudge()]")
        dtype = parse_dtype(deprecated_torch_dtype(dtype, model_kwargs))
        config = _placement(config or MILRConfig(), device, device_map)  # a missing device fails here
        if isinstance(dtype, torch.dtype):
            config = config.override(dtype=dtype_name(dtype))
        mug = load_mug(model, config, dtype=dtype, device_map=device_map, revision=revision, **model_kwargs)
        if dtype == "auto":  # record the dtype "auto" resolved to
            config = config.override(dtype=dtype_name(mug.dtype))
        return cls(
            mug,
            critics,
            config.with_recommended(mug.recommended),
            weights=weights,
            out=out,
            checkpoint=checkpoint,
            max_batch=max_batch,
            ask=ask,
        )

    def __repr__(self) -> str:
        critics = ",".join(f"{c['name']}:{c['weight']:g}" for c in critic_list(self.critic))
        shown = {k: getattr(self.config, k) for k in REPR_FIELDS}
        config = ", ".join(f"{k}={sorted(v) if isinstance(v, frozenset) else v!r}" for k, v in shown.items())
        return (
            f"MILR(model={self.mug.name!r}, device={str(self.mug.device)!r}, dtype={dtype_label(self.mug.dtype)}, "
            f"critics={critics!r}, config=({config}), max_batch={self.max_batch}, out={str(self.out)!r})"
        )

    # ------------------------------------------------------------------ running
    def __call__(self, prompt: str, spec: PromptSpec | dict | None = None, *, name: str | None = None) -> MILRResult:
        """Run MILR on `prompt` and return the result (see `MILRResult`)."""
        return self.batch([prompt], None if spec is None else [spec], names=None if name is None else [name])[0]

    def stream(self, prompt: str, spec: PromptSpec | dict | None = None, *, name: str | None = None) -> Iterator[dict]:
        """Run MILR and yield events as they happen: `run_start`, per round `round_start` and
        `round_end` (score, per-critic scores, reasoning, image path), finally `done` with the result.

        A person's critic (`HumanCritic`) makes the stream yield an `interrupt` event (the question:
        `run_id`, `round`, `prompt`, `image` path, `reasoning`, the other `critics`' verdicts); answer
        it with `milr.answer(score, rationale)` (or let `ask` answer) before reading the next event."""
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
        self._check_answerable()
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
        config = _shared_config(traces, self.config)
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
        self._check_answerable()
        return _results_in_order(self.stream_resume(*run_dirs, max_batch=max_batch), [Path(d).name for d in run_dirs])

    # ------------------------------------------------------------------ a person's answers
    def answer(self, score: float, rationale: str = "", *, run_id: str | None = None) -> None:
        """Answer the question a `HumanCritic` asked: the `interrupt` event the stream just yielded.

        `score` from 0 (the image fails the prompt) to 1 (it matches it), `rationale` optional; checked
        now (`ValueError` naming the field). Reading the stream on resumes the graph with the answer
        (`Command(resume={"score": ..., "rationale": ...})`). `run_id` names the run when several
        streams of this `MILR` wait at once."""
        run_id = self._waiting(run_id)
        self._answers[run_id] = HumanAnswer(score=score, rationale=rationale)

    def _waiting(self, run_id: str | None) -> str:
        waiting = list(self._questions)
        if not waiting:
            raise ValueError("no question waits for an answer: answer after a stream yields an `interrupt` event")
        if run_id is None and len(waiting) > 1:
            raise ValueError(f"{len(waiting)} runs wait for an answer ({', '.join(waiting)}): name one with run_id=")
        if run_id is not None and run_id not in self._questions:
            raise ValueError(f"run {run_id!r} asks nothing now; waiting: {', '.join(waiting)}")
        return waiting[0] if run_id is None else run_id

    def _check_answerable(self) -> None:
        """A call that returns only results cannot show a question: it needs `ask`."""
        if self.ask is None and asks_person(self.critic):
            raise ValueError(
                "a human critic asks a person about every image: pass ask= to MILR (e.g. "
                "milr.critics.ask_at_terminal), or use milr.stream(...) and answer each `interrupt` event "
                "with milr.answer(score, rationale)"
            )

    def _answered(self, question: dict) -> Iterator[dict]:
        """Yield the question as an `interrupt` event; return the command resuming the graph with its
        answer: the one given with `answer()` meanwhile, else what `ask` says."""
        run_id = question["run_id"]
        self._questions[run_id] = question
        try:
            yield {"event": "interrupt", **question}
            answer = self._answers.pop(run_id, None)
            if answer is None and self.ask is not None:
                answer = HumanAnswer.model_validate(self.ask(question))
            if answer is None:
                raise RuntimeError(
                    f"run {run_id} waits for a person's score of round {question['round']}: call "
                    "milr.answer(score, rationale) before reading the next event (or pass ask= to MILR)"
                )
        finally:
            self._questions.pop(run_id, None)
            self._answers.pop(run_id, None)
        return Command(resume=answer.model_dump())

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
        command: Any = {"queue": entries, "runs": {}, "finished": []}
        try:
            with self._compiled(ctx.out) as graph, noted_interrupts() as interrupted:
                # The graph stops at each question a person's critic asks (an interrupt) and goes on
                # from there, on the same thread and context, with the answer.
                while command is not None:
                    question = yield from _stream(graph, command, run_cfg, ctx, len(entries), interrupted)
                    command = None if question is None else (yield from self._answered(question))
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


def _stream(
    graph, command, run_cfg: dict, ctx: MILRContext, runs: int, interrupted: threading.Event
) -> Iterator[dict]:
    """Yield the graph's events until it ends or stops at a question; return that question (the
    interrupt's payload) or None. A Ctrl-C the graph swallowed (`interrupted`) is raised again here."""
    question = None
    try:
        for mode, chunk in graph.stream(command, run_cfg, context=ctx, stream_mode=["custom", "updates"]):
            if interrupted.is_set():
                raise KeyboardInterrupt
            if mode == "custom":
                yield _with_result(chunk)
            elif "__interrupt__" in chunk:  # one at a time: a node stops at its first unanswered question
                question = chunk["__interrupt__"][0].value
    except Exception:
        # Finished rounds are already on disk; say how to continue from them.
        log.error("run_failed", runs=runs, hint="finished rounds are kept: milr resume <out>/<run_id>")
        raise
    if interrupted.is_set():
        raise KeyboardInterrupt
    return question


@contextlib.contextmanager
def noted_interrupts() -> Iterator[threading.Event]:
    """While active, a Ctrl-C (SIGINT) also sets the yielded event, as well as raising
    KeyboardInterrupt where the main thread stands. The raise can be lost: LangGraph calls a done
    callback in the main thread when a node's future is already finished, and that callback swallows
    every exception (`BackgroundExecutor.done`: `except BaseException: pass`); the run would go on.
    The event lets the stream raise it again at the next event.

    Only Python's default handler is wrapped, and only on the main thread (the one signals reach): a
    handler the program installed itself is left alone, and the event then never sets."""
    interrupted = threading.Event()
    on_main = threading.current_thread() is threading.main_thread()
    if not on_main or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield interrupted
        return

    def on_sigint(signum, frame):
        interrupted.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield interrupted
    finally:
        # A stream resumed (and closed) on another thread cannot touch the handler; it stays ours,
        # which still raises KeyboardInterrupt as the default does.
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is on_sigint:
            signal.signal(signal.SIGINT, signal.default_int_handler)


def _results_in_order(events: Iterator[dict], run_ids: list[str]) -> list[MILRResult]:
    """Drain a batch's event stream; each run's result rides on its `done` event."""
    results = {event["run_id"]: event["result"] for event in events if event["event"] == "done"}
    return [results[run_id] for run_id in run_ids]


def _with_result(event: dict) -> dict:
    """A scheduler's `run_done` event becomes the facade's `done`, carrying the run's `MILRResult`."""
    if event["event"] != "run_done":
        return event
    return {"event": "done", "run_id": event["run_id"], "result": _result_from_trace(Trace.load(event["trace_dir"]))}


def run_config(trace: Trace, placement: MILRConfig | None = None) -> MILRConfig:
    """The config `trace` was run with, placed as `placement` says: its device, dtype and compile
    fields (where this process runs the model, e.g. a `--device` override) replace the recorded ones,
    so a run started on a GPU resumes on a CPU. The other fields come from run.json unchanged."""
    recorded = {k: v for k, v in trace.run.config.items() if k not in PLACEMENT_FIELDS}
    here = (placement or MILRConfig()).model_dump(include=set(PLACEMENT_FIELDS))
    return MILRConfig(**recorded, **here)


def _shared_config(traces: list[Trace], placement: MILRConfig) -> MILRConfig:
    """The one config of runs resumed together (they may differ only in seed and placement)."""
    ignored = {"seed", *PLACEMENT_FIELDS}
    configs = {t.path.name: {k: v for k, v in t.run.config.items() if k not in ignored} for t in traces}
    first_name, first = next(iter(configs.items()))
    for name, cfg in configs.items():
        if cfg != first:
            raise ValueError(f"{name} and {first_name} were run with other settings; resume them separately")
    return run_config(traces[0], placement)


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
    if summary is None:  # a `done` event comes after the summary is written
        raise ValueError(f"trace {trace.path.name!r} is unfinished: it has no summary.json yet")
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
        prompt=trace.run.prompt,
    )
