"""ShapesWorld tests run their tiny models on one thread: on a busy machine, torch's default thread
pool waits on descheduled workers and a 30 ms decode takes seconds."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _on_one_thread(one_thread):
    """Every test here runs on one thread (`one_thread` in tests/conftest.py)."""
