"""The MILR loop over a batch of runs as a LangGraph state machine (DESIGN §2):

    schedule → latent_update → generate → critique → schedule → …

`schedule` finishes the runs that stopped and fills free slots from the queue; `latent_update` steps
every run critiqued last round that goes on; `generate` decodes all active runs in one batch;
`critique` scores them, writes their rounds and decides who stops. `build_graph()` returns the
uncompiled `StateGraph` (the caller picks the checkpointer); `route` is the pure router.

Compiled by hand, the graph needs only an input (`{"prompt": ...}` or `{"prompts": [...]}`) and a
context: plain settings (`MILRSettings`, or a dict of its fields, as LangGraph's server sends them) or
a live `MILRContext` (`build_context(model=..., critics=..., out=...)`, the facade's). It writes
complete trace folders either way. Every node is wrapped so that it always sees a live `MILRContext`
(`live_context`); the wrapper also releases a settings run's context when the run ends or fails.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Literal

from langgraph.errors import GraphBubbleUp
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from milr.nodes.context import MILRState
from milr.nodes.critique import critique
from milr.nodes.generate import generate
from milr.nodes.latent_update import latent_update
from milr.orchestrator.scheduler import schedule
from milr.orchestrator.settings import MILRSettings, live_context, pause_live_context, release_live_context


def route(state: MILRState) -> Literal["latent_update", "__end__"]:
    """Go on while any run holds a slot; the scheduler has already refilled from the queue."""
    return "latent_update" if state.get("runs") else END


def build_graph() -> StateGraph:
    """schedule → latent_update → generate → critique → schedule …, ending in `route`."""
    # The schema is what LangGraph's server and Studio show and send; nodes get a live MILRContext.
    graph = StateGraph(MILRState, context_schema=MILRSettings)
    graph.add_node("schedule", with_live_context(schedule, last=True))
    graph.add_node("latent_update", with_live_context(latent_update))
    graph.add_node("generate", with_live_context(generate))
    graph.add_node("critique", with_live_context(critique))
    graph.add_edge(START, "schedule")
    graph.add_conditional_edges("schedule", route)
    graph.add_edge("latent_update", "generate")
    graph.add_edge("generate", "critique")
    graph.add_edge("critique", "schedule")
    return graph


def with_live_context(node: Callable, *, last: bool = False) -> Callable:
    """`node`, called with a runtime whose context is the run's live `MILRContext`. `last`: the node
    before `route`; when the route ends the graph, the run's context is released there.

    `functools.wraps` keeps the node's name (Studio shows it) and its signature, by which LangGraph
    decides to inject `runtime`."""

    @functools.wraps(node)
    def run(state: MILRState, runtime: Runtime) -> dict:
        try:
            update = node(state, runtime.override(context=live_context(runtime)))
        except GraphBubbleUp:  # an interrupt: the node re-runs on resume, with the same context
            pause_live_context(runtime)
            raise
        except BaseException:
            release_live_context(runtime)
            raise
        if last and route({**state, **update}) == END:
            release_live_context(runtime)
        return update

    return run


def recursion_limit(steps: int, runs: int = 1) -> int:
    """Backstop for LangGraph's step counter: every pass through the four nodes advances at least one
    run by a round, so `runs · (K+1)` passes are the most a batch can need, plus the first schedule.
    The loop stops in its own router; this only catches a bug that would loop forever."""
    return 4 * runs * (steps + 1) + 5
