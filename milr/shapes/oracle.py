"""`ShapesOracle` (name "shapes"): reads a ShapesWorld scene back from pixels and applies GenEval's
rules to the prompt's spec. Exact on rendered scenes; robust to the blur of VQ-decoded images.

Per cell: the non-white pixels form the object's mask. Colour = the palette colour nearest to the
mask's mean RGB; shape = how much of the mask's bounding box it fills (square ≈ 1, circle ≈ π/4,
triangle ≈ 1/2). The cells become GenEval detections (cell box, score 1, known colour) and
`milr.critics.geneval` decides. Score = fraction of satisfied clauses; `details["correct"]` = all.

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

MIN_PIXELS = 12  # fewer non-white pixels than this: an empty cell (decoder speckle)
WHITE_DISTANCE = 90  # a pixel this far from white (L1 over RGB) belongs to an object
_PALETTE = np.array(list(COLORS.values()), dtype=np.float32)


def read_cell(patch: np.ndarray) -> Obj | None:
    """(shape, colour) of one cell's pixels [CELL, CELL, 3], or None when empty."""
    mask = (255 * 3 - patch.astype(np.int32).sum(-1)) > WHITE_DISTANCE
    if mask.sum() < MIN_PIXELS:
        return None
    mean = patch[mask].astype(np.float32).mean(0)
    color = list(COLORS)[int(np.abs(_PALETTE - mean).sum(1).argmin())]
    return classify_shape(mask), color


def classify_shape(mask: np.ndarray) -> str:
    """Triangle: much narrower at the top than at the bottom. Square vs circle: whether the corners
    of the bounding box are filled. Both survive the blur of a VQ decoder better than exact templates."""
    rows, cols = np.nonzero(mask)
    box = mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    h, w = box.shape
    third = max(1, h // 3)
    top, bottom = box[:third].sum(1).mean(), box[-third:].sum(1).mean()
    if top < 0.6 * bottom:
        return "triangle"
    k = max(1, min(h, w) // 5)
    corners = np.concatenate([box[:k, :k].ravel(), box[:k, -k:].ravel(), box[-k:, :k].ravel(), box[-k:, -k:].ravel()])
    return "square" if corners.mean() > 0.5 else "circle"


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


class ShapesOracle:
    """Exact ShapesWorld critic: GenEval's rules on the scene read from pixels."""

    name = "shapes"

    def __call__(self, image: Image.Image, prompt: str, spec: PromptSpec | None = None) -> Critique:
        started = time.perf_counter()
        if spec is None:
            try:
                spec = PromptSpec.parse(prompt, classes=SHAPES, colors=COLOR_NAMES)
            except ValueError as err:
                return Critique(
                    critic=self.name,
                    score=None,
                    rationale="the prompt is not a ShapesWorld prompt in GenEval's grammar: nothing exact to check",
                    error=str(err),
                    seconds=time.perf_counter() - started,
                )
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


class NoisyCritic:
    """Wraps a critic with seeded noise: with probability `flip`, the score s becomes 1 - s.

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
                "details": {**verdict.details, "flipped": True},
            }
        )
