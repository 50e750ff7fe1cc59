"""Mutation survivors of milr/nodes/critique.py, killed (benchmarks/mutate.py; results in
benchmarks/results/mutation_holdout.json): the optimised text prefix a trace shows is readable text,
without the model's special tokens."""

from __future__ import annotations

from milr.config import MILRConfig
from milr.orchestrator import MILR
from milr.traces import Trace
from tests.orchestrator.helpers import PixelCritic


def test_a_plan_that_opens_with_end_of_sentence_shows_no_special_token_in_its_prefix(mug, tmp_path, monkeypatch):
    eos = mug.ids["eos"]
    reason_batch = mug.reason_batch

    def opens_with_eos(prompts, prefix_ids=None, **kw):  # the model's first reasoning token is EOS
        rows = [list(p) or [eos] for p in (prefix_ids or [[] for _ in prompts])]
        return reason_batch(prompts, rows, **kw)

    monkeypatch.setattr(mug, "reason_batch", opens_with_eos)
    milr = MILR(mug, PixelCritic(), MILRConfig(steps=1, threshold=1.0, max_reasoning_tokens=8), out=tmp_path)
    milr("a photo of a red cat", name="run")
    first = Trace.load(tmp_path / "run").rounds[0]
    assert first.text_prefix_ids[0] == eos
    assert first.text_prefix == mug.tokenizer.decode(first.text_prefix_ids, skip_special_tokens=True)
    assert "end▁of▁sentence" not in first.text_prefix and first.reasoning.startswith(first.text_prefix.strip())
