"""The transformers models behind the spec-based critics: detectors and the CLIP colour classifier.

- `GroundingDinoDetector`: open-vocabulary boxes for the spec's classes (`IDEA-Research/grounding-dino-tiny`).
- `Mask2FormerDetector`: COCO instance masks and boxes (`facebook/mask2former-swin-small-coco-instance`,
  the transformers port of the Swin-S Mask2Former that GenEval runs through mmdet).
- `ClipColorClassifier`: GenEval's zero-shot colour of an object crop (CLIP ViT-L/14, 10 colours,
  3 templates, masked objects pasted on grey).

Each wrapper accepts already-built model objects (tests pass tiny random ones) or loads its default
weights lazily, on first use or `load()`, failing with `WeightsUnavailableError` and the fix when
they are neither cached nor downloadable. Detectors are callables `(image, classes) -> list[Detection]`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np
import structlog
import torch
from PIL import Image

from milr.critics.geneval import BACKGROUND, COCO_CLASSES, COLOR_TEMPLATES, COLORS, Detection

log = structlog.get_logger(__name__)

WEIGHTS_HELP = (
    "{what} weights {name!r} are not available here (no local copy and no network). Download them once "
    "where there is network access, e.g. `hf download {name}`, and set HF_HOME to that cache (or pass a "
    "local folder as model_name), or pass already-built model objects."
)


class WeightsUnavailableError(OSError):
    """Raised when a critic's model weights can be neither found locally nor downloaded."""


def _device(device: str | torch.device | None) -> torch.device:
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def load_pretrained(loader: Callable, name: str, what: str, **kwargs):
    """`loader.from_pretrained(name)` with a clear error when offline instead of a hub traceback."""
    try:
        return loader.from_pretrained(name, **kwargs)
    except OSError as err:
        raise WeightsUnavailableError(WEIGHTS_HELP.format(what=what, name=name) + f" (loader said: {err})") from err


class _Lazy:
    """Loads `self._load()` once, on first use, safely from the Mixer's threads."""

    def __init__(self):
        self._lock = threading.Lock()
        self._loaded = False

    def load(self):
        """Load the default weights now (fail early, e.g. before a long run); returns self."""
        with self._lock:
            if not self._loaded:
                self._load()
                self._loaded = True
        return self

    def _load(self) -> None:
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------- colour
def crop_object(image: Image.Image, det: Detection, background: str | None = BACKGROUND) -> Image.Image:
    """GenEval's colour crop: the object's mask pasted on grey (when there is a mask), cut to its box."""
    image = image.convert("RGB")
    if det.mask is not None and background is not None:
        mask = Image.fromarray(np.asarray(det.mask, dtype=bool))
        image = Image.composite(image, Image.new("RGB", image.size, background), mask)
    w, h = image.size
    # rounded like PIL's crop of GenEval's float box; clamped to at least one pixel inside the image,
    # since a degenerate box would hand CLIP an empty image
    x1, y1, x2, y2 = (round(v) for v in det.box)
    x1, y1 = min(max(x1, 0), w - 1), min(max(y1, 0), h - 1)
    return image.crop((x1, y1, min(max(x2, x1 + 1), w), min(max(y2, y1 + 1), h)))


