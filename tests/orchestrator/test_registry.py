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


JUDGE = {"model": "my-vlm", "base_url": "http://127.0.0.1:9/v1", "timeout": 7.5, "max_retries": 0, "deadline": 12.0}


@pytest.mark.parametrize("name", ["gpt4o", "unified", "wise"])
def test_judge_options_reach_every_openai_compatible_judge(name, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-key")
    context = {"judge": JUDGE, "explanations": {"p": "e"}}
    (judge,), _ = build_critics(name, None, context=context)  # no request is made: the client is lazy
    got = (judge.model, judge.base_url, judge.timeout, judge.max_retries, judge.deadline)
    assert got == ("my-vlm", "http://127.0.0.1:9/v1", 7.5, 0, 12.0)
    client = judge.client  # the SDK client is built with them too
    assert (str(client.base_url), client.timeout, client.max_retries) == ("http://127.0.0.1:9/v1/", 7.5, 0)


def test_judge_options_left_unset_keep_each_judges_defaults_and_skip_other_critics():
    (gpt4o, unified), _ = build_critics("gpt4o,unified", None, context={"judge": {"timeout": 3.0, "model": None}})
    assert (gpt4o.model, gpt4o.timeout, gpt4o.max_retries) == ("gpt-4o", 3.0, 2)
    assert (unified.model, unified.timeout) == ("CodeGoat24/UnifiedReward-qwen-7b", 3.0)
    (clip,), _ = build_critics("clip", None, context={"judge": JUDGE})  # not a judge: options not passed
    assert isinstance(clip, ClipScoreCritic)
    with pytest.raises(ValueError, match="unknown judge option"):
        build_critics("gpt4o", None, context={"judge": {"api_key": "sk-x"}})


def test_non_finite_critic_weights_are_refused():
    for weight in ("inf", "nan", "-inf"):
        with pytest.raises(ValueError, match="must be > 0"):
            parse_critic_list(f"self:{weight}")
