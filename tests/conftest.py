"""Shared fixtures: tiny random Janus models (real transformers classes, CPU, seeded)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def shared_path(*parts: str) -> Path:
    """A file under ../shared (the project's shared folder); skip clearly where it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"../shared/{'/'.join(parts)} is not here (a user's clone); CI always has it")
    return path


@pytest.fixture(scope="session")
def mug():
    from milr.mug.tiny import tiny_mug

    return tiny_mug(seed=0)
