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
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal

from langgraph.errors import GraphBubbleUp
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from milr.mug.janus import set_thread_count
from milr.nodes.context import MILRContext, MILRState
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
            ctx = live_context(runtime)
            with node_threads(ctx):
                update = node(state, runtime.override(context=ctx))
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


@contextmanager
def node_threads(ctx: MILRContext) -> Iterator[None]:
    """Run a node's torch work on a CPU with `ctx.cpu_threads` intra-op threads when it runs off the
    main thread, then restore the thread's setting.

    LangGraph runs a node on a worker thread whenever custom events are streamed (the facade, the CLI,
    `langgraph dev`). Torch's OpenMP then keeps a second thread pool beside the main thread's, and
    once its pools hold more threads than the machine has cores, libgomp stops spinning between
    parallel regions: every small op pays a thread wake-up. On this project's 2-core machine a
    [2, 128] matmul took 6x longer on a worker thread with two threads than on the main thread, and a
    ShapesEval sweep at batch 1 ran 1.6x faster with one thread per node (benchmarks/bench_threads.py
    measures it). A node on the main thread (`invoke`, or `stream` without custom events) or on
    another device is left alone."""
    if (
        ctx.cpu_threads is None
        or ctx.mug.device.type != "cpu"
        or threading.current_thread() is threading.main_thread()
    ):
        yield
        return
    before = set_thread_count(ctx.cpu_threads)
    try:
        yield
    finally:
        set_thread_count(before)


def recursion_limit(steps: int, runs: int = 1) -> int:
    """Backstop for LangGraph's step counter: every pass through the four nodes advances at least one
    run by a round, so `runs · (K+1)` passes are the most a batch can need, plus the first schedule.
    The loop stops in its own router; this only catches a bug that would loop forever."""
    return 4 * runs * (steps + 1) + 5
