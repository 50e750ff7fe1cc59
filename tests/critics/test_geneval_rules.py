"""GenEval's decision rules on synthetic detections: one test per rule and per tag, with the edges."""

from __future__ import annotations

import pytest

from milr.critics.base import PromptSpec
from milr.critics.geneval import (
    COCO_CLASSES,
    COLORS,
    Detection,
    compute_iou,
    evaluate,
    evaluate_selected,
    holds_relation,
    relative_position,
    select_detections,
    summarize,
)


def det(cls, x, y, w=10, h=10, score=0.95, color=None):
    """A box of size w×h whose top-left corner is (x, y)."""
    return Detection(cls, (x, y, x + w, y + h), score, color)


SINGLE = {"tag": "single_object", "include": [{"class": "cat", "count": 1}]}
TWO = {"tag": "two_object", "include": [{"class": "cat", "count": 1}, {"class": "dog", "count": 1}]}
COUNTING = {"tag": "counting", "include": [{"class": "cup", "count": 2}], "exclude": [{"class": "cup", "count": 3}]}
COLORS_SPEC = {"tag": "colors", "include": [{"class": "car", "count": 1, "color": "red"}]}
COLOR_ATTR = {
    "tag": "color_attr",
    "include": [{"class": "bus", "count": 1, "color": "green"}, {"class": "cup", "count": 1, "color": "pink"}],
}
POSITION = {
    "tag": "position",
    "include": [{"class": "bench", "count": 1}, {"class": "cat", "count": 1, "position": ["left of", 0]}],
}


# --------------------------------------------------------------------------- constants and geometry
def test_constants_are_genevals():
    from milr.critics import geneval

    assert (geneval.THRESHOLD, geneval.COUNTING_THRESHOLD, geneval.MAX_OBJECTS) == (0.3, 0.9, 16)
    assert (geneval.MAX_OVERLAP, geneval.POSITION_THRESHOLD) == (1.0, 0.1)
    assert len(COLORS) == 10 and len(COCO_CLASSES) == 80 and len(geneval.COLOR_TEMPLATES) == 3


def test_object_names_match_the_shared_file():
    from tests.conftest import shared_path

    names = shared_path("benchmarks", "geneval", "object_names.txt").read_text().split("\n")
    assert tuple(n.strip() for n in names if n.strip()) == COCO_CLASSES


def test_iou_counts_inclusive_pixels():
    assert compute_iou((0, 0, 9, 9), (0, 0, 9, 9)) == 1.0
    # 10x10 boxes overlapping on a 5x10 strip: 50 / (100 + 100 - 50)
    assert compute_iou((0, 0, 9, 9), (5, 0, 14, 9)) == pytest.approx(50 / 150)
    assert compute_iou((0, 0, 9, 9), (20, 20, 29, 29)) == 0.0


def test_relative_position_directions_with_y_down():
    a, b = (0, 0, 10, 10), (30, 0, 40, 10)
    assert relative_position(a, b) == {"left of"}
    assert relative_position(b, a) == {"right of"}
    top, bottom = (0, 0, 10, 10), (0, 30, 10, 40)
    assert relative_position(top, bottom) == {"above"}
    assert relative_position(bottom, top) == {"below"}
    assert relative_position((0, 0, 10, 10), (30, 30, 40, 40)) == {"left of", "above"}


def test_relative_position_margin_edges():
    # Two 10 px boxes: margin 0.1 * (10 + 10) = 2 px is subtracted from the 'd' px centre offset,
    # and the rest over d must exceed 0.5: a relation needs d > 4.
    a = (0, 0, 10, 10)
    assert relative_position(a, (4.1, 0, 14.1, 10)) == {"left of"}  # just outside: 2.1 / 4.1 > 0.5
    assert relative_position(a, (3.9, 0, 13.9, 10)) == set()  # just inside: 1.9 / 3.9 < 0.5
    assert relative_position(a, (2.0, 0, 12.0, 10)) == set()  # offset eaten by the margin entirely
    assert relative_position(a, a) == set()
    # the margin is a parameter: with 0 the same small offset is a relation
    assert relative_position(a, (3.9, 0, 13.9, 10), margin=0.0) == {"left of"}


def test_diagonal_offsets_need_a_dominant_axis():
    # 45 degrees far apart: both components are ~0.7 of the norm, so both relations hold
    assert relative_position((0, 0, 1, 1), (100, 100, 101, 101)) == {"left of", "above"}
    # steep: mostly vertical
    assert relative_position((0, 0, 1, 1), (10, 100, 11, 101)) == {"above"}


