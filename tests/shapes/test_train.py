"""The ShapesWorld trainer runs end to end on a tiny budget and writes a checkpoint JanusMUG loads."""

from __future__ import annotations

import json
import random

import torch
from safetensors.torch import load_file

from milr.mug.janus import JanusMUG
from milr.shapes.model import DEFAULTS, build_model
from milr.shapes.train import example, main, text_loss
from milr.shapes.world import SIZE

TINY = ["--decoder-steps", "2", "--steps", "3", "--batch", "4", "--decoder-batch", "2"]


def test_trainer_writes_a_loadable_checkpoint_with_metrics(tmp_path):
    main(["--out", str(tmp_path), "--seed", "0", *TINY, "--save-every", "3", "--eval-per-tag", "1", "--cfg", "2"])
    report = json.loads((tmp_path / "train.json").read_text())
    assert report["steps"] == 3 and report["decoder_steps"] == 2 and report["seed"] == 0
    assert report["metrics"]["token_eval"]["n"] == 6 and 0 <= report["metrics"]["decoder"]["cells"] <= 1
    mug = JanusMUG.from_pretrained(tmp_path / "final", device="cpu")
    assert mug.num_image_tokens == 16 and mug.dtype == torch.float32
    assert mug.recommended["cfg"] == 2.0 and mug.reasoning_template == DEFAULTS["prompts"]["reasoning"]
    text = mug.reason("a photo of a red circle", max_new_tokens=5)
    image = mug.draw("a photo of a red circle", generator=torch.Generator().manual_seed(0)).image
    assert len(text.ids) >= 1 and image.size == (SIZE, SIZE)
    assert (tmp_path / "intermediate" / "step_00003" / "config.json").is_file()


def test_same_seed_same_weights_and_phases_merge_to_one_sequential_run(tmp_path):
    common = ["--seed", "1", *TINY, "--eval-per-tag", "0"]
    main(["--out", str(tmp_path / "all"), *common])
    main(["--out", str(tmp_path / "again"), *common])
    main(["--out", str(tmp_path / "dec"), "--phase", "decoder", *common])
    main(["--out", str(tmp_path / "lm"), "--phase", "lm", *common])
    main(
        ["--out", str(tmp_path / "merged"), "--merge", str(tmp_path / "dec" / "final"), str(tmp_path / "lm" / "final")]
    )
    a = load_file(tmp_path / "all" / "final" / "model.safetensors")
    for other in ("again/final", "merged"):
        b = load_file(tmp_path / other / "model.safetensors")
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), other
    fresh = load_file(tmp_path / "dec" / "final" / "model.safetensors")  # LM untrained there: must differ
    assert not all(torch.equal(a[k], fresh[k]) for k in a)


def test_minutes_cap_stops_training_early(tmp_path):
    main(
        [
            "--out",
            str(tmp_path),
            "--seed",
            "0",
            *TINY,
            "--steps",
            "100000",
            "--minutes",
            "0.001",
            "--eval-per-tag",
            "0",
        ]
    )
    report = json.loads((tmp_path / "train.json").read_text())
    assert report["steps"] < 100000 and report["decoder_steps"] < 100000


def test_shared_prefix_text_loss_equals_the_plain_forward():
    mug = build_model(0)
    rng = random.Random(0)
    batch = [example(mug, rng) for _ in range(4)]
    model = mug.model
    pad = mug.ids["pad"]
    seqs = [p + t for p, t, _, _ in batch]
    width = max(map(len, seqs))
    ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs])
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
    labels = torch.full_like(ids, -100)
    for i, (p, t, _, _) in enumerate(batch):
        labels[i, len(p) - 1 : len(p) - 1 + len(t)] = torch.tensor(t)
    h = model.model.language_model(input_ids=ids, attention_mask=mask).last_hidden_state
    plain = torch.nn.functional.cross_entropy(model.lm_head(h).flatten(0, 1), labels.flatten(), ignore_index=-100)
    assert torch.allclose(text_loss(mug, batch), plain, atol=1e-5)


def test_stop_at_ends_the_schedule_early_exactly_where_the_full_run_passes(tmp_path):
    common = ["--seed", "2", *TINY, "--steps", "6", "--phase", "lm", "--eval-per-tag", "0"]
    main(["--out", str(tmp_path / "full"), *common, "--stop-at", "0", "--save-every", "3"])
    main(["--out", str(tmp_path / "stopped"), *common, "--stop-at", "3"])
    assert json.loads((tmp_path / "stopped" / "train.json").read_text())["steps"] == 3
    a = load_file(tmp_path / "full" / "intermediate" / "step_00003" / "model.safetensors")
    b = load_file(tmp_path / "stopped" / "final" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)  # same schedule, same data: the same weights at step 3
    end = load_file(tmp_path / "full" / "final" / "model.safetensors")
    assert not all(torch.equal(a[k], end[k]) for k in a)
