"""The detector critic's GroundingDINO backends: choosing one, the install error of the optional
groundingdino-py backend, and (only where the `groundingdino` package is installed) the original code
on a tiny random model built by that package, loaded from a real `.pth`."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import BertConfig, BertModel, BertTokenizerFast

from milr.critics.detector import (
    GROUNDINGDINO_INSTALL,
    BackendUnavailableError,
    DetectorCritic,
    GroundingDinoPyDetector,
    OriginalBertForTransformers5,
    detector_backend,
    grounding_dino_detector,
)
from milr.critics.vision import GroundingDinoDetector, WeightsUnavailableError
from tests.critics.conftest import ForwardCounter


def no_colours(*_args):
    return []


# ---------------------------------------------------------------------------------------------- choosing
@pytest.mark.parametrize(
    ("backend", "checkpoint", "expected"),
    [
        (None, None, "transformers"),
        (None, "IDEA-Research/grounding-dino-base", "transformers"),
        (None, "weights/groundingdino_swint_ogc.pth", "groundingdino-py"),
        (None, "weights/GroundingDINO_SwinB.PTH", "groundingdino-py"),
        ("groundingdino_py", "weights/groundingdino_swint_ogc.pth", "groundingdino-py"),
        (" Transformers ", "some/folder", "transformers"),
    ],
)
def test_the_backend_follows_its_name_or_a_pth_checkpoint(backend, checkpoint, expected):
    assert detector_backend(backend, checkpoint) == expected


@pytest.mark.parametrize(
    ("backend", "checkpoint", "message"),
    [
        ("mmdet", None, "backend='mmdet' is not a detector backend; valid: transformers, groundingdino-py"),
        ("groundingdino-py", None, "needs checkpoint=PATH to an original GroundingDINO .pth"),
        ("transformers", "w/groundingdino_swint_ogc.pth", "pass backend='groundingdino-py'"),
    ],
)
def test_wrong_backend_arguments_say_the_fix(backend, checkpoint, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        detector_backend(backend, checkpoint)


def test_a_built_detector_and_backend_arguments_are_not_mixed():
    with pytest.raises(ValueError, match="not both"):
        DetectorCritic(lambda image, classes: [], no_colours, checkpoint="w/groundingdino_swint_ogc.pth")


@pytest.fixture
def without_groundingdino(monkeypatch):
    """The `groundingdino` package made unimportable, whether installed or not."""
    for name in [m for m in sys.modules if m == "groundingdino" or m.startswith("groundingdino.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "groundingdino", None)


@pytest.mark.parametrize(
    "build",
    [
        lambda: DetectorCritic(checkpoint="weights/groundingdino_swint_ogc.pth", color_classifier=no_colours),
        lambda: DetectorCritic(backend="groundingdino-py", checkpoint="weights/x.pth", color_classifier=no_colours),
        lambda: GroundingDinoPyDetector("weights/groundingdino_swint_ogc.pth"),
    ],
)
def test_groundingdino_py_without_its_package_says_how_to_install_it(without_groundingdino, build):
    with pytest.raises(BackendUnavailableError) as err:
        build()
    assert isinstance(err.value, ImportError)
    assert GROUNDINGDINO_INSTALL == 'pip install "milr[groundingdino]"' and GROUNDINGDINO_INSTALL in str(err.value)
    assert "torchvision" in str(err.value)


def test_the_transformers_backend_never_imports_groundingdino(without_groundingdino):
    critic = DetectorCritic(color_classifier=no_colours)  # would fail if it imported the package
    assert type(critic.detector) is GroundingDinoDetector
    assert critic.detector.model_name == "IDEA-Research/grounding-dino-tiny" and not critic.detector._loaded
    other = grounding_dino_detector(checkpoint="IDEA-Research/grounding-dino-base", min_score=0.2)
    assert other.model_name == "IDEA-Research/grounding-dino-base" and other.min_score == 0.2


# ---------------------------------------------------------------------------------------------- BERT adapter
WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "?", "car", "dog", "cat", "bench", "teddy", "bear"]


def tiny_bert_model() -> BertModel:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(WORDS),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=64,
    )
    return BertModel(config).eval()


def test_the_bert_adapter_applies_groundingdinos_phrase_mask():
    """The adapter gives what transformers' own BertModel gives for the same [B, 1, T, T] mask
    (which is how transformers' GroundingDINO port calls it); on a tiny checkpoint it also matched
    the original `BertModelWarper` under transformers 4.57 exactly (README, 'Real critics')."""
    bert = tiny_bert_model()
    ids = torch.tensor([[2, 7, 5, 11, 12, 5, 3], [2, 8, 5, 3, 0, 0, 0]])
    # GroundingDINO's mask for "car. teddy bear." and "dog.": tokens attend within their phrase only
    mask = torch.eye(7, dtype=torch.bool).repeat(2, 1, 1)
    mask[0, 3:5, 3:5] = True
    position_ids = torch.tensor([[0, 0, 1, 0, 1, 2, 0], [0, 0, 1, 0, 0, 0, 0]])
    with torch.no_grad():
        got = OriginalBertForTransformers5(bert)(input_ids=ids, attention_mask=mask, position_ids=position_ids)
        want = bert(input_ids=ids, attention_mask=mask[:, None], position_ids=position_ids).last_hidden_state
        full = bert(input_ids=ids, position_ids=position_ids).last_hidden_state
    assert torch.allclose(got["last_hidden_state"], want, atol=1e-6)
    assert not torch.allclose(got["last_hidden_state"], full, atol=1e-3)  # the mask mattered
    assert set(dict(OriginalBertForTransformers5(bert).named_children())) == {"embeddings", "encoder", "pooler"}


# ---------------------------------------------------------------------------------------------- the original code
# GroundingDINO's own Python config format; sizes cut down (the Swin-T backbone is fixed by name, and
# the text enhancer hard-codes 256 positional features, so hidden_dim stays 256)
TINY_CONFIG = """
batch_size = 1
modelname = "groundingdino"
backbone = "swin_T_224_1k"
position_embedding = "sine"
pe_temperatureH = 20
pe_temperatureW = 20
return_interm_indices = [1, 2, 3]
backbone_freeze_keywords = None
enc_layers = 1
dec_layers = 2
pre_norm = False
dim_feedforward = 32
hidden_dim = 256
dropout = 0.0
nheads = 4
num_queries = 12
query_dim = 4
num_patterns = 0
num_feature_levels = 4
enc_n_points = 1
dec_n_points = 1
two_stage_type = "standard"
two_stage_bbox_embed_share = False
two_stage_class_embed_share = False
transformer_activation = "relu"
dec_pred_bbox_embed_share = True
dn_box_noise_scale = 1.0
dn_label_noise_ratio = 0.5
dn_label_coef = 1.0
dn_bbox_coef = 1.0
embed_init_tgt = True
dn_labelbook_size = 2000
max_text_len = 256
text_encoder_type = "bert-base-uncased"
use_text_enhancer = True
use_fusion_layer = True
use_checkpoint = False
use_transformer_ckpt = False
use_text_cross_attention = True
text_dropout = 0.0
fusion_dropout = 0.0
fusion_droppath = 0.0
sub_sentence_present = True
"""


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """(model, config path, text encoder folder, checkpoint path): a tiny random model built by the
    original code, and its weights saved as an original checkpoint ({"model": state_dict})."""
    pytest.importorskip(
        "groundingdino",
        reason='the optional groundingdino-py backend is not installed (pip install "milr[groundingdino]")',
    )
    from groundingdino.util.slconfig import SLConfig

    from milr.critics.detector import build_original_model

    folder = tmp_path_factory.mktemp("groundingdino")
    (folder / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder / "bert")
    tiny_bert_model().save_pretrained(folder / "bert")
    (folder / "tiny_cfg.py").write_text(TINY_CONFIG)
    args = SLConfig.fromfile(str(folder / "tiny_cfg.py"))
    args.device, args.text_encoder_type = "cpu", str(folder / "bert")
    torch.manual_seed(0)
    model = build_original_model(args).eval()
    torch.save({"model": model.state_dict()}, folder / "tiny.pth")
    # one thread: on a shared 2-core machine the Swin-T forwards run ten times faster than on two
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield model, folder / "tiny_cfg.py", str(folder / "bert"), folder / "tiny.pth"
    torch.set_num_threads(threads)


def noise(seed: int, size=(120, 80)) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


SMALL = (64, 100)  # shorter side 64, longer at most 100: a 120 × 80 image becomes 96 × 64


def test_original_queries_are_read_in_upstreams_box_convention(original):
    """Same model outputs, two readers: milr's per-class token spans and upstream's own
    `predict` + `Model.post_process_result` (relative cxcywh × [w, h, w, h] → xyxy)."""
    from groundingdino.util.inference import Model, predict

    model = original[0]
    detector = GroundingDinoPyDetector(model=model, image_size=SMALL, min_score=0.0, device="cpu")
    image = noise(0)
    dets = detector(image, ["car", "teddy bear"])
    assert len(dets) == 12 and {d.cls for d in dets} <= {"car", "teddy bear"}
    pixels = detector.pixels(image)
    assert tuple(pixels.shape) == (3, 64, 96)
    boxes, upstream_scores, _ = predict(
        model, pixels, "car. teddy bear.", box_threshold=0.0, text_threshold=0.0, device="cpu"
    )
    xyxy = Model.post_process_result(source_h=80, source_w=120, boxes=boxes, logits=upstream_scores).xyxy
    assert np.allclose([d.box for d in dets], xyxy, atol=1e-4)
    # milr's score: the highest sigmoid over the class's own tokens ([CLS] car . teddy bear . [SEP]);
    # upstream's: over every token, delimiters included, so never below milr's
    with torch.no_grad():
        probs = model(pixels[None], captions=["car. teddy bear."])["pred_logits"][0].sigmoid()
    car, bear = probs[:, [1]].max(-1).values, probs[:, [3, 4]].max(-1).values
    assert [d.score for d in dets] == pytest.approx(torch.maximum(car, bear).tolist(), abs=1e-6)
    assert [d.cls for d in dets] == ["car" if c >= b else "teddy bear" for c, b in zip(car, bear, strict=True)]
    assert all(d.score <= float(u) + 1e-6 for d, u in zip(dets, upstream_scores, strict=True))


def test_original_batches_hold_one_caption_each_and_equal_scoring_alone(original):
    model = original[0]
    detector = GroundingDinoPyDetector(model=model, image_size=SMALL, min_score=0.0, device="cpu")
    images = [noise(seed) for seed in range(5)]
    classes = [["car", "dog"], ["cat"], ["car", "dog"], ["cat"], []]
    alone = [detector(image, c) for image, c in zip(images, classes, strict=True)]
    with ForwardCounter(model.feat_map) as forwards:  # the text projection: one call per forward
        together = detector.detect_batch(images, classes)
    assert sorted(forwards.sizes) == [2, 2]  # one forward per caption; the image without classes is skipped
    assert together[4] == []
    for got, want in zip(together, alone, strict=True):
        assert [d.cls for d in got] == [d.cls for d in want]
        assert np.allclose([d.score for d in got], [d.score for d in want], atol=1e-5) if want else got == []
        assert np.allclose([d.box for d in got], [d.box for d in want], atol=1e-3) if want else True


def test_a_pth_checkpoint_loads_through_the_critic(original, tmp_path):
    model, config, bert, checkpoint = original
    options = {"config": config, "text_encoder": bert, "image_size": SMALL, "min_score": 0.0}
    critic = DetectorCritic(
        checkpoint=checkpoint, color_classifier=no_colours, detector_options=options, box_threshold=0.0, device="cpu"
    )
    assert type(critic.detector) is GroundingDinoPyDetector and not critic.detector._loaded
    critic.check()  # the files are there
    image = noise(3)
    verdict = critic(image, "a photo of a dog")
    assert verdict.details["requirements"][0]["requirement"].startswith("at least 1 dog")
    in_memory = GroundingDinoPyDetector(model=model, image_size=SMALL, min_score=0.0, device="cpu")(image, ["dog"])
    loaded = critic.detector(image, ["dog"])
    assert np.allclose([d.score for d in loaded], [d.score for d in in_memory], atol=1e-6)
    # a checkpoint that leaves parameters random is refused, naming the fix
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("transformer.decoder.")}
    torch.save({"model": state}, tmp_path / "partial.pth")
    partial = GroundingDinoPyDetector(tmp_path / "partial.pth", config=config, text_encoder=bert, device="cpu")
    with pytest.raises(ValueError, match=r"leaves \d+ parameters of the model unset .* pass config="):
        partial.load()
    with pytest.raises(WeightsUnavailableError, match="is not a file"):
        GroundingDinoPyDetector(tmp_path / "missing.pth", config=config, text_encoder=bert).check()