# --------------------------------------------------------------------------- filtering
def test_threshold_is_strict_and_per_tag():
    dets = [det("cat", 0, 0, score=0.3), det("cat", 20, 0, score=0.31)]
    assert len(select_detections(dets, "single_object")["cat"]) == 1
    # counting switches every class to 0.9
    dets = [det("cup", 0, 0, score=0.89), det("dog", 20, 0, score=0.5), det("cup", 40, 0, score=0.91)]
    chosen = select_detections(dets, "counting")
    assert [d.score for d in chosen["cup"]] == [0.91] and "dog" not in chosen
    assert "dog" in select_detections(dets, "counting", counting_threshold=None)


def test_cap_keeps_the_16_most_confident_sorted():
    dets = [det("book", 12 * i, 0, score=0.4 + i * 0.01) for i in range(20)]
    kept = select_detections(dets, "single_object")["book"]
    assert len(kept) == 16
    assert [d.score for d in kept] == sorted((d.score for d in dets), reverse=True)[:16]


def test_nms_is_off_by_default_and_greedy_when_on():
    dup = [det("dog", 0, 0, score=0.9), det("dog", 1, 0, score=0.8), det("dog", 50, 0, score=0.7)]
    assert len(select_detections(dup, "single_object")["dog"]) == 3
    kept = select_detections(dup, "single_object", max_overlap=0.5)["dog"]
    assert [d.score for d in kept] == [0.9, 0.7]


# --------------------------------------------------------------------------- one test per tag
def test_single_object():
    assert evaluate(SINGLE, [det("cat", 0, 0)]).correct
    result = evaluate(SINGLE, [det("dog", 0, 0)])
    assert not result.correct and result.reasons == ["expected cat>=1, found 0"]
    assert evaluate(SINGLE, [det("cat", 0, 0), det("cat", 30, 0)]).correct  # extra copies are fine


def test_two_object_needs_both():
    assert evaluate(TWO, [det("cat", 0, 0), det("dog", 30, 0)]).correct
    result = evaluate(TWO, [det("cat", 0, 0)])
    assert not result.correct
    assert [r.passed for r in result.requirements] == [True, False]


def test_counting_exact_n_with_scores_around_0_9():
    # two cups above 0.9 and one at 0.89: the third is not counted, so exactly two
    dets = [det("cup", 0, 0, score=0.95), det("cup", 20, 0, score=0.91), det("cup", 40, 0, score=0.89)]
    assert evaluate(COUNTING, dets).correct
    # the third at 0.91 counts: three cups trip the exclude clause
    dets[2] = det("cup", 40, 0, score=0.91)
    result = evaluate(COUNTING, dets)
    assert not result.correct and result.reasons == ["expected cup<3, found 3"]
    assert result.requirements[1].clause == "exclude" and result.requirements[1].detected == 3
    # one confident cup and one at 0.89: too few
    result = evaluate(COUNTING, [det("cup", 0, 0, score=0.95), det("cup", 20, 0, score=0.89)])
    assert result.reasons == ["expected cup>=2, found 1"]


def test_colors_from_detections():
    assert evaluate(COLORS_SPEC, [det("car", 0, 0, color="red")]).correct
    result = evaluate(COLORS_SPEC, [det("car", 0, 0, color="blue")])
    assert result.reasons == ["expected red car>=1, found 0 red; and 1 blue"]
    assert result.requirements[0].colors == ["blue"]


def test_colour_only_of_the_most_confident_found_objects():
    # the red car is the second most confident; only the first `count` (1) is checked
    dets = [det("car", 0, 0, score=0.9, color="blue"), det("car", 30, 0, score=0.8, color="red")]
    assert not evaluate(COLORS_SPEC, dets).correct


def test_wrong_colour_on_one_of_two_objects():
    spec = {"tag": "counting", "include": [{"class": "car", "count": 2, "color": "red"}]}
    both = [det("car", 0, 0, color="red"), det("car", 30, 0, color="red")]
    assert evaluate(spec, both).correct
    one_wrong = [det("car", 0, 0, color="red"), det("car", 30, 0, color="green")]
    result = evaluate(spec, one_wrong)
    assert not result.correct
    assert result.reasons == ["expected red car>=2, found 1 red; and 1 red, 1 green"]


def test_color_attr_binds_each_colour_to_its_object():
    good = [det("bus", 0, 0, color="green"), det("cup", 30, 0, color="pink")]
    assert evaluate(COLOR_ATTR, good).correct
    swapped = [det("bus", 0, 0, color="pink"), det("cup", 30, 0, color="green")]
    assert not evaluate(COLOR_ATTR, swapped).correct


def test_colour_classifier_is_asked_for_uncoloured_detections():
    calls = []

    def classify(image, found, cls):
        calls.append((cls, len(found)))
        return ["red"] * len(found)

    assert evaluate(COLORS_SPEC, [det("car", 0, 0)], classify_colors=classify).correct
    assert calls == [("car", 1)]
    with pytest.raises(ValueError, match="colour"):
        evaluate(COLORS_SPEC, [det("car", 0, 0)])


