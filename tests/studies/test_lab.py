"""The ShapesWorld critic lab: each blind spot is real (an image wrong in exactly that way passes the
lab critic and fails the oracle), the rest of the rules still hold, and chance is seeded per image."""

from __future__ import annotations

import pytest

from milr.critics.base import PromptSpec
from milr.orchestrator.registry import build_critics, parse_critic_list
from milr.shapes.lab import LabCritic, lab_critic, unit_draw
from milr.shapes.oracle import ShapesOracle
from milr.shapes.world import COLOR_NAMES, SHAPES, Scene, render

ORACLE = ShapesOracle()


def verdicts(critic, prompt: str, objects: dict) -> tuple[bool, bool]:
    """(oracle correct, critic passes at MILR's threshold) on the rendered scene."""
    image = render(Scene(objects))
    spec = PromptSpec.parse(prompt, classes=SHAPES, colors=COLOR_NAMES)
    return ORACLE(image, prompt, spec).details["correct"], critic(image, prompt, spec).score >= 0.9


def test_count_blind_passes_wrong_counts_the_oracle_fails():
    blind = lab_critic("countblind")
    three = "a photo of three circles"
    assert verdicts(blind, three, {(0, 0): ("circle", "red"), (0, 1): ("circle", "red")}) == (False, True)
    four = {(0, c): ("circle", "blue") for c in range(4)}
    assert verdicts(blind, three, four) == (False, True)  # too many: GenEval's exclusion, which it cannot see
    assert verdicts(blind, three, {(1, c): ("circle", "blue") for c in range(3)}) == (True, True)
    assert verdicts(blind, three, {(0, 0): ("square", "red")}) == (False, False)  # no circle at all
    assert verdicts(blind, "a photo of a red circle", {(0, 0): ("circle", "green")}) == (False, False)  # sees colour


def test_position_blind_passes_wrong_relations_the_oracle_fails():
    blind = lab_critic("positionblind")
    prompt = "a photo of a circle left of a square"
    wrong = {(1, 3): ("circle", "red"), (1, 0): ("square", "blue")}
    assert verdicts(blind, prompt, wrong) == (False, True)
    right = {(1, 0): ("circle", "red"), (1, 3): ("square", "blue")}
    assert verdicts(blind, prompt, right) == (True, True)
    assert verdicts(blind, prompt, {(1, 0): ("circle", "red")}) == (False, False)  # the square is missing


def test_colour_blind_passes_wrong_colours_the_oracle_fails():
    blind = lab_critic("colorblind")
    assert verdicts(blind, "a photo of a red circle", {(2, 2): ("circle", "green")}) == (False, True)
    assert verdicts(blind, "a photo of a red circle", {(2, 2): ("square", "red")}) == (False, False)
    both = "a photo of a red circle and a blue square"
    assert verdicts(blind, both, {(0, 0): ("circle", "blue"), (3, 3): ("square", "red")}) == (False, True)


def test_lenient_passes_near_misses_by_its_margin_but_never_an_image_without_the_objects():
    lenient, strict = lab_critic("lenient"), lab_critic("lenient", margin=0.3)
    both = "a photo of a red circle and a blue square"
    one_colour_wrong = {(0, 0): ("circle", "red"), (3, 3): ("square", "green")}
    assert verdicts(lenient, both, one_colour_wrong) == (False, True)
    assert verdicts(strict, both, one_colour_wrong) == (False, False)  # half the clauses missed > margin 0.3
    three = "a photo of three circles"
    assert verdicts(lenient, three, {(0, c): ("circle", "red") for c in range(4)}) == (False, True)  # one too many
    assert verdicts(lenient, three, {(0, 0): ("square", "red")}) == (False, False)  # no circle: not near
    assert verdicts(lenient, "a photo of a circle", {}) == (False, False)
    image = render(Scene(one_colour_wrong))
    verdict = lenient(image, both, None)  # a free-form prompt is parsed, as the oracle does
    assert verdict.details["near_miss"] and verdict.details["correct"] and verdict.score == 1.0


