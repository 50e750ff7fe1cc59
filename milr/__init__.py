"""milr: test-time latent reasoning (MILR) for unified image generators such as Janus-Pro.

    from milr import MILR, MILRConfig
    from milr.shapes import ShapesOracle

    milr = MILR.from_pretrained("shapes", critics=[ShapesOracle()], config=MILRConfig(steps=10))
    result = milr("a photo of a triangle above a circle")

The public names are imported on first use (PEP 562), so `import milr.mug` or `import milr.traces`
stays light and does not pull in LangGraph.
"""

from importlib import import_module

__version__ = "0.1.0"

_PUBLIC = {
    "MILR": "milr.orchestrator",
    "MILRResult": "milr.orchestrator",
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
