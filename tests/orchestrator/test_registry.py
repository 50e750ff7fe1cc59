"""The name registry shared by the CLI and the benchmark workers."""

from __future__ import annotations

import pytest

from milr.critics import BlipVQACritic, ClipScoreCritic, Mixer
from milr.orchestrator.registry import CRITICS, build_critics, build_reward, parse_critic_list


def test_t2i_compbench_critic_follows_the_category():
    (critic,), _ = build_critics("t2i_compbench", None, context={"category": "color"})
    assert isinstance(critic, BlipVQACritic)  # weights load lazily: nothing is downloaded here
    assert isinstance(build_reward("t2i_compbench", None, context={"category": "non_spatial"}), ClipScoreCritic)
    with pytest.raises(ValueError, match="use it in `milr bench t2i`"):
        build_critics("t2i_compbench", None)


def test_model_based_t2i_scorers_are_registered_by_name():
    assert {"blip_vqa", "clip", "t2i_compbench"} <= set(CRITICS)
    mixed = build_reward("blip_vqa:0.5,clip:0.5", None)
    assert isinstance(mixed, Mixer) and [c.name for c in mixed.critics] == ["blip_vqa", "clip"]
    assert parse_critic_list("clip") == [("clip", 1.0)]


def test_wise_needs_the_explanations_of_its_benchmark():
    from milr.critics import WiseJudge

    judge = build_reward("wise", None, context={"explanations": {"p": "e"}})
    assert isinstance(judge, WiseJudge) and judge.explanations == {"p": "e"}
    with pytest.raises(ValueError, match="use it in `milr bench wise`"):
        build_critics("wise", None)
