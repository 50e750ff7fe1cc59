"""Critics that break the contract: a score that is NaN or outside [0, 1] (a `Critique` built with
`model_construct`), or a return value that is not a `Critique` (a float, None, a dict).

Scored alone, such a critic is a bug: a `TypeError` naming it and what it returned. Inside a `Mixer`
it abstains on that image with that message as its error, and is never mixed in as a number (NaN
used to be mixed as 0.0, and 1.5 or -3 clamped).
"""

from __future__ import annotations

import math

import pytest
from PIL import Image

from milr.config import MILRConfig
from milr.critics import Mixer, score_many
from milr.critics.base import Critique, NotACritiqueError
from milr.orchestrator import MILR
from milr.traces import Trace

IMAGES = [Image.new("RGB", (8, 8), c) for c in ("red", "green", "blue")]
PROMPTS = ["p0", "p1", "p2"]
SPECS = [None] * 3


def _constructed(score):
    return lambda: Critique.model_construct(critic="broken", score=score)


BROKEN = {
    "nan": (_constructed(math.nan), "returned a Critique with score nan, outside [0, 1]"),
    "inf": (_constructed(math.inf), "returned a Critique with score inf, outside [0, 1]"),
    "1.5": (_constructed(1.5), "returned a Critique with score 1.5, outside [0, 1]"),
    "-3": (_constructed(-3), "returned a Critique with score -3, outside [0, 1]"),
    "str": (_constructed("0.5"), "returned a Critique with score '0.5' (str), not a number"),
    "bool": (_constructed(True), "returned a Critique with score True (bool), not a number"),
    "float": (lambda: 0.5, "returned float 0.5, not a Critique"),
    "None": (lambda: None, "returned None, not a Critique"),
    "dict": (
        lambda: {"critic": "broken", "score": 0.5},
        "returned dict {'critic': 'broken', 'score': 0.5}, not a Critique",
    ),
}


class Broken:
    name = "broken"

    def __init__(self, kind: str):
        self.make = BROKEN[kind][0]
        self.calls = 0

    def __call__(self, image, prompt, spec=None):
        self.calls += 1
        return self.make()


class Fixed:
    def __init__(self, name: str, score: float):
        self.name, self.score = name, score

    def __call__(self, image, prompt, spec=None):
        return Critique(critic=self.name, score=self.score)


@pytest.mark.parametrize("kind", list(BROKEN))
def test_a_broken_critic_alone_is_a_type_error_naming_it_and_what_it_returned(kind):
    for n in (1, 3):  # one image (the caller's thread) and a batch (worker threads)
        with pytest.raises(NotACritiqueError) as err:
            score_many(Broken(kind), IMAGES[:n], PROMPTS[:n], SPECS[:n])
        assert isinstance(err.value, TypeError)
        assert str(err.value) == f"critic 'broken' (Broken) {BROKEN[kind][1]}"


@pytest.mark.parametrize("kind", list(BROKEN))
def test_inside_a_mixer_a_broken_critic_abstains_named_and_is_never_mixed_in(kind):
    mixer = Mixer([Broken(kind), Fixed("good", 0.8)])
    verdicts = score_many(mixer, IMAGES, PROMPTS, SPECS)
    for v in verdicts:
        assert v.score == pytest.approx(0.8) and v.error is None  # renormalised over the critic that scored
        broken = Critique.model_validate(v.details["critiques"][0])
        assert broken.critic == "broken" and broken.score is None
        assert broken.error == f"NotACritiqueError: critic 'broken' (Broken) {BROKEN[kind][1]}"
        assert "broken (w=1): abstained: NotACritiqueError: critic 'broken'" in v.rationale
    assert mixer(IMAGES[0], "p").score == pytest.approx(0.8)  # one image, through __call__


def test_nan_is_not_mixed_as_zero_and_out_of_range_scores_are_not_clamped():
    assert Mixer([Broken("nan"), Fixed("good", 0.6)])(IMAGES[0], "p").score == pytest.approx(0.6)  # was 0.3
    assert Mixer([Broken("1.5"), Fixed("good", 0.2)])(IMAGES[0], "p").score == pytest.approx(0.2)  # was 0.85
    assert Mixer([Broken("-3"), Fixed("good", 0.9)])(IMAGES[0], "p").score == pytest.approx(0.9)  # was 0.0
    alone = Mixer([Broken("nan")])(IMAGES[0], "p")
    assert alone.score is None and alone.error == "every critic abstained"


def test_the_abstention_policies_apply_to_a_broken_critic():
    zero = Mixer([Broken("nan"), Fixed("good", 0.8)], policy="zero")(IMAGES[0], "p")
    assert zero.score == pytest.approx(0.4)  # counted as 0 by the policy's choice, not as NaN
    fail = Mixer([Broken("float"), Fixed("good", 0.8)], policy="fail")(IMAGES[0], "p")
    assert fail.score is None and fail.error == "policy 'fail': abstained: broken"


def test_a_batch_critic_with_one_broken_critique_costs_that_image_only():
    class HalfBroken:
        name = "half"

        def __call__(self, image, prompt, spec=None):
            return self.score_batch([image], [prompt], [spec])[0]

        def score_batch(self, images, prompts, specs):
            return [
                Critique.model_construct(critic=self.name, score=math.nan)
                if p == "p1"
                else Critique(critic="half", score=0.5)
                for p in prompts
            ]

    with pytest.raises(TypeError, match="critic 'half' \\(HalfBroken\\) returned a Critique with score nan"):
        score_many(HalfBroken(), IMAGES, PROMPTS, SPECS)
    mixed = score_many(Mixer([HalfBroken(), Fixed("good", 0.9)]), IMAGES, PROMPTS, SPECS)
    assert [v.score for v in mixed] == pytest.approx([0.7, 0.9, 0.7])


def test_a_mixer_inside_a_mixer_passes_the_abstention_up():
    inner = Mixer([Broken("None"), Fixed("good", 0.3)], name="inner")
    outer = Mixer([inner, Fixed("other", 0.7)])
    assert outer(IMAGES[0], "p").score == pytest.approx(0.5)


def test_weights_must_be_finite():
    for bad in ([math.inf, 1.0], [math.nan, 1.0], [-1.0, 2.0]):
        with pytest.raises(ValueError, match="weights must be finite and >= 0"):
            Mixer([Fixed("a", 0.1), Fixed("b", 0.2)], weights=bad)


# --------------------------------------------------------------------------- in a run
def test_a_run_goes_on_past_a_broken_mixer_child_and_records_why(mug, tmp_path):
    broken = Broken("nan")
    milr = MILR(mug, [broken, Fixed("good", 0.3)], MILRConfig(steps=2, max_reasoning_tokens=8), out=tmp_path)
    result = milr("a photo of a red cat")
    assert len(result.rounds) == 3 and broken.calls == 3
    trace = Trace.load(result.trace_dir)
    for r in trace.rounds:
        by_critic = {c.critic: c for c in r.record.critiques}
        assert r.record.score == pytest.approx(0.3)
        assert by_critic["broken"].score is None and "score nan, outside [0, 1]" in by_critic["broken"].error


def test_a_run_with_a_broken_critic_alone_fails_with_a_type_error_naming_it(mug, tmp_path):
    milr = MILR(mug, Broken("float"), MILRConfig(steps=2, max_reasoning_tokens=8), out=tmp_path)
    with pytest.raises(TypeError, match="critic 'broken' \\(Broken\\) returned float 0.5, not a Critique"):
        milr("a photo of a red cat")
