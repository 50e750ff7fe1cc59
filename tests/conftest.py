"""Shared fixtures: tiny random Janus models (real transformers classes, CPU, seeded).

The test session is offline for real: the hub switches are set here, at import of the root conftest,
before any test module imports milr, transformers or huggingface_hub (which read them once, at import;
set later they change nothing and a missing model costs ~20 s of connection attempts).
Subprocesses started by tests inherit them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Before anything imports huggingface_hub (milr, transformers, the test modules): see the docstring.
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
os.environ.update(OFFLINE)
# A pytest-xdist worker starts with COLUMNS=80 in its environment, which a rich console reads once, when
# milr.cli is imported; tests that widen the terminal (monkeypatched COLUMNS) need it read each time.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.pop("COLUMNS", None)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def pytest_configure(config):
    """Under pytest-xdist (`make test` runs three workers) each worker decodes at one torch thread: two
    workers at two threads each would oversubscribe a 2-core machine, and torch's OpenMP pools then
    wait on descheduled threads."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


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


@pytest.fixture
def one_thread():
    """Tiny models on one thread: on a busy machine torch's default thread pool waits on descheduled
    workers, and a 30 ms decode takes seconds."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def shapes_mug():
    """The packaged ShapesWorld checkpoint, loaded once per module that asks for it."""
    from milr.mug.janus import JanusMUG
    from milr.shapes import checkpoint_path

    return JanusMUG.from_pretrained(checkpoint_path(), device="cpu")
