"""Batched decodes (DESIGN §2): images/s of a full draw (CFG image tokens + VQ decode, reasoning
excluded) at B = 1, 4, 16 distinct prompts, left-padded, each row with its own generator; and greedy
reasoning tokens/s at the same B. Two models side by side in one process: the bench model of
bench_mug.py (hidden 512, 8 layers, 576 image tokens, 16384 codes) and the shipped ShapesWorld model.
At B = 1 it also times transformers' `generate(generation_mode="image")` on the bench model.

    python benchmarks/bench_batch.py [--repeats 3 --shapes-repeats 20] [--compile] [--out PATH]
    python benchmarks/bench_batch.py --quick --out quick.json      # tiny sizes, 1 repeat (the test)

Repeats are interleaved (one timing of every B, then the next round), so a load change on the machine
hits every B alike; the provenance block records the threads, the load average at start and end and
the other processes that used the CPU meanwhile. Saves benchmarks/results/bench_batch.json unless
--out says otherwise.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_mug import build, interleaved, tokens_only, transformers_image  # noqa: E402
from provenance import Measured, save_result  # noqa: E402

from milr.bench.datasets import load_shapes  # noqa: E402
from milr.config import MILRConfig  # noqa: E402
from milr.orchestrator.facade import load_mug  # noqa: E402

RESULTS = Path(__file__).parent / "results"
BATCHES = (1, 4, 16)
REASONING_TOKENS = 32


def distinct_prompts(count: int) -> list[str]:
    """ShapesEval prompts, duplicates dropped, in dataset order (they differ in length: real padding)."""
    seen: list[str] = []
    for item in load_shapes(50):
        if item.prompt not in seen:
            seen.append(item.prompt)
    if len(seen) < count:
        raise SystemExit(f"ShapesEval has only {len(seen)} distinct prompts, {count} asked")
    return seen[:count]


def summary(seconds: list[float], per_call: int, unit: str) -> dict:
    med = statistics.median(seconds)
    return {
        f"{unit}_per_s": round(per_call / med, 3),
        f"{unit}_per_s_best": round(per_call / min(seconds), 3),
        "seconds_median": round(med, 4),
        "seconds_min": round(min(seconds), 4),
        "seconds": [round(s, 4) for s in seconds],
    }


def measure(mug, prompts: list[str], batches, repeats: int, cfg: float, reasoning_tokens: int) -> dict:
    """images/s of `draw_batch` and reasoning tokens/s of `reason_batch` at every B, interleaved."""
    device = str(mug.device)

    def draw(b: int):
        def call():
            gens = [torch.Generator(device=mug.device).manual_seed(1000 * i) for i in range(b)]
            mug.draw_batch(prompts[:b], cfg=cfg, generators=gens)

        return call

    emitted: dict[int, int] = {}

    def reason(b: int):
        def call():
            emitted[b] = sum(len(r.ids) for r in mug.reason_batch(prompts[:b], max_new_tokens=reasoning_tokens))

        return call

    def vq(b: int):
        codes = [[(7 * i + j) % mug.image_vocab for j in range(mug.num_image_tokens)] for i in range(b)]
        return lambda: mug.decode_images(codes)

    draws = interleaved({b: draw(b) for b in batches}, repeats, device)
    loops = interleaved({b: tokens_only(mug, prompts[:b], cfg) for b in batches}, repeats, device)
    decodes = interleaved({b: vq(b) for b in batches}, repeats, device)
    thoughts = interleaved({b: reason(b) for b in batches}, repeats, device)
    out: dict = {}
    for b in batches:
        row = summary(draws[b], b, "images")
        # The VQ decode inside the draw, timed on its own (decode_images of b token rows).
        row["vq_decode_seconds_median"] = round(statistics.median(decodes[b]), 4)
        row["vq_decode_share"] = round(statistics.median(decodes[b]) / row["seconds_median"], 3)
        row["image_prompt_tokens"] = [len(mug.image_prompt_ids(p)) for p in prompts[:b]]
        # The CFG token loop alone (VQ decode excluded), as issue 11's own table measured batching.
        row["token_loop"] = summary(loops[b], b, "images")
        out[f"B={b}"] = row
    first, last = batches[0], batches[-1]
    for b in batches[1:]:
        now, then = out[f"B={b}"], out[f"B={first}"]
        out[f"speedup_B{b}_vs_B{first}"] = round(now["images_per_s"] / then["images_per_s"], 2)
        # From each B's fastest repeat: on a shared machine other load only ever adds time.
        out[f"speedup_B{b}_vs_B{first}_best"] = round(now["images_per_s_best"] / then["images_per_s_best"], 2)
        out[f"token_loop_speedup_B{b}_vs_B{first}"] = round(
            now["token_loop"]["images_per_s"] / then["token_loop"]["images_per_s"], 2
        )
    out["reasoning"] = {f"B={b}": summary(thoughts[b], emitted[b], "tokens") | {"tokens": emitted[b]} for b in batches}
    out["reasoning"][f"speedup_B{last}_vs_B{first}"] = round(
        out["reasoning"][f"B={last}"]["tokens_per_s"] / out["reasoning"][f"B={first}"]["tokens_per_s"], 2
    )
    return out


def versus_transformers(mug, prompt: str, repeats: int) -> dict:
    """B = 1: our full draw and our token loop alone against transformers' image `generate` (tokens only)."""
    device = str(mug.device)
    times = interleaved(
        {
            "ours_draw": lambda: mug.draw(prompt, generator=torch.Generator(device=mug.device).manual_seed(0)),
            "ours_tokens_only": tokens_only(mug, prompt),
            "transformers_generate": transformers_image(mug, prompt),
        },
        repeats,
        device,
    )
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        **{f"{k}_seconds_median": round(v, 4) for k, v in med.items()},
        **{f"{k}_seconds": [round(s, 4) for s in v] for k, v in times.items()},
        "ratio_draw": round(med["transformers_generate"] / med["ours_draw"], 3),
        "ratio_tokens_only": round(med["transformers_generate"] / med["ours_tokens_only"], 3),
        "note": "ratio = transformers seconds / ours (> 1: ours faster); ours_draw includes the VQ decode",
    }


