"""T2I-CompBench critics on tiny random BLIP and CLIP models (real transformers classes, CPU, offline)."""

from __future__ import annotations

import math
import re
import string

import pytest
import torch
from PIL import Image
from transformers import (
    BertTokenizer,
    BlipConfig,
    BlipForQuestionAnswering,
    BlipImageProcessorPil,
    BlipProcessor,
    CLIPImageProcessorPil,
    CLIPProcessor,
    CLIPTokenizerFast,
)

from milr.critics.base import BatchCritic, Critic
from milr.critics.mixer import Mixer
from milr.critics.t2i_compbench import (
    DROPPED_CHUNKS,
    MAX_CHUNKS,
    BlipVQACritic,
    ClipScoreCritic,
    T2ISpatialCritic,
    noun_phrases,
    position_score,
    spatial_parts,
    t2i_compbench_critic,
    unidet_frame,
)
from milr.critics.vision import WeightsUnavailableError
from tests.conftest import shared_path
from tests.critics.conftest import ForwardCounter, assert_same_critiques, tiny_clip_model

BLIP_WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "?", "a", "the", "red", "blue", "green"]
BLIP_WORDS += ["book", "bench", "bowl", "cat", "yes", "no"]


def blip_tokenizer(words=BLIP_WORDS) -> BertTokenizer:
    return BertTokenizer(vocab={w: i for i, w in enumerate(words)})


def tiny_blip(words=BLIP_WORDS, seed: int = 0):
    """(model, processor): BLIP VQA of a few thousand parameters, 32 px; a wide init so that
    answers differ between questions and images."""
    text = dict(
        vocab_size=len(words),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=32,
        bos_token_id=words.index("[DEC]"),  # the decoder start token
        pad_token_id=0,
        sep_token_id=words.index("[SEP]"),
        initializer_range=0.5,
    )
    vision = dict(
        image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16
    )
    torch.manual_seed(seed)
    model = BlipForQuestionAnswering(BlipConfig(text_config=text, vision_config={**vision, "initializer_range": 0.5}))
    processor = BlipProcessor(
        image_processor=BlipImageProcessorPil(size={"height": 32, "width": 32}), tokenizer=blip_tokenizer(words)
    )
    return model, processor


def tiny_clip(seed: int = 0):
    """(model, processor): CLIP with a character-level BPE tokenizer (no merges) of CLIP's own class."""
    chars = list(string.ascii_lowercase)
    vocab = ["<|startoftext|>", "<|endoftext|>", *chars, *(c + "</w>" for c in chars)]
    tokenizer = CLIPTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, merges=[])
    # pooled at the first <|endoftext|> (eos 1)
    model = tiny_clip_model(len(vocab), bos_token_id=0, eos_token_id=1, pad_token_id=1, max_positions=77, seed=seed)
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return model, CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)


def picture(seed: int) -> Image.Image:
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (30, 40, 3), generator=g, dtype=torch.uint8)
    return Image.fromarray(pixels.numpy())


@pytest.fixture(scope="module")
def blip():
    return tiny_blip()


@pytest.fixture(scope="module")
def clip():
    return tiny_clip()


# ---------------------------------------------------------------------------------------------- noun phrases
@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("a green bench and a blue bowl", ["a green bench", "a blue bowl"]),
        ("a round bagel and a square toaster.", ["a round bagel", "a square toaster"]),
        ("rubber gloves and leather gloves", ["rubber gloves", "leather gloves"]),
        ("A bathroom with white tile and a beige toilet.", ["A bathroom", "white tile", "a beige toilet"]),
        ("a round pizza and a rectangular piece of lasagna", ["a round pizza", "a rectangular piece", "lasagna"]),
        (
            "two white sheep, a black goat and a white goat in a field",
            ["two white sheep", "a black goat", "a white goat", "a field"],
        ),
        (
            "A woman in a white shirt and jeans holds a pink umbrella in the rain.",
            ["A woman", "a white shirt", "jeans", "a pink umbrella", "the rain"],
        ),
        ("A black and white cat sits in a white sink.", ["A black and white cat", "a white sink"]),
        (
            "A white bath tub sits empty in a tan, clean bathroom.",
            ["A white bath tub", "empty", "a tan, clean bathroom"],
        ),
        (
            "The metallic whisk and wooden bowl mix the fluffy batter for the cake on the plastic counter.",
            ["The metallic whisk", "wooden bowl", "the fluffy batter", "the cake", "the plastic counter"],
        ),
        ("a brown orange and a red sheep", ["a brown orange", "a red sheep"]),
        # T2I-CompBench's exclusions: 'top', 'the side', 'the left', 'the right'
        ("a cat on top of a box", ["a cat", "a box"]),
        ("a dog on the right of a cat, the left and the side", ["a dog", "a cat"]),
    ],
)
def test_noun_phrases_split_known_prompts(prompt, expected):
    assert noun_phrases(prompt) == expected


