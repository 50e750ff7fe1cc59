"""One graph over a batch of runs: slots refill as runs stop, every run keeps its own complete trace,
a batched run equals the same run alone, and the graph runs without the facade."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from milr.config import MILRConfig
from milr.critics.base import Critique
from milr.orchestrator import MILR, build_context, build_graph, recursion_limit
from milr.traces import Trace
from tests.orchestrator.helpers import PixelCritic

PROMPTS = [f"a photo of {n} cats" for n in ("one", "two", "three", "four")] + [
    "a photo of a red dog",
    "a photo of a blue car",
    "a photo of a bench",
]
RUN_FILES = {"run.json", "rounds.jsonl", "summary.json", "final.png", "report.html", "latents"}


class PassAtRound:
    """Passes prompt i at its round `i % 4`: runs stop at different rounds, so slots free unevenly."""

    name = "staggered"

    def __init__(self):
        self.seen: dict[str, int] = {}

    def __call__(self, image, prompt, spec=None):
        k = self.seen.get(prompt, 0)
        self.seen[prompt] = k + 1
        return Critique(critic=self.name, score=0.95 if k >= PROMPTS.index(prompt) % 4 else 0.2)


def _complete(run_dir, rounds: int) -> None:
    assert RUN_FILES <= {p.name for p in run_dir.iterdir()}, run_dir.name
    trace = Trace.load(run_dir)
    assert [r.round for r in trace.rounds] == list(range(rounds))
    assert all(r.image.size and trace.latents(r.round)["generator_state"].numel() for r in trace.rounds)
    assert trace.summary.rounds == rounds


def test_slots_refill_as_runs_stop_and_every_run_gets_its_own_trace(mug, tmp_path):
    milr = MILR(mug, PassAtRound(), MILRConfig(steps=5, max_reasoning_tokens=8), out=tmp_path, max_batch=3)
    events = list(milr.stream_batch(PROMPTS))
    active, most = set(), 0
    for ev in events:
        if ev["event"] == "run_start":
            active.add(ev["run_id"])
            most = max(most, len(active))
        elif ev["event"] == "done":
            active.remove(ev["run_id"])
    assert most == 3 and not active  # never more than max_batch runs, and every run finished
    starts = [i for i, ev in enumerate(events) if ev["event"] == "run_start"]
    first_done = next(i for i, ev in enumerate(events) if ev["event"] == "done")
    assert any(i > first_done for i in starts)  # a queued prompt took a freed slot mid-batch
    # A refilled slot runs round 0 beside runs at later rounds, in one decode.
    seconds = [r.seconds for d in tmp_path.iterdir() for r in Trace.load(d).rounds]
    assert max(s["batch"] for s in seconds) == 3
    done = {ev["run_id"]: ev["result"] for ev in events if ev["event"] == "done"}
    for run_id, result in done.items():
        i = PROMPTS.index(Trace.load(result.trace_dir).run.prompt)
        _complete(result.trace_dir, i % 4 + 1)
        assert result.stop_reason == "threshold" and result.trace_dir.name == run_id


def test_batch_returns_results_in_input_order_and_each_equals_the_run_alone(mug, tmp_path):
    config = MILRConfig(steps=3, max_reasoning_tokens=8)
    seeds = [5, 6, 7, 8, 9]
    batched = MILR(mug, PixelCritic(), config, out=tmp_path / "b", max_batch=2).batch(PROMPTS[:5], seeds=seeds)
    assert [Trace.load(r.trace_dir).run.prompt for r in batched] == PROMPTS[:5]
    for prompt, seed, got in zip(PROMPTS[:5], seeds, batched, strict=True):
        alone = MILR(mug, PixelCritic(), config.override(seed=seed), out=tmp_path / "a")(prompt)
        assert [r.score for r in got.rounds] == [r.score for r in alone.rounds]
        assert [r.image.tobytes() for r in got.rounds] == [r.image.tobytes() for r in alone.rounds]
        assert [r.reasoning for r in got.rounds] == [r.reasoning for r in alone.rounds]
        assert json.loads((got.trace_dir / "run.json").read_text())["seed"] == seed


def test_batch_arguments_are_checked_before_any_trace_is_written(mug, tmp_path):
    milr = MILR(mug, PixelCritic(), MILRConfig(steps=1, max_reasoning_tokens=8), out=tmp_path)
    with pytest.raises(ValueError, match="names has 1 entries for 2 prompts"):
        milr.batch(PROMPTS[:2], names=["x"])
    with pytest.raises(ValueError, match="names must be distinct"):
        milr.batch(PROMPTS[:2], names=["x", "x"])
    with pytest.raises(ValueError, match="prompt must be a non-empty string"):
        milr.batch([PROMPTS[0], " "])
    with pytest.raises(TypeError, match="list of strings"):
        milr.batch("a cat")
    with pytest.raises(ValueError, match="max_batch"):
        MILR(mug, PixelCritic(), max_batch=0)
    assert not any(tmp_path.iterdir())


def test_hand_compiled_graph_with_the_settings_context_writes_complete_traces(tmp_path):
    config = {"steps": 2, "threshold": 1.0, "max_reasoning_tokens": 8}
    ctx = build_context(model="tiny", critics="self", config=config, out=tmp_path, max_batch=2)
    assert build_context(model="tiny", critics="self", config=config, out=tmp_path).mug is ctx.mug  # cached
    graph = build_graph().compile(checkpointer=InMemorySaver())
    run_cfg = {"configurable": {"thread_id": "t1"}, "recursion_limit": recursion_limit(2, 3)}
    seen = []
    for mode, chunk in graph.stream({"prompts": PROMPTS[:3]}, run_cfg, context=ctx, stream_mode=["custom", "updates"]):
        if mode == "custom":
            assert chunk["run_id"]  # every event says which run it belongs to
            seen.append(chunk["event"])
    assert seen.count("run_start") == seen.count("run_done") == 3 and seen.count("round_end") == 9
    folders = sorted(d for d in tmp_path.iterdir() if d.is_dir())
    assert len(folders) == 3
    for d in folders:
        _complete(d, 3)
    finished = graph.get_state(run_cfg).values["finished"]
    assert sorted(finished) == [d.name for d in folders]  # the checkpointed state knows every run's end
    # The single-prompt input form works too.
    graph.invoke({"prompt": "a photo of a dog"}, {"configurable": {"thread_id": "t2"}}, context=ctx)
    assert len([d for d in tmp_path.iterdir() if d.is_dir()]) == 4


def test_a_ctrl_c_the_graph_swallows_still_stops_a_batch(mug, tmp_path, monkeypatch):
    """LangGraph may run a done callback in the main thread, and that callback swallows every exception
    (`BackgroundExecutor.done`): a Ctrl-C raised in there is lost, and the batch would run on to the
    end. The facade notes the signal itself and raises KeyboardInterrupt at the next event, with the
    finished rounds on disk and nothing summarised; Python's own handler is back afterwards."""
    import milr.orchestrator.facade as facade

    real, rounds = facade._with_result, []

    def swallowing(event):
        if event["event"] == "round_end":
            rounds.append(event["run_id"])
            if len(rounds) == 3:
                try:  # as LangGraph's callback does, around a real SIGINT to this process
                    os.kill(os.getpid(), signal.SIGINT)
                    time.sleep(0.2)
                except BaseException:
                    pass
        return real(event)

    monkeypatch.setattr(facade, "_with_result", swallowing)
    assert threading.current_thread() is threading.main_thread()
    milr = MILR(mug, PixelCritic(), MILRConfig(steps=6, threshold=1.0, max_reasoning_tokens=8), out=tmp_path)
    with pytest.raises(KeyboardInterrupt):
        milr.batch(PROMPTS[:2], names=["a", "b"], max_batch=2)
    assert 3 <= len(rounds) < 14  # stopped soon after the swallowed Ctrl-C, not after all 2 x 7 rounds
    assert not any((tmp_path / n / "summary.json").exists() for n in "ab")
    assert sum(len(Trace.load(tmp_path / n).rounds) for n in "ab") >= 3  # the finished rounds are kept
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
