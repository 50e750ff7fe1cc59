"""ShapesWorld (DESIGN §6): a synthetic world where the whole MILR method runs for real on a CPU —
flat shapes on a 4×4 grid, a tiny Janus trained here (shipped in `checkpoint/`), an exact oracle,
and the ShapesEval benchmark."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from milr.shapes.oracle import NoisyCritic, ShapesOracle, read_scene
from milr.shapes.world import Scene, make_prompt, parse_plan, reasoning_for, render, sample_scene


def checkpoint_path() -> Path:
    """The packaged checkpoint folder; a clear error when this install lacks it."""
    folder = Path(str(resources.files(__name__) / "checkpoint"))
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            "the ShapesWorld checkpoint is missing from this install; "
            "train one with `python -m milr.shapes.train --out DIR` and copy DIR/final to milr/shapes/checkpoint "
            "(see milr/shapes/train.py for the recipe of the shipped one)"
        )
    return folder


__all__ = [
    "NoisyCritic",
    "Scene",
    "ShapesOracle",
    "checkpoint_path",
    "make_prompt",
    "parse_plan",
    "read_scene",
    "reasoning_for",
    "render",
    "sample_scene",
]
