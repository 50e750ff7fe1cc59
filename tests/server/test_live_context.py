"""The graph run from plain settings, as LangGraph's server runs it: `MILRSettings` (or a dict of its
fields, or nothing) as the context; each run gets one live `MILRContext`, released when the run ends,
fails, or is abandoned, and kept across an interrupt for its resume. Real graph, ShapesWorld model."""

from __future__ import annotations

import gc

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from langgraph.types import Command, interrupt
from pydantic import ValidationError

from milr import MILR
from milr.nodes.context import MILRContext
from milr.orchestrator.graph import build_graph, with_live_context
from milr.orchestrator.settings import MILRSettings, as_settings, build_context, live_runs
from milr.traces import Trace, TraceWriter

PROMPT = "a photo of a triangle above a circle"


def settings(out, **config) -> dict:
    """What a server run sends as `context`: JSON only."""
    return {
        "model": "shapes",
        "critics": "shapes",
        "config": {"steps": 2, "threshold": 1.0, **config},
        "out": str(out),
    }


def unlocked(run_dir) -> bool:
    """No writer holds the run folder: a new one takes its lock (flock conflicts within one process too)."""
    TraceWriter(run_dir, resume=True).close()
    return True


def comparable(event: dict) -> tuple:
    """An event without what differs between two runs of the same prompt (ids, folders)."""
    image = event.get("image")
    return (event["event"], event.get("round"), event.get("score"), event.get("reasoning"), image and image[-12:])


def test_settings_run_streams_and_writes_what_the_facade_does(tmp_path):
    graph = build_graph().compile()
    events = list(graph.stream({"prompt": PROMPT}, context=settings(tmp_path / "graph"), stream_mode="custom"))
    ctx = build_context(model="shapes", critics="shapes", config={"steps": 2, "threshold": 1.0}, out=tmp_path)
    facade = list(MILR(ctx.mug, ctx.critic, ctx.config, out=tmp_path / "facade").stream(PROMPT))

    assert [comparable(e) for e in events[:-1]] == [comparable(e) for e in facade[:-1]]
    assert [e["event"] for e in events].count("round_end") == 3 and events[-1]["event"] == "run_done"
    (ours,), (theirs,) = (list((tmp_path / name).iterdir()) for name in ("graph", "facade"))
    a, b = Trace.load(ours), Trace.load(theirs)
    assert [(r.score, r.reasoning, r.image.tobytes()) for r in a.rounds] == [
        (r.score, r.reasoning, r.image.tobytes()) for r in b.rounds
    ]
    assert a.summary.model_dump(exclude={"seconds"}) == b.summary.model_dump(exclude={"seconds"})
    assert live_runs() == 0 and unlocked(ours)  # the run's context was released at its end


def test_the_issue_snippet_without_context_runs_on_the_defaults(tmp_path, monkeypatch):
    """`build_graph().compile(checkpointer=...).stream({"prompt": ...})` once raised 'NoneType' object
    has no attribute 'mug'; with no context it now runs as `milr run` does (shapes, ./traces)."""
    monkeypatch.chdir(tmp_path)
    graph = build_graph().compile(checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": "t"}}
    modes = {mode for mode, _ in graph.stream({"prompt": PROMPT}, cfg, stream_mode=["custom", "updates"])}
    assert modes == {"custom", "updates"}
    (run_dir,) = (tmp_path / "traces").iterdir()
    assert Trace.load(run_dir).summary is not None and live_runs() == 0 and unlocked(run_dir)


def test_a_failing_run_releases_its_locks(tmp_path, monkeypatch):
    ctx = build_context(model="shapes", critics="shapes", config={"steps": 2}, out=tmp_path)  # the cached model

    def broken(*args, **kwargs):
        raise RuntimeError("decode failed")

    monkeypatch.setattr(ctx.mug, "draw_batch", broken)
    with pytest.raises(RuntimeError, match="decode failed"):
        build_graph().compile().invoke({"prompt": PROMPT}, context=settings(tmp_path, threshold=0.9))
    (run_dir,) = tmp_path.iterdir()
    assert (run_dir / "run.json").is_file()  # it had started: its trace writer held the lock
    assert live_runs() == 0 and unlocked(run_dir)


def test_an_abandoned_stream_releases_its_run(tmp_path):
    stream = build_graph().compile().stream({"prompt": PROMPT}, context=settings(tmp_path), stream_mode="custom")
    assert next(e for e in stream if e["event"] == "round_end")["round"] == 0
    assert live_runs() == 1  # mid-run: its latents and writer are live
    stream.close()
    del stream
    gc.collect()  # LangGraph's call objects hold cycles: released when the call is collected
    (run_dir,) = tmp_path.iterdir()
    assert live_runs() == 0 and unlocked(run_dir)


def test_an_interrupted_run_keeps_its_context_for_the_resume(tmp_path):
    """A node that interrupts (the human critic does, in `critique`) re-runs on resume: it must find
    the same live context (latents, open writers), not a fresh one; the run's end releases it."""
    seen: list[MILRContext] = []

    def ask(state, runtime):
        seen.append(runtime.context)
        return {"finished": [interrupt("score?")]}

    graph = StateGraph(dict, context_schema=MILRSettings)
    graph.add_node("ask", with_live_context(ask, last=True))
    graph.add_edge(START, "ask")
    app = graph.compile(checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": "human"}}
    app.invoke({"runs": {}}, cfg, context=settings(tmp_path))
    gc.collect()  # the first call is over and collected: a paused run is not an abandoned one
    assert live_runs() == 1
    app.invoke(Command(resume="0.7"), cfg)  # a resume may leave the context out: the paused run's goes on
    assert len(seen) == 2 and seen[0] is seen[1] and isinstance(seen[0], MILRContext)
    assert seen[0].out == tmp_path  # not the defaults' ./traces
    assert app.get_state(cfg).values["finished"] == ["0.7"]
    assert live_runs() == 0  # no run left: the route ends the graph, and the context goes with it


def test_a_live_context_passed_in_is_used_as_is_and_left_to_its_owner(tmp_path):
    ctx = build_context(model="shapes", critics="shapes", config={"steps": 0}, out=tmp_path)
    build_graph().compile().invoke({"prompt": PROMPT}, context=ctx)
    assert live_runs() == 0 and not ctx.writers  # the run's own end closed its writer
    assert len(list(tmp_path.iterdir())) == 1


def test_bad_settings_name_the_field():
    with pytest.raises(ValidationError, match="modle"):
        as_settings({"modle": "shapes"})
    with pytest.raises(ValidationError, match="steps"):
        as_settings({"config": {"steps": -1}})
    with pytest.raises(ValidationError, match="max_batch"):
        MILRSettings(max_batch=0)
    with pytest.raises(TypeError, match="MILRSettings, a dict of its fields or a MILRContext"):
        as_settings("shapes")
    assert as_settings(None) == MILRSettings() and as_settings({"model": "tiny"}).model == "tiny"


def test_the_settings_schema_is_public():
    import milr
    import milr.orchestrator

    assert milr.MILRSettings is milr.orchestrator.MILRSettings is MILRSettings
    assert "MILRSettings" in milr.__all__ and "MILRSettings" in milr.orchestrator.__all__
