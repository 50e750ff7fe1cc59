"""ShapesWorld tests run their tiny models on one thread: on a busy machine, torch's default thread
pool waits on descheduled workers and a 30 ms decode takes seconds."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
