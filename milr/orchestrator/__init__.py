"""The LangGraph loop, the `MILR` facade and resume."""

from milr.orchestrator.facade import MILR, MILRResult, best_round, resolve_model
from milr.orchestrator.graph import build_graph, recursion_limit, route

__all__ = ["MILR", "MILRResult", "best_round", "build_graph", "recursion_limit", "resolve_model", "route"]
