"""The shipped ShapesWorld checkpoint: loads offline from the package, reasons and draws, its decoder
paints what its tokens say, and MILR improves on its round 0."""

from __future__ import annotations

import pytest
import torch

from milr.config import MILRConfig
from milr.mug.janus import JanusMUG, image_prompt
from milr.orchestrator import MILR
from milr.shapes import ShapesOracle, checkpoint_path
from milr.shapes.eval import decoder_agreement
from milr.shapes.world import SIZE, parse_plan

# Round 0 of this prompt fails with the shipped model at MILRConfig(seed=...) (checked below).
FAILING_PROMPT = ("a photo of a purple triangle", 0)


@pytest.fixture(scope="module")
def shapes_mug():
    return JanusMUG.from_pretrained(checkpoint_path(), device="cpu")


def test_checkpoint_loads_offline_reasons_and_draws(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    mug = JanusMUG.from_pretrained(checkpoint_path(), device="cpu")
    text = mug.reason("a photo of a red circle")
    assert text.ids[-1] == mug.ids["eos"]
    assert any(shape == "circle" for shape, _ in parse_plan(text.text).objects.values()), text.text
    image = mug.draw(image_prompt("a photo of a red circle", text.text), generator=torch.Generator().manual_seed(0))
    assert image.image.size == (SIZE, SIZE) and len(image.ids) == 16
    assert (checkpoint_path() / "model.safetensors").stat().st_size < 16 * 2**20
    assert mug.recommended["cfg"] > 0 and "{prompt}" in mug.reasoning_template


def test_the_oracle_reads_back_what_the_shipped_decoder_paints(shapes_mug):
    agreement = decoder_agreement(shapes_mug, n=50, seed=7)
    assert agreement["occupied_cells"] >= 0.98 and agreement["cells"] >= 0.98, agreement


def test_milr_beats_round_zero_on_a_prompt_round_zero_fails(shapes_mug, tmp_path):
    prompt, seed = FAILING_PROMPT
    config = MILRConfig(steps=20, seed=seed).with_recommended(shapes_mug.recommended)
    result = MILR(shapes_mug, ShapesOracle(), config, out=tmp_path)(prompt)
    assert result.rounds[0].score < 1.0  # round 0 fails ...
    assert result.score > result.rounds[0].score  # ... and MILR finds a better image
    again = MILR(shapes_mug, ShapesOracle(), config, out=tmp_path)(prompt)
    assert [r.score for r in again.rounds] == [r.score for r in result.rounds]  # seeded, deterministic
