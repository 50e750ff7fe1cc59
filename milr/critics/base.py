"""The critic contract (DESIGN §4): `Critic` objects score an image against a prompt.

A critic returns a `Critique` whose `score` lies in [0, 1], or `None` when it abstains (an error,
a refusal, a prompt it cannot judge). Only `milr.mug.latents` turns the mixed score s into the
reward R = s - 1. `PromptSpec` is GenEval's metadata schema, shared by every spec-based critic.

A batched MILR round scores many runs' images at once: `BatchCritic`s score a whole batch in one
model forward (`score_batch`), and `score_many` scores a batch with any critic, batched when it can
be, else one image per thread.
"""

from __future__ import annotations

import contextvars
import math
import numbers
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal, Protocol, runtime_checkable

import structlog
from langgraph.errors import GraphBubbleUp, is_invalid_resume
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator

log = structlog.get_logger(__name__)

Relation = Literal["left of", "right of", "above", "below"]
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
# GenEval's vocabulary: its 10 colours and `object_names.txt` (the 80 COCO classes in detector order)
COLORS: tuple[str, ...] = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")
COCO_CLASSES: tuple[str, ...] = tuple(
    "person,bicycle,car,motorcycle,airplane,bus,train,truck,boat,traffic light,fire hydrant,stop sign,"
    "parking meter,bench,bird,cat,dog,horse,sheep,cow,elephant,bear,zebra,giraffe,backpack,umbrella,"
    "handbag,tie,suitcase,frisbee,skis,snowboard,sports ball,kite,baseball bat,baseball glove,skateboard,"
    "surfboard,tennis racket,bottle,wine glass,cup,fork,knife,spoon,bowl,banana,apple,sandwich,orange,"
    "broccoli,carrot,hot dog,pizza,donut,cake,chair,couch,potted plant,bed,dining table,toilet,tv,laptop,"
    "computer mouse,tv remote,computer keyboard,cell phone,microwave,oven,toaster,sink,refrigerator,book,"
    "clock,vase,scissors,teddy bear,hair drier,toothbrush".split(",")
)


class SpecItem(BaseModel):
    """One include/exclude clause of GenEval's schema."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    cls: str = Field(alias="class", description="Object class, e.g. 'dog' or 'traffic light'.")
    count: int = Field(1, ge=1, description="How many objects of this class (at least).")
    color: str | None = Field(None, description="Required colour of every counted object.")
    position: tuple[Relation, int] | None = Field(
        None, description="(relation, index of the target include item), e.g. ('left of', 0)."
    )


class PromptSpec(BaseModel):
    """GenEval's metadata for one prompt: what must (and must not) be in the image."""

    model_config = ConfigDict(extra="forbid")

    tag: str = Field(description="GenEval task: single_object, two_object, counting, colors, position, color_attr.")
    include: list[SpecItem] = Field(default_factory=list)
    exclude: list[SpecItem] = Field(default_factory=list)
    prompt: str | None = None

    def to_geneval(self) -> dict:
        """The dict exactly as GenEval's `evaluation_metadata.jsonl` writes it."""
        out: dict = {"tag": self.tag, "include": [_item_dict(i) for i in self.include]}
        if self.exclude:
            out["exclude"] = [_item_dict(i) for i in self.exclude]
        if self.prompt is not None:
            out["prompt"] = self.prompt
        return out

    @classmethod
    def from_geneval(cls, data: dict) -> PromptSpec:
        return cls.model_validate(data)

    @classmethod
    def parse(cls, prompt: str, **vocabulary) -> PromptSpec:
        """The spec of a prompt in GenEval's grammar ("a photo of two red cars and a dog",
        "a photo of a cat left of a bench"); `ValueError` saying why when it cannot.

        `classes=` and `colors=` replace the vocabulary (GenEval's 80 COCO classes and 10 colours);
        see `milr.critics.spec_parse`.
        """
        # imported here: spec_parse builds on this module (PromptSpec, SpecItem)
        from milr.critics.spec_parse import parse_prompt

        return parse_prompt(prompt, **vocabulary)


def _item_dict(item: SpecItem) -> dict:
    d: dict = {"class": item.cls, "count": item.count}
    if item.color is not None:
        d["color"] = item.color
    if item.position is not None:
        d["position"] = [item.position[0], item.position[1]]
    return d


class Critique(BaseModel):
    """One critic's verdict on one image. `score=None` means the critic abstained."""

    critic: str
    score: float | None = None
    rationale: str = ""
    details: dict = Field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None

    @field_validator("score")
    @classmethod
    def _in_unit_interval(cls, v: float | None) -> float | None:
        if v is not None and not (0.0 <= v <= 1.0):
            raise ValueError(f"score must lie in [0, 1] or be None (abstain), got {v}")
        return v

    @property
    def abstained(self) -> bool:
        return self.score is None


