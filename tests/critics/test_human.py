"""HumanCritic: the answer's schema, the terminal asker, and a person in a Mixer inside a real
LangGraph graph (interrupt, Command(resume=...), machine critics scored once across the pause)."""

from __future__ import annotations

import io
import math
from typing import TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command
from PIL import Image
from pydantic import ValidationError

from milr.critics import (
    AnswerAborted,
    Critique,
    HumanAnswer,
    HumanCritic,
    Mixer,
    ask_at_terminal,
    asks_person,
    score_many,
)
from milr.critics.human import ReviewedImage, under_review
from milr.orchestrator.registry import build_reward, parse_critic_list

RED, BLUE = Image.new("RGB", (8, 8), "red"), Image.new("RGB", (8, 8), "blue")


class Counting:
    """A machine critic that counts the images it scores (the GPU work a re-run must not repeat)."""

    def __init__(self, name="machine", score=0.2):
        self.name, self.score, self.calls = name, score, 0

    def __call__(self, image, prompt, spec=None):
        self.calls += 1
        return Critique(
            critic=self.name, score=self.score, rationale=f"{self.name} looked at {image.getpixel((0, 0))}"
        )


# ----------------------------------------------------------------------------- the answer
@pytest.mark.parametrize(
    ("value", "score", "rationale"),
    [({"score": 0.7, "rationale": "circle too small"}, 0.7, "circle too small"), (0.25, 0.25, ""), (1, 1.0, "")],
)
def test_answer_takes_a_dict_or_a_bare_score(value, score, rationale):
    answer = HumanAnswer.model_validate(value)
    assert (answer.score, answer.rationale) == (score, rationale)


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"score": 1.5}, "score"),
        ({"score": -0.1}, "score"),
        ({"score": math.nan}, "score"),
        ({"score": math.inf}, "score"),
        ({"score": True}, "score"),
        ({"score": "good"}, "score"),
        ({"score": None}, "score"),
        ({"rationale": "no score"}, "score"),
        ({"score": 0.5, "why": "typo"}, "why"),
        (True, "score"),
    ],
)
def test_bad_answer_is_refused_naming_the_field(value, field):
    with pytest.raises(ValidationError) as err:
        HumanAnswer.model_validate(value)
    assert field in str(err.value)
    if field == "score" and isinstance(value, dict) and "score" in value:
        assert "from 0 to 1" in str(err.value)  # and says what a good value is


def test_schema_clients_render_names_the_range():
    schema = HumanAnswer.model_json_schema()
    assert schema["required"] == ["score"]
    assert (schema["properties"]["score"]["minimum"], schema["properties"]["score"]["maximum"]) == (0, 1)


# ----------------------------------------------------------------------------- at a terminal
PAYLOAD = {
    "critic": "human",
    "question": "How well does the image match the prompt?",
    "run_id": "run-1",
    "round": 2,
    "prompt": "a photo of a red circle",
    "image": "traces/run-1/round_02.png",
    "reasoning": "one red circle \x1b[31min the middle",
    "critics": [
        {"critic": "shapes", "score": 0.5, "weight": 0.5, "rationale": "circle is blue", "error": None},
        {"critic": "gpt4o", "score": None, "weight": 0.5, "rationale": "", "error": "no API key"},
    ],
}


def test_terminal_asker_shows_the_question_and_re_asks_until_a_score(capsys):
    out = io.StringIO()
    answer = ask_at_terminal(PAYLOAD, input=io.StringIO("great\n1.5\n\n 0.7 \nthe circle is small\n"), output=out)
    assert answer == {"score": 0.7, "rationale": "the circle is small"}
    shown = out.getvalue()
    for part in ("run run-1, round 2", "a photo of a red circle", "traces/run-1/round_02.png", "one red circle"):
        assert part in shown
    assert (
        "shapes (weight 0.5): 0.500: circle is blue" in shown and "gpt4o (weight 0.5): abstained: no API key" in shown
    )
    assert shown.count("not a score") == 3  # "great", 1.5 and the empty line
    assert "\x1b" not in shown and "\\x1b[31m" in shown  # model text cannot drive the terminal
    assert capsys.readouterr().out == ""  # questions never touch stdout


def test_terminal_asker_rationale_is_optional():
    assert ask_at_terminal(PAYLOAD, input=io.StringIO("0\n\n"), output=io.StringIO()) == {
        "score": 0.0,
        "rationale": "",
    }


def test_end_of_input_or_ctrl_c_aborts_like_a_ctrl_c():
    with pytest.raises(AnswerAborted, match="end of input"):
        ask_at_terminal(PAYLOAD, input=io.StringIO("nope\n"), output=io.StringIO())

    class CtrlC(io.StringIO):
        def readline(self, *args):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # AnswerAborted is one: the CLI's Ctrl-C path applies
        ask_at_terminal(PAYLOAD, input=CtrlC(), output=io.StringIO())


# ----------------------------------------------------------------------------- names
def test_registry_names_the_human_critic():
    assert parse_critic_list("gpt4o:0.5,human:0.5") == [("gpt4o", 0.5), ("human", 0.5)]
    mixed = build_reward("shapes:0.5,human:0.5", mug=None)
    assert isinstance(mixed, Mixer) and [type(c).__name__ for c in mixed.critics] == ["ShapesOracle", "HumanCritic"]
    assert asks_person(mixed) and asks_person(HumanCritic()) and not asks_person(Counting())


def test_outside_a_graph_the_human_critic_says_where_it_works():
    with pytest.raises(RuntimeError, match="inside a graph compiled with a checkpointer"):
        HumanCritic()(RED, "a photo of a red circle")


