"""Mutation survivors of milr/critics/geneval.py, killed (benchmarks/mutate.py; results in
benchmarks/results/mutation.json): GenEval's position rule at its edges, Detection as a value, the
colour memo, and batches whose lengths disagree."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from milr.critics.geneval import ColorMemo, Detection, GenEvalOracle, detect_many, relative_position


@pytest.mark.parametrize(
    ("a", "b", "relations"),
    [
        # Centres 10 px apart on y, heights 25 + 25: the shrunk offset is exactly half the full one
        # (10 - 0.1 * 50 = 5), and GenEval's rule needs more than half: no relation, either way.
        ((0, 0, 0, 25), (0, 10, 0, 35), set()),
        ((0, 10, 0, 35), (0, 0, 0, 25), set()),
        ((0, 0, 25, 0), (10, 0, 35, 0), set()),
        ((10, 0, 35, 0), (0, 0, 25, 0), set()),
        # One pixel apart, no extent: the offset is tiny but not zero, so the relation holds.
        ((0, 0, 0, 0), (1, 0, 1, 0), {"left of"}),
        ((0, 0, 0, 0), (0, 1, 0, 1), {"above"}),
        # A is 50 wide and 100 tall, its centre 15 px above a flat B: A's height (not its width)
        # shrinks the offset to 15 - 0.1 * 100 = 5, a third of it: no relation; a short A is above.
        ((0, 0, 50, 100), (0, 65, 50, 65), set()),
        ((0, 0, 50, 10), (0, 65, 50, 65), {"above"}),
    ],
)
def test_relative_position_at_the_edges_of_the_rule(a, b, relations):
    assert relative_position(a, b) == relations


def test_a_detection_is_a_value_compared_without_its_mask():
    a = Detection("cat", (0, 0, 4, 4), mask=np.ones((4, 4), bool))
    b = Detection("cat", (0, 0, 4, 4), mask=np.zeros((4, 4), bool))
    assert a == b and "mask" not in repr(a)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.cls = "dog"


def test_the_colour_memo_asks_its_classifier_once_per_objects():
    asked = []

    def classify(image, dets, cls):
        asked.append((image, cls))
        return ["red"] * len(dets)

    image = Image.new("RGB", (4, 4))
    memo = ColorMemo(classify, image)
    dets = [Detection("cat", (0, 0, 2, 2))]
    assert memo(dets, "cat") == memo(dets, "cat") == ["red"]
    assert asked == [(image, "cat")]


def test_batches_whose_lengths_disagree_are_refused():
    image = Image.new("RGB", (4, 4))
    with pytest.raises(ValueError):
        detect_many(lambda img, classes: [], [image, image], [["cat"]])
    with pytest.raises(ValueError, match="2 images, 1 prompts and 2 specs"):
        GenEvalOracle(detector=lambda img, classes: [], color_classifier=lambda i, d, c: []).score_batch(
            [image, image], ["a photo of a cat"], [None, None]
        )