@pytest.mark.parametrize("category", ["color", "shape", "texture"])
def test_noun_phrases_on_t2i_compbench_val_prompts(category):
    lines = shared_path("benchmarks", "t2i-compbench", f"{category}_val.txt").read_text().splitlines()
    prompts = [line.strip() for line in lines if line.strip()]
    assert len(prompts) == 300
    template = re.compile(r"^((?:a|an) [a-z ]+?) and ((?:a|an) [a-z ]+?)\.?$")
    n_template = 0
    for prompt in prompts:
        chunks = noun_phrases(prompt)
        assert 1 <= len(chunks) <= MAX_CHUNKS, (prompt, chunks)
        for chunk in chunks:
            assert chunk and chunk == chunk.strip(), (prompt, chunk)
            assert chunk in prompt, (prompt, chunk)  # cut from the prompt as written
            assert chunk.lower() not in DROPPED_CHUNKS
        m = template.match(prompt)
        if m and not set(prompt.split()) & {"of", "with", "on", "in"}:
            # T2I-CompBench's two-object template, "a red book and a blue cup": exactly its two halves
            n_template += 1
            assert chunks == [m.group(1), m.group(2)], prompt
    assert n_template > 150  # most val prompts follow the template, so the check above bites


def test_noun_phrases_keep_the_first_eight():
    nouns = ["cat", "dog", "cup", "box", "hat", "pen", "car", "bus", "egg", "jar"]
    prompt = ", ".join(f"a red {n}" for n in nouns)
    assert noun_phrases(prompt) == [f"a red {n}" for n in nouns[:8]]
    assert noun_phrases(prompt, max_chunks=None) == [f"a red {n}" for n in nouns]
    assert noun_phrases("") == [] and noun_phrases("on the left of top.") == []


