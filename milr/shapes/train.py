"""Train the ShapesWorld Janus: `python -m milr.shapes.train --out DIR --seed 0 [--minutes M]`.

The model is `milr.shapes.model` (the real `JanusForConditionalGeneration`, shrunk). Two phases that
touch disjoint weights and draw from their own seeded data streams, so they may run in one process
or in two (`--phase decoder`, `--phase lm`, then `--merge`) with bit-identical results:

1. VQ decoder with fixed codes: the token of a cell is its content id (empty or shape × colour,
   `Scene.codes`), so no encoder is needed to make data; codebook + decoder learn to paint random
   grids, L1 loss with the shape region of occupied cells weighted ×5 (white dominates the image
   and would win; see `decoder_loss` for why the region and not only the ink).
2. Language model on generated scenes, with exactly the sequences `JanusMUG` feeds at inference:
   `reasoning_ids(prompt)` → the layout plan + EOS (lm_head), and `cfg_prompt_ids(image_prompt(...))`
   (the cond row, or the uncond row in 10% of examples so classifier-free guidance means something)
   → the 16 image codes (generation_head, fed back through `prepare_embeddings_for_image_generation`).
   The reasoning chat starts with a long constant instruction; it is run once per step and its
   KV cache shared by the batch (same maths as running it per row, a third of the compute).

The shipped model is deliberately imperfect: the LM follows a 6000-step schedule but stops at step
1000 (`--stop-at`, default 1000; `--stop-at 0` trains on). Intermediate LM checkpoints
(`DIR/intermediate/step_N`) let other points of the curve be tried.
Deterministic for a seed and fixed step counts; `--minutes` caps wall time instead (each phase gets
its share and stops early, which the report says).
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
from transformers import DynamicCache, JanusForConditionalGeneration

from milr.mug.janus import RECOMMENDED_FILE, JanusMUG, image_prompt
from milr.shapes.model import DEFAULTS, build_model
from milr.shapes.world import (
    CELL,
    GRID,
    NUM_CODES,
    SQUARE_BOX,
    TAGS,
    Scene,
    make_prompt,
    reasoning_for,
    render,
    sample_scene,
)

UNCOND_RATE = 0.1
INK_WEIGHT = 4.0  # pixels where occupied cells' shapes may be count 1 + 4 = 5 times in the decoder loss
DECODER_SHARE = 0.5  # of `--minutes`, when both phases run in one process


class Clock:
    """Wall-time budget of one phase; `None` seconds = unlimited."""

    def __init__(self, seconds: float | None):
        self.start, self.seconds = time.time(), seconds

    def elapsed(self) -> float:
        return time.time() - self.start

    def expired(self) -> bool:
        return self.seconds is not None and self.elapsed() >= self.seconds


def pixels(img) -> torch.Tensor:
    """PIL → [3, H, W] in [-1, 1] (the VQ decoder's range)."""
    t = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(img.size[1], img.size[0], 3)
    return t.permute(2, 0, 1).float() / 127.5 - 1


def random_grid(rng: random.Random) -> Scene:
    """Random cells, about half filled: the decoder must paint any content anywhere."""
    return Scene.from_codes([rng.randrange(1, NUM_CODES) if rng.random() < 0.5 else 0 for _ in range(GRID * GRID)])


def cosine_lr(opt: torch.optim.Optimizer, peak: float, step: int, steps: int, warmup: int) -> None:
    for group in opt.param_groups:
        group["lr"] = peak * min(1.0, step / warmup) * 0.5 * (1 + math.cos(math.pi * step / steps))


# --------------------------------------------------------------------------- phase 1: VQ decoder
def shape_region() -> torch.Tensor:
    """[CELL, CELL] mask of where any shape may put ink (the square's box, one pixel wider)."""
    x0, y0, x1, y1 = SQUARE_BOX
    region = torch.zeros(CELL, CELL)
    region[max(0, y0 - 1) : y1 + 2, max(0, x0 - 1) : x1 + 2] = 1
    return region


REGION = shape_region()


def decoder_loss(vq, scenes: list[Scene]) -> torch.Tensor:
    target = torch.stack([pixels(render(s)) for s in scenes])
    decoded = vq.decode(torch.tensor([s.codes() for s in scenes]))
    # Weight the whole shape region of occupied cells, ink or not. Weighting only the ink pixels
    # (the obvious choice) makes the union of the shapes — a square — the cheapest answer for every
    # code, and the decoder then paints every shape as a square of the right colour.
    occupied = torch.tensor([[float(v != 0) for v in s.codes()] for s in scenes]).view(-1, 1, GRID, GRID)
    weight = 1 + INK_WEIGHT * occupied.repeat_interleave(CELL, 2).repeat_interleave(CELL, 3) * REGION.repeat(
        GRID, GRID
    )
    return (weight * (decoded - target).abs()).mean()


def train_decoder(
    mug: JanusMUG,
    steps: int,
    rng: random.Random,
    batch: int,
    lr: float,
    clock: Clock,
    out: Path | None = None,
    save_every: int = 500,
    log_every: int = 50,
) -> dict:
    vq = mug.model.model.vqmodel
    params = [*vq.quantize.parameters(), *vq.post_quant_conv.parameters(), *vq.decoder.parameters()]
    vq.train()  # JanusVQVAE calls eval() in __init__: set the mode explicitly
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr)
    step, loss = 0, torch.tensor(float("nan"))
    while step < steps and not clock.expired():
        step += 1
        cosine_lr(opt, lr, step, steps, warmup=30)
        loss = decoder_loss(vq, [random_grid(rng) for _ in range(batch)])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % log_every == 0:
            print(f"decoder step {step}/{steps} loss {loss.item():.4f} ({clock.elapsed():.0f}s)", flush=True)
        if out is not None and step % save_every == 0:
            vq.eval()
            save(mug, out / f"step_{step:05d}")
            vq.train()
    vq.eval()
    for p in params:
        p.requires_grad_(False)
    return {"decoder_steps": step, "decoder_loss": round(loss.item(), 4), "decoder_seconds": round(clock.elapsed())}


