"""The offline critic lab (DESIGN §7): ShapesWorld critics with known, parameterised blind spots.

A reward-model study needs critics that are wrong in ways one can name. These read the scene from
pixels exactly as `ShapesOracle` does, then judge it by rules with a hole in them:

- `countblind`: counts ignored (an include clause needs one object, exclude clauses are dropped):
  "three circles" passes with one or five. The paper finds SelfReward weak on counting; this is that.
- `positionblind`: relations ignored ("a circle left of a square" passes with the circle on the right).
- `colorblind`: colours ignored ("a red circle" passes in green).
- `lenient`: passes near misses: an image that meets at least one include clause and at least
  `1 - margin` of all its clauses passes (default margin 0.5: one object of two, a wrong colour of
  two, too many of a counted shape). An image with none of the requested objects never passes.
- `noisy`: the oracle, its verdict flipped on a seeded fraction `flip` of the images (s → 1 − s).
- `mixed`: a `Mixer` of the three blind critics, each with its own noise `flip` (default 0.1): their
  blind spots are disjoint, so the mix catches most of what each alone misses, as MixedReward does.

Parameters: `rate` (blind on this seeded fraction of the images, default 1), `flip` (noise), `margin`
(lenient) and `seed`. Every random choice is a hash of (seed, critic, prompt, pixels), not a running
generator: a critic gives an image the same verdict whatever the batch, the order, a resume or a
rescore, so a study's numbers are reproducible and `rescore` equals scoring in the loop.

Registry names spell the parameters (see `milr.orchestrator.registry`): `shapes-countblind`,
`shapes-lenient:margin=0.3`, `shapes-noisy:flip=0.3:seed=2`, `shapes-mixed:flip=0`. A critic's `name`
is that spelling (defaults left out), so a trace's critic list rebuilds the same critic on resume.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from PIL import Image

from milr.critics.base import Critic, Critique, PromptSpec
from milr.critics.geneval import evaluate
from milr.shapes.oracle import detections, read_scene, spec_or_abstention

BLIND_SPOTS = ("count", "position", "color")
KINDS = ("countblind", "positionblind", "colorblind", "lenient", "noisy", "mixed")


@dataclass(frozen=True)
class Preset:
    """What a lab kind is: its blind spots, and its parameters with their defaults."""

    blind: frozenset[str]
    params: dict


PRESETS: dict[str, Preset] = {
    "countblind": Preset(frozenset({"count"}), {"rate": 1.0, "flip": 0.0, "seed": 0}),
    "positionblind": Preset(frozenset({"position"}), {"rate": 1.0, "flip": 0.0, "seed": 0}),
    "colorblind": Preset(frozenset({"color"}), {"rate": 1.0, "flip": 0.0, "seed": 0}),
    "lenient": Preset(frozenset(), {"margin": 0.5, "flip": 0.0, "seed": 0}),
    "noisy": Preset(frozenset(), {"flip": 0.2, "seed": 0}),
    "mixed": Preset(frozenset(), {"rate": 1.0, "flip": 0.1, "seed": 0}),
}
MIXED_MEMBERS = ("countblind", "positionblind", "colorblind")


def unit_draw(seed: int, salt: str, image: Image.Image, prompt: str) -> float:
    """A number in [0, 1) fixed by (seed, salt, prompt, pixels): the lab's only source of chance."""
    h = hashlib.sha256(f"{seed}\x00{salt}\x00{prompt}\x00".encode())
    h.update(image.convert("RGB").tobytes())
    return int.from_bytes(h.digest()[:8], "big") / 2**64


def blinded(spec: PromptSpec, blind: frozenset[str]) -> PromptSpec:
    """`spec` as a critic blind to `blind` reads it: counts → 1 and no exclusions, no relations, no colours."""
    updates = {}
    if "count" in blind:
        updates["count"] = 1
    if "position" in blind:
        updates["position"] = None
    if "color" in blind:
        updates["color"] = None
    include = [item.model_copy(update=updates) for item in spec.include]
    exclude = [] if "count" in blind else list(spec.exclude)
    return spec.model_copy(update={"include": include, "exclude": exclude})


