"""Fixtures of the trace tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.traces.helpers import image, summary, write_run


@pytest.fixture
def finished_run(tmp_path) -> Path:
    """A finished 3-round run (round 2 best and returned)."""
    writer = write_run(tmp_path / "run", 3)
    writer.finish(summary(3), image(2))
    return tmp_path / "run"