# --------------------------------------------------------------------------- phase 2: language model
def example(mug: JanusMUG, rng: random.Random) -> tuple[list[int], list[int], list[int], list[int]]:
    """(reasoning chat ids, plan ids + EOS, image chat ids, 16 codes) for one random prompt."""
    spec = make_prompt(rng.choice(TAGS), rng)
    scene = sample_scene(spec, rng)
    plan = reasoning_for(scene)
    text_prompt = mug.reasoning_ids(spec.prompt)
    text_target = [*mug.tokenizer.encode(" " + plan, add_special_tokens=False), mug.ids["eos"]]
    rows = mug.cfg_prompt_ids(image_prompt(spec.prompt, plan))
    image_ids = rows[1 if rng.random() < UNCOND_RATE else 0].tolist()
    return text_prompt, text_target, image_ids, scene.codes()


def common_prefix(seqs: list[list[int]]) -> int:
    n = min(map(len, seqs)) - 1  # keep at least one token per row after the prefix
    for i in range(n):
        if any(s[i] != seqs[0][i] for s in seqs):
            return i
    return n


def text_loss(mug: JanusMUG, batch: list[tuple]) -> torch.Tensor:
    """Cross-entropy of the plans (+ EOS) after the reasoning chat; the shared prefix runs once."""
    model, pad = mug.model, mug.ids["pad"]
    lm = model.model.language_model
    seqs = [p + t for p, t, _, _ in batch]
    shared = common_prefix([p for p, _, _, _ in batch])
    cache = DynamicCache()
    lm(input_ids=torch.tensor([seqs[0][:shared]]), cache=cache, use_cache=True)
    cache.batch_repeat_interleave(len(batch))
    # Right padding: causal attention never looks ahead, so pads after a row change nothing in it.
    width = max(map(len, seqs)) - shared
    ids = torch.tensor([s[shared:] + [pad] * (width - len(s) + shared) for s in seqs])
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s) + shared) for s in seqs])
    positions = torch.arange(shared, shared + width).expand(len(batch), -1)
    h = lm(input_ids=ids, cache=cache, attention_mask=mask, position_ids=positions).last_hidden_state
    labels = torch.full_like(ids, -100)
    for i, (p, t, _, _) in enumerate(batch):
        start = len(p) - 1 - shared  # the state at the last prompt token predicts the first plan token
        labels[i, start : start + len(t)] = torch.tensor(t)
    return F.cross_entropy(model.lm_head(h).flatten(0, 1), labels.flatten(), ignore_index=-100)


