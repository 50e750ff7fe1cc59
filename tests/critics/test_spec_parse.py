"""PromptSpec.parse: GenEval's grammar back into GenEval's metadata, and clear errors otherwise."""

from __future__ import annotations

import json

import pytest

from milr.critics import PromptSpec
from milr.critics.spec_parse import english_plural, geneval_plural
from tests.conftest import shared_path


def test_agrees_with_every_geneval_prompt():
    prompts = shared_path("benchmarks", "geneval", "generation_prompts.txt").read_text().splitlines()
    lines = shared_path("benchmarks", "geneval", "evaluation_metadata.jsonl").read_text().splitlines()
    metadata = [json.loads(line) for line in lines]
    assert len(prompts) == len(metadata) == 553
    mismatches = [(p, m) for p, m in zip(prompts, metadata, strict=True) if PromptSpec.parse(p).to_geneval() != m]
    agreement = 1 - len(mismatches) / len(prompts)
    assert agreement == 1.0, f"agreement {agreement:.1%}; first mismatches: {mismatches[:3]}"


@pytest.mark.parametrize(
    "prompt, expected",
    [
        ("a photo of a bench", {"tag": "single_object", "include": [{"class": "bench", "count": 1}]}),
        ("a photo of an orange", {"tag": "single_object", "include": [{"class": "orange", "count": 1}]}),
        (
            "a photo of an orange orange",
            {"tag": "colors", "include": [{"class": "orange", "count": 1, "color": "orange"}]},
        ),
        (
            "a photo of four handbags",
            {
                "tag": "counting",
                "include": [{"class": "handbag", "count": 4}],
                "exclude": [{"class": "handbag", "count": 5}],
            },
        ),
        (
            "a photo of a bench right of a cat",
            {
                "tag": "position",
                "include": [{"class": "cat", "count": 1}, {"class": "bench", "count": 1, "position": ["right of", 0]}],
            },
        ),
        (
            "Two red cars and a dog.",
            {
                "tag": "counting",
                "include": [{"class": "car", "count": 2, "color": "red"}, {"class": "dog", "count": 1}],
                "exclude": [{"class": "car", "count": 3}],
            },
        ),
        (
            "a cat to the left of a bench",
            {
                "tag": "position",
                "include": [{"class": "bench", "count": 1}, {"class": "cat", "count": 1, "position": ["left of", 0]}],
            },
        ),
        (
            "a picture of a red car, a blue bus, and a dog",
            {
                "tag": "color_attr",
                "include": [
                    {"class": "car", "count": 1, "color": "red"},
                    {"class": "bus", "count": 1, "color": "blue"},
                    {"class": "dog", "count": 1},
                ],
            },
        ),
        (
            "three knives under a traffic light",
            {
                "tag": "position",
                "include": [
                    {"class": "traffic light", "count": 1},
                    {"class": "knife", "count": 3, "position": ["below", 0]},
                ],
                "exclude": [{"class": "knife", "count": 4}],
            },
        ),
    ],
)
def test_free_form_prompts(prompt, expected):
    assert PromptSpec.parse(prompt).to_geneval() == {**expected, "prompt": prompt}


@pytest.mark.parametrize(
    "prompt, why",
    [
        ("a photo of two unicorns", "unknown object 'unicorns'"),
        ("a cat left of a dog above a bench", "more than one relation"),
        ("a cat left of a dog and a bench", "exactly one object after"),
        ("cats and dogs", "does not start with"),
        ("a photo of", "empty prompt"),
        ("a photo of zero cats", "at least 1"),
    ],
)
def test_unparseable_prompts_say_why(prompt, why):
    with pytest.raises(ValueError, match=why) as err:
        PromptSpec.parse(prompt)
    assert "GenEval-style" in str(err.value) and prompt in str(err.value)


def test_custom_vocabulary_for_other_worlds():
    spec = PromptSpec.parse("a red circle left of two blue squares", classes=["circle", "square"])
    assert spec.include[0].cls == "square" and spec.include[0].count == 2
    assert spec.include[1].position == ("left of", 0) and spec.include[1].color == "red"
    with pytest.raises(ValueError, match="unknown object"):
        PromptSpec.parse("a photo of a cat", classes=["circle"])


def test_plurals():
    assert geneval_plural("bench") == "benchs" and geneval_plural("bus") == "buses"
    assert english_plural("bench") == "benches" and english_plural("wine glass") == "wine glasses"
    assert english_plural("knife") == "knives" and english_plural("person") == "people"
    assert PromptSpec.parse("two benches").include[0].cls == "bench"
    assert PromptSpec.parse("two benchs").include[0].cls == "bench"
