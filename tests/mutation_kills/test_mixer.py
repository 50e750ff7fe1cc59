"""Mutation survivors of milr/critics/mixer.py, killed (benchmarks/mutate.py; results in
benchmarks/results/mutation.json and mutation_holdout.json): per-tag weights are checked like the
base ones, a verdict's seconds, how many machine critiques are held across pauses, and that a held
critique is reused only for the same spec."""

from __future__ import annotations

import time
from typing import TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from PIL import Image

from milr.critics import HumanCritic, Mixer, mixer
from milr.critics.base import Critique, PromptSpec
from milr.critics.human import ReviewedImage, under_review
from tests.orchestrator.helpers import ScriptedCritic

RED = Image.new("RGB", (8, 8), "red")


def test_a_mixer_of_no_critic_is_refused():
    with pytest.raises(ValueError, match="Mixer needs at least one critic"):
        Mixer([])


def test_held_machine_critiques_are_capped_oldest_first(monkeypatch):
    """A batch abandoned at a question leaves its machine critiques held; the oldest go past MAX_HELD."""
    monkeypatch.setattr(mixer, "MAX_HELD", 2)
    mix = Mixer([ScriptedCritic([0.5])])
    for key in ("a", "b", "c"):
        mix._hold([key], [{0: Critique(critic="scripted", score=0.5)}], [0])
    assert list(mix._held) == [(0, "b"), (0, "c")]


@pytest.mark.parametrize("weights", [{"scripted": 0.0}, {"scripted": -1.0}, {"scripted": float("nan")}])
def test_tag_weights_are_checked_like_the_base_weights(weights):
    with pytest.raises(ValueError, match=r"tag_weights\['colors'\] must be finite and >= 0 with a positive sum"):
        Mixer([ScriptedCritic([0.5])], tag_weights={"colors": weights})


def test_a_mixed_verdict_records_the_seconds_it_took():
    mix = Mixer([ScriptedCritic([0.5])])
    started = time.perf_counter()
    verdict = mix(RED, "a photo of a red square")
    assert 0 <= verdict.seconds <= time.perf_counter() - started


def test_a_mixer_holds_the_machine_critiques_of_the_4096_latest_paused_images():
    """Memory stays bounded however many batches are abandoned at a question (MAX_HELD)."""
    mix = Mixer([ScriptedCritic([0.5])])
    keys = [f"image-{i}" for i in range(4097)]
    mix._hold(keys, [{0: Critique(critic="scripted", score=0.5)} for _ in keys], [0])
    assert len(mix._held) == 4096
    assert (0, "image-0") not in mix._held and (0, "image-1") in mix._held and (0, "image-4096") in mix._held


class BySpec:
    """A machine critic whose verdict depends on the prompt's spec."""

    name = "by-spec"

    def __init__(self):
        self.tags = []

    def __call__(self, image, prompt, spec=None):
        self.tags.append(spec.tag)
        return Critique(critic=self.name, score=0.9 if spec.tag == "colors" else 0.1)


class State(TypedDict, total=False):
    scores: list


def paused_graph(critic, spec: PromptSpec):
    """One node scoring RED under `spec` with `critic`, as MILR's critique node does (under review)."""

    def node(state: State) -> dict:
        with under_review([(RED, ReviewedImage("run-0", 0, "traces/run-0/round_00.png", "plan"))]):
            return {"scores": [c.score for c in critic.score_batch([RED], ["a red square"], [spec])]}

    graph = StateGraph(State)
    graph.add_node("score", node)
    graph.add_edge(START, "score")
    graph.add_edge("score", END)
    return graph.compile(checkpointer=InMemorySaver())


def questions(graph, thread: str) -> list:
    cfg = {"configurable": {"thread_id": thread}}
    return [
        q
        for _, chunk in graph.stream({"scores": []}, cfg, stream_mode=["updates"])
        for q in chunk.get("__interrupt__", ())
    ]


def test_a_held_machine_critique_is_not_reused_for_the_same_image_under_another_spec():
    machine = BySpec()
    mix = Mixer([machine, HumanCritic()])
    colors = PromptSpec(tag="colors", include=[{"class": "square", "count": 1, "color": "red"}])
    counting = PromptSpec(tag="counting", include=[{"class": "square", "count": 1}])
    (first,) = questions(paused_graph(mix, colors), "a")  # paused: the colors critique is held
    (second,) = questions(paused_graph(mix, counting), "b")  # same pixels and prompt, another spec
    assert machine.tags == ["colors", "counting"]
    assert [c["score"] for c in first.value["critics"]] == [0.9]
    assert [c["score"] for c in second.value["critics"]] == [0.1]
