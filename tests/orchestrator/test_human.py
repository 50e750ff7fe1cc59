"""A person in the MILR loop: the real graph pauses at `critique` (LangGraph's `interrupt`), resumes
with `Command(resume=...)` under InMemorySaver and SqliteSaver, redraws nothing and re-scores nothing,
and the facade streams the question and takes the answer (`answer()`, `ask=`)."""

from __future__ import annotations

import os

import pytest
from langgraph.types import Command
from pydantic import ValidationError

from milr.config import MILRConfig
from milr.critics import HumanCritic, Mixer
from milr.nodes.context import MILRContext
from milr.orchestrator import MILR, build_graph
from milr.orchestrator.serde import memory_saver, sqlite_saver
from milr.traces import Trace
from tests.orchestrator.helpers import PixelCritic

PROMPT, OTHER = "a photo of a red cat", "a photo of a blue dog"


class CountingPixels(PixelCritic):
    """The pixel critic, counting the images it scores (the machine work a re-run must not repeat)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, image, prompt, spec=None):
        self.calls += 1
        return super().__call__(image, prompt, spec)


@pytest.fixture
def draws(mug, monkeypatch):
    """How many batched image decodes the model ran."""
    calls = []
    draw = mug.draw_batch
    monkeypatch.setattr(mug, "draw_batch", lambda *a, **kw: calls.append(1) or draw(*a, **kw))
    return calls


def config(**kw) -> MILRConfig:
    return MILRConfig(max_reasoning_tokens=8, threshold=0.99, **({"steps": 0} | kw))


def drive(graph, command, cfg, ctx) -> list:
    """Stream the graph; the interrupts it stopped at (empty: it ended)."""
    asked = []
    for mode, chunk in graph.stream(command, cfg, context=ctx, stream_mode=["custom", "updates"]):
        if mode == "updates":
            asked += chunk.get("__interrupt__", ())
    return asked


def cfg(thread="h") -> dict:
    return {"configurable": {"thread_id": thread}, "recursion_limit": 60}


@pytest.fixture(params=["memory", "sqlite"])
def checkpointer(request, tmp_path):
    if request.param == "memory":
        yield memory_saver()
    else:
        with sqlite_saver(tmp_path / "checkpoints.sqlite") as saver:
            yield saver


def test_graph_pauses_at_critique_and_the_answer_is_mixed_into_the_trace(mug, tmp_path, checkpointer, draws):
    machine = CountingPixels()
    ctx = MILRContext(mug, Mixer([machine, HumanCritic()], weights=[1.0, 1.0]), config(), tmp_path / "out")
    graph = build_graph().compile(checkpointer=checkpointer)
    try:
        (asked,) = drive(graph, {"prompt": PROMPT}, cfg(), ctx)
        state = graph.get_state(cfg())
        assert state.next == ("critique",)
        (run,) = state.values["runs"].values()
        question = asked.value
        assert {k: question[k] for k in ("critic", "run_id", "round", "prompt", "reasoning")} == {
            "critic": "human",
            "run_id": run["run_id"],
            "round": 0,
            "prompt": PROMPT,
            "reasoning": run["reasoning"],
        }
        image = tmp_path / "out" / run["run_id"] / "round_00.png"
        assert question["image"] == str(image) and image.is_file()  # on disk before anyone is asked
        machine_score = PixelCritic()(ctx.store(run["run_id"]).image_out, PROMPT).score
        assert [(c["critic"], c["score"], c["rationale"]) for c in question["critics"]] == [
            ("pixels", machine_score, "hash of pixels")
        ]
        assert Trace.load(image.parent).rounds == []  # the round is pending: no record yet, a valid trace

        assert drive(graph, Command(resume={"score": 0.7, "rationale": "the cat is blue"}), cfg(), ctx) == []
        assert len(draws) == 1 and machine.calls == 1  # the re-run of critique drew and scored nothing again
        trace = Trace.load(image.parent)
        (record,) = trace.rounds
        assert [(c.critic, c.score, c.rationale) for c in record.critiques] == [
            ("pixels", machine_score, "hash of pixels"),
            ("human", 0.7, "the cat is blue"),
        ]
        assert record.score == pytest.approx((machine_score + 0.7) / 2) and trace.summary is not None
        assert record.latents_sha256 is not None
    finally:
        ctx.close()


def test_each_run_of_a_batch_is_asked_in_turn(mug, tmp_path, draws):
    machine = CountingPixels()
    ctx = MILRContext(mug, Mixer([machine, HumanCritic()]), config(), tmp_path)
    graph = build_graph().compile(checkpointer=memory_saver())
    try:
        first = drive(graph, {"prompts": [PROMPT, OTHER]}, cfg(), ctx)
        pending = [os.stat(q.value["image"]).st_ino for q in first]
        second = drive(graph, Command(resume=0.1), cfg(), ctx)
        assert os.stat(first[0].value["image"]).st_ino == pending[0]  # the re-run wrote no file again
        assert [q.value["prompt"] for q in first + second] == [PROMPT, OTHER]  # one question per image, in order
        assert drive(graph, Command(resume={"score": 0.9, "rationale": "a dog"}), cfg(), ctx) == []
        assert len(draws) == 1 and machine.calls == 2  # one decode of the batch, each image scored once
        traces = [Trace.load(tmp_path / q.value["run_id"]) for q in first + second]
        humans = {trace.run.prompt: trace.rounds[0] for trace in traces}
        assert [(c.critic, c.score) for c in humans[PROMPT].critiques][1] == ("human", 0.1)
        assert [(c.critic, c.score, c.rationale) for c in humans[OTHER].critiques][1] == ("human", 0.9, "a dog")
    finally:
        ctx.close()


def test_a_bad_answer_is_refused_naming_the_field_and_asked_again(mug, tmp_path, draws):
    machine = CountingPixels()
    ctx = MILRContext(mug, Mixer([machine, HumanCritic()]), config(), tmp_path)
    graph = build_graph().compile(checkpointer=memory_saver())
    try:
        (asked,) = drive(graph, {"prompt": PROMPT}, cfg(), ctx)
        with pytest.raises(ValidationError, match="score must be a finite number from 0 to 1, got 1.5"):
            drive(graph, Command(resume={"score": 1.5}), cfg(), ctx)
        with pytest.raises(ValidationError, match="scor"):
            drive(graph, Command(resume={"scor": 0.5}), cfg(), ctx)
        assert graph.get_state(cfg()).interrupts[0].id == asked.id  # the same question waits
        assert drive(graph, Command(resume=0.5), cfg(), ctx) == []
        assert len(draws) == 1 and machine.calls == 1
        assert Trace.load(tmp_path / asked.value["run_id"]).rounds[0].critiques[1].score == 0.5
    finally:
        ctx.close()


def test_a_fresh_context_reads_the_paused_round_back_and_continues_the_same_run(mug, tmp_path, draws):
    """A resume in another process (a persistent checkpointer) has none of the first one's tensors:
    the paused round comes back from its files, and the run goes on exactly as an unbroken one."""
    human = HumanCritic()

    def answers(graph, ctx_for, thread):
        asked = drive(graph, {"prompt": PROMPT}, cfg(thread), ctx_for(0))
        for k, score in enumerate((0.2, 0.3)):
            assert asked[0].value["round"] == k
            asked = drive(graph, Command(resume=score), cfg(thread), ctx_for(k + 1))
        assert asked == []

    # unbroken: one context throughout
    ctx = MILRContext(mug, Mixer([PixelCritic(), human]), config(steps=1), tmp_path / "a")
    answers(build_graph().compile(checkpointer=memory_saver()), lambda _: ctx, "a")
    ctx.close()
    unbroken = Trace.load(next((tmp_path / "a").iterdir()))
    # broken: every resume gets a new context (new latent stores, writers, mixer), as a new process would
    contexts = []

    def fresh(_):
        if contexts:
            contexts[-1].close()  # the earlier "process" is gone: its run-folder lock with it
        contexts.append(MILRContext(mug, Mixer([CountingPixels(), human]), config(steps=1), tmp_path / "b"))
        return contexts[-1]

    del draws[:]
    with sqlite_saver(tmp_path / "checkpoints.sqlite") as saver:
        answers(build_graph().compile(checkpointer=saver), fresh, "b")
    contexts[-1].close()
    assert len(draws) == 2  # rounds 0 and 1 drawn once each, none redrawn on a resume
    resumed = Trace.load(next((tmp_path / "b").iterdir()))
    assert [r.score for r in resumed.rounds] == [r.score for r in unbroken.rounds]
    assert [r.reasoning for r in resumed.rounds] == [r.reasoning for r in unbroken.rounds]
    for a, b in zip(unbroken.rounds, resumed.rounds, strict=True):
        assert a.image.tobytes() == b.image.tobytes()


def test_a_round_drawn_elsewhere_and_not_on_disk_says_how_to_continue(mug, tmp_path):
    ctx = MILRContext(mug, PixelCritic(), config(), tmp_path)
    graph = build_graph().compile(checkpointer=memory_saver(), interrupt_before=["critique"])
    drive(graph, {"prompt": PROMPT}, cfg(), ctx)
    ctx.close()
    fresh = MILRContext(mug, PixelCritic(), config(), tmp_path)
    try:
        with pytest.raises(RuntimeError, match="drawn by another process and is not on disk.*milr resume"):
            drive(graph, None, cfg(), fresh)
    finally:
        fresh.close()


# ----------------------------------------------------------------------------- the facade
def test_facade_streams_the_question_and_answer_resumes(mug, tmp_path, draws):
    machine = CountingPixels()
    milr = MILR(mug, [machine, HumanCritic()], config(steps=1), out=tmp_path)
    events = milr.stream(PROMPT)
    questions = []
    for event in events:
        if event["event"] == "interrupt":
            questions.append(event)
            with pytest.raises(ValueError, match="score must be a finite number from 0 to 1"):
                milr.answer(2.0)
            with pytest.raises(ValueError, match="asks nothing now"):
                milr.answer(0.5, run_id="another-run")
            milr.answer(0.4 + 0.1 * event["round"], f"round {event['round']}")
        elif event["event"] == "done":
            result = event["result"]
    assert [q["round"] for q in questions] == [0, 1] and all(q["image"].endswith(".png") for q in questions)
    assert len(draws) == 2 and machine.calls == 2
    assert [(r.critiques[1].score, r.critiques[1].rationale) for r in result.rounds] == [
        (0.4, "round 0"),
        (0.5, "round 1"),
    ]
    with pytest.raises(ValueError, match="no question waits"):
        milr.answer(0.5)


def test_facade_reading_on_without_an_answer_fails_clearly(mug, tmp_path):
    milr = MILR(mug, [PixelCritic(), HumanCritic()], config(), out=tmp_path)
    events = milr.stream(PROMPT)
    assert next(e for e in events if e["event"] == "interrupt")["round"] == 0
    with pytest.raises(RuntimeError, match=r"waits for a person's score of round 0: call milr.answer"):
        next(events)
    (folder,) = tmp_path.iterdir()
    assert Trace.load(folder).rounds == []  # nothing recorded; `milr resume` continues it
    MILR(mug, [PixelCritic(), HumanCritic()], config(), out=tmp_path, ask=lambda q: 0.5).resume(folder)


def test_facade_ask_answers_and_result_calls_need_it(mug, tmp_path):
    asked = []

    def ask(question):
        asked.append(question)
        return {"score": 0.8, "rationale": "fine"}

    with pytest.raises(ValueError, match="pass ask= to MILR"):
        MILR(mug, [PixelCritic(), HumanCritic()], config(), out=tmp_path)(PROMPT)
    assert list(tmp_path.iterdir()) == []  # refused before any trace folder
    result = MILR(mug, [PixelCritic(), HumanCritic()], config(), out=tmp_path, ask=ask)(PROMPT)
    assert [q["round"] for q in asked] == [0] and asked[0]["critics"][0]["critic"] == "pixels"
    assert (result.rounds[0].critiques[1].score, result.rounds[0].critiques[1].rationale) == (0.8, "fine")
    with pytest.raises(ValidationError, match="score"):  # an asker returning no score is a bug, said at once
        MILR(mug, HumanCritic(), config(), out=tmp_path / "bad", ask=lambda q: {"rationale": "?"})(PROMPT)


def test_a_machine_critic_alone_writes_no_pending_files(mug, tmp_path):
    """Without a person nothing changes: the image is written once, with its record."""

    seen = []

    class LooksForFiles(PixelCritic):
        def __call__(self, image, prompt, spec=None):
            seen.extend(p.name for p in tmp_path.rglob("round_00*"))
            return super().__call__(image, prompt, spec)

    MILR(mug, LooksForFiles(), config(), out=tmp_path)(PROMPT)
    assert seen == []