def image_loss(mug: JanusMUG, batch: list[tuple]) -> torch.Tensor:
    """Cross-entropy of the 16 codes through the generation head, after the image chat."""
    model = mug.model
    lm = model.model.language_model
    embed = model.get_input_embeddings()
    n_img = GRID * GRID
    lens = [len(ip) for _, _, ip, _ in batch]
    width = max(lens) + n_img - 1
    rows, masks = [], []
    for _, _, ip, codes in batch:
        e = torch.cat(
            [embed(torch.tensor(ip)), model.prepare_embeddings_for_image_generation(torch.tensor(codes[:-1]))]
        )
        rows.append(torch.cat([e, e.new_zeros(width - e.shape[0], e.shape[1])]))
        masks.append([1] * e.shape[0] + [0] * (width - e.shape[0]))
    h = lm(inputs_embeds=torch.stack(rows), attention_mask=torch.tensor(masks)).last_hidden_state
    picked = torch.stack([h[i, n - 1 : n - 1 + n_img] for i, n in enumerate(lens)])
    targets = torch.tensor([codes for _, _, _, codes in batch])
    return F.cross_entropy(model.model.generation_head(picked).flatten(0, 1), targets.flatten())


def train_lm(
    mug: JanusMUG,
    steps: int,
    rng: random.Random,
    batch: int,
    lr: float,
    clock: Clock,
    out: Path | None,
    save_every: int,
    log_every: int = 25,
    stop_at: int | None = None,
) -> dict:
    """`steps` sets the learning-rate schedule; `stop_at` ends training early on that schedule (the
    shipped, deliberately imperfect model is step 1000 of 6000)."""
    model = mug.model
    trainable = [p for n, p in model.named_parameters() if not n.startswith("model.vqmodel")]
    model.train()
    for p in trainable:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.0)
    step, tl, il = 0, torch.tensor(float("nan")), torch.tensor(float("nan"))
    last = steps if stop_at is None else min(steps, stop_at)
    while step < last and not clock.expired():
        step += 1
        cosine_lr(opt, lr, step, steps, warmup=100)
        examples = [example(mug, rng) for _ in range(batch)]
        tl, il = text_loss(mug, examples), image_loss(mug, examples)
        opt.zero_grad()
        (tl + il).backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        if step % log_every == 0:
            print(
                f"lm step {step}/{steps} text {tl.item():.3f} image {il.item():.3f} ({clock.elapsed():.0f}s)",
                flush=True,
            )
        if out is not None and step % save_every == 0:
            model.eval()
            save(mug, out / f"step_{step:05d}")
            model.train()
    model.eval()
    for p in trainable:
        p.requires_grad_(False)
    return {
        "steps": step,
        "text_loss": round(tl.item(), 4),
        "image_loss": round(il.item(), 4),
        "lm_seconds": round(clock.elapsed()),
    }


# --------------------------------------------------------------------------- saving
def save(mug: JanusMUG, path: Path, recommended: dict | None = None) -> None:
    """HF folder JanusMUG.from_pretrained loads: config, fp16 safetensors, tokenizer, image processor,
    and milr_defaults.json (the reasoning instruction it was trained with, its recommended config)."""
    path.mkdir(parents=True, exist_ok=True)
    # Half precision on disk keeps the shipped checkpoint small; the live fp32 weights are untouched.
    half = {k: v.detach().half() for k, v in mug.model.state_dict().items()}
    mug.model.save_pretrained(path, state_dict=half)
    mug.tokenizer.save_pretrained(path)
    mug.image_processor.save_pretrained(path)
    defaults = {**DEFAULTS, "config": {**DEFAULTS["config"], **(recommended or {})}}
    (path / RECOMMENDED_FILE).write_text(json.dumps(defaults, indent=2) + "\n")


