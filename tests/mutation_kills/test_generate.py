"""Mutation survivors of milr/nodes/generate.py, killed (benchmarks/mutate.py; results in
benchmarks/results/mutation.json): a round after an update keeps the update's seconds beside the
decode's and the critics', and names what the update moved, in its trace record."""

from __future__ import annotations

from milr.config import MILRConfig
from milr.orchestrator import MILR
from milr.traces import Trace
from tests.orchestrator.helpers import PixelCritic


def test_every_round_after_an_update_records_decode_critic_and_update_seconds(mug, tmp_path):
    milr = MILR(mug, PixelCritic(), MILRConfig(steps=2, threshold=1.0, max_reasoning_tokens=8), out=tmp_path)
    result = milr("a photo of a red cat", name="run")
    rounds = Trace.load(tmp_path / "run").rounds
    assert len(rounds) == len(result.rounds) == 3
    assert set(rounds[0].seconds) == {"decode", "critics", "batch"}  # round 0: nothing was updated before it
    assert rounds[0].modality == "none"
    for record in rounds[1:]:
        assert record.modality == "both"  # what the joint update before it moved, from round 1 on
        assert set(record.seconds) == {"decode", "critics", "update", "batch"}
        assert record.seconds["update"] > 0 and record.seconds["batch"] == 1