# ----------------------------------------------------------------------------- in a graph
class State(TypedDict, total=False):
    scores: list


def scoring_graph(critic, images, prompts):
    """One node that scores `images` with `critic`, as MILR's critique node does (under review)."""
    reviewed = [
        (image, ReviewedImage(f"run-{i}", 3, f"traces/run-{i}/round_03.png", f"plan {i}"))
        for i, image in enumerate(images)
    ]

    def node(state: State) -> dict:
        with under_review(reviewed):
            critiques = score_many(critic, images, prompts, [None] * len(images))
        return {"scores": [c.model_dump(include={"score", "rationale", "details", "error"}) for c in critiques]}

    graph = StateGraph(State)
    graph.add_node("score", node)
    graph.add_edge(START, "score")
    graph.add_edge("score", END)
    return graph.compile(checkpointer=InMemorySaver())


def run_until_asked(graph, command, cfg) -> list:
    """Stream `command`; the interrupts it stopped at (none when the graph ended)."""
    asked = []
    for _mode, chunk in graph.stream(command, cfg, stream_mode=["updates"]):
        asked += chunk.get("__interrupt__", ())
    return asked


CFG = {"configurable": {"thread_id": "t"}}


def test_a_person_in_a_mixer_is_asked_last_per_image_and_machines_score_once():
    machine = Counting()
    graph = scoring_graph(Mixer([machine, HumanCritic()], weights=[1.0, 3.0]), [RED, BLUE], ["red", "blue"])
    first = run_until_asked(graph, {"scores": []}, CFG)
    assert [q.value["run_id"] for q in first] == [
        "run-0"
    ] and machine.calls == 2  # both images, before anyone is asked
    question = first[0].value
    assert question["image"] == "traces/run-0/round_03.png" and question["round"] == 3
    assert question["reasoning"] == "plan 0" and question["prompt"] == "red"
    assert question["critics"] == [
        {"critic": "machine", "score": 0.2, "weight": 1.0, "rationale": "machine looked at (255, 0, 0)", "error": None}
    ]
    assert first[0].response_schema["required"] == ["score"]  # clients can render the form
    second = run_until_asked(graph, Command(resume={"score": 0.6, "rationale": "ok"}), CFG)
    assert [q.value["run_id"] for q in second] == ["run-1"]
    assert second[0].value["critics"][0]["rationale"] == "machine looked at (0, 0, 255)"
    assert run_until_asked(graph, Command(resume=1.0), CFG) == []
    assert machine.calls == 2  # the node ran three times; the machine critic scored each image once
    scores = graph.get_state(CFG).values["scores"]
    assert [s["score"] for s in scores] == pytest.approx([(0.2 + 3 * 0.6) / 4, (0.2 + 3 * 1.0) / 4])
    human = [c for c in scores[0]["details"]["critiques"] if c["critic"] == "human"][0]
    assert (human["score"], human["rationale"]) == (0.6, "ok")


def test_held_machine_critiques_are_only_for_the_paused_images():
    machine = Counting()
    mixer = Mixer([machine, HumanCritic()])
    graph = scoring_graph(mixer, [RED], ["red"])
    run_until_asked(graph, {"scores": []}, CFG)
    run_until_asked(graph, Command(resume=0.5), CFG)
    assert machine.calls == 1
    again = scoring_graph(mixer, [RED], ["red"])  # the same image scored anew, after the pause ended
    run_until_asked(again, {"scores": []}, CFG)
    assert machine.calls == 2


def test_a_lone_human_critic_pauses_through_score_many_never_abstains():
    graph = scoring_graph(HumanCritic(), [RED, BLUE], ["red", "blue"])
    assert [q.value["run_id"] for q in run_until_asked(graph, {"scores": []}, CFG)] == ["run-0"]
    assert run_until_asked(graph, Command(resume=0.1), CFG)[0].value["critics"] == []
    assert run_until_asked(graph, Command(resume={"score": 0.9, "rationale": "blue"}), CFG) == []
    scores = graph.get_state(CFG).values["scores"]
    assert [(s["score"], s["rationale"], s["error"]) for s in scores] == [(0.1, "", None), (0.9, "blue", None)]


def test_a_refused_answer_keeps_the_question_and_the_held_critiques():
    machine = Counting()
    graph = scoring_graph(Mixer([machine, HumanCritic()]), [RED], ["red"])
    run_until_asked(graph, {"scores": []}, CFG)
    with pytest.raises(ValidationError, match="score must be a finite number from 0 to 1"):
        run_until_asked(graph, Command(resume={"score": 7}), CFG)
    assert graph.get_state(CFG).interrupts[0].value["run_id"] == "run-0"  # still asked
    assert run_until_asked(graph, Command(resume=0.4), CFG) == []
    assert machine.calls == 1 and graph.get_state(CFG).values["scores"][0]["score"] == pytest.approx(0.3)


def test_any_critic_calling_interrupt_pauses_through_score_many():
    class AsksOnePerson:  # no score_batch: score_many calls it image by image
        name = "asks"

        def __call__(self, image, prompt, spec=None):
            return HumanCritic(name="asks").ask(image, prompt, spec)

    graph = scoring_graph(AsksOnePerson(), [RED], ["red"])
    assert [q.value["critic"] for q in run_until_asked(graph, {"scores": []}, CFG)] == ["asks"]
    assert run_until_asked(graph, Command(resume=0.3), CFG) == []
    assert graph.get_state(CFG).values["scores"][0]["score"] == 0.3
