"""The MILR loop over a batch of runs as a LangGraph state machine (DESIGN §2):

    schedule → latent_update → generate → critique → schedule → …

`schedule` finishes the runs that stopped and fills free slots from the queue; `latent_update` steps
every run critiqued last round that goes on; `generate` decodes all active runs in one batch;
`critique` scores them, writes their rounds and decides who stops. `build_graph()` returns the
uncompiled `StateGraph` (the caller picks the checkpointer); `route` is the pure router.

Compiled by hand, the graph needs only a context (`build_context(model=..., critics=..., out=...)`)
and an input (`{"prompt": ...}` or `{"prompts": [...]}`): it writes complete trace folders.
"""

from __future__ import annotations

from typing import Literal

from langgraph.graph import END, START, StateGraph

from milr.nodes.context import MILRContext, MILRState
from milr.nodes.critique import critique
from milr.nodes.generate import generate
from milr.nodes.latent_update import latent_update
from milr.orchestrator.scheduler import schedule


def route(state: MILRState) -> Literal["latent_update", "__end__"]:
    """Go on while any run holds a slot; the scheduler has already refilled from the queue."""
    return "latent_update" if state.get("runs") else END


def build_graph() -> StateGraph:
    """schedule → latent_update → generate → critique → schedule …, ending in `route`."""
    graph = StateGraph(MILRState, context_schema=MILRContext)
    graph.add_node("schedule", schedule)
    graph.add_node("latent_update", latent_update)
    graph.add_node("generate", generate)
    graph.add_node("critique", critique)
    graph.add_edge(START, "schedule")
    graph.add_conditional_edges("schedule", route)
    graph.add_edge("latent_update", "generate")
    graph.add_edge("generate", "critique")
    graph.add_edge("critique", "schedule")
    return graph


def recursion_limit(steps: int, runs: int = 1) -> int:
    """Backstop for LangGraph's step counter: every pass through the four nodes advances at least one
    run by a round, so `runs · (K+1)` passes are the most a batch can need, plus the first schedule.
    The loop stops in its own router; this only catches a bug that would loop forever."""
    return 4 * runs * (steps + 1) + 5
