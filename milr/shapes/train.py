"""Train the ShapesWorld Janus: `python -m milr.shapes.train --out DIR --seed 0 [--minutes M]`.

Same transformers classes as Janus-Pro (`JanusForConditionalGeneration`), shrunk: a 4-layer Llama
(hidden 128), 16 image tokens, a word tokenizer with Janus's special tokens. Two phases:

1. VQ decoder with fixed codes: the token of a cell is its content id (empty or shape × colour), so
   no encoder is needed to make data; codebook + decoder learn to paint the 19 cell kinds, with
   non-white pixels weighted ×5 (white dominates the image and would otherwise win).
2. Language model on generated scenes, with exactly the sequences `JanusMUG` feeds at inference:
   the reasoning chat → the layout plan + EOS (lm_head), and the image chat (cond row, or the
   uncond row of pads in 10% of rows so classifier-free guidance means something) → 16 image codes
   (generation_head). Intermediate checkpoints are saved so a deliberately imperfect one can ship.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import JanusForConditionalGeneration

from milr.mug.janus import SPECIAL_TOKENS, JanusMUG, image_prompt
from milr.mug.tiny import tiny_image_processor, tiny_janus_config, word_tokenizer
from milr.shapes.world import (
    CELL,
    GRID,
    NUM_CODES,
    SHAPES,
    TAGS,
    Scene,
    make_prompt,
    reasoning_for,
    render,
    sample_scene,
    vocabulary,
)

UNCOND_RATE = 0.1
DEFAULTS = {
    "prompts": {"reasoning": "plan the image for: {prompt}", "reasoning_system": ""},
    "config": {"max_reasoning_tokens": 64},
}


def shape_disagreement() -> torch.Tensor:
    """[CELL·GRID]² mask of the pixels where the circle, square and triangle of a cell differ."""
    masks = []
    for shape in SHAPES:
        img = render(Scene({(0, 0): (shape, "red")})).crop((0, 0, CELL, CELL))
        masks.append(torch.tensor(list(img.getdata())).view(CELL, CELL, 3).sum(-1) < 700)
    stack = torch.stack(masks).float()
    cell = ((stack.sum(0) > 0) & (stack.sum(0) < len(SHAPES))).float()
    return cell.repeat(GRID, GRID)


SHAPE_DISAGREEMENT = shape_disagreement()


def build_model(seed: int) -> JanusMUG:
    tokenizer = word_tokenizer(extra_words=vocabulary())
    config = tiny_janus_config(
        len(tokenizer),
        hidden=128,
        layers=4,
        heads=4,
        kv_heads=2,
        grid=GRID,
        num_codes=32,
        max_positions=512,
        image_token_id=tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS["image"]),
    )
    torch.manual_seed(seed)
    model = JanusForConditionalGeneration(config)
    gc = model.generation_config
    gc.bos_token_id = tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS["bos"])
    gc.eos_token_id = tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS["eos"])
    gc.pad_token_id = tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS["pad"])
    gc.generation_kwargs = {"boi_token_id": tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS["boi"])}
    mug = JanusMUG(model, tokenizer, tiny_image_processor(64), device="cpu", dtype=torch.float32, name="shapes")
    mug.apply_defaults(DEFAULTS)
    return mug


def pixels(img) -> torch.Tensor:
    """PIL → [3, H, W] in [-1, 1] (the VQ decoder's range)."""
    t = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(img.size[1], img.size[0], 3)
    return t.permute(2, 0, 1).float() / 127.5 - 1


def random_grid(rng: random.Random) -> Scene:
    """Random cells (about half filled): the decoder must paint any content anywhere."""
    codes = [rng.randrange(NUM_CODES) if rng.random() < 0.5 else 0 for _ in range(GRID * GRID)]
    return Scene.from_codes(codes)


def train_decoder(
    mug: JanusMUG,
    steps: int,
    rng: random.Random,
    batch: int = 32,
    out: Path | None = None,
    save_every: int = 500,
    loss_kind: str = "l1",
) -> float:
    vq = mug.model.model.vqmodel
    vq.train().requires_grad_(True)
    params = [*vq.quantize.parameters(), *vq.post_quant_conv.parameters(), *vq.decoder.parameters()]
    opt = torch.optim.Adam(params, lr=3e-3)
    start, loss = time.time(), torch.tensor(0.0)
    for step in range(1, steps + 1):
        for group in opt.param_groups:
            group["lr"] = 3e-3 * 0.5 * (1 + math.cos(math.pi * step / steps))
        scenes = [random_grid(rng) for _ in range(batch)]
        target = torch.stack([pixels(render(s)) for s in scenes])
        decoded = vq.decode(torch.tensor([s.codes() for s in scenes]))
        # Non-white ×5; and ×10 more where the three shapes disagree (corners, the triangle's sides):
        # those few pixels are all that tells a circle from a square, and blurry blobs ignore them.
        occupied = torch.tensor(
            [[[int((r, c) in s.objects) for c in range(GRID)] for r in range(GRID)] for s in scenes]
        )
        disagree = occupied.repeat_interleave(CELL, 1).repeat_interleave(CELL, 2).unsqueeze(1) * SHAPE_DISAGREEMENT
        weight = 1 + 4 * (target.min(1, keepdim=True).values < 0.9).float() + 10 * disagree
        # L1 keeps edges: the mean-seeking MSE paints every shape as the same soft blob.
        diff = (decoded - target).abs() if loss_kind == "l1" else (decoded - target) ** 2
        loss = (weight * diff).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0:
            print(f"decoder step {step} loss {loss.item():.4f} ({time.time() - start:.0f}s)", flush=True)
        if out is not None and step % save_every == 0:
            vq.eval()
            save(mug, out / f"step_{step:05d}")
            vq.train()
    vq.eval().requires_grad_(False)
    return loss.item()


def example(mug: JanusMUG, rng: random.Random) -> tuple[list[int], list[int], list[int], list[int]]:
    spec = make_prompt(rng.choice(TAGS), rng)
    scene = sample_scene(spec, rng)
    plan = reasoning_for(scene)
    text_prompt = mug.reasoning_ids(spec.prompt)
    text_target = [*mug.tokenizer.encode(" " + plan, add_special_tokens=False), mug.ids["eos"]]
    rows = mug.cfg_prompt_ids(image_prompt(spec.prompt, plan))
    image_prompt_ids = rows[1 if rng.random() < UNCOND_RATE else 0].tolist()
    return text_prompt, text_target, image_prompt_ids, scene.codes()


def lm_loss(mug: JanusMUG, batch: list[tuple]) -> tuple[torch.Tensor, torch.Tensor]:
    model = mug.model
    lm = model.model.language_model
    embed = model.get_input_embeddings()
    pad = mug.ids["pad"]
    # Text: prompt + plan, loss on the plan. Right padding: causal attention never looks ahead.
    seqs = [p + t for p, t, _, _ in batch]
    width = max(map(len, seqs))
    ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs])
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
    labels = torch.full_like(ids, -100)
    for i, (p, t, _, _) in enumerate(batch):
        labels[i, len(p) - 1 : len(p) - 1 + len(t)] = torch.tensor(t)
    h = lm(inputs_embeds=embed(ids), attention_mask=mask).last_hidden_state
    text_loss = F.cross_entropy(model.lm_head(h).flatten(0, 1), labels.flatten(), ignore_index=-100)
    # Image: image chat + codes, loss on the 16 codes through the generation head.
    lens = [len(ip) for _, _, ip, _ in batch]
    width = max(lens) + GRID * GRID - 1
    rows = []
    masks = []
    for _, _, ip, codes in batch:
        e = torch.cat(
            [embed(torch.tensor(ip)), model.prepare_embeddings_for_image_generation(torch.tensor(codes[:-1]))]
        )
        n = e.shape[0]
        rows.append(torch.cat([e, e.new_zeros(width - n, e.shape[1])]))
        masks.append([1] * n + [0] * (width - n))
    h = lm(inputs_embeds=torch.stack(rows), attention_mask=torch.tensor(masks)).last_hidden_state
    picked = torch.stack([h[i, n - 1 : n - 1 + GRID * GRID] for i, n in enumerate(lens)])
    logits = model.model.generation_head(picked)
    targets = torch.tensor([codes for _, _, _, codes in batch])
    image_loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
    return text_loss, image_loss