def test_noisy_flips_a_seeded_share_of_images_the_same_way_every_time():
    scenes = [{(r, c): ("circle", "red")} for r in range(4) for c in range(4)]
    scenes += [{(r, c): ("square", col)} for r in range(4) for c in range(4) for col in COLOR_NAMES]
    prompt = "a photo of a circle"
    noisy = lab_critic("noisy", flip=0.3)
    flips = [noisy(render(Scene(s)), prompt).details["flipped"] for s in scenes]
    assert 0.15 < sum(flips) / len(flips) < 0.45  # 112 images at p = 0.3
    again = [lab_critic("noisy", flip=0.3)(render(Scene(s)), prompt).details["flipped"] for s in reversed(scenes)]
    assert again == flips[::-1]  # per image, not per call: order and a fresh critic change nothing
    other = [lab_critic("noisy", flip=0.3, seed=1)(render(Scene(s)), prompt).details["flipped"] for s in scenes]
    assert other != flips
    one = next(s for s, f in zip(scenes, flips, strict=True) if f)
    image = render(Scene(one))
    flipped, truth = noisy(image, prompt), ORACLE(image, prompt)
    assert flipped.score == 1.0 - truth.score and flipped.details["correct"] != truth.details["correct"]


def test_rate_makes_a_critic_blind_on_that_seeded_share_of_images():
    half = lab_critic("countblind", rate=0.5)
    prompt = "a photo of two triangles"
    images = [render(Scene({(r, c): ("triangle", "blue")})) for r in range(4) for c in range(4)]
    images += [render(Scene({(r, c): ("triangle", "red"), (3 - r, 3 - c): ("circle", "red")}))
               for r in range(2) for c in range(4)]  # fmt: skip
    blind = [half(im, prompt).details["blind"] for im in images]
    assert 0.2 < sum(blind) / len(blind) < 0.8
    assert all(v.score == 1.0 for v, b in ((half(im, prompt), b) for im, b in zip(images, blind, strict=True)) if b)
    assert (
        unit_draw(0, "x", images[0], prompt)
        == unit_draw(0, "x", images[0], prompt)
        != unit_draw(1, "x", images[0], prompt)
    )


def test_mixed_catches_what_each_blind_member_misses():
    mixed = lab_critic("mixed", flip=0)
    three = "a photo of three circles"
    two_circles = {(0, 0): ("circle", "red"), (0, 1): ("circle", "red")}
    assert verdicts(lab_critic("countblind"), three, two_circles) == (False, True)
    assert verdicts(mixed, three, two_circles) == (False, False)
    prompt = "a photo of a circle left of a square"
    assert verdicts(mixed, prompt, {(1, 3): ("circle", "red"), (1, 0): ("square", "blue")}) == (False, False)
    assert verdicts(mixed, prompt, {(1, 0): ("circle", "red"), (1, 3): ("square", "blue")}) == (True, True)
    assert [c.name for c in mixed.critics] == ["shapes-countblind", "shapes-positionblind", "shapes-colorblind"]


def test_registry_names_spell_parameters_and_rebuild_the_same_critic():
    critics, weights = build_critics("shapes-lenient:margin=0.3:0.5,shapes-noisy:flip=0.25:seed=2,shapes-mixed", None)
    assert [c.name for c in critics] == ["shapes-lenient:margin=0.3", "shapes-noisy:flip=0.25:seed=2", "shapes-mixed"]
    assert weights == [0.5, 1.0, 1.0]
    assert isinstance(critics[0], LabCritic) and critics[0].margin == 0.3 and critics[1].seed == 2
    # a trace records each critic's name: the name alone rebuilds it (what `milr resume` does)
    rebuilt, _ = build_critics(",".join(c.name for c in critics[:2]), None)
    assert [(c.name, c.margin, c.flip, c.seed) for c in rebuilt] == [
        (c.name, c.margin, c.flip, c.seed) for c in critics[:2]
    ]
    members = [c.name for c in build_critics("shapes-mixed:flip=0.2", None)[0][0].critics]
    assert members[0] == "shapes-countblind:flip=0.2"
    assert parse_critic_list("shapes-noisy:flip=0.3:2") == [("shapes-noisy:flip=0.3", 2.0)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("shapes-noisy:flop=0.3", "takes no parameter flop; its parameters: flip"),
        ("shapes-noisy:flip=2", "flip must lie in \\[0, 1\\]"),
        ("shapes-noisy:seed=x", "seed must be an integer"),
        ("shapes:flip=0.3", "'shapes' takes no parameters"),
        ("shapes-noisy:0.5:flip=0.3", "the weight last"),
        ("shapes-noisy:flip=0.1:flip=0.2", "must be a new key=value"),
    ],
)
def test_bad_lab_names_are_refused_naming_the_parameter(text, message):
    with pytest.raises(ValueError, match=message):
        build_critics(text, None)
