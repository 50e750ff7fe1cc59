"""Speed of the model layer (issue 2): our CFG image loop vs transformers' `generate(generation_mode="image")`
on the same random-init Janus with 576 image tokens, and one REINFORCE step (both modalities).

    python benchmarks/bench_mug.py [--hidden 512 --layers 8 --repeats 3] [--device cuda --dtype bfloat16]

Prints the figures and saves them to benchmarks/results/bench_mug[_<device>].json.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import time
from pathlib import Path

import torch
from transformers import JanusForConditionalGeneration

from milr.mug.janus import SPECIAL_TOKENS, JanusMUG
from milr.mug.latents import LatentPrefix
from milr.mug.tiny import tiny_image_processor, tiny_janus_config, word_tokenizer

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


def time_it(fn, repeats: int, device: str) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--grid", type=int, default=24, help="24 → 576 image tokens, as Janus-Pro at 384 px")
    ap.add_argument("--codes", type=int, default=16384)
    ap.add_argument("--vocab", type=int, default=None, help="text vocabulary (102400 for Janus-Pro)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype)
    mug = build(args.hidden, args.layers, args.grid, args.device, dtype, args.vocab, args.codes)
    n = mug.num_image_tokens
    prompt = "a photo of a red cat left of a blue dog"
    model = mug.model
    theirs = transformers_image(mug, prompt)

    def ours():
        mug.draw(prompt, generator=torch.Generator(device=mug.device).manual_seed(0))

    def tokens_only():  # our loop without the VQ decode, to compare like with like
        mug._image_tokens(mug.cfg_prompt_ids(prompt).tolist(), [{}], 5.0, 1.0, [None], False)

    t_ours = time_it(ours, args.repeats, args.device)
    t_theirs = time_it(theirs, args.repeats, args.device)
    t_decode = time_it(lambda: mug.decode_image([0] * n), args.repeats, args.device)

    roll = mug.draw(prompt, generator=torch.Generator(device=mug.device).manual_seed(0))
    text = mug.reason(prompt, max_new_tokens=50)
    zt = LatentPrefix("text", text.latents[:10], list(range(10)), 0.03)
    zv = LatentPrefix("image", roll.latents[:11], list(range(11)), 0.03)

    def step():
        zt.step(mug.text_logits, -0.5)
        zv.step(mug.image_logits, -0.5)

    t_step = time_it(step, max(args.repeats, 5), args.device)
    med = statistics.median
    ours_s, theirs_s = med(t_ours), med(t_theirs)
    result = {
        "device": args.device,
        "dtype": args.dtype,
        "model": {"hidden": args.hidden, "layers": args.layers, "image_tokens": n, "codes": args.codes},
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
        "image_seconds_ours": round(ours_s, 3),
        "image_seconds_transformers": round(theirs_s, 3),
        "vq_decode_seconds": round(med(t_decode), 3),
        "speedup_vs_transformers": round(theirs_s / ours_s, 2),
        "speedup_tokens_only": round(theirs_s / med(time_it(tokens_only, args.repeats, args.device)), 2),
        "image_tokens_per_s": round(n / ours_s, 1),
        "reinforce_step_seconds": round(med(t_step), 4),
        "step_fraction_of_image": round(med(t_step) / ours_s, 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
    }
    if args.device.startswith("cuda"):
        result["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        result["gpu"] = torch.cuda.get_device_name()
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(exist_ok=True)
    suffix = f"_{args.tag}" if args.tag else ("" if args.device == "cpu" else f"_{args.device.split(':')[0]}")
    (RESULTS / f"bench_mug{suffix}.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
