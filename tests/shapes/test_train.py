"""The ShapesWorld trainer runs end to end on a tiny budget and writes a checkpoint JanusMUG loads."""

from __future__ import annotations

import json

import torch
from safetensors.torch import load_file

from milr.mug.janus import JanusMUG
from milr.shapes.train import main


def test_trainer_writes_a_loadable_checkpoint(tmp_path):
    main(["--out", str(tmp_path), "--seed", "0", "--decoder-steps", "2", "--steps", "3", "--batch", "4",
          "--decoder-batch", "2", "--save-every", "3"])  # fmt: skip
    report = json.loads((tmp_path / "train.json").read_text())
    assert report["steps"] == 3 and report["seed"] == 0
    mug = JanusMUG.from_pretrained(tmp_path / "final", device="cpu")
    assert mug.num_image_tokens == 16 and mug.dtype == torch.float32
    text = mug.reason("a photo of a red circle", max_new_tokens=5)
    image = mug.draw("a photo of a red circle", generator=torch.Generator().manual_seed(0)).image
    assert len(text.ids) >= 1 and image.size == (64, 64)
    assert (tmp_path / "intermediate" / "step_00003" / "config.json").is_file()


def test_phases_trained_apart_and_merged_equal_one_sequential_run(tmp_path):
    common = ["--seed", "1", "--decoder-steps", "2", "--steps", "2", "--batch", "2", "--decoder-batch", "2"]
    main(["--out", str(tmp_path / "all"), *common])
    main(["--out", str(tmp_path / "dec"), "--phase", "decoder", *common])
    main(["--out", str(tmp_path / "lm"), "--phase", "lm", *common])
    main(
        ["--out", str(tmp_path / "merged"), "--merge", str(tmp_path / "dec" / "final"), str(tmp_path / "lm" / "final")]
    )
    a = load_file(tmp_path / "all" / "final" / "model.safetensors")
    b = (
        load_file(tmp_path / "merged" / "final" / "model.safetensors")
        if (tmp_path / "merged" / "final").exists()
        else load_file(tmp_path / "merged" / "model.safetensors")
    )
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