def merge(decoder_dir: Path, lm_dir: Path, out: Path, recommended: dict | None = None) -> None:
    """Checkpoint = the language model of `lm_dir` + the VQ model of `decoder_dir`. The phases touch
    disjoint weights and use their own seeded data streams, so training them in two processes and
    merging gives the same weights as one sequential run."""
    decoder = JanusForConditionalGeneration.from_pretrained(decoder_dir, dtype=torch.float32)
    mug = JanusMUG.from_pretrained(lm_dir, device="cpu", dtype=torch.float32)
    mug.model.model.vqmodel.load_state_dict(decoder.model.vqmodel.state_dict())
    save(mug, out, recommended)


# --------------------------------------------------------------------------- metrics and CLI
def final_metrics(mug: JanusMUG, per_tag: int, cfg: float, seed: int) -> dict:
    """Decoder agreement (oracle on decoded random grids) and round-0 ShapesEval read from tokens."""
    from milr.shapes.eval import decoder_agreement, shapes_eval_prompts, token_eval

    specs = shapes_eval_prompts(per_tag)
    return {
        "decoder": decoder_agreement(mug, n=100, seed=seed),
        "token_eval": token_eval(mug, specs, cfg=cfg, seed=seed),
    }


SHIPPED_LM_STEP = 1000  # round-0 ShapesEval 0.62: room for MILR (step 1500: 0.75, step 5000: 0.95)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--minutes", type=float, default=None, help="wall-time cap of the whole run")
    ap.add_argument("--phase", choices=["all", "decoder", "lm"], default="all")
    ap.add_argument("--decoder-steps", type=int, default=3000)
    ap.add_argument("--decoder-batch", type=int, default=16)
    ap.add_argument("--decoder-lr", type=float, default=3e-3)
    ap.add_argument("--decoder-save-every", type=int, default=500, help="decoder steps between checkpoints")
    ap.add_argument("--steps", type=int, default=6000, help="language-model steps")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument(
        "--stop-at",
        type=int,
        default=SHIPPED_LM_STEP,
        help=f"stop the LM after this many steps of its --steps schedule (default {SHIPPED_LM_STEP}: the shipped, "
        "deliberately imperfect model; 0 = train the whole schedule)",
    )
    ap.add_argument("--save-every", type=int, default=500, help="LM steps between intermediate checkpoints")
    ap.add_argument("--eval-per-tag", type=int, default=10, help="ShapesEval prompts per tag for the final metrics")
    ap.add_argument("--cfg", type=float, default=3.0, help="guidance of the final metrics (and recommended)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    ap.add_argument("--merge", nargs=2, type=Path, metavar=("DECODER_DIR", "LM_DIR"), help="merge two phase runs")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    recommended = {"cfg": args.cfg}
    if args.merge:
        merge(*args.merge, args.out, recommended)
        return
    torch.manual_seed(args.seed)
    mug = build_model(args.seed)
    budget = None if args.minutes is None else args.minutes * 60
    report: dict = {"seed": args.seed, "phase": args.phase}
    if args.phase in ("all", "decoder"):
        share = budget if budget is None or args.phase == "decoder" else budget * DECODER_SHARE
        torch.manual_seed(args.seed)
        report |= train_decoder(
            mug,
            args.decoder_steps,
            random.Random(args.seed),
            args.decoder_batch,
            args.decoder_lr,
            Clock(share),
            args.out / "decoder",
            args.decoder_save_every,
        )
    if args.phase in ("all", "lm"):
        left = None if budget is None else max(0.0, budget - report.get("decoder_seconds", 0))
        torch.manual_seed(args.seed + 1)
        rng = random.Random(args.seed + 1)
        report |= train_lm(
            mug,
            args.steps,
            rng,
            args.batch,
            args.lr,
            Clock(left),
            args.out / "intermediate",
            args.save_every,
            stop_at=args.stop_at or None,
        )
    save(mug, args.out / "final", recommended)
    if args.eval_per_tag > 0:
        report["metrics"] = final_metrics(mug, args.eval_per_tag, args.cfg, args.seed)
    (args.out / "train.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
