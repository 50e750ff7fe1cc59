"""ShapesEval with the shipped ShapesWorld model (issues 6 and 7): baseline (round 0), MILR (K=20)
with the exact oracle, best-of-N at the same budget (N = K + 1), the text-only and image-only
ablations, and MILR rewarded by a noisy oracle (flip p = 0.2) but judged by the exact one.

    python benchmarks/bench_shapes.py [--per-tag 50] [--steps 20] [--methods baseline,milr,...]
    python benchmarks/bench_shapes.py --startup     # load + first reasoning and image, cold

It drives the same runner as `milr bench shapes` (milr.bench.runner). Seeds: ShapesEval prompt set
seed 1234; entry i runs with seed 1000·i (best-of-N sample j: 1000·i + j); noise seed 0. Each method
saves benchmarks/results/bench_shapes/<method>.json (per tag, overall, mean generations, generations
a best-of-N stopping at the first passing sample would use, prompts/s, provenance); run methods in
parallel processes with `--methods`, then `--collect` writes the table benchmarks/results/bench_shapes.md.
`--results DIR` writes all of it under DIR instead (smoke runs).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

from milr.bench.datasets import load_shapes
from milr.bench.runner import BenchSpec, run_bench
from milr.bench.summary import load_records, summarize
from milr.config import MILRConfig
from milr.mug.janus import image_prompt
from milr.orchestrator.registry import build_model
from milr.shapes.oracle import NoisyCritic, ShapesOracle

sys.path.insert(0, str(Path(__file__).parent))
from provenance import Measured  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "bench_shapes"
METHODS = ("baseline", "milr", "best_of_n", "milr_text_only", "milr_image_only", "milr_noisy")
NOISE = 0.2


def spec_and_reward(method: str, config: MILRConfig, oracle: ShapesOracle):
    """(BenchSpec, reward critic) of a method name; the evaluation critic is always the exact oracle."""
    specs = {
        "baseline": ("baseline", config),
        "milr": ("milr", config),
        "best_of_n": ("best-of-n", config),
        "milr_text_only": ("milr", config.override(optimize=["text"])),
        "milr_image_only": ("milr", config.override(optimize=["image"])),
        "milr_noisy": ("milr", config),
    }
    if method not in specs:
        raise SystemExit(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    name, cfg = specs[method]
    reward = NoisyCritic(oracle, flip=NOISE, seed=0) if method == "milr_noisy" else oracle
    return BenchSpec(name, cfg), reward


def run_method(method: str, mug, config: MILRConfig, per_tag: int) -> dict:
    oracle = ShapesOracle()
    spec, reward = spec_and_reward(method, config, oracle)
    items = load_shapes(per_tag)
    with tempfile.TemporaryDirectory() as tmp:
        with Measured() as measured:
            run_bench(items, mug, spec, reward, oracle, tmp, progress=False)
        records = load_records(tmp)
    seconds = measured.seconds
    summary = summarize(records)
    passes = [r["first_pass"] or r["generations"] for r in records]
    return {
        "method": method,
        "prompts": len(records),
        "tags": summary["tags"],
        "overall": summary["overall"],
        "mean_generations": summary["mean_generations"],
        "mean_generations_if_stopped_at_first_pass": sum(passes) / len(passes),
        "seconds": round(seconds, 1),
        "prompts_per_s": round(len(records) / seconds, 3),
        "config": spec.config.to_json_dict(),
        "reward": "noisy oracle (flip 0.2, seed 0)" if method == "milr_noisy" else "oracle",
        "provenance": measured.provenance("cpu"),
    }


def measure_startup() -> dict:
    """Issue 6's first-use figure: load the packaged checkpoint, reason and draw one image, cold."""
    with Measured() as loading:
        mug = build_model("shapes", MILRConfig())
    with Measured() as drawing:
        text = mug.reason("a photo of a red circle left of a blue square")
        mug.draw(image_prompt("a photo of a red circle left of a blue square", text.text), generator=torch.Generator())
    return {
        "load_s": round(loading.seconds, 3),
        "reason_and_draw_s": round(drawing.seconds, 3),
        "total_s": round(loading.seconds + drawing.seconds, 3),
        "target_s": 2.0,
        "provenance": loading.provenance("cpu") | {"reason_and_draw": drawing.record()},
    }


def collect(results: Path) -> str:
    rows = [json.loads(p.read_text()) for m in METHODS if (p := results / f"{m}.json").is_file()]
    tags = list(rows[0]["tags"]) if rows else []
    head = "| method | " + " | ".join(tags) + " | overall | mean gens | gens to 1st pass | prompts/s |"
    lines = [head, "|" + "---|" * (len(tags) + 5)]
    for r in rows:
        cells = [f"{r['tags'][t]:.2f}" for t in tags]
        lines.append(
            f"| {r['method']} | " + " | ".join(cells) + f" | **{r['overall']:.3f}** | {r['mean_generations']:.2f} | "
            f"{r['mean_generations_if_stopped_at_first_pass']:.2f} | {r['prompts_per_s']:.2f} |"
        )
    table = "\n".join(lines) + "\n"
    (results.parent / "bench_shapes.md").write_text(table)
    return table


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-tag", type=int, default=50)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--collect", action="store_true", help="only write the table of the saved methods")
    ap.add_argument("--startup", action="store_true", help="only time loading the checkpoint and a first image")
    ap.add_argument("--results", type=Path, default=RESULTS, help="folder of the method JSONs (table: its parent)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    results = args.results
    results.mkdir(parents=True, exist_ok=True)
    if args.startup:
        entry = measure_startup()
        (results / "startup.json").write_text(json.dumps(entry, indent=2) + "\n")
        print(entry)
        return
    if not args.collect:
        config = MILRConfig(steps=args.steps)
        mug = build_model("shapes", config)
        config = config.with_recommended(mug.recommended)
        for method in args.methods.split(","):
            entry = run_method(method, mug, config, args.per_tag)
            (results / f"{method}.json").write_text(json.dumps(entry, indent=2) + "\n")
            print(method, f"overall {entry['overall']:.3f}", f"{entry['seconds']} s", flush=True)
    print(collect(results))


if __name__ == "__main__":
    main()
