"""Per-row work of a batched draw: one sampling call for every row (`sample_rows`) draws exactly what
`torch.multinomial` draws from each row's own generator, and the VQ decode of a batch runs side by
side on a CPU's free cores with each image's numbers unchanged."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

import milr.mug.janus as janus
from milr.mug.janus import sample_rows


@pytest.mark.parametrize("vocab", [2, 32, 16384])
def test_sample_rows_draws_what_multinomial_draws_and_leaves_each_generator_alike(vocab):
    rows = 6
    logits = torch.randn(rows, vocab, generator=torch.Generator().manual_seed(vocab)) * 4
    probs = torch.softmax(logits, -1)
    for trial in range(40):
        ours = [torch.Generator().manual_seed(100 * trial + b) for b in range(rows)]
        theirs = [torch.Generator().manual_seed(100 * trial + b) for b in range(rows)]
        picks = sample_rows(probs, ours, [None] * rows)
        expected = [torch.multinomial(probs[b], 1, generator=theirs[b]).item() for b in range(rows)]
        assert picks.tolist() == expected
        assert all(torch.equal(a.get_state(), b.get_state()) for a, b in zip(ours, theirs, strict=True))


def test_a_forced_row_gets_its_token_and_draws_nothing():
    probs = torch.softmax(torch.randn(3, 32, generator=torch.Generator().manual_seed(0)), -1)
    gens = [torch.Generator().manual_seed(b) for b in range(3)]
    untouched = gens[1].get_state()
    fresh = [torch.Generator().manual_seed(b) for b in (0, 2)]
    picks = sample_rows(probs, gens, [None, 7, None]).tolist()
    assert picks[1] == 7
    assert torch.equal(gens[1].get_state(), untouched)
    assert [picks[0], picks[2]] == [
        torch.multinomial(probs[b], 1, generator=g).item() for b, g in zip((0, 2), fresh, strict=True)
    ]


def test_batch_vq_decode_runs_side_by_side_and_equals_each_image_alone(mug, monkeypatch, one_thread):
    rows = [torch.randint(0, mug.image_vocab, (mug.num_image_tokens,)).tolist() for _ in range(5)]
    alone = [np.asarray(mug.decode_image(ids)) for ids in rows]
    seen: list[tuple[str, int, bool]] = []
    real = janus.JanusMUG._decode_one

    def spy(self, ids):
        seen.append((threading.current_thread().name, torch.get_num_threads(), torch.is_grad_enabled()))
        return real(self, ids)

    monkeypatch.setattr(janus, "_cores", lambda: 4)  # a 4-core machine, whatever this one has
    monkeypatch.setattr(janus.JanusMUG, "_decode_one", spy)
    batched = mug.decode_images(rows)
    assert all((np.asarray(b) == a).all() for a, b in zip(alone, batched, strict=True))
    names = {name for name, _, _ in seen}  # the pool reuses an idle thread: up to 4 of them
    assert 2 <= len(names) <= 4 and all(name.startswith("milr-vq") for name in names)
    assert {threads for _, threads, _ in seen} == {1}  # each at the caller's intra-op thread count
    monkeypatch.setattr(janus, "_cores", lambda: 1)  # no free core: in the caller's thread, as before
    seen.clear()
    mug.decode_images(rows[:2])
    assert {name for name, _, _ in seen} == {threading.current_thread().name}


def test_decode_threads_take_the_caller_s_thread_count_not_the_process_default(mug, monkeypatch):
    """Called from a node's worker thread at one intra-op thread while other threads set other counts:
    each decode thread must run at one, or its floats could differ from the image decoded alone."""
    monkeypatch.setattr(janus, "_cores", lambda: 2)
    counts: list[int] = []
    real = janus.JanusMUG._decode_one
    monkeypatch.setattr(
        janus.JanusMUG, "_decode_one", lambda self, ids: (counts.append(torch.get_num_threads()), real(self, ids))[1]
    )
    before = torch.get_num_threads()
    torch.set_num_threads(2)

    def node():  # as `node_threads` sets a node's count
        torch.get_num_threads()
        torch.set_num_threads(1)
        # Another thread sets its own count meanwhile; torch hands a new thread the last count set anywhere.
        other = threading.Thread(target=torch.set_num_threads, args=(3,))
        other.start()
        other.join()
        return mug.decode_images([[0] * mug.num_image_tokens, [1] * mug.num_image_tokens])

    try:
        with ThreadPoolExecutor(1) as pool:
            pool.submit(node).result()
    finally:
        torch.set_num_threads(before)
    assert counts == [1, 1]