class ClipColorClassifier(_Lazy):
    """GenEval's colour classifier: CLIP zero-shot over `colors`, text embeddings averaged over templates.

    Args:
        model (`CLIPModel`, *optional*), image_processor, tokenizer: built objects; else loaded lazily
            from `model_name` (defaults to `openai/clip-vit-large-patch14`, the weights GenEval uses).
        colors, templates: GenEval's 10 colours and 3 templates (`{color}`, `{cls}` placeholders).
        background (`str`, *optional*, defaults to `"#999"`): where masked objects are pasted; None keeps
            the original pixels around the object.
    Call: `classifier(image, detections, cls) -> [colour per detection]`.
    """

    def __init__(
        self,
        model=None,
        image_processor=None,
        tokenizer=None,
        *,
        model_name: str = "openai/clip-vit-large-patch14",
        colors: Sequence[str] = COLORS,
        templates: Sequence[str] = COLOR_TEMPLATES,
        background: str | None = BACKGROUND,
        device: str | torch.device | None = None,
    ):
        super().__init__()
        self.model, self.image_processor, self.tokenizer = model, image_processor, tokenizer
        self.model_name, self.colors, self.templates = model_name, tuple(colors), tuple(templates)
        self.background, self.device = background, _device(device)
        self._classifiers: dict[str, torch.Tensor] = {}
        if model is not None:
            self.model = model.to(self.device).eval()
            self._loaded = True

    def _load(self) -> None:
        from transformers import AutoTokenizer, CLIPImageProcessorPil, CLIPModel

        self.model = load_pretrained(CLIPModel, self.model_name, "CLIP").to(self.device).eval()
        self.image_processor = load_pretrained(CLIPImageProcessorPil, self.model_name, "CLIP")
        self.tokenizer = load_pretrained(AutoTokenizer, self.model_name, "CLIP")

    @torch.no_grad()
    def class_embeddings(self, cls: str) -> torch.Tensor:
        """[n_colors, D]: per colour, the mean of its normalised template embeddings, renormalised
        (clip_benchmark's zero-shot classifier, which GenEval uses)."""
        self.load()
        if cls not in self._classifiers:
            rows = []
            for color in self.colors:
                texts = [t.format(color=color, cls=cls) for t in self.templates]
                tokens = self.tokenizer(texts, padding=True, return_tensors="pt").to(self.device)
                emb = self.model.get_text_features(
                    input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
                ).pooler_output
                mean = torch.nn.functional.normalize(emb.float(), dim=-1).mean(0)
                rows.append(mean / mean.norm())
            self._classifiers[cls] = torch.stack(rows)
        return self._classifiers[cls]

    @torch.no_grad()
    def __call__(self, image: Image.Image | None, detections: Sequence[Detection], cls: str) -> list[str]:
        if not detections:
            return []
        if image is None:
            raise ValueError("colour classification needs the image")
        self.load()
        feats = self.image_embeddings([crop_object(image, d, self.background) for d in detections])
        picks = (feats @ self.class_embeddings(cls).T).argmax(-1)
        return [self.colors[i] for i in picks.tolist()]

    @torch.no_grad()
    def image_embeddings(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """[N, D] normalised CLIP image embeddings."""
        self.load()
        pixels = self.image_processor(images=list(images), return_tensors="pt")["pixel_values"]
        feats = self.model.get_image_features(pixel_values=pixels.to(self.device, self.model.dtype)).pooler_output
        return torch.nn.functional.normalize(feats.float(), dim=-1)


# ---------------------------------------------------------------------------------------------- GroundingDINO
def grounding_caption(classes: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """GroundingDINO's query text, "cat. traffic light.", and each class's character span in it."""
    caption, spans = "", []
    for cls in classes:
        start = len(caption)
        caption += cls.lower()
        spans.append((start, len(caption)))
        caption += ". "
    return caption.strip(), spans


def token_positions(offsets: Sequence[tuple[int, int]], span: tuple[int, int]) -> list[int]:
    """Indices of the tokens whose characters fall inside `span` (special tokens have (0, 0))."""
    return [i for i, (a, b) in enumerate(offsets) if b > a and a >= span[0] and b <= span[1]]


class GroundingDinoDetector(_Lazy):
    """GroundingDINO boxes for the given classes, each query assigned to its best-matching class.

    A query's score for a class is the highest sigmoid logit over that class's tokens (the token-span
    reading of the original GroundingDINO): this needs no phrase decoding and no string matching of
    labels back to classes, and sidesteps `post_process_grounded_object_detection`'s renamed
    threshold argument (`box_threshold` in 4.4x, `threshold` in 5.x). Queries scoring at most
    `min_score` are dropped; thresholds, caps and NMS are the critic's business.
    """

    def __init__(
        self,
        model=None,
        processor=None,
        *,
        model_name: str = "IDEA-Research/grounding-dino-tiny",
        device: str | torch.device | None = None,
        min_score: float = 0.05,
    ):
        super().__init__()
        self.model, self.processor, self.model_name = model, processor, model_name
        self.device, self.min_score = _device(device), min_score
        if model is not None:
            self.model = model.to(self.device).eval()
            self._loaded = True

    def _load(self) -> None:
        from transformers import AutoProcessor, GroundingDinoForObjectDetection

        self.model = load_pretrained(GroundingDinoForObjectDetection, self.model_name, "GroundingDINO")
        self.model = self.model.to(self.device).eval()
        self.processor = load_pretrained(AutoProcessor, self.model_name, "GroundingDINO")

    @torch.no_grad()
    def __call__(self, image: Image.Image, classes: Sequence[str]) -> list[Detection]:
        self.load()
        classes = list(dict.fromkeys(classes))
        if not classes:
            return []
        image = image.convert("RGB")
        caption, spans = grounding_caption(classes)
        inputs = self.processor(images=image, text=caption, return_tensors="pt").to(self.device)
        encoded = self.processor.tokenizer(caption, return_offsets_mapping=True)
        if encoded["input_ids"] != inputs["input_ids"][0].tolist():
            raise ValueError(f"the processor tokenised {caption!r} differently from its tokenizer; spans would shift")
        offsets = encoded["offset_mapping"]
        positions = [token_positions(offsets, span) for span in spans]
        missing = [c for c, p in zip(classes, positions, strict=True) if not p]
        if missing:
            raise ValueError(f"the tokenizer kept no token of {missing} in {caption!r}")
        outputs = self.model(**inputs)
        probs = outputs.logits[0].float().sigmoid()  # [queries, text positions]
        per_class = torch.stack([probs[:, p].max(-1).values for p in positions], -1)  # [queries, classes]
        scores, which = per_class.max(-1)
        w, h = image.size
        cx, cy, bw, bh = outputs.pred_boxes[0].float().unbind(-1)  # relative centre format
        boxes = torch.stack([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h], -1)
        keep = (scores > self.min_score).nonzero().flatten().tolist()
        return [Detection(classes[which[q]], tuple(boxes[q].tolist()), float(scores[q])) for q in keep]


# ---------------------------------------------------------------------------------------------- Mask2Former
MMDET_TEST_SCALE = {"shortest_edge": 800, "longest_edge": 1333}


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    """The box of a binary mask as mmdet's `mask2bbox` gives it: (x_min, y_min, x_max + 1, y_max + 1)."""
    ys, xs = np.nonzero(mask)
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


class Mask2FormerDetector(_Lazy):
    """COCO instance segmentation with Mask2Former: detections with boxes, scores and masks.

    Scores are transformers' instance scores (class probability × mean mask probability, as mmdet's
    Mask2Former computes them); boxes come from the masks. Class names: GenEval's COCO names by
    index when the model has 80 labels (the COCO checkpoints), else the model's `id2label`.
    Detections scoring below `min_score` (GenEval's 0.3 by default) are dropped early.

    `input_size` is the resize of the default processor: mmdet's test scale for GenEval's config
    (shorter side 800, longer at most 1333, aspect kept), not the 384×384 of the hub's processor
    config; None keeps the processor's own.
    """

    def __init__(
        self,
        model=None,
        image_processor=None,
        *,
        model_name: str = "facebook/mask2former-swin-small-coco-instance",
        label_names: Sequence[str] | None = None,
        device: str | torch.device | None = None,
        min_score: float = 0.3,
        input_size: dict | None = MMDET_TEST_SCALE,
    ):
        super().__init__()
        self.model, self.image_processor, self.model_name = model, image_processor, model_name
        self.input_size = input_size
        self.label_names, self.device, self.min_score = label_names, _device(device), min_score
        if model is not None:
            self.model = model.to(self.device).eval()
            self._loaded = True

    def _load(self) -> None:
        from transformers import Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessorPil

        self.model = load_pretrained(Mask2FormerForUniversalSegmentation, self.model_name, "Mask2Former")
        self.model = self.model.to(self.device).eval()
        size = {"size": dict(self.input_size)} if self.input_size else {}
        self.image_processor = load_pretrained(Mask2FormerImageProcessorPil, self.model_name, "Mask2Former", **size)

    def names(self) -> list[str]:
        if self.label_names is not None:
            return list(self.label_names)
        id2label = self.model.config.id2label
        if len(id2label) == len(COCO_CLASSES):
            return list(COCO_CLASSES)  # same order; GenEval's spellings ("tv remote", not "remote")
        return [id2label[i] for i in range(len(id2label))]

    @torch.no_grad()
    def __call__(self, image: Image.Image, classes: Sequence[str] | None = None) -> list[Detection]:
        self.load()
        image = image.convert("RGB")
        inputs = self.image_processor(images=image, return_tensors="pt").to(self.device)
        outputs = self.model(pixel_values=inputs["pixel_values"], pixel_mask=inputs.get("pixel_mask"))
        result = self.image_processor.post_process_instance_segmentation(
            outputs, threshold=self.min_score, target_sizes=[image.size[::-1]], return_binary_maps=True
        )[0]
        names, wanted = self.names(), set(classes) if classes is not None else None
        out = []
        for i, info in enumerate(result["segments_info"]):
            name = names[info["label_id"]]
            if wanted is not None and name not in wanted:
                continue
            mask = result["segmentation"][i].bool().cpu().numpy()
            out.append(Detection(name, mask_box(mask), float(info["score"]), mask=mask))
        return out
