"""The LangGraph loop, the `MILR` facade, resume, and the name registry the CLI and bench share.

Public names are imported on first use (PEP 562): `milr.orchestrator.registry` stays light, so the
`milr` command answers `--help` without loading torch or LangGraph.
"""

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the lazy names as type checkers see them (else they are Any to mypy)
    from milr.orchestrator.facade import MILR as MILR
    from milr.orchestrator.facade import MILRResult as MILRResult
    from milr.orchestrator.facade import resolve_model as resolve_model
    from milr.orchestrator.graph import build_graph as build_graph
    from milr.orchestrator.graph import recursion_limit as recursion_limit
    from milr.orchestrator.graph import route as route
    from milr.orchestrator.scheduler import best_round as best_round
    from milr.orchestrator.settings import MILRSettings as MILRSettings
    from milr.orchestrator.settings import build_context as build_context

_PUBLIC = {
    "MILR": "milr.orchestrator.facade",
    "MILRResult": "milr.orchestrator.facade",
    "best_round": "milr.orchestrator.scheduler",
    "build_context": "milr.orchestrator.settings",
    "MILRSettings": "milr.orchestrator.settings",
    "resolve_model": "milr.orchestrator.facade",
    "build_graph": "milr.orchestrator.graph",
    "recursion_limit": "milr.orchestrator.graph",
    "route": "milr.orchestrator.graph",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'milr.orchestrator' has no attribute {name!r}")
    return getattr(import_module(_PUBLIC[name]), name)
