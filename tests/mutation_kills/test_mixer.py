"""Mutation survivors of milr/critics/mixer.py, killed (benchmarks/mutate.py; results in
benchmarks/results/mutation.json)."""

from __future__ import annotations

import pytest

from milr.critics import Mixer, mixer
from milr.critics.base import Critique
from tests.orchestrator.helpers import ScriptedCritic


def test_a_mixer_of_no_critic_is_refused():
    with pytest.raises(ValueError, match="Mixer needs at least one critic"):
        Mixer([])


def test_held_machine_critiques_are_capped_oldest_first(monkeypatch):
    """A batch abandoned at a question leaves its machine critiques held; the oldest go past MAX_HELD."""
    monkeypatch.setattr(mixer, "MAX_HELD", 2)
    mix = Mixer([ScriptedCritic([0.5])])
    for key in ("a", "b", "c"):
        mix._hold([key], [{0: Critique(critic="scripted", score=0.5)}], [0])
    assert list(mix._held) == [(0, "b"), (0, "c")]
