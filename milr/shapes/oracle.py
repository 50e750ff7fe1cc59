"""`ShapesOracle` (name "shapes"): reads a ShapesWorld scene back from pixels and applies GenEval's
rules to the prompt's spec. Exact on rendered scenes; robust to the blur of VQ-decoded images.

Per cell: the pixels with at least half the cell's strongest ink form the object's mask. Colour =
the palette colour nearest to the mean RGB of the most saturated pixels; shape = mask area and
vertical balance (see `milr.shapes.world`: the shapes differ in features that survive blur).
The cells become GenEval detections (cell box, score 1, known colour) and `milr.critics.geneval`
decides. Score = fraction of satisfied clauses; `details["correct"]` = all.

`NoisyCritic` wraps any critic with controlled, seeded noise for reward-model studies.
"""

from __future__ import annotations

import random
import time

import numpy as np
from PIL import Image

from milr.critics.base import Critic, Critique, PromptSpec
from milr.critics.geneval import Detection, evaluate
from milr.shapes.world import CELL, COLOR_NAMES, COLORS, GRID, SHAPES, SIZE, Cell, Obj, Scene, cell_box

EMPTY_INK = 150  # a cell whose strongest pixel is this close to white (L1 over RGB) is empty
SQUARE_AREA = 106  # half-max mask area: square 144 px, triangle 78, circle 52 (geometric midpoints)
TRIANGLE_DROP = 0.9  # px: a triangle's ink centre sits 1.8 px below the cell centre, a circle's on it
_PALETTE = np.array(list(COLORS.values()), dtype=np.float32)
_ROWS = np.arange(CELL, dtype=np.float32)[:, None]


def read_cell(patch: np.ndarray) -> Obj | None:
    """(shape, colour) of one cell's pixels [CELL, CELL, 3], or None when empty.

    The mask is the set of pixels with at least half the cell's strongest ink (distance from
    white): a half-maximum threshold keeps a blurred blob about as large as the sharp shape.
    """
    ink = 255 * 3 - patch.astype(np.float32).sum(-1)
    peak = ink.max()
    if peak < EMPTY_INK:
        return None
    mask = ink >= 0.5 * peak
    core = ink >= 0.75 * peak  # colour from the saturated centre, not the edges blurred into white
    mean = patch[core].astype(np.float32).mean(0)
    color = COLOR_NAMES[int(np.abs(_PALETTE - mean).sum(1).argmin())]
    return classify_shape(mask), color


def classify_shape(mask: np.ndarray) -> str:
    """Square: large. Triangle: ink centre below the cell centre. Circle: small and centred."""
    area = mask.sum()
    if area >= SQUARE_AREA:
        return "square"
    drop = float((mask * _ROWS).sum() / area) - (CELL - 1) / 2
    return "triangle" if drop > TRIANGLE_DROP else "circle"


def read_scene(image: Image.Image) -> Scene:
    """The scene an image shows (resized to 64×64 if needed)."""
    if image.size != (SIZE, SIZE):
        image = image.resize((SIZE, SIZE), Image.Resampling.BILINEAR)
    arr = np.asarray(image.convert("RGB"))
    objects: dict[Cell, Obj] = {}
    for r in range(GRID):
        for c in range(GRID):
            obj = read_cell(arr[r * CELL : (r + 1) * CELL, c * CELL : (c + 1) * CELL])
            if obj is not None:
                objects[(r, c)] = obj
    return Scene(objects)


def detections(scene: Scene) -> list[Detection]:
    return [Detection(cls=s, box=cell_box(cell), score=1.0, color=c) for cell, (s, c) in scene.objects.items()]


def spec_or_abstention(critic: str, prompt: str, spec: PromptSpec | None, started: float) -> PromptSpec | Critique:
    """The prompt's spec (given, or parsed in GenEval's grammar over ShapesWorld's words), or the
    critic's abstention when the prompt is not a ShapesWorld prompt: nothing exact to check."""
    if spec is not None:
        return spec
    try:
        return PromptSpec.parse(prompt, classes=SHAPES, colors=COLOR_NAMES)
    except ValueError as err:
        return Critique(
            critic=critic,
            score=None,
            rationale="the prompt is not a ShapesWorld prompt in GenEval's grammar: nothing exact to check",
            error=str(err),
            seconds=time.perf_counter() - started,
        )


class ShapesOracle:
    """Exact ShapesWorld critic: GenEval's rules on the scene read from pixels."""

    name = "shapes"

    def __call__(self, image: Image.Image, prompt: str, spec: PromptSpec | None = None) -> Critique:
        started = time.perf_counter()
        spec = spec_or_abstention(self.name, prompt, spec, started)
        if isinstance(spec, Critique):
            return spec
        scene = read_scene(image)
        result = evaluate(spec, detections(scene))
        passed = [r.passed for r in result.requirements]
        score = sum(passed) / len(passed) if passed else 0.0
        seen = ", ".join(f"{c} {s} at {cell}" for cell, (s, c) in sorted(scene.objects.items())) or "nothing"
        rationale = "all requirements met" if result.correct else "; ".join(result.reasons)
        return Critique(
            critic=self.name,
            score=score,
            rationale=f"{rationale} (saw: {seen})",
            details={"correct": result.correct, "requirements": passed},
            seconds=time.perf_counter() - started,
        )


def _flipped_verdict(details: dict) -> dict:
    """A boolean `correct` verdict flips with the score (spec-based critics report one)."""
    return {"correct": not details["correct"]} if isinstance(details.get("correct"), bool) else {}


class NoisyCritic:
    """Wraps a critic with seeded noise: with probability `flip`, the score s becomes 1 - s (and a
    boolean `details["correct"]` flips with it).

    For reward studies: how much does MILR lose when its reward is wrong a fraction of the time?
    Abstentions pass through unchanged.
    """

    def __init__(self, critic: Critic, flip: float, seed: int = 0):
        if not 0.0 <= flip <= 1.0:
            raise ValueError(f"flip must lie in [0, 1], got {flip}")
        self.critic, self.flip = critic, flip
        self.name = f"noisy-{critic.name}"
        self._rng = random.Random(seed)

    def __call__(self, image: Image.Image, prompt: str, spec: PromptSpec | None = None) -> Critique:
        verdict = self.critic(image, prompt, spec)
        flipped = verdict.score is not None and self._rng.random() < self.flip
        if not flipped:
            return verdict.model_copy(update={"critic": self.name})
        return verdict.model_copy(
            update={
                "critic": self.name,
                "score": 1.0 - verdict.score,
                "rationale": f"[flipped by noise] {verdict.rationale}",
                "details": {**verdict.details, **_flipped_verdict(verdict.details), "flipped": True},
            }
        )
