"""The ShapesWorld Janus: a `JanusForConditionalGeneration` shrunk to CPU size (DESIGN §6).

Same transformers classes as Janus-Pro, so `JanusMUG` runs it unchanged: a 4-layer Llama (hidden
128), a word tokenizer with Janus's special tokens and ShapesWorld's words, 16 image tokens (one per
grid cell, fixed codes: `milr.shapes.world.Scene.codes`) and a VQ decoder sized for 64×64 px.

The decoder keeps its width where pixels are few (128 channels at 4×4) and is narrow where they are
many (32 channels at 32 and 64 px), with one residual block per level: most of the cost of a
decoder step is the full-resolution convolutions. The codebook vectors are as wide as the latent
(32) so the 19 used codes start far apart. The vision tower (understanding path) stays tiny.
"""

from __future__ import annotations

import torch
from transformers import JanusConfig, JanusForConditionalGeneration

from milr.mug.janus import SPECIAL_TOKENS, JanusMUG
from milr.mug.tiny import tiny_image_processor, tiny_janus_config, word_tokenizer
from milr.shapes.world import GRID, SIZE, vocabulary

HIDDEN = 128
LAYERS = 4
HEADS = 4
KV_HEADS = 2
NUM_CODES = 32  # codebook rows; the world uses 19 (empty + 3 shapes × 6 colours), the rest stay unused
MAX_POSITIONS = 512
# Shipped in the checkpoint's milr_defaults.json (read by JanusMUG.from_pretrained). A 4-layer LM
# trained behind the long default reasoning instruction (~140 tokens) plateaued at prompt-agnostic
# plans, so this model reasons behind a short one; `config` holds the MILRConfig fields it recommends.
DEFAULTS = {
    "prompts": {"reasoning": "plan the image for: {prompt}", "reasoning_system": ""},
    "config": {"max_reasoning_tokens": 64, "cfg": 3.0, "temperature": 1.0},
}


def shapes_config(vocab_size: int, image_token_id: int) -> JanusConfig:
    """The JanusConfig of the ShapesWorld model: `tiny_janus_config` at ShapesWorld's size."""
    assert SIZE == 16 * GRID, "tiny_janus_config draws 16 px per grid cell"
    vq = dict(
        embed_dim=32,
        # lowest resolution last: 64 px ×1, 32 px ×1, 16 px ×2, 8 px ×2, 4 px ×4 (GroupNorm(32) needs ×32)
        channel_multiplier=[1, 1, 2, 2, 4],
        num_res_blocks=0,
    )
    return tiny_janus_config(
        vocab_size,
        hidden=HIDDEN,
        layers=LAYERS,
        heads=HEADS,
        kv_heads=KV_HEADS,
        grid=GRID,
        num_codes=NUM_CODES,
        max_positions=MAX_POSITIONS,
        image_token_id=image_token_id,
        vq=vq,
    )


def build_model(seed: int) -> JanusMUG:
    """A freshly initialised ShapesWorld JanusMUG (fp32, CPU), seeded."""
    tokenizer = word_tokenizer(extra_words=vocabulary())
    config = shapes_config(len(tokenizer), tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS["image"]))
    torch.manual_seed(seed)
    model = JanusForConditionalGeneration(config)
    # transformers' own `generate(generation_mode="image")` reads these; JanusMUG does not need them.
    gc = model.generation_config
    gc.bos_token_id = tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS["bos"])
    gc.eos_token_id = tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS["eos"])
    gc.pad_token_id = tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS["pad"])
    gc.generation_kwargs = {"boi_token_id": tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS["boi"])}
    mug = JanusMUG(model, tokenizer, tiny_image_processor(SIZE), device="cpu", dtype=torch.float32, name="shapes")
    mug.apply_defaults(DEFAULTS)
    return mug
