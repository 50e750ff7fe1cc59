"""`HumanCritic`: a person scores the image, through LangGraph's `interrupt` (human in the loop).

Inside MILR's `critique` node the human critic pauses the graph with a JSON payload holding what a
person needs to judge the round: run id, round, prompt, the round's image (a PNG already on disk),
the reasoning, and the other critics' scores and rationales for that image. The graph resumes with
`Command(resume={"score": 0.7, "rationale": "the circle is too small"})` (or a bare number); the
answer becomes the critic's `Critique`. `HumanAnswer` is the resume value's schema: LangGraph shows it
to clients (Studio renders a form from it), checks the value, and refuses a bad one with the field
named, saving nothing, so the same question can be answered again.

LangGraph re-runs an interrupted node from its start on resume, so nothing expensive may run twice:
the images were drawn by `generate` (a node of its own, checkpointed), and a `Mixer` scores its
machine critics before asking anyone and holds their critiques across the pause (each image is
scored once per process). With a batch of runs, each image is its own question, asked one after the
other in batch order (LangGraph matches the resume values of one node's interrupts by their order).

`ask_at_terminal(payload)` shows a question at a terminal and reads the answer; the `MILR` facade
calls such a function (`MILR(..., ask=ask_at_terminal)`) or takes `milr.answer(...)` from a notebook.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import math
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from PIL import Image, ImageFile
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from milr.critics.base import Critic, Critique, PromptSpec

QUESTION = "How well does the image match the prompt? Score from 0 (it fails the prompt) to 1 (it matches it)."
RESUME_HINT = 'resume with Command(resume={"score": 0.7, "rationale": "why"}): a score from 0 to 1'


class HumanAnswer(BaseModel):
    """What a person answers a `HumanCritic`: a score in [0, 1] and, optionally, why.

    A bare number stands for `{"score": number}`."""

    model_config = ConfigDict(extra="forbid")

    score: float = Field(
        description="How well the image matches the prompt: 0 = it fails the prompt, 1 = it matches it.",
        json_schema_extra={"minimum": 0, "maximum": 1},
    )
    rationale: str = Field("", description="Why, in a few words (optional); kept in the trace.")

    @model_validator(mode="before")
    @classmethod
    def _bare_number(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(
                f"the answer must be a score from 0 to 1 or {{'score': ..., 'rationale': ...}}, got {value}"
            )
        if isinstance(value, (int, float)):
            return {"score": value}
        return value

    @field_validator("score", mode="before")
    @classmethod
    def _finite_unit_score(cls, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(f"score must be a number from 0 to 1, got {value!r}")
        try:
            score = float(value)
        except ValueError:
            raise ValueError(f"score must be a number from 0 to 1, got {value!r}") from None
        if not (math.isfinite(score) and 0.0 <= score <= 1.0):
            raise ValueError(f"score must be a finite number from 0 to 1, got {value!r}")
        return score


@dataclass(frozen=True)
class ReviewedImage:
    """Where an image being scored comes from: its run, round, file on disk and the reasoning behind it."""

    run_id: str
    round: int
    image: str  # path of the round's PNG, as the run's `round_end` event names it
    reasoning: str


_UNDER_REVIEW: contextvars.ContextVar[tuple[tuple[Image.Image, ReviewedImage], ...]] = contextvars.ContextVar(
    "milr_under_review", default=()
)


@contextlib.contextmanager
def under_review(pairs: Sequence[tuple[Image.Image, ReviewedImage]]) -> Iterator[None]:
    """While scoring, tell a `HumanCritic` which run, round and file each image (by identity) is."""
    token = _UNDER_REVIEW.set(tuple(pairs))
    try:
        yield
    finally:
        _UNDER_REVIEW.reset(token)


def _reviewed(image: Image.Image) -> ReviewedImage | None:
    return next((info for img, info in _UNDER_REVIEW.get() if img is image), None)


class HumanCritic:
    """A critic that asks a person, pausing the LangGraph graph with `interrupt` until they answer.

    Args:
        name (`str`, *optional*, defaults to `"human"`): the critic's name (give two people two names).
        question (`str`, *optional*): what the person is asked; the default asks for a score in [0, 1].

    It scores only inside a LangGraph graph compiled with a checkpointer (the `MILR` facade always
    has one). In a `Mixer` it is asked last, image by image, and sees the other critics' verdicts.
    The interrupt's payload is JSON (`payload`); the resume value is a `HumanAnswer`.
    """

    def __init__(self, name: str = "human", question: str = QUESTION):
        self.name = name
        self.question = question

    def __call__(self, image: Image.Image, prompt: str, spec: PromptSpec | None = None) -> Critique:
        return self.ask(image, prompt, spec)

    def score_batch(
        self, images: Sequence[Image.Image], prompts: Sequence[str], specs: Sequence[PromptSpec | None]
    ) -> list[Critique]:
        """One question per image, in order (never in threads: LangGraph matches answers by order)."""
        return [self.ask(image, prompt, spec) for image, prompt, spec in zip(images, prompts, specs, strict=True)]

    def ask(
        self,
        image: Image.Image,
        prompt: str,
        spec: PromptSpec | None = None,
        *,
        others: Sequence[Critique] = (),
        weights: Mapping[str, float] | None = None,
    ) -> Critique:
        """Pause the graph with this image's question; on resume, the person's answer as a `Critique`.

        `others`: the other critics' verdicts on this image (with their `weights`), shown to the person."""
        from langgraph.types import interrupt

        _check_in_graph(self.name)
        started = time.perf_counter()
        answer = interrupt(self.payload(image, prompt, others, weights), response_schema=HumanAnswer)
        return Critique(
            critic=self.name, score=answer.score, rationale=answer.rationale, seconds=time.perf_counter() - started
        )

    def payload(
        self,
        image: Image.Image,
        prompt: str,
        others: Sequence[Critique] = (),
        weights: Mapping[str, float] | None = None,
    ) -> dict:
        """The interrupt's value: plain JSON, the same for LangGraph's server, the SDK and the facade."""
        info = _reviewed(image)
        weights = weights or {}
        return {
            "critic": self.name,
            "question": self.question,
            "run_id": info.run_id if info else None,
            "round": info.round if info else None,
            "prompt": prompt,
            "image": info.image if info else _image_file(image),
            "reasoning": info.reasoning if info else None,
            "critics": [
                {
                    "critic": c.critic,
                    "score": c.score,
                    "weight": weights.get(c.critic),
                    "rationale": c.rationale,
                    "error": c.error,
                }
                for c in others
            ],
        }


