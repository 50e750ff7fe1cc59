"""The transformers models behind the spec-based critics: detectors and the CLIP colour classifier.

- `GroundingDinoDetector`: open-vocabulary boxes for the spec's classes (`IDEA-Research/grounding-dino-tiny`).
- `Mask2FormerDetector`: COCO instance masks and boxes (`facebook/mask2former-swin-small-coco-instance`,
  the transformers port of the Swin-S Mask2Former that GenEval runs through mmdet).
- `ClipColorClassifier`: GenEval's zero-shot colour of an object crop (CLIP ViT-L/14, 10 colours,
  3 templates, masked objects pasted on grey).

Each wrapper accepts already-built model objects (tests pass tiny random ones) or loads its default
weights lazily, on first use or `load()`, failing with `WeightsUnavailableError` and the fix when
they are neither cached nor downloadable. Detectors are callables `(image, classes) -> list[Detection]`
with a batched `detect_batch(images, classes_per_image)`; the colour classifier batches crops of many
images with `classify_batch`. A batch runs as one processor call and one forward per `batch_size`
images, and gives what each image alone would (up to float noise).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

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


# images per forward: a round of a batched run in one or two passes, small enough for ViT-L and
# GroundingDINO's activations on a consumer GPU
DEFAULT_BATCH_SIZE = 16


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


def batches(indices: Sequence[int], size: int) -> list[list[int]]:
    """`indices` cut into consecutive batches of at most `size`."""
    if size < 1:
        raise ValueError(f"batch_size must be >= 1, got {size}")
    indices = list(indices)
    return [indices[k : k + size] for k in range(0, len(indices), size)]


def batches_by_size(images: Sequence[Image.Image], indices: Sequence[int], size: int) -> list[list[int]]:
    """`indices` of `images` in batches of at most `size` images of one pixel size each.

    Detector processors pad a batch to its largest image, and the backbones (Swin) do not mask the
    padding: an image batched with a larger one would see grey borders it does not see alone.
    A round's images all have one size, so this is one group in practice.
    """
    groups: dict[tuple[int, int], list[int]] = {}
    for i in indices:
        groups.setdefault(images[i].size, []).append(i)
    return [chunk for rows in groups.values() for chunk in batches(rows, size)]


def _offline() -> bool:
    # read now (huggingface_hub reads its constant at import): a test or a shell may set it later
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in OFFLINE_VARIABLES)


OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def weights_problem(name: str) -> str | None:
    """Why weights named `name` (a local folder or a hub id) cannot load here, cheaply (no download,
    no network): None when they are a local folder, in the hub cache, or downloadable (not offline)."""
    path = Path(name).expanduser()
    if path.exists():
        return None if path.is_dir() else f"{name} is a file, not a model folder"
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep != "/" and os.sep in name:
        return f"there is no folder {name}"
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(name, "config.json")
    except Exception as err:  # not a valid repo id
        return f"{name} is neither a folder nor a hub model id ({type(err).__name__})"
    if isinstance(cached, str):
        return None
    if _offline():
        return f"{name} is not in the local hub cache and the hub is off ({'/'.join(OFFLINE_VARIABLES)} is set)"
    return None  # downloaded on first use


class _Lazy:
    """Loads `self._load()` once, on first use, safely from the Mixer's threads. `check()` is the
    cheap pre-flight: the default weights are a local folder, cached, or downloadable."""

    def check(self) -> None:
        """`WeightsUnavailableError` with the fix when the weights can be neither found nor downloaded."""
        name = getattr(self, "model_name", None)
        if self._loaded or not isinstance(name, str):
            return
        problem = weights_problem(name)
        if problem is not None:
            what = type(self).__name__
            raise WeightsUnavailableError(WEIGHTS_HELP.format(what=what, name=name) + f" ({problem})")

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
        batch_size (`int`, defaults to 16): crops per CLIP forward.
    Call: `classifier(image, detections, cls) -> [colour per detection]`; `classify_batch` does many
    such requests (of many images) with their crops batched together.
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
        batch_size: int = DEFAULT_BATCH_SIZE,
    ):
        super().__init__()
        self.model, self.image_processor, self.tokenizer = model, image_processor, tokenizer
        self.model_name, self.colors, self.templates = model_name, tuple(colors), tuple(templates)
        self.background, self.device, self.batch_size = background, _device(device), batch_size
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

    def __call__(self, image: Image.Image | None, detections: Sequence[Detection], cls: str) -> list[str]:
        return self.classify_batch([(image, detections, cls)])[0]

    @torch.no_grad()
    def classify_batch(
        self, requests: Sequence[tuple[Image.Image | None, Sequence[Detection], str]]
    ) -> list[list[str]]:
        """The colour of each detection, per (image, detections, cls) request; every request's crops go
        through CLIP together, `batch_size` at a time (CLIP's processor resizes each crop alone, so
        batching changes no pixel)."""
        crops = []
        for image, detections, _ in requests:
            if detections and image is None:
                raise ValueError("colour classification needs the image")
            crops.extend(crop_object(image, d, self.background) for d in detections)
        if not crops:
            return [[] for _ in requests]
        feats = self.image_embeddings(crops)
        out, start = [], 0
        for _, detections, cls in requests:
            own = feats[start : start + len(detections)]
            start += len(detections)
            picks = (own @ self.class_embeddings(cls).T).argmax(-1).tolist() if detections else []
            out.append([self.colors[i] for i in picks])
        return out

    @torch.no_grad()
    def image_embeddings(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """[N, D] normalised CLIP image embeddings, `batch_size` images per forward."""
        self.load()
        images = list(images)
        chunks = [self._embed([images[i] for i in rows]) for rows in batches(range(len(images)), self.batch_size)]
        return torch.cat(chunks)

    def _embed(self, images: list[Image.Image]) -> torch.Tensor:
        pixels = self.image_processor(images=images, return_tensors="pt")["pixel_values"]
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

    `detect_batch` runs up to `batch_size` images of one size per forward, each with its own caption.
    Captions are padded to the longest, which changes no real token's output: the text backbone's
    attention is the phrase mask built from delimiter tokens (padding belongs to no phrase), and the
    fusion layers and class logits mask padding through the attention mask.
    """

    def __init__(
        self,
        model=None,
        processor=None,
        *,
        model_name: str = "IDEA-Research/grounding-dino-tiny",
        device: str | torch.device | None = None,
        min_score: float = 0.05,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ):
        super().__init__()
        self.model, self.processor, self.model_name = model, processor, model_name
        self.device, self.min_score, self.batch_size = _device(device), min_score, batch_size
        if model is not None:
            self.model = model.to(self.device).eval()
            self._loaded = True

    def _load(self) -> None:
        from transformers import AutoProcessor, GroundingDinoForObjectDetection

        self.model = load_pretrained(GroundingDinoForObjectDetection, self.model_name, "GroundingDINO")
        self.model = self.model.to(self.device).eval()
        self.processor = load_pretrained(AutoProcessor, self.model_name, "GroundingDINO")

    def __call__(self, image: Image.Image, classes: Sequence[str]) -> list[Detection]:
        return self.detect_batch([image], [classes])[0]

    @torch.no_grad()
    def detect_batch(self, images: Sequence[Image.Image], classes: Sequence[Sequence[str]]) -> list[list[Detection]]:
        """Each image's detections of its own classes (an image without classes gets none)."""
        _check_classes(images, classes)
        self.load()
        wanted = [list(dict.fromkeys(c)) for c in classes]
        out: list[list[Detection]] = [[] for _ in images]
        for rows in batches_by_size(images, [i for i, c in enumerate(wanted) if c], self.batch_size):
            found = self._detect([images[i].convert("RGB") for i in rows], [wanted[i] for i in rows])
            for i, dets in zip(rows, found, strict=True):
                out[i] = dets
        return out

    def _detect(self, images: list[Image.Image], classes: list[list[str]]) -> list[list[Detection]]:
        captions, spans = zip(*(grounding_caption(c) for c in classes), strict=True)
        inputs = self.processor(images=images, text=list(captions), padding="longest", return_tensors="pt")
        inputs = inputs.to(self.device)
        positions = [
            self._class_tokens(caption, span, cls, inputs["input_ids"][b].tolist(), inputs["attention_mask"][b])
            for b, (caption, span, cls) in enumerate(zip(captions, spans, classes, strict=True))
        ]
        outputs = self.model(**inputs)
        return [
            self._detections(outputs, b, cls, pos, image.size)
            for b, (image, cls, pos) in enumerate(zip(images, classes, positions, strict=True))
        ]

    def _class_tokens(self, caption: str, spans, classes: list[str], row_ids: list[int], row_mask) -> list[list[int]]:
        """Per class, its token positions in the caption's row of the batch (checked against the
        tokenizer, whose offsets locate the classes: a shift would score the wrong tokens)."""
        encoded = self.processor.tokenizer(caption, return_offsets_mapping=True)
        n = len(encoded["input_ids"])
        if encoded["input_ids"] != row_ids[:n] or int(row_mask.sum()) != n:
            raise ValueError(f"the processor tokenised {caption!r} differently from its tokenizer; spans would shift")
        positions = [token_positions(encoded["offset_mapping"], span) for span in spans]
        missing = [c for c, p in zip(classes, positions, strict=True) if not p]
        if missing:
            raise ValueError(f"the tokenizer kept no token of {missing} in {caption!r}")
        return positions

    def _detections(self, outputs, b: int, classes: list[str], positions, size: tuple[int, int]) -> list[Detection]:
        probs = outputs.logits[b].float().sigmoid()  # [queries, text positions]
        per_class = torch.stack([probs[:, p].max(-1).values for p in positions], -1)  # [queries, classes]
        scores, which = per_class.max(-1)
        w, h = size
        cx, cy, bw, bh = outputs.pred_boxes[b].float().unbind(-1)  # relative centre format
        boxes = torch.stack([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h], -1)
        keep = (scores > self.min_score).nonzero().flatten().tolist()
        return [Detection(classes[which[q]], tuple(boxes[q].tolist()), float(scores[q])) for q in keep]


