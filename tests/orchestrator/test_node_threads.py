"""Intra-op threads of the graph's nodes on a CPU (`milr.orchestrator.graph.node_threads`): a node that
LangGraph runs off the main thread (custom events streamed) uses `MILRContext.cpu_threads`, one by
default, and leaves the thread as it found it; a node on the main thread, or `cpu_threads=None`,
keeps torch's setting."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from langgraph.checkpoint.memory import InMemorySaver

from milr.config import MILRConfig
from milr.mug.janus import JanusMUG
from milr.nodes.context import MILRContext
from milr.orchestrator import build_graph, recursion_limit
from tests.orchestrator.helpers import PixelCritic

CONFIG = {"steps": 1, "threshold": 1.0, "max_reasoning_tokens": 4}


@pytest.fixture
def two_threads():
    """The main thread at two intra-op threads (the suite may run at one), restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def draws(monkeypatch):
    """(thread is main, intra-op threads) seen by every image decode."""
    seen: list[tuple[bool, int]] = []
    real = JanusMUG.draw_batch

    def spy(self, *args, **kwargs):
        seen.append((threading.current_thread() is threading.main_thread(), torch.get_num_threads()))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(JanusMUG, "draw_batch", spy)
    return seen


def _run(mug, tmp_path, modes, **context):
    ctx = MILRContext(mug, PixelCritic(), MILRConfig(**CONFIG), tmp_path, **context)
    graph = build_graph().compile(checkpointer=InMemorySaver())
    run_cfg = {"configurable": {"thread_id": "t"}, "recursion_limit": recursion_limit(1, 2)}
    list(graph.stream({"prompts": ["a photo of a cat", "a photo of a dog"]}, run_cfg, context=ctx, stream_mode=modes))


def test_a_node_off_the_main_thread_uses_one_thread_and_restores_it(mug, tmp_path, two_threads, draws):
    _run(mug, tmp_path, ["custom", "updates"])
    assert draws and all(not on_main for on_main, _ in draws)  # custom events: nodes on worker threads
    assert {threads for _, threads in draws} == {1}
    assert torch.get_num_threads() == 2  # the main thread keeps its setting


def test_the_setting_is_the_context_s_and_none_leaves_torch_alone(mug, tmp_path, two_threads, draws):
    _run(mug, tmp_path / "three", ["custom"], cpu_threads=3)
    _run(mug, tmp_path / "none", ["custom"], cpu_threads=None)
    worker_default = ThreadPoolExecutor(1).submit(torch.get_num_threads).result()
    assert [threads for _, threads in draws] == [3, 3, worker_default, worker_default]  # 2 rounds each


def test_a_node_on_the_main_thread_keeps_torch_s_setting(mug, tmp_path, two_threads, draws):
    _run(mug, tmp_path, ["updates"])  # no custom events: LangGraph runs each single node inline
    assert draws and all(on_main and threads == 2 for on_main, threads in draws)


def test_cpu_threads_must_be_positive(mug, tmp_path):
    with pytest.raises(ValueError, match="cpu_threads must be >= 1 or None"):
        MILRContext(mug, PixelCritic(), MILRConfig(), tmp_path, cpu_threads=0)
