"""Mutation survivors of milr/mug/latents.py, killed (benchmarks/mutate.py; results in
benchmarks/results/mutation.json)."""

from __future__ import annotations

import torch

from milr.mug.latents import LatentPrefix, image_positions


def test_a_restored_prefix_carries_adams_moments_and_step_count(mug):
    """Adam's first steps are close to sign descent, so a prefix restored with a fresh optimiser moves
    almost like the original one: compare the moments themselves (`in` → `not in` at the restore)."""
    roll = mug.reason("a cat", max_new_tokens=6)
    a = LatentPrefix("text", roll.latents[:2], [0, 1], lr=0.03)
    a.step(mug.text_logits, reward=-0.5)
    a.step(mug.text_logits, reward=-0.5)
    b = LatentPrefix.from_state_tensors("text", a.state_tensors(), lr=0.03, device="cpu")
    ours, theirs = a.adam.state[a.z], b.adam.state[b.z]
    for moment in ("exp_avg", "exp_avg_sq"):
        torch.testing.assert_close(ours[moment], theirs[moment])
    assert float(ours["step"]) == float(theirs["step"]) == 2.0


def test_a_prefix_that_never_stepped_restores_without_moments(mug):
    roll = mug.reason("a cat", max_new_tokens=6)
    fresh = LatentPrefix("text", roll.latents[:2], [0, 1], lr=0.03)
    restored = LatentPrefix.from_state_tensors("text", fresh.state_tensors(), lr=0.03, device="cpu")
    assert not restored.adam.state and restored.positions == [0, 1]
    torch.testing.assert_close(restored.z.detach(), fresh.z.detach())


def test_a_tiny_image_fraction_still_optimises_exactly_one_position():
    """Lv = max(1, int(λv·N)): a fraction too small for one token still gives one, not more."""
    assert image_positions(16, 0.05, "prefix", None) == [0]
    (only,) = image_positions(16, 0.05, "random", torch.Generator().manual_seed(0))
    assert 0 <= only < 16
    assert image_positions(16, 0.125, "prefix", None) == [0, 1]
