"""Speed of the model layer (issue 2): our CFG image loop vs transformers' `generate(generation_mode="image")`
on the same random-init Janus with 576 image tokens, and one REINFORCE step (both modalities).

    python benchmarks/bench_mug.py [--hidden 512 --layers 8 --repeats 3] [--device cuda --dtype bfloat16]

Our full draw (tokens + VQ decode), our token loop alone, transformers' generate (tokens only) and
the VQ decode are timed in turns, repeat by repeat (`interleaved`), so a change of load on a shared
machine hits them alike; each is the median of `--repeats` after one warm-up. Both of our calls run
under `no_grad`, as `draw` does and as transformers' `generate` does. Prints the figures and saves
them to benchmarks/results/bench_mug[_<device>].json (or `--out`), with their provenance.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import JanusForConditionalGeneration

from milr.mug.janus import SPECIAL_TOKENS, JanusMUG
from milr.mug.latents import LatentPrefix
from milr.mug.tiny import tiny_image_processor, tiny_janus_config, word_tokenizer

sys.path.insert(0, str(Path(__file__).parent))
from provenance import Measured  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def build(hidden: int, layers: int, grid: int, device: str, dtype: torch.dtype, vocab: int | None, codes: int):
    tokenizer = word_tokenizer()
    config = tiny_janus_config(
        vocab or len(tokenizer),
        hidden=hidden,
        layers=layers,
        heads=max(4, hidden // 128),
        kv_heads=max(2, hidden // 512),
        grid=grid,
        num_codes=codes,
        max_positions=4096,
        image_token_id=tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS["image"]),
    )
    torch.manual_seed(0)
    model = JanusForConditionalGeneration(config)
    return JanusMUG(model, tokenizer, tiny_image_processor(16 * grid), device=device, dtype=dtype)


def transformers_image(mug: JanusMUG, prompt: str):
    """transformers' own CFG image loop (`generate(generation_mode="image")`, tokens only) for one prompt,
    as a call to time."""
    model = mug.model
    gc = model.generation_config
    gc.bos_token_id, gc.pad_token_id = mug.ids["bos"], mug.ids["pad"]
    gc.generation_kwargs = {"boi_token_id": mug.ids["boi"]}
    ids = mug.cfg_prompt_ids(prompt)[:1]

    def theirs():
        model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            generation_mode="image",
            do_sample=True,
            guidance_scale=5.0,
            max_new_tokens=mug.num_image_tokens,
        )

    return theirs


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def tokens_only(mug: JanusMUG, prompt: str | list[str], cfg: float = 5.0):
    """Our CFG token loop for one prompt (or a batch, each with its own generator) without the VQ
    decode (what transformers' generate times), as a call to time. Under `no_grad`, as `draw` is: with
    autograd on, every op of the 576 steps would be recorded and kept alive through the latents, and
    the loop would time autograd, not decoding."""
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    pairs = [mug.cfg_prompt_ids(p).tolist() for p in prompts]
    rows = [cond for cond, _ in pairs] + [uncond for _, uncond in pairs]

    @torch.no_grad()
    def ours():
        gens = [torch.Generator(device=mug.device).manual_seed(1000 * i) for i in range(len(prompts))]
        mug._image_tokens(rows, [{} for _ in prompts], cfg, 1.0, gens, False)

    return ours


def interleaved(fns: dict[object, Callable[[], object]], repeats: int, device: str) -> dict:
    """Seconds of each call, `repeats` rounds of all calls in turn, after one warm-up call each."""
    for fn in fns.values():
        fn()
    out: dict[object, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            sync(device)
            t = time.perf_counter()
            fn()
            sync(device)
            out[key].append(time.perf_counter() - t)
            print(f"  {key}: {out[key][-1]:.3f} s", file=sys.stderr, flush=True)
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--grid", type=int, default=24, help="24 → 576 image tokens, as Janus-Pro at 384 px")
    ap.add_argument("--codes", type=int, default=16384)
    ap.add_argument("--vocab", type=int, default=None, help="text vocabulary (102400 for Janus-Pro)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--tag", default="")
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default: results/bench_mug[_<tag>].json)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    mug = build(args.hidden, args.layers, args.grid, args.device, dtype, args.vocab, args.codes)
    n = mug.num_image_tokens
    prompt = "a photo of a red cat left of a blue dog"
    model = mug.model

    def ours():
        mug.draw(prompt, generator=torch.Generator(device=mug.device).manual_seed(0))

    calls = {
        "ours_draw": ours,
        "ours_tokens_only": tokens_only(mug, prompt),
        "transformers_generate": transformers_image(mug, prompt),
        "vq_decode": lambda: mug.decode_image([0] * n),
    }
    with Measured() as measured:
        times = interleaved(calls, args.repeats, args.device)
        roll = mug.draw(prompt, generator=torch.Generator(device=mug.device).manual_seed(0))
        text = mug.reason(prompt, max_new_tokens=50)
        zt = LatentPrefix("text", text.latents[:10], list(range(10)), 0.03)
        zv = LatentPrefix("image", roll.latents[:11], list(range(11)), 0.03)

        def step():
            zt.step(mug.text_logits, -0.5)
            zv.step(mug.image_logits, -0.5)

        t_step = interleaved({"step": step}, max(args.repeats, 5), args.device)["step"]
    med = {k: statistics.median(v) for k, v in times.items()}
    ours_s, theirs_s = med["ours_draw"], med["transformers_generate"]
    result = {
        "device": args.device,
        "dtype": args.dtype,
        "model": {"hidden": args.hidden, "layers": args.layers, "image_tokens": n, "codes": args.codes},
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
        "repeats": args.repeats,
        "image_seconds_ours": round(ours_s, 3),
        "image_seconds_ours_tokens_only": round(med["ours_tokens_only"], 3),
        "image_seconds_transformers": round(theirs_s, 3),
        "vq_decode_seconds": round(med["vq_decode"], 3),
        "speedup_vs_transformers": round(theirs_s / ours_s, 2),
        "speedup_tokens_only": round(theirs_s / med["ours_tokens_only"], 2),
        "seconds": {k: [round(x, 4) for x in v] for k, v in times.items()},
        "image_tokens_per_s": round(n / ours_s, 1),
        "reinforce_step_seconds": round(statistics.median(t_step), 4),
        "step_fraction_of_image": round(statistics.median(t_step) / ours_s, 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "note": "speedup = transformers seconds / ours (> 1: ours faster). The draw includes the VQ decode "
        "and the token loop does not, so speedup_tokens_only >= speedup_vs_transformers up to noise.",
        "provenance": measured.provenance(args.device),
    }
    if args.device.startswith("cuda"):
        result["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    print(json.dumps(result, indent=2))
    suffix = f"_{args.tag}" if args.tag else ("" if args.device == "cpu" else f"_{args.device.split(':')[0]}")
    out = args.out or RESULTS / f"bench_mug{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