# ---------------------------------------------------------------------------------------------- BLIP-VQA
def yes_probability_alone(model, processor, image: Image.Image, question: str) -> float:
    """P(yes)/(P(yes)+P(no)) over the first generated token, one question at a time, through
    transformers' own `BlipForQuestionAnswering.generate`."""
    inputs = processor(images=image, text=question, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(
            **inputs, max_new_tokens=1, do_sample=False, output_logits=True, return_dict_in_generate=True
        )
    probs = out.logits[0][0].float().softmax(-1)
    yes, no = processor.tokenizer.convert_tokens_to_ids(["yes", "no"])
    return float(probs[yes] / (probs[yes] + probs[no]))


def test_blip_score_is_the_product_of_per_phrase_yes_probabilities(blip):
    model, processor = blip
    critic = BlipVQACritic(model, processor, device="cpu")
    assert isinstance(critic, Critic) and critic.name == "blip_vqa"
    assert not critic.model.training
    # 3, 2, 4 and 3 words: a batch of two equal lengths, two alone (padding would change the answers)
    prompt = "a red book and a cat with the green blue bowl on a blue bench"
    for seed in (0, 1):
        image = picture(seed)
        verdict = critic(image, prompt)
        chunks = verdict.details["chunks"]
        assert [c["chunk"] for c in chunks] == ["a red book", "a cat", "the green blue bowl", "a blue bench"]
        assert [c["question"] for c in chunks] == ["a red book?", "a cat?", "the green blue bowl?", "a blue bench?"]
        # each answer must equal its question asked alone, through transformers' own generate
        expected = [yes_probability_alone(model, processor, image, c["question"]) for c in chunks]
        assert [c["p_yes"] for c in chunks] == pytest.approx(expected, abs=1e-5)
        assert verdict.score == pytest.approx(math.prod(expected), abs=1e-5)
        assert len({round(p, 3) for p in expected}) > 1  # the tiny model does tell the questions apart
        assert verdict.details["fallback"] is False and verdict.error is None
    # and tells the images apart
    assert critic(picture(0), prompt).score != pytest.approx(critic(picture(1), prompt).score, abs=1e-4)


def test_blip_reads_yes_and_no_ids_from_the_tokenizer(blip):
    model, processor = blip
    verdict = BlipVQACritic(model, processor, device="cpu")(picture(0), "a cat")
    assert verdict.details["yes_no_ids"] == [BLIP_WORDS.index("yes"), BLIP_WORDS.index("no")]
    words = [w for w in BLIP_WORDS if w != "yes"]
    no_yes = BlipProcessor(image_processor=processor.image_processor, tokenizer=blip_tokenizer(words))
    with pytest.raises(ValueError, match="'yes' and 'no'"):
        BlipVQACritic(model, no_yes, device="cpu")


def test_blip_without_noun_phrases_asks_the_whole_prompt_and_abstains_on_empty(blip):
    model, processor = blip
    critic = BlipVQACritic(model, processor, device="cpu")
    image = picture(2)
    verdict = critic(image, "on the left.")  # its only chunk, 'the left', is excluded
    assert verdict.details["fallback"] is True
    assert [c["question"] for c in verdict.details["chunks"]] == ["on the left?"]
    assert verdict.score == pytest.approx(yes_probability_alone(model, processor, image, "on the left?"), abs=1e-5)
    empty = critic(image, "   ")
    assert empty.abstained and "non-empty prompt" in empty.error


def test_blip_image_size_resizes_and_interpolates_position_embeddings(blip):
    model, processor = blip
    seen = []
    model.vision_model.register_forward_pre_hook(lambda _m, args, kwargs: seen.append(kwargs), with_kwargs=True)
    try:
        default = BlipVQACritic(model, processor, device="cpu").yes_probabilities(picture(3), ["a red cat?"])
        larger = BlipVQACritic(model, processor, device="cpu", image_size=48).yes_probabilities(
            picture(3), ["a red cat?"]
        )
    finally:
        model.vision_model._forward_pre_hooks.clear()
    assert [tuple(k["pixel_values"].shape[-2:]) for k in seen] == [(32, 32), (48, 48)]
    assert [k["interpolate_pos_encoding"] for k in seen] == [False, True]
    assert 0 < larger[0] < 1 and larger != pytest.approx(default, abs=1e-6)


# ---------------------------------------------------------------------------------------------- CLIPScore
def cosine_by_hand(model, processor, image: Image.Image, prompt: str) -> float:
    pixels = processor.image_processor(images=image, return_tensors="pt")["pixel_values"]
    tokens = processor.tokenizer([prompt], return_tensors="pt")
    with torch.no_grad():
        image_feats = model.get_image_features(pixel_values=pixels).pooler_output[0]
        text_feats = model.get_text_features(**tokens).pooler_output[0]
    return float(image_feats @ text_feats / (image_feats.norm() * text_feats.norm()))


def test_clip_score_is_the_raw_cosine_clipped_to_the_unit_interval():
    model, processor = tiny_clip()
    critic = ClipScoreCritic(model, processor, device="cpu")
    assert isinstance(critic, Critic) and critic.name == "clip" and not critic.model.training
    cases = [(0, "a red book"), (1, "a blue bench and a green bowl"), (2, "a cat")]
    cosines = []
    for seed, prompt in cases:
        image = picture(seed)
        cos = cosine_by_hand(model, processor, image, prompt)
        verdict = critic(image, prompt)
        assert verdict.details["cosine"] == pytest.approx(cos, abs=1e-5)  # no ×100
        assert verdict.score == pytest.approx(min(1.0, max(0.0, cos)), abs=1e-5)
        cosines.append(cos)
    assert len({round(c, 3) for c in cosines}) == 3
    # flipping the image projection flips every cosine: the negative ones must score 0, not go below
    with torch.no_grad():
        model.visual_projection.weight.neg_()
    for (seed, prompt), cos in zip(cases, cosines, strict=True):
        verdict = critic(picture(seed), prompt)
        assert verdict.details["cosine"] == pytest.approx(-cos, abs=1e-5)
        assert verdict.score == pytest.approx(max(0.0, -cos), abs=1e-5)
    assert critic(picture(0), "").abstained


def test_built_models_need_their_processor(blip, clip):
    with pytest.raises(ValueError, match="processor"):
        BlipVQACritic(blip[0])
    with pytest.raises(ValueError, match="processor"):
        ClipScoreCritic(clip[0])


# ---------------------------------------------------------------------------------------------- weights
@pytest.mark.parametrize(("cls", "what"), [(BlipVQACritic, "BLIP-VQA"), (ClipScoreCritic, "CLIP")])
def test_missing_weights_fail_with_the_model_and_the_fix(tmp_path, cls, what):
    missing = str(tmp_path / "no-weights-here")
    critic = cls(missing, device="cpu")  # lazy: nothing loads yet
    assert critic.model is None
    with pytest.raises(WeightsUnavailableError) as err:
        critic(picture(0), "a red book")
    message = str(err.value)
    assert what in message and repr(missing) in message and "hf download" in message
    assert not critic._loaded  # a later call tries again instead of scoring with nothing


# ---------------------------------------------------------------------------------------------- categories
def test_category_helper_maps_t2i_compbench_categories():
    for category in ("color", "shape", "texture", "Color"):
        critic = t2i_compbench_critic(category, device="cpu")
        assert isinstance(critic, BlipVQACritic) and critic.model is None  # nothing loaded
        assert critic.model_name == "Salesforce/blip-vqa-base"
    for category in ("non_spatial", "non-spatial"):
        critic = t2i_compbench_critic(category, device="cpu", clip_model="my/clip")
        assert isinstance(critic, ClipScoreCritic) and critic.model_name == "my/clip"
    mixed = t2i_compbench_critic("complex", device="cpu")
    assert isinstance(mixed, Mixer) and mixed.policy == "fail" and mixed.weights == [1.0, 1.0]
    assert [c.name for c in mixed.critics] == ["blip_vqa", "clip"]
    fake = t2i_compbench_critic("spatial", device="cpu")
    assert isinstance(fake, T2ISpatialCritic) and fake.name == "t2i_spatial"
    with pytest.raises(ValueError, match="unknown T2I-CompBench category 'colour'") as err:
        t2i_compbench_critic("colour")
    for valid in ("color", "shape", "texture", "non_spatial", "complex", "spatial"):
        assert valid in str(err.value)


# ---------------------------------------------------------------------------------------------- spatial
def test_every_spatial_val_prompt_splits_into_two_objects_and_a_relation():
    prompts = shared_path("benchmarks", "t2i-compbench", "spatial_val.txt").read_text().splitlines()
    parts = [spatial_parts(p) for p in prompts]
    assert len(parts) == 300 and all(p is not None and p[0] and p[2] for p in parts)
    assert spatial_parts("a girl on the top of a frog") == ("person", "on the top of", "frog")
    assert spatial_parts("a traffic light near an apple.") == ("traffic light", "near", "apple")
    assert spatial_parts("a photo of a cat") is None


@pytest.mark.parametrize(
    ("relation", "box2", "expected"),
    [
        ("on the left of", (60, 0, 70, 10), 1.0),  # box1 (0,0,10,10) is left of box2, no overlap
        ("on the right of", (60, 0, 70, 10), 0.0),
        ("on the left of", (5, 0, 15, 10), 0.1 / (50 / 150)),  # overlapping: 0.1 / IoU
        ("on the top of", (0, 60, 10, 70), 1.0),  # y points down: box1 above box2
        ("on the bottom of", (0, 60, 10, 70), 0.0),
        ("on the left of", (20, 60, 30, 70), 0.0),  # mostly vertical offset: not "left of"
        ("near", (100, 0, 110, 10), 1.0),  # |dy| = 0 < 150
        ("next to", (300, 400, 310, 410), 150 / 400),
        ("on top of", (0, 60, 10, 70), 0.0),  # listed but never scored by T2I-CompBench
    ],
)
def test_position_score_follows_t2i_compbench(relation, box2, expected):
    assert position_score(relation, (0, 0, 10, 10), box2) == pytest.approx(expected)


class ScriptedDetector:
    def __init__(self, detections):
        self.detections, self.asked = detections, []

    def __call__(self, image, classes):
        self.asked.append(list(classes))
        return self.detections


def test_spatial_score_combines_confidences_and_position_with_the_half_cut():
    from milr.critics.geneval import Detection

    image = Image.new("RGB", (512, 512), "white")
    left, right = (0, 0, 100, 100), (300, 0, 400, 100)
    both = ScriptedDetector([Detection("dog", left, 0.9), Detection("cat", right, 0.8), Detection("dog", right, 0.5)])
    verdict = T2ISpatialCritic(both)(image, "a dog on the left of a cat")
    assert both.asked == [["dog", "cat"]]
    assert verdict.score == pytest.approx(0.25 * 0.9 + 0.25 * 0.8 + 0.5)  # the most confident dog is used
    assert verdict.details["position"] == 1.0
    wrong_side = T2ISpatialCritic(both)(image, "a dog on the right of a cat")
    assert wrong_side.score == 0.0 and wrong_side.details["raw"] == pytest.approx(0.425)  # < 0.5 → 0
    one = T2ISpatialCritic(ScriptedDetector([Detection("dog", left, 0.9)]))(image, "a dog near a cat")
    assert one.score == 0.0 and one.details["raw"] == pytest.approx(0.225)
    faint = T2ISpatialCritic(ScriptedDetector([Detection("dog", left, 0.2), Detection("cat", right, 0.9)]))
    assert faint(image, "a dog near a cat").details["confidences"] == [None, 0.9]  # under box_threshold
    abstained = T2ISpatialCritic(both)(image, "a photo of a dog")
    assert abstained.score is None and "relation" in abstained.error


@pytest.mark.parametrize(
    ("size", "frame"),
    [  # what torchvision 0.29's Resize(size=479, max_size=480) gives these PIL images
        ((512, 512), (479, 479)),
        ((384, 384), (479, 479)),  # smaller images are enlarged
        ((1024, 1024), (479, 479)),
        ((512, 768), (320, 480)),  # the longer side would pass 480: capped, the shorter truncated
        ((768, 512), (480, 320)),
        ((480, 640), (360, 480)),
        ((1920, 1080), (480, 270)),
        ((300, 1000), (144, 480)),
    ],
)
def test_unidet_frame_is_torchvisions_resize_479_max_480(size, frame):
    assert unidet_frame(*size) == frame


def near_verdict(size, box1, box2):
    """T2ISpatialCritic on "a dog near a cat" with both found at confidence 0.9 in an image of `size`."""
    from milr.critics.geneval import Detection

    detector = ScriptedDetector([Detection("dog", box1, 0.9), Detection("cat", box2, 0.9)])
    return T2ISpatialCritic(detector)(Image.new("RGB", size, "white"), "a dog near a cat")


@pytest.mark.parametrize(
    ("size", "offset", "expected"),
    [
        # the case: 155 px of a 512 px image are 145.0 px of UniDet's 479 px frame, under 150
        ((512, 512), 155, 1.0),
        # the boundary: 150 px of the frame are 150·512/479 = 160.3 px of the image
        ((512, 512), 160, 1.0),
        ((512, 512), 161, 150 / (161 * 479 / 512)),
        ((512, 512), 200, 150 / (200 * 479 / 512)),
        # a 1024 px image shrinks to the same frame: 310 px there are 145.0 px
        ((1024, 1024), 310, 1.0),
        ((1024, 1024), 330, 150 / (330 * 479 / 1024)),
        # 512 × 768 → 320 × 480: both axes scaled by 0.625, so the boundary is 240 px
        ((512, 768), 239, 1.0),
        ((512, 768), 250, 150 / (250 * 0.625)),
    ],
)
def test_near_distance_is_measured_in_unidets_frame(size, offset, expected):
    verdict = near_verdict(size, (0, 0, 10, 10), (offset, offset, offset + 10, offset + 10))
    assert verdict.details["position"] == pytest.approx(expected, abs=1e-9)
    assert verdict.details["unidet_frame"] == list(unidet_frame(*size))
    assert verdict.score == pytest.approx(0.25 * 0.9 * 2 + 0.5 * expected)


# ---------------------------------------------------------------------------------------------- batches
BATCH_PROMPTS = [
    "a red book and a cat with the green blue bowl on a blue bench",  # four questions of 3 to 5 tokens
    "a cat",
    "   ",  # abstains
    "the blue bowl and a green bench",
    "a red book and a cat with the green blue bowl on a blue bench",
]


def test_blip_score_batch_equals_scoring_each_image_alone(blip):
    model, processor = blip
    critic = BlipVQACritic(model, processor, device="cpu")
    assert isinstance(critic, BatchCritic)
    images = [picture(seed) for seed in range(len(BATCH_PROMPTS))]
    alone = [critic(image, prompt) for image, prompt in zip(images, BATCH_PROMPTS, strict=True)]
    with ForwardCounter(model.vision_model) as vision, ForwardCounter(model.text_encoder) as text:
        together = critic.score_batch(images, BATCH_PROMPTS, [None] * len(images))
    assert_same_critiques(together, alone)
    assert together[2].abstained and "non-empty prompt" in together[2].error
    assert len({round(c.score, 4) for c in together if not c.abstained}) == 4  # the images tell apart
    assert vision.sizes == [4]  # one vision forward over the four images with a prompt
    # questions of all images batched by token length: as many text forwards as distinct lengths
    lengths = {
        len(processor.tokenizer(c["question"])["input_ids"]) for v in alone if v.details for c in v.details["chunks"]
    }
    assert len(text.sizes) == len(lengths) and sum(text.sizes) == 4 + 1 + 2 + 4
    small = BlipVQACritic(model, processor, device="cpu", batch_size=3)
    with ForwardCounter(model.vision_model) as vision:
        assert_same_critiques(small.score_batch(images, BATCH_PROMPTS, [None] * len(images)), alone)
    assert vision.sizes == [3, 1]


def test_clip_score_batch_equals_scoring_each_image_alone(clip):
    model, processor = clip
    critic = ClipScoreCritic(model, processor, device="cpu")
    assert isinstance(critic, BatchCritic)
    images = [picture(seed) for seed in range(len(BATCH_PROMPTS))]
    alone = [critic(image, prompt) for image, prompt in zip(images, BATCH_PROMPTS, strict=True)]
    with ForwardCounter(model.text_model) as text:
        together = critic.score_batch(images, BATCH_PROMPTS, [None] * len(images))
    assert_same_critiques(together, alone)  # prompts of different lengths padded together
    assert together[2].abstained and "non-empty prompt" in together[2].error
    assert len({round(c.details["cosine"], 4) for c in together if not c.abstained}) == 4
    assert text.sizes == [4]
    with ForwardCounter(model.text_model) as text:
        ClipScoreCritic(model, processor, device="cpu", batch_size=2).score_batch(images, BATCH_PROMPTS, [None] * 5)
    assert text.sizes == [2, 2]


def test_spatial_score_batch_equals_scoring_each_image_alone(gdino_parts):
    from milr.critics.vision import GroundingDinoDetector

    model, processor = gdino_parts
    critic = T2ISpatialCritic(GroundingDinoDetector(model, processor, min_score=0.0), box_threshold=0.0)
    assert isinstance(critic, BatchCritic)
    prompts = ["a car on the left of a dog", "a cat near a bench", "a photo of a dog", "a teddy bear next to a car"]
    images = [picture(seed).resize((100, 80)) for seed in range(len(prompts))]
    alone = [critic(image, prompt) for image, prompt in zip(images, prompts, strict=True)]
    with ForwardCounter(model) as forwards:
        together = critic.score_batch(images, prompts, [None] * len(prompts))
    assert_same_critiques(together, alone, abs=1e-4)
    assert together[2].abstained and "relation" in together[2].error
    assert len({c.details["raw"] for c in together if not c.abstained}) == 3
    assert forwards.sizes == [3]


def test_the_complex_mixer_scores_a_batch_with_one_forward_per_model(blip, clip):
    mixer = Mixer([BlipVQACritic(*blip, device="cpu"), ClipScoreCritic(*clip, device="cpu")], policy="fail")
    images = [picture(seed) for seed in range(len(BATCH_PROMPTS))]
    alone = [mixer(image, prompt) for image, prompt in zip(images, BATCH_PROMPTS, strict=True)]
    with ForwardCounter(blip[0].vision_model) as blip_vision, ForwardCounter(clip[0].vision_model) as clip_vision:
        together = mixer.score_batch(images, BATCH_PROMPTS, [None] * len(images))
    assert_same_critiques(together, alone)
    assert blip_vision.sizes == [4] and clip_vision.sizes == [4]