def _check_classes(images: Sequence[Image.Image], classes: Sequence) -> None:
    if len(images) != len(classes):
        raise ValueError(f"need one list of classes per image, got {len(classes)} for {len(images)} images")


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
    config; None keeps the processor's own. `detect_batch` runs up to `batch_size` images of one size
    per forward.
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
        batch_size: int = DEFAULT_BATCH_SIZE,
    ):
        super().__init__()
        self.model, self.image_processor, self.model_name = model, image_processor, model_name
        self.input_size, self.batch_size = input_size, batch_size
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

    def __call__(self, image: Image.Image, classes: Sequence[str] | None = None) -> list[Detection]:
        return self.detect_batch([image], [classes])[0]

    @torch.no_grad()
    def detect_batch(
        self, images: Sequence[Image.Image], classes: Sequence[Sequence[str] | None]
    ) -> list[list[Detection]]:
        """Each image's detections, of its classes only (None: every class)."""
        _check_classes(images, classes)
        self.load()
        out: list[list[Detection]] = [[] for _ in images]
        for rows in batches_by_size(images, range(len(images)), self.batch_size):
            rgb = [images[i].convert("RGB") for i in rows]
            inputs = self.image_processor(images=rgb, return_tensors="pt").to(self.device)
            outputs = self.model(pixel_values=inputs["pixel_values"], pixel_mask=inputs.get("pixel_mask"))
            results = self.image_processor.post_process_instance_segmentation(
                outputs, threshold=self.min_score, target_sizes=[im.size[::-1] for im in rgb], return_binary_maps=True
            )
            for i, result in zip(rows, results, strict=True):
                out[i] = self._detections(result, classes[i])
        return out

    def _detections(self, result: dict, classes: Sequence[str] | None) -> list[Detection]:
        names, wanted = self.names(), set(classes) if classes is not None else None
        out = []
        for i, info in enumerate(result["segments_info"]):
            name = names[info["label_id"]]
            if wanted is not None and name not in wanted:
                continue
            mask = result["segmentation"][i].bool().cpu().numpy()
            out.append(Detection(name, mask_box(mask), float(info["score"]), mask=mask))
        return out
