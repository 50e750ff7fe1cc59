"""ShapesWorld: renderer ↔ oracle round trip, prompts ↔ specs, oracle verdicts, noisy critic."""

from __future__ import annotations

import random

import pytest
from PIL import ImageFilter

from milr.critics.base import Critique, PromptSpec
from milr.shapes.eval import shapes_eval_prompts, summarize
from milr.shapes.oracle import NoisyCritic, ShapesOracle, read_scene
from milr.shapes.world import (
    COLOR_NAMES,
    NUM_CODES,
    SHAPES,
    TAGS,
    Scene,
    make_prompt,
    parse_plan,
    reasoning_for,
    render,
    sample_scene,
)


def test_renderer_and_oracle_round_trip_exactly():
    rng = random.Random(0)
    for _ in range(300):
        codes = [rng.randrange(NUM_CODES) if rng.random() < 0.5 else 0 for _ in range(16)]
        scene = Scene.from_codes(codes)
        assert read_scene(render(scene)) == scene
        assert Scene.from_codes(scene.codes()) == scene


def random_scene(rng: random.Random) -> Scene:
    return Scene.from_codes([rng.randrange(1, NUM_CODES) if rng.random() < 0.5 else 0 for _ in range(16)])


def test_oracle_reads_blurred_scenes_like_a_soft_decoder_paints_them():
    rng = random.Random(1)
    for _ in range(100):
        scene = random_scene(rng)
        assert read_scene(render(scene).filter(ImageFilter.GaussianBlur(1.5))) == scene


def test_every_cell_kind_reads_back_in_every_cell():
    for code in range(NUM_CODES):
        for cell in range(16):
            codes = [0] * 16
            codes[cell] = code
            scene = Scene.from_codes(codes)
            assert read_scene(render(scene)) == scene, (code, cell)


@pytest.mark.parametrize("tag", TAGS)
def test_prompts_parse_back_to_their_spec_and_sampled_scenes_satisfy_them(tag):
    rng = random.Random(tag)
    oracle = ShapesOracle()
    for _ in range(40):
        spec = make_prompt(tag, rng)
        parsed = PromptSpec.parse(spec.prompt, classes=SHAPES, colors=COLOR_NAMES)
        assert parsed.to_geneval() == spec.to_geneval()
        verdict = oracle(render(sample_scene(spec, rng)), spec.prompt, spec)
        assert verdict.score == 1.0 and verdict.details["correct"]


def test_oracle_catches_each_kind_of_mistake():
    oracle = ShapesOracle()
    two = PromptSpec.parse("a photo of two circles", classes=SHAPES, colors=COLOR_NAMES)
    three = Scene({(0, 0): ("circle", "red"), (1, 1): ("circle", "blue"), (2, 2): ("circle", "red")})
    assert oracle(render(three), two.prompt, two).details["correct"] is False  # exclude: not exactly two
    left = PromptSpec.parse("a photo of a square left of a circle", classes=SHAPES, colors=COLOR_NAMES)
    wrong_side = Scene({(1, 3): ("square", "red"), (1, 0): ("circle", "blue")})
    v = oracle(render(wrong_side), left.prompt, left)
    assert v.score == 0.5 and not v.details["correct"]
    colour = PromptSpec.parse("a photo of a red circle and a blue square", classes=SHAPES, colors=COLOR_NAMES)
    swapped = Scene({(0, 0): ("circle", "blue"), (3, 3): ("square", "red")})
    assert oracle(render(swapped), colour.prompt, colour).score == 0.0


def test_oracle_parses_free_prompts_and_abstains_outside_the_grammar():
    oracle = ShapesOracle()
    img = render(Scene({(0, 0): ("triangle", "green")}))
    assert oracle(img, "a photo of a green triangle").score == 1.0
    verdict = oracle(img, "a dragon made of clouds")
    assert verdict.score is None and verdict.error


def test_reasoning_names_every_object_in_reading_order():
    scene = Scene({(1, 0): ("circle", "red"), (0, 3): ("square", "orange")})
    assert reasoning_for(scene) == "an orange square in row one, column four. a red circle in row two, column one."


def test_plans_parse_back_to_their_scene_and_skip_broken_sentences():
    rng = random.Random(2)
    for _ in range(100):
        scene = random_scene(rng)
        assert parse_plan(reasoning_for(scene)) == scene
    broken = (
        "a red circle in row two, column one. a blue in row one, column one. a green square in row nine, column one."
    )
    assert parse_plan(broken) == Scene({(1, 0): ("circle", "red")})


def test_shapes_eval_is_fixed_and_balanced():
    specs = shapes_eval_prompts()
    assert len(specs) == 300 and [s.prompt for s in specs] == [s.prompt for s in shapes_eval_prompts()]
    assert {t: sum(s.tag == t for s in specs) for t in TAGS} == dict.fromkeys(TAGS, 50)


def test_summary_is_the_mean_of_tag_scores():
    got = summarize([("a", True), ("a", False), ("b", True)])
    assert got["tags"] == {"a": 0.5, "b": 1.0} and got["overall"] == 0.75


class _Fixed:
    name = "fixed"

    def __call__(self, image, prompt, spec=None):
        return Critique(critic=self.name, score=0.2, details={"correct": False})


def test_noisy_critic_flips_at_the_requested_rate_and_is_seeded():
    noisy = NoisyCritic(_Fixed(), flip=0.3, seed=1)
    scores = [noisy(None, "p").score for _ in range(2000)]
    assert set(scores) == {0.2, 0.8}
    assert 0.25 < scores.count(0.8) / len(scores) < 0.35
    other = NoisyCritic(_Fixed(), flip=0.3, seed=2)
    assert [other(None, "p").score for _ in range(50)] != scores[:50]
    again = NoisyCritic(_Fixed(), flip=0.3, seed=1)
    assert [again(None, "p").score for _ in range(2000)] == scores
    assert NoisyCritic(_Fixed(), flip=0.0)(None, "p").score == 0.2
    flipped = NoisyCritic(_Fixed(), flip=1.0)(None, "p")
    assert flipped.score == 0.8 and flipped.details == {"correct": True, "flipped": True}
    assert flipped.critic == "noisy-fixed"
    with pytest.raises(ValueError, match="flip"):
        NoisyCritic(_Fixed(), flip=1.5)


class _Abstains:
    name = "abstains"

    def __call__(self, image, prompt, spec=None):
        return Critique(critic=self.name, score=None, error="no answer")


def test_noisy_critic_passes_abstentions_through():
    verdict = NoisyCritic(_Abstains(), flip=1.0)(None, "p")
    assert verdict.score is None and verdict.error == "no answer"