def measure_models(args, batches: tuple[int, ...], size: dict) -> dict:
    """The bench model's and ShapesWorld's figures at every B, and the targets they meet."""
    prompts = distinct_prompts(max(batches))
    result: dict = {
        "quick": args.quick,
        "repeats": {"bench_model": args.repeats, "shapes": args.shapes_repeats},
        "batches": list(batches),
        "what": "images/s of draw_batch (CFG tokens + VQ decode; reasoning excluded), B distinct "
        "left-padded prompts with one generator each; median of interleaved repeats after a warm-up. "
        "token_loop: the CFG token loop alone (VQ decode excluded)",
    }

    bench = build(size["hidden"], size["layers"], size["grid"], "cpu", torch.float32, None, size["codes"])
    section = {"model": size | {"image_tokens": bench.num_image_tokens}}
    section |= measure(bench, prompts, batches, args.repeats, 5.0, REASONING_TOKENS)
    section["vs_transformers_B=1"] = versus_transformers(bench, prompts[0], args.repeats)
    result["bench_model"] = section
    del bench

    shapes = load_mug("shapes", MILRConfig(device="cpu"))
    cfg = float(shapes.recommended.get("cfg", 5.0))
    tokens = int(shapes.recommended.get("max_reasoning_tokens", REASONING_TOKENS))
    result["shapes"] = {"model": {"image_tokens": shapes.num_image_tokens, "cfg": cfg}}
    result["shapes"] |= measure(shapes, prompts, batches, args.shapes_repeats, cfg, tokens)
    if args.compile:
        shapes.compile = True
        result["shapes_compile"] = measure(shapes, prompts, batches, args.shapes_repeats, cfg, tokens)

    last = batches[-1]
    result["targets"] = {
        f"bench_model_B{last}_vs_B1 >= 4": result["bench_model"].get(f"speedup_B{last}_vs_B1", 0) >= 4,
        f"shapes_B{last}_vs_B1 >= 6": result["shapes"].get(f"speedup_B{last}_vs_B1", 0) >= 6,
        f"shapes_token_loop_B{last}_vs_B1 >= 6": result["shapes"].get(f"token_loop_speedup_B{last}_vs_B1", 0) >= 6,
        "bench_model_B1_vs_transformers >= 0.95": section["vs_transformers_B=1"]["ratio_tokens_only"] >= 0.95,
    }
    return result


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds on the bench model (after a warm-up)")
    ap.add_argument("--shapes-repeats", type=int, default=20, help="timed rounds on ShapesWorld")
    ap.add_argument("--batches", default=",".join(map(str, BATCHES)))
    ap.add_argument("--compile", action="store_true", help="also time ShapesWorld with compile=True (CPU: slow)")
    ap.add_argument("--quick", action="store_true", help="tiny bench model, 1 repeat: a smoke run")
    ap.add_argument("--out", type=Path, default=RESULTS / "bench_batch.json")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: what the graph's nodes decode at on a CPU, see "
        "milr.orchestrator.graph.node_threads; the VQ decodes of a batch then share the free cores)",
    )
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    batches = tuple(int(b) for b in args.batches.split(","))
    if batches[0] != 1:
        raise SystemExit("--batches must start at 1 (speedups are against B = 1)")
    if args.quick:
        args.repeats = args.shapes_repeats = 1
        size = {"hidden": 64, "layers": 2, "grid": 4, "codes": 512}
    else:
        size = {"hidden": 512, "layers": 8, "grid": 24, "codes": 16384}
    with Measured() as measured:
        result = measure_models(args, batches, size)
    result["wall_seconds"] = round(measured.seconds, 1)
    result["provenance"] = measured.provenance("cpu", None if argv is None else [__file__, *argv])
    save_result(result, args.out)
    return result


if __name__ == "__main__":
    main()
