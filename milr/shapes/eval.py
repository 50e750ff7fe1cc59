"""ShapesEval: a fixed, seeded set of 300 ShapesWorld prompts (50 per GenEval tag) with specs, and
GenEval-style scoring (overall = mean of the six tag scores). `baseline_eval` measures a model's
round 0 (reason + draw, no MILR) with the exact oracle, `decoder_agreement` how faithfully its VQ
decoder paints the scenes its tokens encode; `python -m milr.shapes.eval` runs both."""

from __future__ import annotations

import random
from collections.abc import Iterable

import torch

from milr.critics.base import PromptSpec
from milr.critics.geneval import evaluate
from milr.shapes.oracle import ShapesOracle, detections, read_scene
from milr.shapes.world import GRID, NUM_CODES, TAGS, Scene, make_prompt, parse_plan

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

    `read="pixels"` is the real benchmark: the oracle reads the decoded image; `agreement` is then
    the fraction of images in which it reads exactly the scene the image tokens encode. `read="tokens"`
    scores the scene the tokens encode (what a perfect decoder would show) and `plan` the scene the
    reasoning describes; together they tell the language model's errors from the decoder's.
    """
    oracle = ShapesOracle()
    results, plans, agree = [], [], []
    for i, spec in enumerate(specs):
        text, img = round_zero(mug, spec, cfg=cfg, temperature=temperature, seed=seed + i)
        encoded = Scene.from_codes(img.ids)
        if read == "pixels":
            correct = oracle(img.image, spec.prompt, spec).details["correct"]
            agree.append(read_scene(img.image) == encoded)
        else:
            correct = evaluate(spec, detections(encoded)).correct
        results.append((spec.tag, correct))
        plans.append((spec.tag, evaluate(spec, detections(parse_plan(text.text))).correct))
    out = {**summarize(results), "plan": summarize(plans), "cfg": cfg, "temperature": temperature, "seed": seed}
    if agree:
        out["agreement"] = sum(agree) / len(agree)
    return out


def token_eval(mug, specs: list[PromptSpec], *, cfg: float = 3.0, temperature: float = 1.0, seed: int = 0) -> dict:
    """`baseline_eval` read from the image tokens (decoder-independent)."""
    return baseline_eval(mug, specs, cfg=cfg, temperature=temperature, seed=seed, read="tokens")


def decoder_agreement(mug, n: int = 200, seed: int = 0) -> dict:
    """How often the oracle reads back from a VQ-decoded image exactly what its tokens encode.

    Random grids, half the cells filled: agreement over all cells, over occupied cells, and over
    whole images (every cell right).
    """
    rng = random.Random(seed)
    cells = occupied = right_all = right_occupied = exact = 0
    for _ in range(n):
        codes = [rng.randrange(1, NUM_CODES) if rng.random() < 0.5 else 0 for _ in range(GRID * GRID)]
        truth = Scene.from_codes(codes).objects
        seen = read_scene(mug.decode_image(codes)).objects
        exact += seen == truth
        for cell in ((r, c) for r in range(GRID) for c in range(GRID)):
            same = truth.get(cell) == seen.get(cell)
            cells += 1
            right_all += same
            if cell in truth:
                occupied += 1
                right_occupied += same
    return {
        "cells": right_all / cells,
        "occupied_cells": right_occupied / max(occupied, 1),
        "images_exact": exact / n,
        "images": n,
        "seed": seed,
    }


def main(argv: list[str] | None = None) -> None:
    """`python -m milr.shapes.eval [--model DIR] [--per-tag 50] [--cfg 3] [--read pixels|tokens]`."""
    import argparse
    import json

    from milr.mug.janus import JanusMUG
    from milr.shapes import checkpoint_path

    ap = argparse.ArgumentParser(description="ShapesEval baseline (round 0) of a ShapesWorld checkpoint")
    ap.add_argument("--model", default=None, help="checkpoint folder (default: the packaged one)")
    ap.add_argument("--per-tag", type=int, default=50)
    ap.add_argument("--cfg", type=float, nargs="+", default=None, help="guidance (default: the model's)")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--read", choices=["pixels", "tokens"], default="pixels")
    ap.add_argument("--decoder-images", type=int, default=200, help="random grids for decoder agreement (0: skip)")
    ap.add_argument("--out", default=None, help="also write the results here as JSON")
    args = ap.parse_args(argv)
    mug = JanusMUG.from_pretrained(args.model or checkpoint_path(), device="cpu")
    specs = shapes_eval_prompts(args.per_tag)
    report: dict = {"model": str(args.model or "packaged"), "eval_seed": EVAL_SEED, "per_tag": args.per_tag}
    if args.decoder_images:
        report["decoder"] = decoder_agreement(mug, n=args.decoder_images, seed=args.seed)
        print("decoder", json.dumps(report["decoder"]), flush=True)
    report["baseline"] = []
    for cfg in args.cfg or [mug.recommended.get("cfg", 3.0)]:
        result = baseline_eval(mug, specs, cfg=cfg, temperature=args.temperature, seed=args.seed, read=args.read)
        report["baseline"].append(result)
        print(f"cfg {cfg}", json.dumps(result), flush=True)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2)


if __name__ == "__main__":
    main()
