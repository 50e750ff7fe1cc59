"""ShapesEval: a fixed, seeded set of 300 ShapesWorld prompts (50 per GenEval tag) with specs, and
GenEval-style scoring (overall = mean of the six tag scores). `baseline_eval` measures a model's
round 0 (reason + draw, no MILR) with the exact oracle."""

from __future__ import annotations

import random
from collections.abc import Iterable

import torch

from milr.critics.base import PromptSpec
from milr.shapes.oracle import ShapesOracle, detections
from milr.shapes.world import TAGS, Scene, make_prompt, parse_plan

MAX_PLAN_TOKENS = 64  # four objects take 44 plan tokens; a runaway plan stops here
EVAL_SEED = 1234  # never the training seed: the benchmark must not be the training data's order


def shapes_eval_prompts(per_tag: int = 50, seed: int = EVAL_SEED) -> list[PromptSpec]:
    """The ShapesEval prompt set, in tag order. A small world has few distinct prompts per tag
    (3 single objects, 9 counting prompts, ...), so prompts repeat: each entry is one sample, drawn
    with its own seed (its index), like GenEval's several images per prompt."""
    rng = random.Random(seed)
    return [make_prompt(tag, rng) for tag in TAGS for _ in range(per_tag)]


def summarize(results: Iterable[tuple[str, bool]]) -> dict:
    """Per-tag accuracy and overall = mean of the tag accuracies (GenEval's summary)."""
    per: dict[str, list[bool]] = {}
    for tag, correct in results:
        per.setdefault(tag, []).append(bool(correct))
    tags = {t: sum(v) / len(v) for t, v in per.items()}
    return {"tags": tags, "overall": sum(tags.values()) / len(tags) if tags else 0.0, "n": sum(map(len, per.values()))}


def round_zero(mug, spec: PromptSpec, *, cfg: float, temperature: float, seed: int):
    """MILR's round 0 for one prompt: greedy reasoning, then one image sampled with `seed`."""
    from milr.mug.janus import image_prompt

    text = mug.reason(spec.prompt, max_new_tokens=MAX_PLAN_TOKENS)
    gen = torch.Generator(device=mug.device).manual_seed(seed)
    return text, mug.draw(image_prompt(spec.prompt, text.text), cfg=cfg, temperature=temperature, generator=gen)


def baseline_eval(
    mug, specs: list[PromptSpec], *, cfg: float = 3.0, temperature: float = 1.0, seed: int = 0, read: str = "pixels"
) -> dict:
    """Round 0 of MILR on every prompt (prompt i drawn with seed `seed + i`), scored exactly.

    `read="pixels"` is the real benchmark: the oracle reads the decoded image. `read="tokens"` scores
    the scene the image tokens encode (what a perfect decoder would show) and `plan` the scene the
    reasoning describes; both tell the language model's errors from the decoder's.
    """
    from milr.critics.geneval import evaluate

    oracle = ShapesOracle()
    results, plans = [], []
    for i, spec in enumerate(specs):
        text, img = round_zero(mug, spec, cfg=cfg, temperature=temperature, seed=seed + i)
        if read == "pixels":
            correct = oracle(img.image, spec.prompt, spec).details["correct"]
        else:
            correct = evaluate(spec, detections(Scene.from_codes(img.ids))).correct
        results.append((spec.tag, correct))
        plans.append((spec.tag, evaluate(spec, detections(parse_plan(text.text))).correct))
    return {**summarize(results), "plan": summarize(plans), "cfg": cfg, "temperature": temperature, "seed": seed}


def token_eval(mug, specs: list[PromptSpec], *, cfg: float = 3.0, temperature: float = 1.0, seed: int = 0) -> dict:
    """`baseline_eval` read from the image tokens (decoder-independent)."""
    return baseline_eval(mug, specs, cfg=cfg, temperature=temperature, seed=seed, read="tokens")


def decoder_agreement(mug, n: int = 200, seed: int = 0) -> dict:
    """How often the oracle reads back from a VQ-decoded image exactly the cells its tokens encode.

    Random grids, half the cells filled. Reports agreement over all cells and over occupied cells.
    """
    from milr.shapes.oracle import read_scene
    from milr.shapes.world import GRID, NUM_CODES, Scene

    rng = random.Random(seed)
    cells = occupied = right_all = right_occupied = 0
    for _ in range(n):
        codes = [rng.randrange(1, NUM_CODES) if rng.random() < 0.5 else 0 for _ in range(GRID * GRID)]
        truth = Scene.from_codes(codes).objects
        seen = read_scene(mug.decode_image(codes)).objects
        for r in range(GRID):
            for c in range(GRID):
                same = truth.get((r, c)) == seen.get((r, c))
                cells += 1
                right_all += same
                if (r, c) in truth:
                    occupied += 1
                    right_occupied += same
    return {"cells": right_all / cells, "occupied_cells": right_occupied / max(occupied, 1), "images": n}