class LabCritic:
    """One ShapesWorld lab critic (see the module docstring); build it with `lab_critic(kind, ...)`.

    `blind`: blind spots among `BLIND_SPOTS`, applied to a seeded fraction `rate` of the images.
    `margin`: near misses pass (0: none). `flip`: the verdict flips on a seeded fraction of images.
    """

    def __init__(
        self,
        kind: str,
        *,
        blind: frozenset[str] = frozenset(),
        rate: float = 1.0,
        margin: float = 0.0,
        flip: float = 0.0,
        seed: int = 0,
        name: str | None = None,
    ):
        unknown = set(blind) - set(BLIND_SPOTS)
        if unknown:
            raise ValueError(f"blind spots must be among {', '.join(BLIND_SPOTS)}, got {sorted(unknown)}")
        for field, value in (("rate", rate), ("margin", margin), ("flip", flip)):
            if not (isinstance(value, int | float) and math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"shapes-{kind}: {field} must be a number in [0, 1], got {value!r}")
        self.kind, self.blind = kind, frozenset(blind)
        self.rate, self.margin, self.flip, self.seed = float(rate), float(margin), float(flip), int(seed)
        self.name = name or f"shapes-{kind}"

    def __call__(self, image: Image.Image, prompt: str, spec: PromptSpec | None = None) -> Critique:
        started = time.perf_counter()
        spec = spec_or_abstention(self.name, prompt, spec, started)
        if isinstance(spec, Critique):
            return spec
        blind_here = self.blind and unit_draw(self.seed, f"blind-{self.kind}", image, prompt) < self.rate
        judged = blinded(spec, self.blind) if blind_here else spec
        scene = read_scene(image)
        result = evaluate(judged, detections(scene))
        passed = [r.passed for r in result.requirements]
        score = sum(passed) / len(passed) if passed else 0.0
        correct = result.correct
        near_miss = not correct and self._near_miss(result.requirements, score)
        if near_miss:
            score, correct = 1.0, True
        flipped = self.flip > 0 and unit_draw(self.seed, f"flip-{self.kind}", image, prompt) < self.flip
        if flipped:
            score, correct = 1.0 - score, not correct
        notes = [f"blind to {', '.join(sorted(self.blind))}"] if blind_here else []
        notes += ["near miss passed"] if near_miss else []
        notes += ["verdict flipped by noise"] if flipped else []
        why = "all requirements met" if result.correct else "; ".join(result.reasons)
        seen = ", ".join(f"{c} {s} at {cell}" for cell, (s, c) in sorted(scene.objects.items())) or "nothing"
        return Critique(
            critic=self.name,
            score=score,
            rationale=f"{self.kind}: {why}{' [' + '; '.join(notes) + ']' if notes else ''} (saw: {seen})",
            details={
                "correct": correct,
                "requirements": passed,
                "blind": bool(blind_here),
                "near_miss": near_miss,
                "flipped": flipped,
            },
            seconds=time.perf_counter() - started,
        )

    def _near_miss(self, requirements, score: float) -> bool:
        """Lenient: at least one include clause met and at most `margin` of the clauses missed."""
        if self.margin <= 0:
            return False
        some_object = any(r.passed for r in requirements if r.clause == "include")
        return some_object and score >= 1.0 - self.margin - 1e-9


def lab_critic(kind: str, **params) -> Critic:
    """The lab critic `kind` (one of `KINDS`) with `params` (numbers, or strings as a registry name
    spells them: `lab_critic("noisy", flip="0.3")`); `ValueError` naming a wrong kind or parameter."""
    if kind not in PRESETS:
        raise ValueError(f"unknown ShapesWorld lab critic {kind!r}; valid: {', '.join(KINDS)}")
    preset = PRESETS[kind]
    unknown = sorted(set(params) - set(preset.params))
    if unknown:
        raise ValueError(
            f"shapes-{kind} takes no parameter {', '.join(unknown)}; its parameters: "
            + ", ".join(f"{k} (default {v})" for k, v in preset.params.items())
        )
    values = {k: _number(kind, k, params.get(k, default), type(default)) for k, default in preset.params.items()}
    name = spelling(kind, values)
    if kind == "mixed":
        from milr.critics import Mixer

        members = [lab_critic(member, rate=values["rate"], flip=values["flip"], seed=values["seed"])
                   for member in MIXED_MEMBERS]  # fmt: skip
        return Mixer(members, name=name)
    return LabCritic(kind, blind=preset.blind, name=name, **values)


def spelling(kind: str, values: dict) -> str:
    """The registry name of a lab critic: `shapes-<kind>`, then `:key=value` for each non-default."""
    defaults = PRESETS[kind].params
    extra = "".join(f":{k}={_text(v)}" for k, v in values.items() if v != defaults[k])
    return f"shapes-{kind}{extra}"


def _text(value: float | int) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _number(kind: str, key: str, value, kind_of: type):
    """A parameter as its preset's type (int seeds, float rates), from a number or a registry string."""
    try:
        number = kind_of(float(value)) if kind_of is float else int(str(value))
    except (TypeError, ValueError):
        raise ValueError(
            f"shapes-{kind}: parameter {key} must be {'an integer' if kind_of is int else 'a number'}, got {value!r}"
        ) from None
    if kind_of is float and not (math.isfinite(number) and 0.0 <= number <= 1.0):
        raise ValueError(f"shapes-{kind}: parameter {key} must lie in [0, 1], got {value!r}")
    return number
