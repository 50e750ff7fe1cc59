"""ShapesEval with the shipped ShapesWorld model (issue 6): baseline (round 0), MILR with the exact oracle,
best-of-N at the same generation budget, the text-only and image-only ablations, and MILR with a noisy oracle.

    python benchmarks/bench_shapes.py [--per-tag 50] [--steps 20] [--methods baseline,milr,best_of_n,...]

Seeds: prompt i of ShapesEval (seed 1234) runs with MILRConfig(seed=i); best-of-N draws sample j of
prompt i with seed i·1000 + j; the noisy oracle flips with p = 0.2 (seed 0). Prints a table and saves
benchmarks/results/bench_shapes.json (per tag and overall, mean generations, prompts/s).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from milr.config import MILRConfig
from milr.mug.janus import image_prompt
from milr.orchestrator import MILR
from milr.shapes.eval import shapes_eval_prompts, summarize
from milr.shapes.oracle import NoisyCritic, ShapesOracle

RESULTS = Path(__file__).parent / "results"
METHODS = ("baseline", "milr", "best_of_n", "milr_text_only", "milr_image_only", "milr_noisy")


def correct_of(round_) -> bool:
    return bool(round_.critiques[0].details.get("correct"))


def run_milr(mug, specs, base: MILRConfig, critic, out: Path) -> dict:
    oracle = ShapesOracle()
    rows = []
    for i, spec in enumerate(specs):
        milr = MILR(mug, critic, base.override(seed=i), out=out)
        res = milr(spec.prompt, spec)
        # Judge the returned images with the exact oracle even when the reward critic was noisy.
        best = oracle(res.image, spec.prompt, spec).details["correct"]
        last = oracle(res.rounds[-1].image, spec.prompt, spec).details["correct"]
        rows.append({"tag": spec.tag, "best": best, "last": last, "generations": len(res.rounds)})
    return rows


def run_best_of_n(mug, specs, n: int, config: MILRConfig) -> list[dict]:
    oracle = ShapesOracle()
    rows = []
    for i, spec in enumerate(specs):
        text = mug.reason(spec.prompt, max_new_tokens=config.max_reasoning_tokens)  # greedy: same for every sample
        scores, first_pass = [], None
        for j in range(n):
            gen = torch.Generator(device=mug.device).manual_seed(i * 1000 + j)
            img = mug.draw(
                image_prompt(spec.prompt, text.text), cfg=config.cfg, temperature=config.temperature, generator=gen
            )
            verdict = oracle(img.image, spec.prompt, spec)
            scores.append(verdict.score)
            if first_pass is None and verdict.score >= config.threshold:
                first_pass = j + 1
        rows.append(
            {
                "tag": spec.tag,
                "best": max(scores) >= 1.0,
                "generations": n,
                "generations_with_early_stop": first_pass or n,
            }
        )
    return rows


def table(rows: list[dict], key: str) -> dict:
    return summarize((r["tag"], r[key]) for r in rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-tag", type=int, default=50)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--model", default="shapes")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    milr_loader = MILR.from_pretrained(args.model, critics=[ShapesOracle()], config=MILRConfig(steps=args.steps))
    mug, base = milr_loader.mug, milr_loader.config
    specs = shapes_eval_prompts(args.per_tag)
    results: dict = {
        "prompts": len(specs),
        "steps": args.steps,
        "config": base.to_json_dict(),
        "seeds": "prompt i → MILRConfig(seed=i); best-of-N sample j → seed 1000·i + j; noise seed 0, p=0.2",
    }
    oracle = ShapesOracle()
    for method in args.methods.split(","):
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            if method == "baseline":
                rows = run_milr(mug, specs, base.override(steps=0), oracle, Path(tmp))
            elif method == "milr":
                rows = run_milr(mug, specs, base, oracle, Path(tmp))
            elif method == "milr_text_only":
                rows = run_milr(mug, specs, base.override(optimize=["text"]), oracle, Path(tmp))
            elif method == "milr_image_only":
                rows = run_milr(mug, specs, base.override(optimize=["image"]), oracle, Path(tmp))
            elif method == "milr_noisy":
                rows = run_milr(mug, specs, base, NoisyCritic(oracle, flip=0.2, seed=0), Path(tmp))
            elif method == "best_of_n":
                rows = run_best_of_n(mug, specs, args.steps + 1, base)
            else:
                raise SystemExit(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
        seconds = time.perf_counter() - started
        entry = {
            "select_best": table(rows, "best"),
            "mean_generations": sum(r["generations"] for r in rows) / len(rows),
            "seconds": round(seconds, 1),
            "prompts_per_s": round(len(rows) / seconds, 3),
        }
        if "last" in rows[0]:
            entry["select_last"] = table(rows, "last")
        if "generations_with_early_stop" in rows[0]:
            entry["mean_generations_with_early_stop"] = sum(r["generations_with_early_stop"] for r in rows) / len(rows)
        results[method] = entry
        print(method, json.dumps(entry), flush=True)
        RESULTS.mkdir(exist_ok=True)
        name = f"bench_shapes{'_' + args.tag if args.tag else ''}.json"
        (RESULTS / name).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
