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
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal, Protocol, runtime_checkable

import structlog
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
    """A critic returned something that is not a `Critique`: a bug in the critic, never an abstention."""


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
) -> list[Critique]:
    """One `Critique` per image, in input order, from any critic.

    A `BatchCritic` scores the batch with `score_batch`; should that raise, the images are scored
    one at a time. Other critics are called once per image, concurrently in up to `max_workers`
    threads (default `DEFAULT_MAX_WORKERS`), with the caller's contextvars. A critic that raises for
    an image abstains on it (score None, error "Type: message"), as in the `Mixer`; one that returns
    something other than a `Critique` raises `TypeError` naming it.
    """
    images, prompts, specs = check_batch(images, prompts, specs)
    if not images:
        return []
    for image in images:
        image.load()  # decode a lazily opened file once, before threads share the image
    if isinstance(critic, BatchCritic):
        return _score_batch_or_each(critic, images, prompts, specs, max_workers)
    return _score_each(critic, images, prompts, specs, max_workers)


def _score_batch_or_each(critic: BatchCritic, images, prompts, specs, max_workers) -> list[Critique]:
    started = time.perf_counter()
    try:
        critiques = critic.score_batch(images, prompts, specs)
    except NotACritiqueError:
        raise
    except Exception as err:
        if len(images) == 1:
            return [_raised(critic, err, started)]
        # one image the critic cannot take (or a batch too large for memory) must cost that image
        # only, as it would when each image is scored alone
        log.warning("critic_batch_raised", critic=critic.name, n=len(images), error=_error_text(err))
        return _score_each(critic, images, prompts, specs, max_workers)
    if not isinstance(critiques, Sequence) or len(critiques) != len(images):
        got = len(critiques) if isinstance(critiques, Sequence) else type(critiques).__name__
        raise NotACritiqueError(f"critic {critic.name!r}: score_batch returned {got} for {len(images)} images")
    return [_checked(critic, critique) for critique in critiques]


def _score_each(critic: Critic, images, prompts, specs, max_workers) -> list[Critique]:
    if len(images) == 1:  # no pool for one image: the caller's thread does it
        return [_score_one(critic, images[0], prompts[0], specs[0])]
    workers = min(max_workers or DEFAULT_MAX_WORKERS, len(images))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="critic") as pool:
        # contextvars do not cross threads by themselves: copy them so that the round/run ids bound
        # by the graph node reach the critic's log lines
        futures = [
            pool.submit(contextvars.copy_context().run, _score_one, critic, image, prompt, spec)
            for image, prompt, spec in zip(images, prompts, specs, strict=True)
        ]
        return [future.result() for future in futures]


def _score_one(critic: Critic, image: Image.Image, prompt: str, spec: PromptSpec | None) -> Critique:
    started = time.perf_counter()
    try:
        critique = critic(image, prompt, spec)
    except NotACritiqueError:
        raise
    except Exception as err:  # a broken critic must not take the whole round down
        return _raised(critic, err, started)
    return _checked(critic, critique)


def _checked(critic: Critic, critique: object) -> Critique:
    if not isinstance(critique, Critique):
        raise NotACritiqueError(
            f"critic {critic.name!r} ({type(critic).__name__}) returned {type(critique).__name__}, not a Critique"
        )
    return critique


def _error_text(err: Exception) -> str:
    return f"{type(err).__name__}: {err}"


def _raised(critic: Critic, err: Exception, started: float) -> Critique:
    log.warning("critic_raised", critic=critic.name, error=_error_text(err))
    return Critique(critic=critic.name, score=None, error=_error_text(err), seconds=time.perf_counter() - started)
