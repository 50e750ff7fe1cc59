"""The decode loops' caches: the eager loops' growing cache equals transformers' DynamicCache bit for
bit; the opt-in fast path (milr/mug/static.py: a static KV cache, batch buckets and the
torch.compile'd step) gives the same tokens and latents as the eager loops."""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache
from transformers.cache_utils import Cache

from milr.mug.janus import _GrowingLayer, left_pad
from milr.mug.static import StaticDecoder, batch_bucket, length_bucket
from milr.mug.tiny import tiny_mug

# Three prompts of different lengths: left padding is real, and 3 rows fill a bucket of 4.
PROMPTS = ["a cat", "a photo of two red dogs left of a blue bench", "a photo of a yellow car above a cat"]
FORCED = [{}, {0: 5, 7: 9}, {}]


def decode(mug):
    images = mug.draw_batch(
        PROMPTS,
        forced=FORCED,
        generators=[torch.Generator().manual_seed(10 + i) for i in range(3)],
        record_logits=True,
    )
    texts = mug.reason_batch(PROMPTS, [[], [20, 21], []], max_new_tokens=12)
    return images, texts


def assert_same(got, want):
    for a, b in zip(got[0], want[0], strict=True):
        assert a.ids == b.ids
        torch.testing.assert_close(a.latents, b.latents, atol=1e-4, rtol=0)
        torch.testing.assert_close(a.fused_logits, b.fused_logits, atol=1e-4, rtol=0)
    for a, b in zip(got[1], want[1], strict=True):
        assert a.ids == b.ids and a.text == b.text
        torch.testing.assert_close(a.latents, b.latents, atol=1e-4, rtol=0)


@pytest.fixture(scope="module")
def eager():
    mug = tiny_mug(seed=1, grid=4)
    return mug, decode(mug)


def test_batches_and_lengths_round_up_to_few_shapes():
    assert [batch_bucket(n) for n in (1, 2, 3, 5, 16, 17, 64, 65, 130)] == [1, 2, 4, 8, 16, 32, 64, 128, 192]
    assert [length_bucket(n) for n in (1, 64, 65)] == [64, 64, 128]
    with pytest.raises(ValueError, match="at least one row"):
        batch_bucket(0)


def test_the_growing_eager_cache_equals_transformers_dynamic_cache_bit_for_bit(eager):
    mug = eager[0]
    lm = mug.model.model.language_model
    ids, mask, positions = left_pad([mug.reasoning_ids(p) for p in PROMPTS], mug.ids["pad"], "cpu")
    ours = Cache(
        layers=[_GrowingLayer(ids.shape[1] + 2, ids.shape[1] + 5) for _ in range(lm.config.num_hidden_layers)]
    )
    theirs, step = DynamicCache(), ids
    for _ in range(10):  # room for 2 new tokens: the buffer grows to its limit (5), then past it
        h = [
            lm(input_ids=step, attention_mask=mask, position_ids=positions, cache=c, use_cache=True).last_hidden_state
            for c in (ours, theirs)
        ]
        assert torch.equal(h[0], h[1])
        step = mug.model.lm_head(h[1][:, -1]).argmax(-1, keepdim=True)
        mask, positions = torch.cat([mask, mask.new_ones(len(PROMPTS), 1)], 1), positions[:, -1:] + 1
    assert ours.layers[0].capacity == ours.get_seq_length() == ids.shape[1] + 9


def test_static_cache_decodes_like_the_dynamic_cache(eager):
    mug, want = eager
    mug.compile = True  # the static path, with every step eager: the cache logic apart from the compiler
    mug.static = StaticDecoder(mug.model.model.language_model, compile=False)
    try:
        assert_same(decode(mug), want)
        assert_same(decode(mug), want)  # pooled caches are reset before reuse
        assert len(mug.static._pool) == 2  # one text and one image shape, reused
        # A batch of one without padding (mask None) and a prompt alone agree with the batch.
        alone = mug.draw(PROMPTS[1], forced=FORCED[1], generator=torch.Generator().manual_seed(11))
        assert alone.ids == want[0][1].ids
        assert mug.reason(PROMPTS[0], max_new_tokens=12).ids == want[1][0].ids
    finally:
        mug.compile, mug.static = False, None


@pytest.mark.slow  # two inductor compiles of the step (text, image): about 30 s on 2 CPU cores
def test_compiled_step_decodes_like_eager(eager):
    mug, want = eager
    mug.compile = True
    try:
        assert_same(decode(mug), want)  # compiles
        assert mug.static is not None and mug.static.step is not mug.static.forward
        assert_same(decode(mug), want)  # replays the compiled graphs over the reused caches
    finally:
        mug.compile, mug.static = False, None
