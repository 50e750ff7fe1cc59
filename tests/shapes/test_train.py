"""The ShapesWorld trainer runs end to end on a tiny budget and writes a checkpoint JanusMUG loads."""

from __future__ import annotations

import json

import torch

from milr.mug.janus import JanusMUG
from milr.shapes.train import main


def test_trainer_writes_a_loadable_checkpoint(tmp_path):
    main(["--out", str(tmp_path), "--seed", "0", "--decoder-steps", "2", "--steps", "3", "--batch", "4"])
    report = json.loads((tmp_path / "train.json").read_text())
    assert report["steps"] == 3 and report["seed"] == 0
    mug = JanusMUG.from_pretrained(tmp_path / "final", device="cpu")
    assert mug.num_image_tokens == 16 and mug.dtype == torch.float32
    text = mug.reason("a photo of a red circle", max_new_tokens=5)
    image = mug.draw("a photo of a red circle", generator=torch.Generator().manual_seed(0)).image
    assert len(text.ids) >= 1 and image.size == (64, 64)
    assert (tmp_path / "intermediate" / "step_00000" / "config.json").is_file()
