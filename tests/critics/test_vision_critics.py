"""DetectorCritic, GenEvalOracle and the CLIP colour path end to end on tiny random transformers models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from milr.critics import (
    BatchCritic,
    ClipColorClassifier,
    Detection,
    DetectorCritic,
    GenEvalOracle,
    GroundingDinoDetector,
    Mask2FormerDetector,
    PromptSpec,
    WeightsUnavailableError,
)
from milr.critics.base import COCO_CLASSES, COLORS
from milr.critics.detector import soft_parts
from milr.critics.geneval import compute_iou, select_detections
from milr.critics.vision import crop_object, grounding_caption, mask_box, token_positions
from tests.critics.conftest import ForwardCounter, assert_same_critiques

RGB = {
    "red": (220, 20, 20),
    "orange": (255, 140, 0),
    "yellow": (250, 230, 30),
    "green": (30, 160, 40),
    "blue": (30, 60, 220),
    "purple": (130, 40, 170),
    "pink": (250, 150, 200),
    "brown": (120, 70, 30),
    "black": (10, 10, 10),
    "white": (245, 245, 245),
}


def two_halves(left="blue", right="yellow", size=(40, 20)) -> Image.Image:
    img = Image.new("RGB", size, RGB[left])
    img.paste(RGB[right], (size[0] // 2, 0, size[0], size[1]))
    return img


def solid_rows(clf: ClipColorClassifier) -> torch.Tensor:
    """A colour 'classifier' whose row for each colour is the embedding of a patch of that colour."""
    return clf.image_embeddings([Image.new("RGB", (16, 16), RGB[c]) for c in COLORS])


class Spy:
    """Wraps a colour classifier and records what it was asked."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def __call__(self, image, detections, cls):
        out = self.inner(image, detections, cls)
        self.calls.append((cls, list(detections), out))
        return out


# --------------------------------------------------------------------------- crops and CLIP
def test_crop_pastes_the_mask_on_genevals_grey():
    image = Image.new("RGB", (20, 20), RGB["red"])
    mask = np.zeros((20, 20), dtype=bool)
    mask[:, :5] = True
    crop = crop_object(image, Detection("cat", (0, 0, 10, 10), mask=mask))
    assert crop.size == (10, 10)
    assert crop.getpixel((2, 2)) == RGB["red"] and crop.getpixel((7, 2)) == (153, 153, 153)
    assert crop_object(image, Detection("cat", (0, 0, 10, 10)), background=None).getpixel((7, 2)) == RGB["red"]
    assert crop_object(image, Detection("cat", (5, 5, 5, 5))).size == (1, 1)  # degenerate box: one pixel


def test_clip_image_path_picks_the_crops_colour(clip_parts):
    clf = ClipColorClassifier(*clip_parts)
    clf._classifiers["car"] = solid_rows(clf)
    dets = [Detection("car", (0, 0, 20, 20)), Detection("car", (20, 0, 40, 20))]
    assert clf(two_halves("blue", "yellow"), dets, "car") == ["blue", "yellow"]
    assert clf(two_halves("pink", "black"), dets, "car") == ["pink", "black"]
    assert clf(two_halves(), [], "car") == []


def test_clip_text_path_averages_genevals_templates(clip_parts):
    model, processor, tokenizer = clip_parts
    seen = []

    def recording_tokenizer(texts, **kw):
        seen.extend(texts)
        return tokenizer(texts, **kw)

    clf = ClipColorClassifier(model, processor, recording_tokenizer)
    rows = clf.class_embeddings("car")
    assert rows.shape == (10, 16)
    assert torch.allclose(rows.norm(dim=-1), torch.ones(10), atol=1e-5)
    assert len(seen) == 30 and seen[:3] == [
        "a photo of a red car",
        "a photo of a red-colored car",
        "a photo of a red object",
    ]
    assert not torch.allclose(rows[0], rows[1])
    clf.class_embeddings("car")
    assert len(seen) == 30  # cached per class
    picked = clf(two_halves(), [Detection("car", (0, 0, 20, 20))], "car")
    assert picked[0] in COLORS