@runtime_checkable
class Critic(Protocol):
    """Anything with a `name` that scores (image, prompt, spec) into a `Critique`."""

    name: str

    def __call__(self, image: Image.Image, prompt: str, spec: PromptSpec | None = None) -> Critique: ...


@runtime_checkable
class BatchCritic(Critic, Protocol):
    """A Critic that also scores many images at once (one model forward over the batch).

    `score_batch(images, prompts, specs)` returns one `Critique` per image, in input order, each as
    `critic(image, prompt, spec)` would return it: where `__call__` abstains (score None and an
    `error`), so does `score_batch` for that image. Where `__call__` would raise for one image,
    `score_batch` may raise for the whole batch; `score_many` then scores the images one at a time, so
    that only that image abstains. A critique's `seconds` is the wall time of the call that produced
    it (what its caller waited), not a share of it.
    """

    def score_batch(
        self, images: Sequence[Image.Image], prompts: Sequence[str], specs: Sequence[PromptSpec | None]
    ) -> list[Critique]: ...


class NotACritiqueError(TypeError):
    """A critic broke its contract: it returned something that is not a `Critique` (a float, None, a
    dict), or a `Critique` whose score is not None and not a number in [0, 1] (NaN, 1.5, built with
    `model_construct`). A bug in the critic, never an abstention, for a critic scored alone; inside a
    `Mixer` the broken critic abstains on that image instead, with this message as its `error`."""


class CriticCheckError(ValueError):
    """A critic cannot work (no API key, weights missing, server unreachable), found by `check_critic`
    before anything runs. The message names the critic and the fix."""

    def __init__(self, critic: str, problem: str):
        self.critic, self.problem = critic, problem
        super().__init__(f"critic {critic}: {problem}")


@runtime_checkable
class CheckableCritic(Protocol):
    """A critic with a cheap pre-flight `check()` that raises `CriticCheckError` when it cannot work."""

    def check(self) -> None: ...


def check_critic(critic: Critic) -> None:
    """Fail before any decode (and before any trace folder exists) when `critic` cannot work.

    `TypeError` when `critic` is not a Critic at all; otherwise its `check()`, when it has one (a
    `Mixer` checks each of its critics). Whatever the check raises reaches the caller as a
    `CriticCheckError` naming the critic."""
    if not isinstance(critic, Critic):
        raise TypeError(
            f"{type(critic).__name__} is not a critic: a critic has a `name` and is called as "
            "critic(image, prompt, spec) -> Critique"
        )
    if not isinstance(critic, CheckableCritic):
        return
    try:
        critic.check()
    except CriticCheckError:
        raise
    except Exception as err:
        raise CriticCheckError(critic.name, _error_text(err)) from err


def check_parts(*parts: object) -> None:
    """`check()` each part of a critic that has one (its detector, colour classifier, models)."""
    for part in parts:
        if isinstance(part, CheckableCritic):
            part.check()


def is_graph_control(err: BaseException) -> bool:
    """Whether `err` is LangGraph's control flow raised through a critic, never a failure to turn into an
    abstention: an `interrupt` pausing the graph (a `HumanCritic` asking a person) or a resume value
    that the interrupt's `response_schema` refused (the person is asked again)."""
    return isinstance(err, GraphBubbleUp) or is_invalid_resume(err)


def contract_violation(critique: object) -> str | None:
    """Why `critique` breaks the critic contract ("returned float 0.5, not a Critique", "returned a
    Critique with score nan, outside [0, 1]"), or None when it keeps it."""
    if critique is None:
        return "returned None, not a Critique"
    if not isinstance(critique, Critique):
        return f"returned {type(critique).__name__} {_short_repr(critique)}, not a Critique"
    score = critique.score
    if score is None:
        return None
    if isinstance(score, bool) or not isinstance(score, numbers.Real):
        return f"returned a Critique with score {_short_repr(score)} ({type(score).__name__}), not a number"
    if not (math.isfinite(score) and 0.0 <= score <= 1.0):
        return f"returned a Critique with score {score!r}, outside [0, 1]"
    return None


