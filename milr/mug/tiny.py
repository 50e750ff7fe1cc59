"""Tiny random Janus models for tests and examples: the real transformers classes, small enough
to run the whole MILR loop on a CPU in well under a second per round.

Pitfalls of the Janus classes that these builders respect (see the notes on the authors' code):
`vq_config.projection_dim` and `image_token_embed_dim` must equal the text hidden size; GroupNorm(32)
needs `base_channels * multiplier` divisible by 32; `vision_config.num_image_tokens` must equal
`(image_size // patch_size) ** 2`; the image side is `num_patches * 2 ** (len(channel_multiplier) - 1)`.
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers.models import WordLevel
from transformers import (
    JanusConfig,
    JanusForConditionalGeneration,
    JanusImageProcessorPil,
    PreTrainedTokenizerFast,
)

from milr import prompts
from milr.mug.janus import SPECIAL_TOKENS, JanusMUG

# A small vocabulary that covers the chat scaffolding and common prompt words; anything else maps
# to <unk>. Random models do not care; ShapesWorld extends it with its own words.
BASE_WORDS = (
    "a an the of and in on with photo picture left right above below row column one two three four "
    "red green blue yellow purple orange pink brown black white circle square triangle cat dog car "
    "bench yes no is there this image it , . : ? ! ' \" - ( )"
).split()

UNK = "<unk>"
ROLE_TOKENS = ("<|User|>", "<|Assistant|>")


def _prompt_words() -> list[str]:
    """Words of our own prompt files, so the chat scaffolding does not collapse to <unk>."""
    text = " ".join(prompts.load(n) for n in ("reasoning", "reasoning_system", "understanding_system", "self_reward"))
    pre = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    return [w.lower() for w, _ in pre.pre_tokenize_str(text)]


def word_tokenizer(extra_words: list[str] | tuple[str, ...] = ()) -> PreTrainedTokenizerFast:
    """A word-level fast tokenizer with Janus-Pro's special tokens (same strings as the real one)."""
    words: list[str] = []
    for w in [*SPECIAL_TOKENS.values(), *ROLE_TOKENS, UNK, *BASE_WORDS, *_prompt_words(), *extra_words]:
        if w not in words:
            words.append(w)
    tok = Tokenizer(WordLevel({w: i for i, w in enumerate(words)}, unk_token=UNK))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    tok.add_special_tokens([*SPECIAL_TOKENS.values(), *ROLE_TOKENS])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=SPECIAL_TOKENS["bos"],
        eos_token=SPECIAL_TOKENS["eos"],
        pad_token=SPECIAL_TOKENS["pad"],
        unk_token=UNK,
        extra_special_tokens={
            "image_token": SPECIAL_TOKENS["image"],
            "boi_token": SPECIAL_TOKENS["boi"],
            "eoi_token": SPECIAL_TOKENS["eoi"],
        },
    )


def tiny_janus_config(
    vocab_size: int,
    *,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    grid: int = 2,
    num_codes: int = 64,
    max_positions: int = 512,
    image_token_id: int | None = None,
    vq: dict | None = None,
) -> JanusConfig:
    """A JanusConfig that can generate images: `grid`² image tokens, 16·grid px images.

    `vq` overrides fields of the VQ config (e.g. a wider codebook or decoder for a trained model)."""
    text = dict(
        model_type="llama",
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        vocab_size=vocab_size,
        max_position_embeddings=max_positions,
        tie_word_embeddings=False,
    )
    vision = dict(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=16 * grid,
        patch_size=16,
        projection_dim=hidden,
        num_image_tokens=grid * grid,
        mlp_ratio=2,
    )
    # JanusConfig derives the VQ grid from the vision tower: image_size // patch_size must be `grid`.
    vq = dict(
        embed_dim=8,
        num_embeddings=num_codes,
        latent_channels=32,
        base_channels=32,
        channel_multiplier=[1, 1, 1, 1, 1],
        num_res_blocks=1,
        projection_dim=hidden,
        image_token_embed_dim=hidden,
    ) | (vq or {})
    return JanusConfig(
        text_config=text,
        vision_config=vision,
        vq_config=vq,
        image_token_id=vocab_size - 1 if image_token_id is None else image_token_id,
    )


def tiny_image_processor(image_size: int) -> JanusImageProcessorPil:
    return JanusImageProcessorPil(size={"height": image_size, "width": image_size}, min_size=8)


def tiny_mug(
    seed: int = 0, *, grid: int = 2, hidden: int = 32, layers: int = 2, max_positions: int = 512, device: str = "cpu"
) -> JanusMUG:
    """A random-init JanusMUG (about half a million parameters) with a word tokenizer."""
    tokenizer = word_tokenizer()
    config = tiny_janus_config(
        len(tokenizer),
        hidden=hidden,
        layers=layers,
        grid=grid,
        max_positions=max_positions,
        image_token_id=tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS["image"]),
    )
    torch.manual_seed(seed)
    model = JanusForConditionalGeneration(config)
    return JanusMUG(model, tokenizer, tiny_image_processor(16 * grid), device=device)
