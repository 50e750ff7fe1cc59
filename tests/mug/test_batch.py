"""The batched model layer: rows decoded together agree with rows decoded alone, each row keeps its
own forced tokens and sampling stream; and the parity fixes against DeepSeek's original Janus code."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open

from milr.mug.janus import JanusMUG, left_pad, render_chat
from milr.mug.tiny import tiny_mug

PROMPTS = ["a cat", "a photo of two red dogs left of a blue bench", "a photo of a yellow car above a cat"]


def test_left_pad_masks_padding_and_counts_positions_from_the_first_real_token():
    ids, mask, pos = left_pad([[5, 6, 7], [8]], pad=0, device="cpu")
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert pos.tolist() == [[0, 1, 2], [0, 0, 0]]
    assert left_pad([[1, 2], [3, 4]], 0, "cpu")[1] is None  # no padding: the plain unmasked forward


def test_batched_reasoning_equals_each_prompt_alone(mug):
    alone = [mug.reason(p, max_new_tokens=10) for p in PROMPTS]
    batched = mug.reason_batch(PROMPTS, max_new_tokens=10)
    for a, b in zip(alone, batched, strict=True):
        assert a.ids == b.ids and a.text == b.text
        torch.testing.assert_close(mug.text_logits(b.latents), mug.text_logits(a.latents), atol=1e-4, rtol=0)


def test_batched_teacher_forced_image_logits_equal_alone():
    mug = tiny_mug(seed=1, grid=4)
    alone = [
        mug.draw(p, generator=torch.Generator().manual_seed(i), record_logits=True) for i, p in enumerate(PROMPTS)
    ]
    forced = [dict(enumerate(a.ids)) for a in alone]
    batched = mug.draw_batch(PROMPTS, forced=forced, record_logits=True)
    for a, b in zip(alone, batched, strict=True):
        assert a.ids == b.ids
        torch.testing.assert_close(b.fused_logits, a.fused_logits, atol=1e-4, rtol=0)
        torch.testing.assert_close(b.latents, a.latents, atol=1e-4, rtol=0)
        assert b.image.tobytes() == a.image.tobytes()  # same tokens, same pixels: decoded one by one


def test_each_row_samples_from_its_own_generator_whatever_its_batch_mates(mug):
    alone = mug.draw(PROMPTS[1], generator=torch.Generator().manual_seed(7)).ids
    for mates in ([], [PROMPTS[0]], [PROMPTS[0], PROMPTS[2], PROMPTS[2]]):
        gens = [torch.Generator().manual_seed(100 + i) for i in range(len(mates))]
        rows = mug.draw_batch([*mates, PROMPTS[1]], generators=[*gens, torch.Generator().manual_seed(7)])
        assert rows[-1].ids == alone


def test_batched_forced_prefixes_are_per_row(mug):
    texts = mug.reason_batch(PROMPTS[:2], [[20, 21], []], max_new_tokens=6)
    assert texts[0].ids[:2] == [20, 21] and texts[1].ids == mug.reason(PROMPTS[1], max_new_tokens=6).ids
    images = mug.draw_batch(PROMPTS[:2], forced=[{0: 3}, {2: 9}], generators=[torch.Generator().manual_seed(0)] * 2)
    assert images[0].ids[0] == 3 and images[1].ids[2] == 9


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m: m.reason_batch(["a cat", "a dog"], [[1]]), "prefix_ids has 1 rows for 2 prompts"),
        (lambda m: m.draw_batch(["a cat"], generators=[None, None]), "one of each per prompt"),
        (lambda m: m.reason_batch(["a cat", " "]), "prompt"),
    ],
)
def test_batch_arguments_are_checked(mug, call, match):
    with pytest.raises(ValueError, match=match):
        call(mug)


# ----------------------------------------------------------------------------- parity fixes (issue 11, 4a-4e)
def test_a_checkpoint_with_its_own_lm_head_loads_untied(tmp_path):
    mug = tiny_mug(seed=0)
    model = mug.model
    # Ship an lm_head that differs from the input embeddings, as Janus-Pro does.
    model.lm_head.weight = torch.nn.Parameter(torch.randn_like(model.lm_head.weight))
    model.config.tie_word_embeddings = False  # what a real checkpoint's own config would say
    model.save_pretrained(tmp_path)
    mug.tokenizer.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config.pop("tie_word_embeddings", None)  # transformers 5.x then defaults the top-level tie to True
    (tmp_path / "config.json").write_text(json.dumps(config))
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        shipped = f.get_tensor("lm_head.weight")
    loaded = JanusMUG.from_pretrained(tmp_path, device="cpu").model
    assert loaded.config.tie_word_embeddings is False
    # transformers 5.24 itself declines to tie two different shipped tensors, but earlier 5.x tied them,
    # and any later `tie_weights()` (resizing, re-initialising) would still tie a config that says so.
    loaded.tie_weights()
    torch.testing.assert_close(loaded.lm_head.weight, shipped, atol=0, rtol=0)
    assert not torch.equal(loaded.lm_head.weight, loaded.model.language_model.embed_tokens.weight)


def test_unconditional_row_pads_by_position_even_a_literal_begin_of_image(mug):
    rows = mug.cfg_prompt_ids("a cat <begin_of_image> dog")
    cond, uncond = rows[0].tolist(), rows[1].tolist()
    assert cond.count(mug.ids["boi"]) == 2  # the literal one and the last
    assert uncond[0] == mug.ids["bos"] and uncond[-1] == mug.ids["boi"]
    assert set(uncond[1:-1]) == {mug.ids["pad"]}


def test_chat_renderer_strips_the_message_as_deepseeks_template_does():
    assert render_chat("  a cat \n") == "<|User|>: a cat\n\n<|Assistant|>:"


def test_a_forced_eos_inside_the_prefix_does_not_end_the_reasoning(mug):
    eos = mug.ids["eos"]
    roll = mug.reason("a photo of a cat", prefix_ids=[20, eos, 21], max_new_tokens=8)
    assert roll.ids[:3] == [20, eos, 21] and len(roll.ids) > 3  # the model goes on after the prefix
    assert eos not in roll.ids[3:-1]  # and stops only at an EOS of its own (or the cap)


def test_pixels_are_clipped_then_truncated_to_uint8(mug):
    ids = mug.draw("a cat", generator=torch.Generator().manual_seed(0)).ids
    with torch.no_grad():
        raw = mug.model.decode_image_tokens(torch.tensor([ids]))[0].float().numpy()
    expected = np.clip((raw + 1) / 2 * 255, 0, 255).astype(np.uint8)  # DeepSeek: clip, then uint8 cast
    assert (np.asarray(mug.decode_image(ids)) == expected).all()
    assert not (expected == np.clip(np.round((raw + 1) / 2 * 255), 0, 255).astype(np.uint8)).all()
