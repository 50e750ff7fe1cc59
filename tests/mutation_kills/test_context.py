"""Mutation survivors of milr/nodes/context.py, killed (benchmarks/mutate.py; results in
benchmarks/results/mutation.json): MILRContext's documented default and bound, the writer it
reopens for a run another process started, what `release` frees, a new run's empty store and the
error for a prefix that is not optimised."""

from __future__ import annotations

import pytest
import torch

from milr.config import MILRConfig
from milr.critics.base import Critique
from milr.nodes.context import LatentStore, MILRContext
from tests.traces.helpers import write_run


def critic(image, prompt, spec=None):
    return Critique(critic="flat", score=0.5)


def context(mug, tmp_path, **kw) -> MILRContext:
    return MILRContext(mug=mug, critic=critic, config=MILRConfig(steps=1), out=tmp_path, **kw)


def test_sixteen_runs_share_a_decode_by_default_and_one_is_allowed(mug, tmp_path):
    assert context(mug, tmp_path).max_batch == 16  # the README's default
    assert context(mug, tmp_path, max_batch=1).max_batch == 1
    with pytest.raises(ValueError, match="max_batch must be >= 1, got 0"):
        context(mug, tmp_path, max_batch=0)


def test_a_run_started_elsewhere_is_reopened_in_its_own_folder(mug, tmp_path):
    write_run(tmp_path / "run-a", rounds=1).close()  # another process wrote it and let go
    ctx = context(mug, tmp_path)
    writer = ctx.writer("run-a")
    try:
        assert writer.run_dir == tmp_path / "run-a" and ctx.writer("run-a") is writer
    finally:
        ctx.close()
    assert ctx.writers == {}


def test_release_frees_the_runs_tensors_and_writer(mug, tmp_path):
    write_run(tmp_path / "run-a", rounds=1).close()
    ctx = context(mug, tmp_path)
    ctx.store("run-a")
    ctx.writer("run-a")
    ctx.release("run-a")
    assert "run-a" not in ctx.stores and "run-a" not in ctx.writers
    ctx.writer("run-a").close()  # the lock was let go: the folder opens again


def test_a_new_runs_store_holds_nothing_until_its_first_round():
    store = LatentStore()
    assert (store.text, store.image, store.generator, store.reasoning, store.image_out) == (None,) * 5
    assert not store.ready


def test_a_prefix_that_is_not_optimised_is_refused_by_name(mug):
    config = MILRConfig(optimize=["text"])
    store = LatentStore()
    store.start(mug, config)
    store.capture(mug, config, mug.reason("a photo of a cat", max_new_tokens=6), torch.empty(0))
    assert store.prefix("text") is store.text and store.image is None
    with pytest.raises(RuntimeError, match="no image prefix: it is not in MILRConfig.optimize"):
        store.prefix("image")