def _short_repr(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# per-image calls in flight for a critic without `score_batch`: enough for network judges, which
# mostly wait on sockets, without opening a connection per image of a large batch
DEFAULT_MAX_WORKERS = 16


def check_batch(
    images: Sequence[Image.Image], prompts: Sequence[str], specs: Sequence[PromptSpec | None]
) -> tuple[list[Image.Image], list[str], list[PromptSpec | None]]:
    """The batch as three lists of one entry per image; `ValueError` naming them when their lengths differ."""
    if isinstance(prompts, str):
        raise TypeError("prompts must be a sequence of prompts, one per image, not a single string")
    images, prompts, specs = list(images), list(prompts), list(specs)
    if not len(images) == len(prompts) == len(specs):
        raise ValueError(
            "images, prompts and specs need one entry per image, got "
            f"{len(images)} images, {len(prompts)} prompts and {len(specs)} specs"
        )
    return images, prompts, specs


def score_many(
    critic: Critic,
    images: Sequence[Image.Image],
    prompts: Sequence[str],
    specs: Sequence[PromptSpec | None],
    *,
    max_workers: int | None = None,
    strict: bool = True,
) -> list[Critique]:
    """One `Critique` per image, in input order, from any critic.

    A `BatchCritic` scores the batch with `score_batch`; should that raise, the images are scored
    one at a time. Other critics are called once per image, concurrently in up to `max_workers`
    threads (default `DEFAULT_MAX_WORKERS`), with the caller's contextvars. A critic that raises for
    an image abstains on it (score None, error "Type: message"), as in the `Mixer`; LangGraph's
    control flow (`is_graph_control`: an `interrupt` asking a person) is raised, never an abstention.

    A critic that breaks its contract (`contract_violation`: not a `Critique`, or a score that is NaN
    or outside [0, 1]) raises `NotACritiqueError` (a `TypeError`) naming it; with `strict=False` (how
    the `Mixer` scores its critics) it abstains on that image instead, the error naming the critic
    and what it returned.
    """
    images, prompts, specs = check_batch(images, prompts, specs)
    if not images:
        return []
    for image in images:
        image.load()  # decode a lazily opened file once, before threads share the image
    if isinstance(critic, BatchCritic):
        return _score_batch_or_each(critic, images, prompts, specs, max_workers, strict)
    return _score_each(critic, images, prompts, specs, max_workers, strict)


def _score_batch_or_each(critic: BatchCritic, images, prompts, specs, max_workers, strict) -> list[Critique]:
    started = time.perf_counter()
    try:
        critiques = critic.score_batch(images, prompts, specs)
    except NotACritiqueError as err:
        if strict:
            raise
        return [_raised(critic, err, started) for _ in images]
    except Exception as err:
        if is_graph_control(err):
            raise
        if len(images) == 1:
            return [_raised(critic, err, started)]
        # one image the critic cannot take (or a batch too large for memory) must cost that image
        # only, as it would when each image is scored alone
        log.warning("critic_batch_raised", critic=critic.name, n=len(images), error=_error_text(err))
        return _score_each(critic, images, prompts, specs, max_workers, strict)
    if not isinstance(critiques, Sequence) or len(critiques) != len(images):
        got = len(critiques) if isinstance(critiques, Sequence) else type(critiques).__name__
        problem = f"critic {critic.name!r}: score_batch returned {got} for {len(images)} images"
        if strict:
            raise NotACritiqueError(problem)
        return [_broken(critic, problem, started) for _ in images]
    return [_checked(critic, critique, strict, started) for critique in critiques]


def _score_each(critic: Critic, images, prompts, specs, max_workers, strict) -> list[Critique]:
    if len(images) == 1:  # no pool for one image: the caller's thread does it
        return [_score_one(critic, images[0], prompts[0], specs[0], strict)]
    workers = min(max_workers or DEFAULT_MAX_WORKERS, len(images))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="critic") as pool:
        # contextvars do not cross threads by themselves: copy them so that the round/run ids bound
        # by the graph node reach the critic's log lines
        futures = [
            pool.submit(contextvars.copy_context().run, _score_one, critic, image, prompt, spec, strict)
            for image, prompt, spec in zip(images, prompts, specs, strict=True)
        ]
        return [future.result() for future in futures]


def _score_one(critic: Critic, image: Image.Image, prompt: str, spec: PromptSpec | None, strict: bool) -> Critique:
    started = time.perf_counter()
    try:
        critique = critic(image, prompt, spec)
    except NotACritiqueError as err:  # a critic wrapping a broken one: a bug, but inside a Mixer it abstains
        if strict:
            raise
        return _raised(critic, err, started)
    except Exception as err:  # a broken critic must not take the whole round down
        if is_graph_control(err):
            raise
        return _raised(critic, err, started)
    return _checked(critic, critique, strict, started)


def _checked(critic: Critic, critique: object, strict: bool = True, started: float | None = None) -> Critique:
    """`critique` when it keeps the contract; else `NotACritiqueError` (strict) or an abstention naming
    the critic and what it returned."""
    problem = contract_violation(critique)
    if problem is None:
        return critique
    message = f"critic {critic.name!r} ({type(critic).__name__}) {problem}"
    if strict:
        raise NotACritiqueError(message)
    return _broken(critic, message, started)


def _broken(critic: Critic, message: str, started: float | None) -> Critique:
    log.warning("critic_broke_contract", critic=critic.name, error=message)
    seconds = 0.0 if started is None else time.perf_counter() - started
    return Critique(critic=critic.name, score=None, error=f"{NotACritiqueError.__name__}: {message}", seconds=seconds)


def _error_text(err: Exception) -> str:
    return f"{type(err).__name__}: {err}"


def _raised(critic: Critic, err: Exception, started: float) -> Critique:
    log.warning("critic_raised", critic=critic.name, error=_error_text(err))
    return Critique(critic=critic.name, score=None, error=_error_text(err), seconds=time.perf_counter() - started)
