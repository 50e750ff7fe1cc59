"""The critic contract (DESIGN §4): `Critic` objects score an image against a prompt.

A critic returns a `Critique` whose `score` lies in [0, 1], or `None` when it abstains (an error,
a refusal, a prompt it cannot judge). Only `milr.mug.latents` turns the mixed score s into the
reward R = s - 1. `PromptSpec` is GenEval's metadata schema, shared by every spec-based critic.
"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator

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
