"""milr: test-time latent reasoning (MILR) for unified image generators such as Janus-Pro.

    from milr import MILR, MILRConfig
    from milr.shapes import ShapesOracle

    milr = MILR.from_pretrained("shapes", critics=[ShapesOracle()], config=MILRConfig(steps=10))
    result = milr("a photo of a triangle above a circle")

The public names are imported on first use (PEP 562), so `import milr.mug` or `import milr.traces`
stays light and does not pull in LangGraph.

milr prints nothing unless asked: its structlog events go to the stdlib logger `milr`, which has a
`NullHandler` (see `milr.log`; `milr.log.configure_logging()` shows them on stderr).
"""

from importlib import import_module
from typing import TYPE_CHECKING

from milr.log import install_library_defaults

if TYPE_CHECKING:  # the lazy names as type checkers see them (else `from milr import MILR` is Any to mypy)
    from milr import critics as critics
    from milr.config import ConfigError as ConfigError
    from milr.config import MILRConfig as MILRConfig
    from milr.orchestrator import MILR as MILR
    from milr.orchestrator import MILRResult as MILRResult
    from milr.orchestrator import MILRSettings as MILRSettings
    from milr.orchestrator import build_context as build_context
    from milr.orchestrator import build_graph as build_graph
    from milr.traces import Trace as Trace

__version__ = "0.1.0"

install_library_defaults()  # the `milr` logger's NullHandler, structlog routed through stdlib logging

_PUBLIC = {
    "MILR": "milr.orchestrator",
    "MILRResult": "milr.orchestrator",
    "MILRSettings": "milr.orchestrator",
    "build_graph": "milr.orchestrator",
    "build_context": "milr.orchestrator",
    "MILRConfig": "milr.config",
    "ConfigError": "milr.config",
    "Trace": "milr.traces",
    "critics": "milr.critics",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'milr' has no attribute {name!r}")
    module = import_module(_PUBLIC[name])
    return module if name == "critics" else getattr(module, name)
