"""Tiny random transformers models for the critics: CLIP, GroundingDINO, Mask2Former (real classes, CPU)."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import WordLevel
from transformers import (
    BertConfig,
    BertTokenizer,
    CLIPConfig,
    CLIPImageProcessorPil,
    CLIPModel,
    GroundingDinoConfig,
    GroundingDinoForObjectDetection,
    GroundingDinoImageProcessorPil,
    GroundingDinoProcessor,
    Mask2FormerConfig,
    Mask2FormerForUniversalSegmentation,
    Mask2FormerImageProcessorPil,
    PreTrainedTokenizerFast,
    SwinConfig,
)

from milr.critics.base import COCO_CLASSES, COLORS

WORDS = ["a", "photo", "of", "object", "-", "colored", "car", "dog", "cat", "bench", "teddy", "bear", *COLORS]


def tiny_clip_model(vocab_size: int, *, max_positions: int, seed: int = 0, **special_ids) -> CLIPModel:
    """A CLIP of a few thousand parameters, 32 px images; `special_ids`: bos/eos/pad token ids."""
    text = dict(
        vocab_size=vocab_size,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=max_positions,
        **special_ids,
    )
    vision = dict(
        image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16
    )
    torch.manual_seed(seed)
    return CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16))


def tiny_clip():
    """(model, image processor, word tokenizer); text pooling at the argmax id (eos_token_id 2)."""
    vocab = {w: i for i, w in enumerate(["[pad]", "[unk]", *WORDS])}
    tok = Tokenizer(WordLevel(vocab, unk_token="[unk]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation()])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[pad]", unk_token="[unk]")
    model = tiny_clip_model(len(vocab), eos_token_id=2, pad_token_id=0, bos_token_id=0, max_positions=16).eval()
    processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return model, processor, tokenizer


def _tiny_swin(image_size: int, **kw) -> SwinConfig:
    return SwinConfig(
        image_size=image_size,
        patch_size=4,
        embed_dim=8,
        depths=[1, 1, 1, 1],
        num_heads=[1, 1, 1, 1],
        window_size=2,
        **kw,
    )


def tiny_grounding_dino():
    """(model, processor): Swin + BERT backbones of a few thousand parameters, 12 queries, 128 px input."""
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "?", "car", "dog", "cat", "bench", "teddy", "bear"]
    tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(words)})
    text = BertConfig(
        vocab_size=len(words),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=64,
    )
    config = GroundingDinoConfig(
        backbone_config=_tiny_swin(128, out_indices=[2, 3, 4]),
        text_config=text,
        d_model=32,  # GroupNorm(32, d_model)
        encoder_layers=1,
        decoder_layers=2,  # one layer breaks the tied bbox heads
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_n_points=1,
        decoder_n_points=1,
        num_queries=12,
        max_text_len=32,
    )
    torch.manual_seed(0)
    model = GroundingDinoForObjectDetection(config).eval()
    image_processor = GroundingDinoImageProcessorPil(size={"shortest_edge": 128, "longest_edge": 128})
    return model, GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer)


def tiny_mask2former():
    """(model, image processor): 80 COCO labels, 10 queries, 64 px input."""
    config = Mask2FormerConfig(
        backbone_config=_tiny_swin(64, out_features=["stage1", "stage2", "stage3", "stage4"]),
        feature_size=32,
        mask_feature_size=32,
        hidden_dim=32,
        encoder_feedforward_dim=32,
        dim_feedforward=32,
        encoder_layers=1,
        decoder_layers=2,
        num_attention_heads=2,
        num_queries=10,
        num_labels=len(COCO_CLASSES),
    )
    torch.manual_seed(0)
    model = Mask2FormerForUniversalSegmentation(config).eval()
    return model, Mask2FormerImageProcessorPil(size={"height": 64, "width": 64})


@pytest.fixture(scope="session")
def clip_parts():
    return tiny_clip()


@pytest.fixture(scope="session")
def gdino_parts():
    return tiny_grounding_dino()


@pytest.fixture(scope="session")
def m2f_parts():
    pytest.importorskip("scipy", reason="transformers' Mask2Former needs scipy (its loss is built in __init__)")
    return tiny_mask2former()


def assert_close(batched, alone, *, abs: float = 1e-5, where: str = "") -> None:
    """Equal structures, floats within `abs` (a batched forward may differ from a lone one by float
    noise); timings (`seconds`, e.g. of a mixer's children) are not compared."""
    if isinstance(alone, float) and not isinstance(batched, bool):
        assert batched == pytest.approx(alone, abs=abs), where
    elif isinstance(alone, dict):
        assert isinstance(batched, dict) and batched.keys() == alone.keys(), where
        for key in alone.keys() - {"seconds"}:
            assert_close(batched[key], alone[key], abs=abs, where=f"{where}.{key}")
    elif isinstance(alone, list | tuple):
        assert isinstance(batched, list | tuple) and len(batched) == len(alone), where
        for n, (b, a) in enumerate(zip(batched, alone, strict=True)):
            assert_close(b, a, abs=abs, where=f"{where}[{n}]")
    else:
        assert batched == alone, where


def assert_same_critiques(batched, alone, *, abs: float = 1e-5) -> None:
    """`score_batch`'s critiques are those of scoring each image alone: same critic, abstentions,
    errors and details, scores within `abs` (`seconds` and the rounded rationale aside)."""
    assert len(batched) == len(alone)
    for n, (b, a) in enumerate(zip(batched, alone, strict=True)):
        assert (b.critic, b.abstained, b.error) == (a.critic, a.abstained, a.error), n
        if not a.abstained:
            assert b.score == pytest.approx(a.score, abs=abs), n
        assert_close(b.details, a.details, abs=abs, where=f"[{n}].details")


class ForwardCounter:
    """Counts a module's forward calls and the batch size of each (its first tensor argument's rows)."""

    def __init__(self, module: torch.nn.Module):
        self.sizes: list[int] = []
        self.handle = module.register_forward_pre_hook(self._record, with_kwargs=True)

    def _record(self, _module, args, kwargs):
        first = next(v for v in [*args, *kwargs.values()] if isinstance(v, torch.Tensor))
        self.sizes.append(first.shape[0])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()