def test_position_left_of():
    cat, bench = det("cat", 0, 0), det("bench", 40, 0)
    assert evaluate(POSITION, [cat, bench]).correct
    result = evaluate(POSITION, [det("cat", 80, 0), bench])
    assert not result.correct and result.reasons == ["expected cat left of target, found right of target"]
    assert result.requirements[1].relations == [["right of"]]


def test_position_just_inside_and_outside_the_margin():
    bench = Detection("bench", (0, 0, 10, 10), 0.95)
    outside = Detection("cat", (-4.1, 0, 5.9, 10), 0.95)  # 4.1 px to the left: a relation
    inside = Detection("cat", (-3.9, 0, 6.1, 10), 0.95)  # 3.9 px: swallowed by the margin
    assert evaluate(POSITION, [outside, bench]).correct
    result = evaluate(POSITION, [inside, bench])
    assert result.reasons == ["expected cat left of target, found  target"]  # GenEval's message, empty set


def test_position_needs_every_pair_and_a_matched_target():
    spec = {
        "tag": "position",
        "include": [{"class": "bench", "count": 2}, {"class": "cat", "count": 1, "position": ["left of", 0]}],
    }
    benches = [det("bench", 40, 0), det("bench", 40, 40)]
    assert evaluate(spec, [det("cat", 0, 0), *benches]).correct
    # one bench sits left of the cat: the cat must be left of every bench
    result = evaluate(spec, [det("cat", 20, 0), det("bench", 40, 0), det("bench", 0, 0)])
    assert not result.correct
    # no bench: the target group did not match, so the position clause fails too
    result = evaluate(POSITION, [det("cat", 0, 0)])
    assert result.reasons == ["expected bench>=1, found 0", "no target for cat to be left of"]
    assert holds_relation([], [det("bench", 0, 0)], "left of")  # vacuous


def test_position_skipped_after_a_colour_failure():
    spec = {
        "tag": "position",
        "include": [
            {"class": "bench", "count": 1},
            {"class": "cat", "count": 1, "color": "red", "position": ["above", 0]},
        ],
    }
    result = evaluate(spec, [det("cat", 80, 80, color="blue"), det("bench", 0, 0)])
    assert len(result.reasons) == 1 and result.reasons[0].startswith("expected red cat")
    assert result.requirements[1].relations is None


def test_position_target_must_come_first():
    spec = {
        "tag": "position",
        "include": [{"class": "cat", "count": 1, "position": ["left of", 1]}, {"class": "bench", "count": 1}],
    }
    with pytest.raises(ValueError, match="earlier"):
        evaluate(spec, [det("cat", 0, 0), det("bench", 40, 0)])


def test_exclude_is_or_and_counts_all_detections():
    spec = {"tag": "counting", "include": [{"class": "cup", "count": 1}], "exclude": [{"class": "cup", "count": 2}]}
    assert evaluate(spec, [det("cup", 0, 0)]).correct
    assert not evaluate(spec, [det("cup", 0, 0), det("cup", 30, 0)]).correct


def test_prompt_spec_and_dict_agree():
    dets = [det("bus", 0, 0, color="green"), det("cup", 30, 0, color="red")]
    assert evaluate(COLOR_ATTR, dets) == evaluate(PromptSpec.from_geneval(COLOR_ATTR), dets)


def test_evaluate_selected_takes_prefiltered_groups():
    detected = {"cup": [det("cup", 0, 0, score=0.1), det("cup", 30, 0, score=0.1)]}
    assert evaluate_selected(COUNTING, detected).correct  # no threshold here: already selected


# --------------------------------------------------------------------------- summary
def test_summary_is_mean_of_tag_means():
    rows = [
        {"tag": "single_object", "prompt": "a", "correct": True},
        {"tag": "single_object", "prompt": "a", "correct": False},
        {"tag": "counting", "prompt": "b", "correct": False},
        {"tag": "counting", "prompt": "c", "correct": False},
        {"tag": "counting", "prompt": "c", "correct": False},
        {"tag": "counting", "prompt": "d", "correct": True},
    ]
    s = summarize(rows)
    assert s["tags"] == {"single_object": 0.5, "counting": 0.25}
    assert s["overall"] == pytest.approx(0.375)  # not the image mean 2/6
    assert s["correct_images"] == pytest.approx(2 / 6)
    assert s["prompts"] == 4 and s["correct_prompts"] == pytest.approx(0.5)
    assert not s["complete"]
    with pytest.raises(ValueError):
        summarize([])