# --------------------------------------------------------------------------- GroundingDINO and DetectorCritic
def test_caption_and_token_spans(gdino_parts):
    caption, spans = grounding_caption(["car", "teddy bear"])
    assert caption == "car. teddy bear." and spans == [(0, 3), (5, 15)]
    _, processor = gdino_parts
    offsets = processor.tokenizer(caption, return_offsets_mapping=True)["offset_mapping"]
    ids = processor.tokenizer(caption)["input_ids"]
    car, bear = token_positions(offsets, spans[0]), token_positions(offsets, spans[1])
    assert processor.tokenizer.convert_ids_to_tokens([ids[i] for i in car]) == ["car"]
    assert processor.tokenizer.convert_ids_to_tokens([ids[i] for i in bear]) == ["teddy", "bear"]


def test_grounding_dino_detector_scores_queries_by_class_tokens(gdino_parts):
    model, processor = gdino_parts
    detector = GroundingDinoDetector(model, processor, min_score=0.0)
    image = two_halves(size=(100, 80))
    dets = detector(image, ["car", "teddy bear"])
    assert len(dets) == model.config.num_queries
    assert {d.cls for d in dets} <= {"car", "teddy bear"}
    # recompute one query by hand: the highest sigmoid over its class's tokens, boxes in pixels
    inputs = processor(images=image, text="car. teddy bear.", return_tensors="pt")
    with torch.no_grad():
        out = model(**inputs)
    probs = out.logits[0].sigmoid()
    best = max(dets, key=lambda d: d.score)
    expected = max(probs[:, [1]].max().item(), probs[:, [3, 4]].max().item())
    assert best.score == pytest.approx(expected, abs=1e-5)
    cx, cy, w, h = out.pred_boxes[0][0].tolist()
    assert dets[0].box == pytest.approx(((cx - w / 2) * 100, (cy - h / 2) * 80, (cx + w / 2) * 100, (cy + h / 2) * 80))
    assert detector(image, []) == []


