"""JanusMUG on a tiny random Janus: latents, CFG loop parity with transformers, forcing, errors."""

from __future__ import annotations

import pytest
import torch
from transformers import LogitsProcessor, LogitsProcessorList

from milr.mug.janus import JanusMUG, ModelWeightsNotFoundError, image_prompt, render_chat
from milr.mug.tiny import tiny_mug


def test_render_chat_matches_deepseek_format():
    assert render_chat("hi") == "<|User|>: hi\n\n<|Assistant|>:"
    assert render_chat("hi", "sys") == "sys\n\n<|User|>: hi\n\n<|Assistant|>:"
    assert image_prompt("a cat", "  a cat, centred. ") == "a cat. a cat, centred."
    assert image_prompt("a cat", "") == "a cat"


def test_text_latents_equal_teacher_forced_forward(mug):
    roll = mug.reason("a photo of a red cat", max_new_tokens=12)
    assert len(roll.ids) == roll.latents.shape[0] > 0
    prompt = mug.reasoning_ids("a photo of a red cat")
    ids = torch.tensor([prompt + roll.ids[:-1]])
    with torch.no_grad():
        h = mug.model.model.language_model(input_ids=ids).last_hidden_state[0, len(prompt) - 1 :]
    torch.testing.assert_close(roll.latents, h, atol=1e-5, rtol=1e-4)
    # z_i predicts token i (greedy): argmax of lm_head reproduces the ids.
    assert mug.text_logits(roll.latents).argmax(-1).tolist() == roll.ids


def test_image_latents_equal_teacher_forced_forward(mug):
    roll = mug.draw("a photo of a cat", generator=torch.Generator().manual_seed(1))
    rows = mug.cfg_prompt_ids("a photo of a cat")
    with torch.no_grad():
        prompt_emb = mug.model.get_input_embeddings()(rows)
        toks = torch.tensor(roll.ids[:-1]).expand(2, -1)
        img_emb = mug.model.prepare_embeddings_for_image_generation(toks)
        h = mug.model.model.language_model(inputs_embeds=torch.cat([prompt_emb, img_emb], 1)).last_hidden_state
    expected = h[:, rows.shape[1] - 1 :].transpose(0, 1)  # [N, 2, H]
    torch.testing.assert_close(roll.latents, expected, atol=1e-5, rtol=1e-4)


class _Recorder(LogitsProcessor):
    """Records the raw [cond; uncond] scores transformers' image loop computes at every step."""

    def __init__(self):
        self.steps: list[torch.Tensor] = []

    def __call__(self, input_ids, scores):
        self.steps.append(scores.clone())
        return scores


def test_image_loop_agrees_with_transformers_generate():
    mug = tiny_mug(seed=3, grid=4)  # 16 image tokens
    model = mug.model
    gc = model.generation_config
    gc.bos_token_id, gc.pad_token_id = mug.ids["bos"], mug.ids["pad"]
    gc.generation_kwargs = {"boi_token_id": mug.ids["boi"]}
    ids = mug.cfg_prompt_ids("a photo of two dogs")[:1]
    rec = _Recorder()
    torch.manual_seed(0)
    hf_tokens = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        generation_mode="image",
        do_sample=True,
        guidance_scale=5.0,
        logits_processor=LogitsProcessorList([rec]),
        max_new_tokens=mug.num_image_tokens,
    )[0].tolist()
    # Teacher-force transformers' tokens through our loop and compare fused logits step by step.
    assert len(rec.steps) == mug.num_image_tokens == 16
    ours = mug.draw("a photo of two dogs", prefix_ids=hf_tokens, cfg=5.0, record_logits=True)
    assert ours.ids == hf_tokens
    for step, raw in enumerate(rec.steps):
        cond, uncond = raw[0], raw[1]
        theirs = uncond + 5.0 * (cond - uncond)
        torch.testing.assert_close(ours.fused_logits[step], theirs, atol=1e-4, rtol=1e-4)


