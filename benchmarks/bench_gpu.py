"""The GPU check, one script run top to bottom unattended: a random-init Janus-Pro-7B-shaped model
(language model hidden 4096, 30 layers, 32 heads, 32 KV heads, MLP 11008, text vocabulary 102400;
16384 image codes, 576 image tokens; the real-size SigLIP tower and VQ decoder), bf16, built directly
on the GPU. Images/s of a full draw (`draw_batch`: CFG tokens + VQ decode) at B = 1, 8, 32 distinct
left-padded prompts, eager (DynamicCache) and with `compile=True` (static cache, compiled step, CUDA
graphs), and the peak GPU memory of each setting.

    python benchmarks/bench_gpu.py                      # the H200 run (about 6 minutes)
    python benchmarks/bench_gpu.py --hidden 64 --layers 2 --heads 4 --kv-heads 4 --intermediate 128 \\
        --vocab 512 --grid 2 --vision-hidden 32 --vision-layers 1 --device cpu --dtype float32 \\
        --batches 1,2 --backend eager                   # a smoke run on a CPU (the test)

Settings run in the order B=1 eager, B=1 compile, B=8 eager, ... and the JSON is rewritten after each
one, so a run cut short still leaves every finished figure; past `--budget-s` the rest is skipped.
The JSON goes to $OUT/bench_gpu.json when OUT is set, else benchmarks/results/bench_gpu.json (or --out),
with its provenance (threads, device, versions, load, other processes) as of each save.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from transformers import JanusConfig, JanusForConditionalGeneration

from milr.mug.janus import SPECIAL_TOKENS, JanusMUG
from milr.mug.static import StaticDecoder
from milr.mug.tiny import BASE_WORDS, tiny_image_processor, word_tokenizer

sys.path.insert(0, str(Path(__file__).parent))
from provenance import Measured  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def default_out() -> Path:
    return Path(os.environ["OUT"]) / "bench_gpu.json" if os.environ.get("OUT") else RESULTS / "bench_gpu.json"


def janus_config(args, tokenizer) -> JanusConfig:
    text = dict(
        model_type="llama",
        hidden_size=args.hidden,
        intermediate_size=args.intermediate,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        vocab_size=args.vocab,
        max_position_embeddings=16384,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
    )
    vision = dict(
        hidden_size=args.vision_hidden,
        num_hidden_layers=args.vision_layers,
        num_attention_heads=max(1, args.vision_hidden // 64),
        image_size=16 * args.grid,
        patch_size=16,
        projection_dim=args.hidden,
        num_image_tokens=args.grid**2,
    )
    # Janus-Pro's VQ-16 (JanusVQVAEConfig defaults); aligner and generation head at the LM width.
    vq = dict(num_embeddings=args.codes, projection_dim=args.hidden, image_token_embed_dim=args.hidden)
    config = JanusConfig(
        text_config=text,
        vision_config=vision,
        vq_config=vq,
        image_token_id=tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS["image"]),
    )
    config.tie_word_embeddings = False
    return config


def build(args) -> JanusMUG:
    """Random weights made where they will run, in their final dtype: no CPU init of 7B parameters."""
    tokenizer = word_tokenizer()
    if args.vocab < len(tokenizer):
        raise SystemExit(f"--vocab must hold the {len(tokenizer)} tokens of the word tokenizer")
    config = janus_config(args, tokenizer)
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(args.device):
            model = JanusForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(previous)
    return JanusMUG(model, tokenizer, tiny_image_processor(16 * args.grid), device=args.device, dtype=dtype)


def prompts(count: int) -> list[str]:
    """Distinct prompts of 12 to 57 words (image prompt plus a reasoning-sized tail): real left padding."""
    words = BASE_WORDS
    return [" ".join(words[(7 * i + 3 * k) % len(words)] for k in range(12 + 3 * (i % 16))) for i in range(count)]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_setting(mug: JanusMUG, batch: int, repeats: int, device: str) -> dict:
    texts = prompts(batch)

    def draw():
        gens = [torch.Generator(device=mug.device).manual_seed(1000 * i) for i in range(batch)]
        mug.draw_batch(texts, generators=gens)

    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    sync(device)
    t = time.perf_counter()
    draw()  # warm-up; with compile on, it compiles the step and records the CUDA graph
    sync(device)
    first = time.perf_counter() - t
    seconds = []
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        draw()
        sync(device)
        seconds.append(time.perf_counter() - t)
    med = statistics.median(seconds)
    row = {
        "images_per_s": round(batch / med, 4),
        "image_tokens_per_s": round(batch * mug.num_image_tokens / med, 1),
        "seconds_median": round(med, 3),
        "seconds_min": round(min(seconds), 3),
        "seconds": [round(s, 3) for s in seconds],
        "first_call_seconds": round(first, 2),
        "image_prompt_tokens_max": max(len(mug.image_prompt_ids(p)) for p in texts),
    }
    if device.startswith("cuda"):
        row["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        row["peak_gpu_reserved_mb"] = round(torch.cuda.max_memory_reserved() / 2**20, 1)
    return row


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hidden", type=int, default=4096)
    ap.add_argument("--layers", type=int, default=30)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=32)
    ap.add_argument("--intermediate", type=int, default=11008)
    ap.add_argument("--vocab", type=int, default=102400)
    ap.add_argument("--codes", type=int, default=16384)
    ap.add_argument("--grid", type=int, default=24, help="24 → 576 image tokens (384 px)")
    ap.add_argument("--vision-hidden", type=int, default=1024)
    ap.add_argument("--vision-layers", type=int, default=24)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--modes", default="eager,compile")
    ap.add_argument("--backend", default="inductor", help="torch.compile backend ('eager': trace only, smoke runs)")
    ap.add_argument("--repeats", type=int, default=2, help="timed draws per setting, after one warm-up")
    ap.add_argument("--budget-s", type=float, default=420, help="start no new setting after this many seconds")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    out = args.out or default_out()
    batches = [int(b) for b in args.batches.split(",")]
    modes = args.modes.split(",")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here; pass --device cpu for a smoke run")
    measured = Measured.start()  # measured anew at every save, so a run cut short keeps it too
    started = measured.started

    result: dict = {
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device,
        "dtype": args.dtype,
        "cuda": torch.version.cuda,
        "model": {
            k: getattr(args, k)
            for k in ("hidden", "layers", "heads", "kv_heads", "intermediate", "vocab", "codes", "grid")
        },
        "image_tokens": args.grid**2,
        "repeats": args.repeats,
        "backend": args.backend,
        "eager": {},
        "compile": {},
        "skipped": [],
    }

    def save() -> None:
        measured.stop()
        result["wall_seconds"] = round(measured.seconds, 1)
        result["provenance"] = measured.provenance(args.device, None if argv is None else [__file__, *argv])
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")

    mug = build(args)
    result["params_b"] = round(sum(p.numel() for p in mug.model.parameters()) / 1e9, 3)
    result["build_seconds"] = round(time.perf_counter() - started, 1)
    if args.device.startswith("cuda"):
        result["weights_gpu_mb"] = round(torch.cuda.memory_allocated() / 2**20, 1)
    save()
    lm = mug.model.model.language_model
    for batch in batches:
        for mode in modes:
            key = f"B={batch}"
            if time.perf_counter() - started > args.budget_s:
                result["skipped"].append(f"{mode} {key}")
                continue
            mug.compile = mode == "compile"
            if mug.compile and mug.static is None:
                mug.static = StaticDecoder(lm, backend=args.backend)
            try:
                result[mode][key] = run_setting(mug, batch, args.repeats, args.device)
            except torch.OutOfMemoryError as err:
                result[mode][key] = {"error": f"out of memory: {str(err)[:200]}"}
                mug.static = None
                torch.cuda.empty_cache()
            print(f"{mode} {key}: {json.dumps(result[mode][key])}", file=sys.stderr, flush=True)
            save()
        if mug.static is not None:
            mug.static.clear()  # this B's caches are not needed again
    result["speedup_compile_vs_eager"] = {
        key: round(result["compile"][key]["images_per_s"] / result["eager"][key]["images_per_s"], 2)
        for key in result["compile"]
        if "images_per_s" in result["compile"][key] and "images_per_s" in result["eager"].get(key, {})
    }
    save()
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
