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


# --------------------------------------------------------------------------- score_batch
class ByPrompt:
    """A plain critic whose score depends on the prompt and the image; records what it was asked."""

    def __init__(self, name, scores):
        self.name, self.scores, self.seen = name, scores, []

    def __call__(self, image, prompt, spec=None):
        return self.judge(image, prompt)

    def judge(self, image, prompt):
        self.seen.append(prompt)
        score = self.scores.get(prompt)
        error = None if score is not None else "no opinion"
        return Critique(critic=self.name, score=score, rationale=f"{prompt} on {image.size}", error=error)


class BatchByPrompt(ByPrompt):
    """The same, as a BatchCritic: the mixer must hand it its images in one call."""

    def __init__(self, name, scores):
        super().__init__(name, scores)
        self.batches = []

    def score_batch(self, images, prompts, specs):
        self.batches.append(list(prompts))
        return [self.judge(image, prompt) for image, prompt in zip(images, prompts, strict=True)]

    def __call__(self, image, prompt, spec=None):
        raise AssertionError("a batch critic in a mixer is handed its batch, not one image at a time")


TWO = PromptSpec.from_geneval({"tag": "two_object", "include": [{"class": "cat"}, {"class": "dog"}]})
BATCH = [
    (Image.new("RGB", (8, 8)), "a photo of a red car", COLORS_SPEC),
    (Image.new("RGB", (9, 9)), "a photo of a cat and a dog", TWO),
    (Image.new("RGB", (10, 10)), "free text", None),
    (Image.new("RGB", (11, 11)), "a photo of a red car", COLORS_SPEC),
    (Image.new("RGB", (12, 12)), "unknown to some", None),
]


def mixer_and_children(policy="renormalize"):
    scores = {"a photo of a red car": 0.9, "a photo of a cat and a dog": 0.2, "free text": 0.5}
    plain = ByPrompt("plain", {**scores, "unknown to some": 0.7})
    batched = BatchByPrompt("batched", scores)  # abstains on "unknown to some"
    colour_only = ByPrompt("colour", {p: 1.0 for p in scores})  # weight 0 except on colour prompts
    mixer = Mixer(
        [plain, batched, colour_only],
        weights=[1, 2, 0],
        tag_weights={"colors": {"colour": 3.0, "plain": 0.0}},
        policy=policy,
    )
    return mixer, plain, batched, colour_only


def comparable(critique: Critique) -> dict:
    out = critique.model_dump(exclude={"seconds"})
    out["details"]["critiques"] = [{k: v for k, v in c.items() if k != "seconds"} for c in out["details"]["critiques"]]
    return out


@pytest.mark.parametrize("policy", ["renormalize", "fail", "zero"])
def test_score_batch_mixes_each_image_as_a_lone_call_would(policy):
    images, prompts, specs = zip(*BATCH, strict=True)
    mixer, plain, batched, colour_only = mixer_and_children(policy)
    together = mixer.score_batch(images, prompts, specs)
    alone_mixer, *_ = mixer_and_children(policy)
    alone = [alone_mixer(image, prompt, spec) for image, prompt, spec in BATCH]
    assert [comparable(c) for c in together] == [comparable(c) for c in alone]
    assert together[0].details["weights"] == {"batched": 2.0, "colour": 3.0}  # tag weights applied per image
    assert together[0].score == pytest.approx(0.9 * 2 / 5 + 1.0 * 3 / 5)
    assert together[2].details["skipped"] == ["colour"] and together[2].score == pytest.approx(0.5)
    if policy == "renormalize":
        assert together[4].score == pytest.approx(0.7)  # the batched critic abstained on it
    # each child ran once, on exactly the images that weigh it
    assert batched.batches == [list(prompts)]
    assert plain.seen == [p for p, s in zip(prompts, specs, strict=True) if s is not COLORS_SPEC]
    assert colour_only.seen == ["a photo of a red car", "a photo of a red car"]


def test_score_batch_of_nothing_and_mismatched_batches():
    mixer, *_ = mixer_and_children()
    assert mixer.score_batch([], [], []) == []
    with pytest.raises(ValueError, match="2 images, 1 prompts and 2 specs"):
        mixer.score_batch([IMAGE, IMAGE], ["p"], [None, None])


def test_score_batch_turns_a_raising_child_into_abstentions():
    verdicts = Mixer([Fixed("a", 0.6), Raises()]).score_batch([IMAGE] * 3, ["p", "q", "r"], [None] * 3)
    assert [v.score for v in verdicts] == pytest.approx([0.6] * 3)
    for v in verdicts:
        assert v.details["critiques"][1]["error"] == "RuntimeError: model fell over"