def test_forced_prefixes_are_honoured(mug):
    text = mug.reason("a cat", prefix_ids=[mug.ids["bos"] + 10, 20, 30], max_new_tokens=8)
    assert text.ids[:3] == [mug.ids["bos"] + 10, 20, 30]
    img = mug.draw("a cat", prefix_ids=[5, 6], generator=torch.Generator().manual_seed(0))
    assert img.ids[:2] == [5, 6]
    img = mug.draw("a cat", forced={3: 7}, generator=torch.Generator().manual_seed(0))
    assert img.ids[3] == 7
    assert img.image.size == (32, 32) and img.image.mode == "RGB"


def test_unchanged_latents_reproduce_prefix_tokens(mug):
    text = mug.reason("a photo of a dog", max_new_tokens=10)
    assert mug.text_logits(text.latents[:3]).argmax(-1).tolist() == text.ids[:3]
    img = mug.draw("a photo of a dog", generator=torch.Generator().manual_seed(2), record_logits=True)
    torch.testing.assert_close(mug.image_logits(img.latents), img.fused_logits, atol=1e-5, rtol=1e-5)
    # At a near-zero temperature sampling is argmax: the latents reproduce the drawn prefix.
    cold = mug.draw("a photo of a dog", temperature=1e-6, generator=torch.Generator().manual_seed(2))
    assert mug.image_logits(cold.latents, temperature=1e-6).argmax(-1).tolist() == cold.ids


def test_same_generator_seed_same_image(mug):
    a = mug.draw("a dog", generator=torch.Generator().manual_seed(5))
    b = mug.draw("a dog", generator=torch.Generator().manual_seed(5))
    assert a.ids == b.ids


def test_understand_is_a_probability(mug):
    img = mug.draw("a cat", generator=torch.Generator().manual_seed(0)).image
    p = mug.understand(img, "is there a cat?")
    assert 0.0 < p < 1.0


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda m: m.reason(""), "prompt"),
        (lambda m: m.reason("   "), "prompt"),
        (lambda m: m.reason("cat " * 600), "prompt is too long"),
        (lambda m: m.reason("cat", prefix_ids=[10**6]), "prefix_ids"),
        (lambda m: m.draw("cat", prefix_ids=[10**6]), "prefix_ids"),
        (lambda m: m.draw("cat", cfg=0), "cfg"),
        (lambda m: m.draw("cat", temperature=0), "temperature"),
        (lambda m: m.draw(""), "image_prompt"),
        (lambda m: m.draw("cat", forced={99: 1}), "forced positions"),
        (lambda m: m.understand(m.draw("cat").image, ""), "question"),
    ],
)
def test_bad_input_names_the_argument(mug, call, name):
    with pytest.raises(ValueError, match=name):
        call(mug)


def test_missing_weights_give_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelWeightsNotFoundError, match="hf download deepseek-community/Janus-Pro-7B"):
        JanusMUG.from_pretrained("deepseek-community/Janus-Pro-7B")
    with pytest.raises(ModelWeightsNotFoundError, match="not available"):
        JanusMUG.from_pretrained(tmp_path / "nothing-here")


def test_weights_are_frozen(mug):
    assert not any(p.requires_grad for p in mug.model.parameters())


def test_checkpoint_defaults_set_config_and_reasoning_prompt(tmp_path):
    import json

    mug = tiny_mug(seed=0)
    default_ids = mug.reasoning_ids("a cat")
    mug.apply_defaults({"config": {"cfg": 2.0}, "prompts": {"reasoning": "plan: {prompt}", "reasoning_system": ""}})
    assert mug.recommended == {"cfg": 2.0}
    short = mug.reasoning_ids("a cat")
    assert len(short) < len(default_ids) and mug.tokenizer.decode(short[1:]).startswith("<|User|> : plan : a cat")
    with pytest.raises(ValueError, match="prompt"):
        mug.apply_defaults({"prompts": {"reasoning": "no placeholder"}})
    mug.model.save_pretrained(tmp_path)
    mug.tokenizer.save_pretrained(tmp_path)
    (tmp_path / "milr_defaults.json").write_text(json.dumps({"config": {"steps": 3}}))
    assert JanusMUG.from_pretrained(tmp_path, device="cpu").recommended == {"steps": 3}