def test_detector_critic_end_to_end(gdino_parts, clip_parts):
    critic = DetectorCritic(
        GroundingDinoDetector(*gdino_parts, min_score=0.0), ClipColorClassifier(*clip_parts), box_threshold=0.0
    )
    critique = critic(two_halves(size=(100, 80)), "a photo of two red cars left of a dog")
    assert critique.critic == "detector" and 0.0 <= critique.score <= 1.0
    reqs = critique.details["requirements"]
    assert [r["requirement"].split(" (")[0] for r in reqs] == [
        "at least 1 dog",
        "exactly 2 car",
        "red car",
        "car left of dog",
    ]
    assert critique.score == pytest.approx(sum(r["score"] for r in reqs) / 4)
    detected = critique.details["detected"]
    assert set(detected) <= {"car", "dog"} and all(len(v) <= 16 for v in detected.values())
    for boxes in detected.values():  # NMS at 0.5 ran
        assert all(compute_iou(a[:4], b[:4]) < 0.5 for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    assert isinstance(critique.details["geneval_correct"], bool)
    blind = GroundingDinoDetector(*gdino_parts, min_score=1.0)  # sigmoid scores never exceed 1
    nothing = DetectorCritic(blind, ClipColorClassifier(*clip_parts), box_threshold=0.0)
    empty = nothing(two_halves(size=(100, 80)), "a photo of two red cars left of a dog")
    assert empty.score == 0.0 and empty.details["detected"] == {}


def test_detector_critic_abstains_without_a_spec():
    critic = DetectorCritic(lambda image, classes: [], lambda *a: [])
    critique = critic(two_halves(), "an astronaut riding a horse on mars")
    assert critique.score is None and "GenEval-style" in critique.error


def test_soft_scores_follow_the_authors_mixed_reward():
    def colors_of(dets, cls):
        return [d.color for d in dets]

    spec = PromptSpec.parse("a photo of two red cars left of a dog")

    def score(dets):
        detected = select_detections(dets, spec.tag, counting_threshold=None, max_overlap=0.5)
        return [p.score for p in soft_parts(spec, detected, colors_of)]

    dog = Detection("dog", (60, 0, 70, 10), 0.9)
    red1, red2 = Detection("car", (0, 0, 10, 10), 0.9, "red"), Detection("car", (20, 0, 30, 10), 0.8, "red")
    assert score([dog, red1, red2]) == [1.0, 1.0, 1.0, 1.0]
    blue2 = Detection("car", (20, 0, 30, 10), 0.8, "blue")
    assert score([dog, red1, blue2]) == [1.0, 1.0, 0.5, 1.0]  # one of two cars has the wrong colour
    third = Detection("car", (40, 0, 50, 10), 0.7, "red")
    assert score([dog, red1, red2, third]) == [1.0, 0.2, 1.0, 1.0]  # three cars: wrong count
    assert score([dog, red1]) == [1.0, 0.2, 0.5, 1.0]
    assert score([red1, red2]) == [0.0, 1.0, 1.0, 0.0]  # no dog: no relation either
    assert score([]) == [0.0, 0.0, 0.0, 0.0]
    right_of = Detection("dog", (-40, 0, -30, 10), 0.9)
    assert score([right_of, red1, red2])[3] == 0.0


# --------------------------------------------------------------------------- Mask2Former and GenEvalOracle
def test_mask2former_detector_gives_masks_and_mask_boxes(m2f_parts):
    model, processor = m2f_parts
    detector = Mask2FormerDetector(model, processor, min_score=0.0)
    assert detector.names() == list(COCO_CLASSES)
    image = two_halves(size=(80, 60))
    dets = detector(image)
    assert dets and all(d.cls in COCO_CLASSES for d in dets)
    for d in dets:
        assert d.mask.shape == (60, 80) and d.mask.any()
        assert d.box == mask_box(d.mask)
    some = dets[0].cls
    assert {d.cls for d in detector(image, [some])} == {some}


def test_geneval_oracle_colour_path_end_to_end(m2f_parts, clip_parts):
    model, processor = m2f_parts
    detector = Mask2FormerDetector(model, processor, label_names=["cat"] * 80, min_score=0.0)
    for colour, score in (("red", 1.0), ("blue", 0.0)):
        # paste masks on the image's own colour, so that every crop is that colour whatever the random mask
        clf = ClipColorClassifier(*clip_parts, background=f"rgb{RGB[colour]}")
        clf._classifiers["cat"] = solid_rows(clf)  # make CLIP's answer checkable: the crop's own colour
        spy = Spy(clf)
        oracle = GenEvalOracle(detector, spy, threshold=0.0)
        critique = oracle(Image.new("RGB", (80, 60), RGB[colour]), "a photo of a red cat")
        ((cls, found, colors),) = spy.calls
        assert cls == "cat" and len(found) == 1 and found[0].mask.shape == (60, 80)
        assert found[0].score == max(d[4] for d in critique.details["detected"]["cat"])  # most confident first
        assert colors == [colour] and critique.score == score
        assert critique.details["requirements"][0]["colors"] == [colour]
        assert critique.critic == "geneval" and critique.details["tag"] == "colors"
    assert critique.rationale == "expected red cat>=1, found 0 red; and 1 blue"


def test_geneval_oracle_counting_threshold_with_a_plain_detector():
    cups = [Detection("cup", (0, 0, 10, 10), 0.95), Detection("cup", (20, 0, 30, 10), 0.91)]
    oracle = GenEvalOracle(lambda image, classes: [*cups, Detection("cup", (40, 0, 50, 10), 0.89)], lambda *a: [])
    critique = oracle(Image.new("RGB", (60, 20)), "a photo of two cups")
    assert critique.score == 1.0 and critique.rationale == "correct"
    oracle = GenEvalOracle(lambda image, classes: [*cups, Detection("cup", (40, 0, 50, 10), 0.91)], lambda *a: [])
    critique = oracle(Image.new("RGB", (60, 20)), "a photo of two cups")
    assert critique.score == 0.0 and critique.rationale == "expected cup<3, found 3"
    abstain = oracle(Image.new("RGB", (60, 20)), "a unicorn")
    assert abstain.score is None and "GenEval-style" in abstain.error


def test_default_models_load_lazily_and_fail_clearly(tmp_path):
    oracle, critic = GenEvalOracle(), DetectorCritic()  # nothing is loaded yet
    assert oracle.detector.model is None and oracle.color_classifier.model is None
    assert critic.detector.model is None
    missing = str(tmp_path / "no-such-model")
    for lazy in (
        Mask2FormerDetector(model_name=missing),
        GroundingDinoDetector(model_name=missing),
        ClipColorClassifier(model_name=missing),
    ):
        with pytest.raises(WeightsUnavailableError, match="not available here"):
            lazy.load()


def test_mask2former_default_processor_uses_mmdets_test_scale(monkeypatch):
    from milr.critics import vision

    calls = []
    monkeypatch.setattr(vision, "load_pretrained", lambda cls, name, what, **kw: calls.append((what, kw)) or _Dummy())
    Mask2FormerDetector().load()
    assert calls[1] == ("Mask2Former", {"size": {"shortest_edge": 800, "longest_edge": 1333}})
    calls.clear()
    Mask2FormerDetector(input_size=None).load()
    assert calls[1] == ("Mask2Former", {})


class _Dummy:
    def to(self, device):
        return self

    def eval(self):
        return self


# --------------------------------------------------------------------------- batches
def noise(seed: int, size=(100, 80)) -> Image.Image:
    g = torch.Generator().manual_seed(seed)
    return Image.fromarray(torch.randint(0, 256, (size[1], size[0], 3), generator=g, dtype=torch.uint8).numpy())


def assert_same_detections(batched, alone, box_abs=1e-3):
    assert len(batched) == len(alone)
    for b, a in zip(batched, alone, strict=True):
        assert [d.cls for d in b] == [d.cls for d in a]
        assert [d.score for d in b] == pytest.approx([d.score for d in a], abs=1e-5)
        for db, da in zip(b, a, strict=True):
            assert db.box == pytest.approx(da.box, abs=box_abs)
            assert (db.mask is None) == (da.mask is None) and (da.mask is None or (db.mask == da.mask).all())


def test_grounding_dino_detect_batch_equals_detecting_each_image_alone(gdino_parts):
    model, processor = gdino_parts
    detector = GroundingDinoDetector(model, processor, min_score=0.0)
    # two sizes (batched apart: padding would change the backbone's view), captions of 1 to 3 classes
    images = [noise(0), noise(1), noise(2, size=(60, 90)), noise(3), noise(4)]
    classes = [["car", "teddy bear"], ["dog"], ["cat", "bench"], [], ["bench", "dog", "car"]]
    alone = [detector(image, c) for image, c in zip(images, classes, strict=True)]
    with ForwardCounter(model) as forwards:
        batched = detector.detect_batch(images, classes)
    assert_same_detections(batched, alone)
    assert batched[3] == [] and all(batched[i] for i in (0, 1, 2, 4))
    assert sorted(forwards.sizes) == [1, 3]  # one forward per image size; no classes, no forward
    with ForwardCounter(model) as forwards:
        assert_same_detections(
            GroundingDinoDetector(model, processor, min_score=0.0, batch_size=2).detect_batch(images, classes), alone
        )
    assert sorted(forwards.sizes) == [1, 1, 2]
    with pytest.raises(ValueError, match="one list of classes per image"):
        detector.detect_batch(images, classes[:2])


def test_clip_colours_of_many_requests_in_one_forward(clip_parts):
    model = clip_parts[0]
    clf = ClipColorClassifier(*clip_parts, batch_size=16)
    clf._classifiers["car"] = solid_rows(clf)
    boxes = [Detection("car", (0, 0, 20, 20)), Detection("car", (20, 0, 40, 20))]
    requests = [
        (two_halves("blue", "yellow"), boxes, "car"),
        (two_halves("pink", "black"), boxes[1:], "car"),
        (two_halves("red", "green"), [], "car"),
        (two_halves("green", "white"), boxes, "car"),
    ]
    alone = [clf(image, dets, cls) for image, dets, cls in requests]
    assert alone == [["blue", "yellow"], ["black"], [], ["green", "white"]]
    with ForwardCounter(model.vision_model) as forwards:
        assert clf.classify_batch(requests) == alone
    assert forwards.sizes == [5]
    clf.batch_size = 2
    with ForwardCounter(model.vision_model) as forwards:
        assert clf.classify_batch(requests) == alone
    assert forwards.sizes == [2, 2, 1]
    assert clf.classify_batch([(None, [], "car")]) == [[]]
    with pytest.raises(ValueError, match="needs the image"):
        clf.classify_batch([(None, boxes, "car")])


class BatchSpy(Spy):
    """Spy that also forwards (and records) `classify_batch`."""

    def __init__(self, inner):
        super().__init__(inner)
        self.batches = []

    def classify_batch(self, requests):
        out = self.inner.classify_batch(requests)
        self.batches.append([(cls, list(dets)) for _, dets, cls in requests])
        return out


DETECTOR_PROMPTS = [
    "a photo of two red cars left of a dog",
    "a photo of a cat",
    "an astronaut riding a horse on mars",  # outside GenEval's grammar: abstains
    "a photo of a blue teddy bear",
    "a photo of a bench below a car",
]


def test_detector_critic_score_batch_equals_scoring_each_image_alone(gdino_parts, clip_parts):
    model = gdino_parts[0]
    spy = BatchSpy(ClipColorClassifier(*clip_parts))
    critic = DetectorCritic(GroundingDinoDetector(*gdino_parts, min_score=0.0), spy, box_threshold=0.0)
    assert isinstance(critic, BatchCritic)
    images = [noise(seed) for seed in range(len(DETECTOR_PROMPTS))]
    alone = [critic(image, prompt) for image, prompt in zip(images, DETECTOR_PROMPTS, strict=True)]
    spy.calls.clear(), spy.batches.clear()
    with ForwardCounter(model) as forwards:
        together = critic.score_batch(images, DETECTOR_PROMPTS, [None] * len(images))
    assert_same_critiques(together, alone, abs=1e-4)
    assert together[2].abstained and "GenEval-style" in together[2].error
    assert len({c.score for c in together if not c.abstained}) > 1
    assert forwards.sizes == [4]
    # every colour the rules needed, asked in one batch: the red cars, the blue teddy bear
    assert [[cls for cls, _ in batch] for batch in spy.batches] == [["car", "teddy bear"]] and spy.calls == []


def test_geneval_oracle_score_batch_equals_scoring_each_image_alone(m2f_parts, clip_parts):
    model, processor = m2f_parts
    detector = Mask2FormerDetector(model, processor, label_names=["cat"] * 40 + ["dog"] * 40, min_score=0.0)
    spy = BatchSpy(ClipColorClassifier(*clip_parts))
    oracle = GenEvalOracle(detector, spy, threshold=0.0)
    assert isinstance(oracle, BatchCritic)
    prompts = ["a photo of a red cat", "a photo of two dogs", "a unicorn", "a photo of a blue dog", "a photo of a cat"]
    images = [noise(seed, size=(80, 60)) for seed in range(len(prompts))]
    alone = [oracle(image, prompt) for image, prompt in zip(images, prompts, strict=True)]
    with ForwardCounter(model) as forwards:
        together = oracle.score_batch(images, prompts, [None] * len(images))
    assert_same_critiques(together, alone, abs=1e-4)
    assert together[2].abstained and "GenEval-style" in together[2].error
    assert forwards.sizes == [4]
    assert [[cls for cls, _ in batch] for batch in spy.batches[-1:]] == [["cat", "dog"]]
    detected = [c.details["detected"] for c in together if not c.abstained]
    assert any(detected) and {cls for d in detected for cls in d} == {"cat", "dog"}


def test_mask2former_detect_batch_equals_detecting_each_image_alone(m2f_parts):
    model, processor = m2f_parts
    detector = Mask2FormerDetector(model, processor, min_score=0.0, batch_size=2)
    images = [noise(0, (80, 60)), noise(1, (80, 60)), noise(2, (50, 70)), noise(3, (80, 60))]
    some = detector(images[0])[0].cls
    classes = [None, [some], None, ["person", some]]
    alone = [detector(image, c) for image, c in zip(images, classes, strict=True)]
    with ForwardCounter(model) as forwards:
        batched = detector.detect_batch(images, classes)
    assert_same_detections(batched, alone)
    assert all(batched) and sorted(forwards.sizes) == [1, 1, 2]
