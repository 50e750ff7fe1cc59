"""Mixer: weights, per-tag weights, abstention policies, concurrency, a critic that raises."""

from __future__ import annotations

import threading
import time

import pytest
import structlog
from PIL import Image

from milr.critics import Critic, Critique, Mixer, PromptSpec

IMAGE = Image.new("RGB", (8, 8), "white")
COLORS_SPEC = PromptSpec.from_geneval({"tag": "colors", "include": [{"class": "car", "count": 1, "color": "red"}]})


class Fixed:
    """A critic with a fixed score (None = abstain) and an optional delay."""

    def __init__(self, name, score, delay=0.0):
        self.name, self.score, self.delay, self.calls = name, score, delay, 0

    def __call__(self, image, prompt, spec=None):
        self.calls += 1
        time.sleep(self.delay)
        error = "no opinion" if self.score is None else None
        return Critique(critic=self.name, score=self.score, rationale=f"{self.name} says so", error=error)


class Raises:
    name = "broken"

    def __call__(self, image, prompt, spec=None):
        raise RuntimeError("model fell over")


def test_mixer_is_a_critic_and_keeps_children():
    mixer = Mixer([Fixed("a", 1.0), Fixed("b", 0.0)])
    assert isinstance(mixer, Critic) and mixer.name == "mixed"
    verdict = mixer(IMAGE, "a photo of a cat")
    assert verdict.score == pytest.approx(0.5)
    children = verdict.details["critiques"]
    assert [c["critic"] for c in children] == ["a", "b"] and [c["score"] for c in children] == [1.0, 0.0]
    assert Critique.model_validate(children[0]).rationale == "a says so"
    assert "a (w=1): 1.000" in verdict.rationale


def test_weights_by_position_and_by_name():
    critics = [Fixed("a", 1.0), Fixed("b", 0.0)]
    assert Mixer(critics, weights=[3, 1])(IMAGE, "p").score == pytest.approx(0.75)
    assert Mixer(critics, weights={"b": 3})(IMAGE, "p").score == pytest.approx(0.25)  # a keeps 1.0
    with pytest.raises(ValueError, match="2 critics"):
        Mixer(critics, weights=[1])
    with pytest.raises(ValueError, match="unknown"):
        Mixer(critics, weights={"c": 1})
    with pytest.raises(ValueError, match="positive sum"):
        Mixer(critics, weights=[0, 0])
    with pytest.raises(ValueError, match="distinct"):
        Mixer([Fixed("a", 1.0), Fixed("a", 0.0)])


def test_per_tag_weights_apply_to_their_tag_only():
    a, b = Fixed("a", 1.0), Fixed("b", 0.0)
    mixer = Mixer([a, b], weights=[1, 1], tag_weights={"colors": {"a": 0.0, "b": 1.0}})
    assert mixer(IMAGE, "a photo of a red car", COLORS_SPEC).score == 0.0
    assert a.calls == 0  # weight 0: not run at all
    two = PromptSpec.from_geneval({"tag": "two_object", "include": [{"class": "cat"}, {"class": "dog"}]})
    assert mixer(IMAGE, "a photo of a cat and a dog", two).score == pytest.approx(0.5)
    assert mixer(IMAGE, "free text").score == pytest.approx(0.5)
    verdict = mixer(IMAGE, "a photo of a red car", COLORS_SPEC)
    assert verdict.details["skipped"] == ["a"] and verdict.details["weights"] == {"b": 1.0}
    with pytest.raises(ValueError, match="unknown"):
        Mixer([a, b], tag_weights={"colors": {"z": 1.0}})


def test_renormalize_skips_abstentions():
    verdict = Mixer([Fixed("a", 0.8), Fixed("b", None)], weights=[1, 3])(IMAGE, "p")
    assert verdict.score == pytest.approx(0.8) and verdict.error is None
    none = Mixer([Fixed("a", None), Fixed("b", None)])(IMAGE, "p")
    assert none.score is None and none.error == "every critic abstained"


def test_fail_policy_abstains_on_any_abstention():
    verdict = Mixer([Fixed("a", 0.8), Fixed("b", None)], policy="fail")(IMAGE, "p")
    assert verdict.score is None and "b" in verdict.error
    assert Mixer([Fixed("a", 0.8), Fixed("b", 0.4)], policy="fail")(IMAGE, "p").score == pytest.approx(0.6)


def test_zero_policy_counts_abstention_as_zero():
    verdict = Mixer([Fixed("a", 0.8), Fixed("b", None)], policy="zero")(IMAGE, "p")
    assert verdict.score == pytest.approx(0.4)
    with pytest.raises(ValueError, match="policy"):
        Mixer([Fixed("a", 0.8)], policy="ignore")


def test_a_raising_critic_becomes_an_abstention():
    with structlog.testing.capture_logs() as logs:
        verdict = Mixer([Fixed("a", 0.6), Raises()])(IMAGE, "p")
    assert verdict.score == pytest.approx(0.6)
    broken = verdict.details["critiques"][1]
    assert broken["score"] is None and broken["error"] == "RuntimeError: model fell over"
    assert any(e["event"] == "critic_raised" and e["critic"] == "broken" for e in logs)
    assert "broken (w=1): abstained: RuntimeError" in verdict.rationale


def test_critics_run_concurrently():
    one = 0.4
    start = time.perf_counter()
    Fixed("solo", 1.0, delay=one)(IMAGE, "p")
    single = time.perf_counter() - start
    mixer = Mixer([Fixed("a", 1.0, delay=one), Fixed("b", 0.0, delay=one)])
    start = time.perf_counter()
    verdict = mixer(IMAGE, "p")
    both = time.perf_counter() - start
    assert verdict.score == pytest.approx(0.5)
    assert both < 1.6 * single  # serial would be 2x
    serial = Mixer([Fixed("a", 1.0, delay=one), Fixed("b", 0.0, delay=one)], max_workers=1)
    start = time.perf_counter()
    serial(IMAGE, "p")
    assert time.perf_counter() - start > 1.8 * one


def test_children_see_the_callers_contextvars():
    seen = {}

    class Peek:
        name = "peek"

        def __call__(self, image, prompt, spec=None):
            seen["ctx"] = structlog.contextvars.get_contextvars()
            seen["thread"] = threading.current_thread().name
            return Critique(critic=self.name, score=1.0)

    with structlog.contextvars.bound_contextvars(round=3):
        Mixer([Peek()])(IMAGE, "p")
    assert seen["ctx"].get("round") == 3 and seen["thread"].startswith("critic")
