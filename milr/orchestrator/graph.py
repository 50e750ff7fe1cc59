"""The MILR loop as a LangGraph state machine: generate → critique → (latent_update → generate)*.

`build_graph()` returns the uncompiled `StateGraph` (the caller picks the checkpointer); `route`
is the pure router. The stop rule itself (`stop_reason`) runs in the critique node, so the decision
is recorded in the checkpointed state and the router only reads it.
"""

from __future__ import annotations

from typing import Literal

from langgraph.graph import END, START, StateGraph

from milr.nodes.context import MILRContext, MILRState
from milr.nodes.critique import critique
from milr.nodes.generate import generate
from milr.nodes.latent_update import latent_update


def route(state: MILRState) -> Literal["latent_update", "__end__"]:
    """Stop when the critique gave a stop reason (score ≥ threshold, or round == steps)."""
    return END if state.get("stop_reason") else "latent_update"


def build_graph() -> StateGraph:
    """generate → critique → latent_update → generate …, stopping in `route`."""
    graph = StateGraph(MILRState, context_schema=MILRContext)
    graph.add_node("generate", generate)
    graph.add_node("critique", critique)
    graph.add_node("latent_update", latent_update)
    graph.add_edge(START, "generate")
    graph.add_edge("generate", "critique")
    graph.add_conditional_edges("critique", route)
    graph.add_edge("latent_update", "generate")
    return graph


def recursion_limit(steps: int) -> int:
    """Backstop for LangGraph's step counter: three nodes per round, K+1 rounds, and some slack.
    The loop stops in its own router; this only catches a bug that would loop forever."""
    return 3 * (steps + 1) + 5