def asks_person(critic: Critic) -> bool:
    """Whether scoring with `critic` may pause to ask a person (a `HumanCritic`, alone or in a `Mixer`)."""
    from milr.critics.mixer import Mixer  # the mixer imports this module

    if isinstance(critic, Mixer):
        return any(asks_person(c) for c in critic.critics)
    return isinstance(critic, HumanCritic)


def _check_in_graph(name: str) -> None:
    from langgraph.config import get_config

    try:
        get_config()
    except RuntimeError:
        raise RuntimeError(
            f"critic {name!r} asks a person through LangGraph's `interrupt`, so it scores only inside a graph "
            "compiled with a checkpointer: use it through MILR (which answers with `ask=` or `milr.answer(...)`) "
            "or in your own LangGraph node"
        ) from None


_TEMP: list[Path] = []  # one private folder per process for images that are not files yet


def _image_file(image: Image.Image) -> str:
    """A file a person can open: the one the image was read from, else a PNG named by its content (the
    same image asked again, as on a resumed node, is the same file)."""
    if isinstance(image, ImageFile.ImageFile) and image.filename:
        return str(image.filename)
    if not _TEMP:
        _TEMP.append(Path(tempfile.mkdtemp(prefix="milr-human-")))  # private (0700): no shared /tmp names
    path = _TEMP[0] / f"{hashlib.sha256(image.tobytes()).hexdigest()[:16]}.png"
    if not path.exists():
        image.save(path, format="PNG")
    return str(path)


# ----------------------------------------------------------------------------- at a terminal
class AnswerAborted(KeyboardInterrupt):
    """The person stopped answering (Ctrl-C, or the end of input): the run stops like a Ctrl-C, with its
    finished rounds on disk (`milr resume` continues it and asks again)."""


def ask_at_terminal(payload: Mapping, *, input: TextIO | None = None, output: TextIO | None = None) -> dict:
    """Show a `HumanCritic`'s question and read the answer; returns `{"score": s, "rationale": r}`.

    The question goes to `output` (stderr by default: stdout stays for results), the answer comes from
    `input` (stdin): a score from 0 to 1, asked again until it is one, then an optional rationale.
    Text from prompts and models is shown with control characters escaped. Ctrl-C or the end of input
    raises `AnswerAborted`."""
    from milr.traces.views import terminal_text  # imported here: the traces package loads torch

    input = sys.stdin if input is None else input
    output = sys.stderr if output is None else output
    output.write(_question_text(payload, terminal_text))
    while True:
        text = _read_line(input, output, "score (0 to 1): ").strip()
        try:
            score = HumanAnswer(score=text).score
            break
        except ValueError:
            output.write(f"  not a score: {terminal_text(text, newlines=False)}; give a number from 0 to 1\n")
    rationale = _read_line(input, output, "why (optional, Enter to skip): ").strip()
    return {"score": score, "rationale": rationale}


def _question_text(payload: Mapping, safe) -> str:
    where = f"run {payload['run_id']}, round {payload['round']}" if payload.get("run_id") else "an image"
    lines = [
        f"\n{safe(payload.get('critic') or 'human', newlines=False)} critic asks about {safe(where, newlines=False)}",
        f"  prompt:    {safe(payload['prompt'], newlines=False)}",
        f"  image:     {safe(payload['image'], newlines=False)}",
    ]
    if payload.get("reasoning"):
        lines.append(f"  reasoning: {safe(payload['reasoning'], newlines=False)}")
    for other in payload.get("critics") or []:
        score = "abstained" if other["score"] is None else f"{other['score']:.3f}"
        weight = "" if other.get("weight") is None else f" (weight {other['weight']:g})"
        why = other.get("error") if other["score"] is None else other.get("rationale")
        why = f": {safe(why, newlines=False)}" if why else ""
        lines.append(f"  critic {safe(other['critic'], newlines=False)}{weight}: {score}{why}")
    lines.append(f"  {safe(payload.get('question') or QUESTION, newlines=False)}")
    return "\n".join(lines) + "\n"


def _read_line(input: TextIO, output: TextIO, prompt: str) -> str:
    output.write(prompt)
    output.flush()
    try:
        line = input.readline()
    except KeyboardInterrupt:
        output.write("\n")
        raise AnswerAborted("no answer: interrupted") from None
    if not line:
        output.write("\n")
        raise AnswerAborted("no answer: end of input")
    return line.rstrip("\n")
