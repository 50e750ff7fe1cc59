"""The ShapesWorld model is a real JanusForConditionalGeneration wired for 16 cell codes at 64 px."""

from __future__ import annotations

import pytest
import torch

import milr.shapes
from milr.shapes.model import DEFAULTS, build_model
from milr.shapes.world import GRID, NUM_CODES, SIZE, vocabulary


def test_model_draws_16_cell_codes_into_a_64_px_image_and_reasons_behind_its_short_instruction():
    mug = build_model(0)
    assert mug.num_image_tokens == GRID * GRID and mug.image_vocab >= NUM_CODES
    assert mug.decode_image([0] * (GRID * GRID)).size == (SIZE, SIZE)
    ids = mug.reasoning_ids("a photo of a red circle")
    assert "for : a photo of a red circle :" in mug.tokenizer.decode(ids, skip_special_tokens=True)
    assert mug.reasoning_template == DEFAULTS["prompts"]["reasoning"] and len(ids) < 20
    assert mug.tokenizer.unk_token_id not in mug.tokenizer.encode(" ".join(vocabulary()), add_special_tokens=False)


def test_same_seed_same_initial_weights():
    a, b = build_model(3).model.state_dict(), build_model(3).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = build_model(4).model.state_dict()
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_checkpoint_path_says_how_to_train_one_when_the_install_lacks_it(monkeypatch, tmp_path):
    monkeypatch.setattr(milr.shapes.resources, "files", lambda _name: tmp_path)
    with pytest.raises(FileNotFoundError, match="python -m milr.shapes.train"):
        milr.shapes.checkpoint_path()