def train_lm(mug, steps: int, rng, out: Path | None, save_every: int, batch: int = 32, lr: float = 3e-3) -> dict:
    model = mug.model
    trainable = [p for n, p in model.named_parameters() if not n.startswith("model.vqmodel")]
    for p in trainable:
        p.requires_grad_(True)
    model.train()
    opt = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.0)
    start = time.time()
    history = {}
    for step in range(1, steps + 1):
        for group in opt.param_groups:  # cosine decay, short warm-up
            group["lr"] = lr * min(1.0, step / 50) * 0.5 * (1 + math.cos(math.pi * step / steps))
        text_loss, image_loss = lm_loss(mug, [example(mug, rng) for _ in range(batch)])
        loss = text_loss + image_loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        if step % 25 == 0:
            secs = time.time() - start
            print(
                f"lm step {step} text {text_loss.item():.3f} image {image_loss.item():.3f} ({secs:.0f}s)", flush=True
            )
        if out is not None and step % save_every == 0:
            save(mug, out / f"step_{step:05d}")
        history = {"steps": step, "text_loss": text_loss.item(), "image_loss": image_loss.item()}
    model.eval().requires_grad_(False)
    return history


def save(mug: JanusMUG, path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    # Half precision on disk (the shipped checkpoint stays small); the live fp32 weights are untouched.
    half = {k: v.detach().half() for k, v in mug.model.state_dict().items()}
    mug.model.save_pretrained(path, state_dict=half)
    mug.tokenizer.save_pretrained(path)
    mug.image_processor.save_pretrained(path)
    (path / "milr_defaults.json").write_text(json.dumps(DEFAULTS, indent=2) + "\n")


def merge(decoder_dir: Path, lm_dir: Path, out: Path) -> None:
    """Checkpoint = the language model of `lm_dir` + the VQ model of `decoder_dir`. The phases touch
    disjoint weights and use their own seeded data streams, so training them in two processes and
    merging gives the same weights as one sequential run."""
    decoder = JanusForConditionalGeneration.from_pretrained(decoder_dir, dtype=torch.float32)
    mug = JanusMUG.from_pretrained(lm_dir, device="cpu", dtype=torch.float32)
    mug.model.model.vqmodel.load_state_dict(decoder.model.vqmodel.state_dict())
    save(mug, out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--phase", choices=["all", "decoder", "lm"], default="all")
    ap.add_argument("--decoder-steps", type=int, default=3000)
    ap.add_argument("--decoder-batch", type=int, default=32)
    ap.add_argument("--decoder-loss", choices=["l1", "mse"], default="l1")
    ap.add_argument("--steps", type=int, default=4000, help="language-model steps")
    ap.add_argument("--save-every", type=int, default=500, help="steps between intermediate checkpoints")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--merge", nargs=2, type=Path, metavar=("DECODER_DIR", "LM_DIR"), help="merge two phase runs")
    args = ap.parse_args(argv)
    if args.merge:
        merge(*args.merge, args.out)
        return
    mug = build_model(args.seed)
    started = time.time()
    report: dict = {"seed": args.seed, "phase": args.phase}
    if args.phase in ("all", "decoder"):
        torch.manual_seed(args.seed)
        dec_out = args.out / "decoder" if args.phase == "decoder" else None
        report["decoder_loss"] = train_decoder(
            mug,
            args.decoder_steps,
            random.Random(args.seed),
            args.decoder_batch,
            dec_out,
            args.save_every,
            args.decoder_loss,
        )
        report["decoder_steps"] = args.decoder_steps
    if args.phase in ("all", "lm"):
        torch.manual_seed(args.seed + 1)
        rng = random.Random(args.seed + 1)
        report.update(train_lm(mug, args.steps, rng, args.out / "intermediate", args.save_every, args.batch))
    save(mug, args.out / "final")
    report["seconds"] = round(time.time() - started)
    (args.out / "train.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
