"""Every prompt text milr sends to a model lives here as a `.txt` file; `load(name)` reads one.

Keeping them as files lets people diff and swap prompts without touching code. This package imports
nothing else of milr, so any layer may use it.
"""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def load(name: str) -> str:
    """The text of `milr/prompts/<name>.txt`, without the trailing newline."""
    path = resources.files(__name__) / f"{name}.txt"
    if not path.is_file():
        available = sorted(
            p.name.removesuffix(".txt") for p in resources.files(__name__).iterdir() if p.name.endswith(".txt")
        )
        raise FileNotFoundError(f"no prompt file {name!r}; available: {', '.join(available)}")
    return path.read_text(encoding="utf-8").rstrip("\n")
