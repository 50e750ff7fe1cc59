"""Edges of the loop's rules, end to end: the stop rule at exactly the threshold (and at 1.0 with the
exact ShapesWorld critic), `strategy="t2v"` and `image_subset="random"` through real runs."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file

from milr.config import MILRConfig
from milr.mug.latents import image_positions
from milr.nodes.critique import stop_reason
from milr.orchestrator import MILR
from milr.shapes import ShapesOracle
from milr.traces import Trace
from tests.orchestrator.helpers import ScriptedCritic

PROMPT = "a photo of a red cat"


def run(mug, critic, out, **config):
    return MILR(mug, critic, MILRConfig(max_reasoning_tokens=12, **config), out=out)(PROMPT)


# ----------------------------------------------------------------------------- the stop rule
@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.9, 1.0])
def test_a_score_equal_to_the_threshold_stops_and_one_just_below_does_not(threshold):
    config = MILRConfig(steps=5, threshold=threshold)
    assert stop_reason(threshold, 0, config) == "threshold"
    assert stop_reason(threshold, 5, config) == "threshold"  # the threshold, not the budget, is the reason
    if threshold > 0:
        assert stop_reason(math.nextafter(threshold, -math.inf), 0, config) is None
    assert stop_reason(None, 0, config) is None  # an abstention never passes, not even threshold 0


def test_a_round_scoring_exactly_the_threshold_ends_the_run(mug, tmp_path):
    # 0.9 == the threshold: the run stops at round 1; with `>` it would go on to the 0.95 of round 2.
    result = run(mug, ScriptedCritic([0.1, 0.9, 0.95]), tmp_path, steps=5, threshold=0.9)
    assert [r.score for r in result.rounds] == [0.1, 0.9]
    assert result.stop_reason == "threshold" and result.final_round == 1 and result.score == 0.9


@pytest.mark.parametrize(
    ("prompt", "seed", "rounds"),
    [("a photo of two squares", 0, 1), ("a photo of a purple triangle", 1, 3)],  # measured with the shipped model
)
def test_threshold_one_stops_at_the_first_perfect_round_of_the_exact_critic(
    shapes_mug, one_thread, tmp_path, prompt, seed, rounds
):
    config = MILRConfig(steps=20, seed=seed, threshold=1.0).with_recommended(shapes_mug.recommended)
    result = MILR(shapes_mug, ShapesOracle(), config, out=tmp_path)(prompt)
    scores = [r.score for r in result.rounds]
    assert scores[-1] == 1.0 and all(s < 1.0 for s in scores[:-1]) and len(scores) == rounds
    assert result.stop_reason == "threshold" and result.final_round == rounds - 1
    assert Trace.load(result.trace_dir).summary.stop_reason == "threshold"


# ----------------------------------------------------------------------------- strategies
def _latents(result) -> list[dict[str, torch.Tensor]]:
    return [load_file(result.trace_dir / r.latents) for r in result.rounds]


def test_t2v_moves_the_text_for_half_the_steps_then_only_the_image(mug, tmp_path):
    result = run(mug, ScriptedCritic([0.2]), tmp_path, steps=4, strategy="t2v")
    assert [r.modality for r in result.rounds] == ["none", "text", "text", "image", "image"]
    assert [sorted(r.step_norm) for r in result.rounds] == [[], ["text"], ["text"], ["image"], ["image"]]
    assert all(v > 0 for r in result.rounds for v in r.step_norm.values())
    text = [t["text.z"] for t in _latents(result)]
    image = [t["image.z"] for t in _latents(result)]
    # Each round's file holds the latents after that round's update: text moves in steps 1-2 only,
    # the image in steps 3-4 only (the other prefix is not stepped at all, so it stays bit for bit).
    assert not torch.equal(text[0], text[1]) and not torch.equal(text[1], text[2])
    assert torch.equal(text[2], text[3]) and torch.equal(text[3], text[4])
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])
    assert not torch.equal(image[2], image[3]) and not torch.equal(image[3], image[4])


def test_a_random_image_subset_optimises_the_seeded_positions_end_to_end(mug, tmp_path):
    seed, share = 0, 0.5  # 2 of the tiny model's 4 image tokens
    expected = image_positions(mug.num_image_tokens, share, "random", torch.Generator().manual_seed(seed + 1))
    assert expected != [0, 1]  # else this test could not tell `random` from `prefix`
    common = dict(steps=2, seed=seed, lambda_image=share, optimize={"image"})
    rand = run(mug, ScriptedCritic([0.2]), tmp_path / "random", image_subset="random", **common)
    prefix = run(mug, ScriptedCritic([0.2]), tmp_path / "prefix", image_subset="prefix", **common)
    assert [t["image.positions"].tolist() for t in _latents(rand)] == [expected] * 3
    assert [t["image.positions"].tolist() for t in _latents(prefix)] == [[0, 1]] * 3
    assert all(len(r.image_prefix_ids) == 2 for r in rand.rounds)
    assert all(r.modality == "image" and r.step_norm["image"] > 0 for r in rand.rounds[1:])
    # The subset has its own generator: round 0 is the same draw in both runs; the updates then differ.
    assert rand.rounds[0].image.tobytes() == prefix.rounds[0].image.tobytes()
    assert [r.image_prefix_ids for r in rand.rounds] != [r.image_prefix_ids for r in prefix.rounds]
    again = run(mug, ScriptedCritic([0.2]), tmp_path / "again", image_subset="random", **common)
    assert [r.image.tobytes() for r in again.rounds] == [r.image.tobytes() for r in rand.rounds]
    assert [t["image.z"] for t in _latents(again)][-1].equal(_latents(rand)[-1]["image.z"])
