"""Mutation survivors of milr/nodes/latent_update.py, killed (benchmarks/mutate.py; results in
benchmarks/results/mutation_holdout.json): a round every critic abstained on gives R = 0, which
leaves the latents where they are."""

from __future__ import annotations

from milr.config import MILRConfig
from milr.critics.base import Critique
from milr.orchestrator import MILR
from milr.traces import Trace


class Abstains:
    name = "abstains"

    def __call__(self, image, prompt, spec=None):
        return Critique(critic=self.name, score=None, error="no verdict")


def test_a_round_no_critic_scored_does_not_move_the_latents(mug, tmp_path):
    milr = MILR(mug, Abstains(), MILRConfig(steps=2, max_reasoning_tokens=8), out=tmp_path)
    milr("a photo of a red cat", name="run")
    rounds = Trace.load(tmp_path / "run").rounds
    assert [(r.score, r.reward) for r in rounds] == [(None, None)] * 3
    for r in rounds[1:]:  # each update after an all-abstain round: no gradient, no step
        assert r.grad_norm == {"text": 0.0, "image": 0.0} and r.step_norm == {"text": 0.0, "image": 0.0}
        assert r.text_prefix_ids == rounds[0].text_prefix_ids
