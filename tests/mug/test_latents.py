"""The REINFORCE step of DESIGN §3: sign, flips, no-ops, frozen weights, state round trip."""

from __future__ import annotations

import pytest
import torch

from milr.mug.latents import (
    LatentPrefix,
    argmax_tokens,
    image_positions,
    reinforce_loss,
    reward_from_score,
    sample_tokens,
    text_prefix_length,
)


def _chosen_logprob(head, z):
    logp = torch.log_softmax(head(z), -1)
    return logp.gather(-1, logp.argmax(-1, keepdim=True)).sum().item()


def test_reward_is_score_minus_one():
    assert reward_from_score(1.0) == 0.0
    assert reward_from_score(0.2) == pytest.approx(-0.8)
    with pytest.raises(ValueError, match="score"):
        reward_from_score(1.5)


def test_negative_reward_lowers_argmax_logprob_and_flips_text_tokens(mug):
    roll = mug.reason("a photo of a red cat", max_new_tokens=10)
    prefix = LatentPrefix("text", roll.latents[:3], [0, 1, 2], lr=0.03)
    before_tokens = argmax_tokens(mug.text_logits, prefix.z)
    before = _chosen_logprob(mug.text_logits, prefix.z)
    stats = prefix.step(mug.text_logits, reward=-0.5)
    assert _chosen_logprob(mug.text_logits, prefix.z) < before
    assert stats.grad_norm > 0 and stats.step_norm > 0
    for _ in range(300):
        prefix.step(mug.text_logits, reward=-0.5)
        if argmax_tokens(mug.text_logits, prefix.z) != before_tokens:
            break
    assert argmax_tokens(mug.text_logits, prefix.z) != before_tokens


def test_negative_reward_moves_image_latents(mug):
    roll = mug.draw("a photo of a dog", generator=torch.Generator().manual_seed(0))
    prefix = LatentPrefix("image", roll.latents[:1], [0], lr=0.03)
    head = mug.image_logits
    before_tokens = argmax_tokens(head, prefix.z)
    before = _chosen_logprob(head, prefix.z)
    prefix.step(head, reward=-1.0)
    assert _chosen_logprob(head, prefix.z) < before
    for _ in range(300):
        prefix.step(head, reward=-1.0)
        if argmax_tokens(head, prefix.z) != before_tokens:
            break
    assert argmax_tokens(head, prefix.z) != before_tokens


def test_zero_reward_changes_nothing(mug):
    roll = mug.reason("a cat", max_new_tokens=6)
    prefix = LatentPrefix("text", roll.latents[:2], [0, 1], lr=0.03)
    z0 = prefix.z.detach().clone()
    for _ in range(5):
        stats = prefix.step(mug.text_logits, reward=0.0)
    torch.testing.assert_close(prefix.z.detach(), z0)
    assert stats.step_norm == 0.0


def test_no_model_weight_receives_a_gradient(mug):
    roll = mug.draw("a dog", generator=torch.Generator().manual_seed(0))
    prefix = LatentPrefix("image", roll.latents[:2], [0, 1], lr=0.03)
    prefix.step(mug.image_logits, reward=-0.7)
    assert all(p.grad is None for p in mug.model.parameters())


def test_loss_sign_matches_design():
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    logp = torch.log_softmax(logits, -1)[0, 0]
    assert reinforce_loss(logits, -0.5).item() == pytest.approx(0.5 * logp.item())


def test_prefix_lengths_follow_the_paper():
    assert text_prefix_length(50, 0.2) == 10
    assert text_prefix_length(3, 0.2) == 1  # never empty
    assert image_positions(576, 0.02, "prefix", None) == list(range(11))
    rnd = image_positions(576, 0.02, "random", torch.Generator().manual_seed(0))
    assert len(rnd) == 11 and rnd == sorted(rnd) and rnd != list(range(11))
    assert rnd == image_positions(576, 0.02, "random", torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="image_subset"):
        image_positions(16, 0.1, "middle", None)


def test_state_round_trip_keeps_adam_moments(mug):
    roll = mug.reason("a cat", max_new_tokens=6)
    a = LatentPrefix("text", roll.latents[:2], [0, 1], lr=0.03)
    a.step(mug.text_logits, reward=-0.5)
    b = LatentPrefix.from_state_tensors("text", a.state_tensors(), lr=0.03, device="cpu")
    a.step(mug.text_logits, reward=-0.5)
    b.step(mug.text_logits, reward=-0.5)
    torch.testing.assert_close(a.z.detach(), b.z.detach())


def test_sample_tokens_is_seeded(mug):
    roll = mug.draw("a dog", generator=torch.Generator().manual_seed(0))
    a = sample_tokens(mug.image_logits, roll.latents[:3], torch.Generator().manual_seed(4))
    b = sample_tokens(mug.image_logits, roll.latents[:3], torch.Generator().manual_seed(4))
    assert a == b and len(a) == 3
