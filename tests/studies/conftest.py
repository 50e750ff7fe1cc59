"""Study tests: the packaged ShapesWorld model on one thread (as tests/shapes does: on a busy machine
torch's thread pool waits on descheduled workers), loaded once per module that asks for it."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _on_one_thread(one_thread):
    """Every test here runs on one thread (`one_thread` in tests/conftest.py)."""


@pytest.fixture(scope="session")
def shapes_mug():
    from milr.mug.janus import JanusMUG
    from milr.shapes import checkpoint_path

    mug = JanusMUG.from_pretrained(checkpoint_path(), device="cpu")
    mug.name = "shapes"
    return mug


SPEC = """
name = "tiny-lab"
eval_critic = "shapes"
methods = ["baseline", "milr", "best_of_n"]
[prompts]
per_tag = 1
[critics]
oracle = "shapes"
countblind = "shapes-countblind"
[config]
steps = 2
[run]
batch = 6
"""


@pytest.fixture(scope="session")
def study(tmp_path_factory, shapes_mug):
    """A small finished study (6 prompts, one per tag, K = 2, the oracle and the count-blind critic,
    every method): (its folder's parent holding SPEC.toml, the `StudyResult`). Tests copy the
    study folder before changing it."""
    from milr.studies.study import run_study

    root = tmp_path_factory.mktemp("study")
    (root / "SPEC.toml").write_text(SPEC)
    return root, run_study(root / "SPEC.toml", root / "out", mug=shapes_mug)
