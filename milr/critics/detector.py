"""`DetectorCritic`: a soft, spec-based score from an open-vocabulary detector (GroundingDINO by default).

GenEval's checks, made graded so the reward moves before the image is fully right (as the authors'
MixedReward does with GroundingDINO):

- Detections: score > `box_threshold` (0.3), top 16 per class, NMS at IoU 0.5 (GroundingDINO
  repeats boxes; GenEval's Mask2Former does not need NMS). GenEval's 0.9 counting threshold is
  not used: it belongs to Mask2Former's score scale.
- One requirement per include clause for its count: the right number → 1, a wrong nonzero number → 0.2,
  none → 0. "Right" means exactly N when the spec also excludes N + 1 (GenEval's counting prompts),
  at least N otherwise. A free-standing exclude clause passes (1) when fewer than its count are seen.
- One per colour: the fraction of the clause's `count` most confident objects whose CLIP colour is
  the target (0 when none is seen).
- One per relation: 1 when every found object holds it to every target (GenEval's centroid rule,
  margin 0.1), else 0 (also when either side is missing).

Score = mean over requirements. `details` keep each requirement's score, the detections and
GenEval's own pass/fail on the same detections. `score_batch` detects a batch in one go and
classifies all its colours in one CLIP batch.

Two GroundingDINO backends (`backend=`, or chosen by `checkpoint=`):

- "transformers" (default): transformers' port, `GroundingDinoDetector` (a hub id or model folder).
- "groundingdino-py": the original code (package `groundingdino` of groundingdino-py, extra
  `milr[groundingdino]`) for original `.pth` checkpoints such as `groundingdino_swint_ogc.pth`, the
  one MILR's MixedReward loads; `GroundingDinoPyDetector`. A checkpoint path ending in `.pth` picks
  it. The package is imported only when this backend is chosen; without it, `BackendUnavailableError`
  says how to install it. Both backends read queries the same way (the code is shared), so they
  differ only in the network that computes the logits and boxes.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import structlog
import torch
from PIL import Image

from milr.critics.base import Critique, PromptSpec, check_batch, check_parts
from milr.critics.geneval import (
    MAX_OBJECTS,
    POSITION_THRESHOLD,
    ColorClassifier,
    ColorMemo,
    Detection,
    detect_many,
    detections_dict,
    evaluate_selected,
    holds_relation,
    memos_for,
    select_detections,
    spec_classes,
)
from milr.critics.spec_parse import spec_for
from milr.critics.vision import (
    DEFAULT_BATCH_SIZE,
    WEIGHTS_HELP,
    ClipColorClassifier,
    GroundingDinoDetector,
    WeightsUnavailableError,
    batches,
    grounding_caption,
    weights_problem,
)

log = structlog.get_logger(__name__)

BOX_THRESHOLD = 0.3
NMS_IOU = 0.5
WRONG_COUNT = 0.2

BACKENDS: tuple[str, ...] = ("transformers", "groundingdino-py")
GROUNDINGDINO_INSTALL = 'pip install "milr[groundingdino]"'
# upstream's `load_image`: RandomResize([800], max_size=1333), then ImageNet normalisation
GROUNDINGDINO_IMAGE_SIZE = (800, 1333)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


# ---------------------------------------------------------------------------------------------- backends
class BackendUnavailableError(ImportError):
    """Raised when the chosen detector backend's package is missing or broken; the message has the fix."""


def _backend_missing(detail: str) -> BackendUnavailableError:
    return BackendUnavailableError(
        "the detector backend 'groundingdino-py' (the original GroundingDINO code, for .pth checkpoints) "
        f"needs the groundingdino package: {GROUNDINGDINO_INSTALL}. It imports torchvision, which must be "
        "the build made for the installed torch: install a matching torch and torchvision pair first "
        f"(the README's 'Real critics' names pairs that import together) ({detail})"
    )


def require_groundingdino():
    """The `groundingdino` package (groundingdino-py), imported now, or `BackendUnavailableError` with the fix."""
    try:
        import groundingdino
    except ImportError as err:
        raise _backend_missing(f"import said: {err}") from err
    return groundingdino


def _groundingdino_api():
    """(build_model, clean_state_dict, SLConfig, transforms) of the original code. Importing them imports
    torchvision, whose C++ ops fail to register beside a torch of another build (a RuntimeError)."""
    require_groundingdino()
    try:
        import groundingdino.datasets.transforms as transforms
        from groundingdino.models import build_model
        from groundingdino.util.misc import clean_state_dict
        from groundingdino.util.slconfig import SLConfig
    except (ImportError, RuntimeError) as err:
        raise _backend_missing(f"importing it failed: {type(err).__name__}: {err}") from err
    return build_model, clean_state_dict, SLConfig, transforms


class OriginalBertForTransformers5(torch.nn.Module):
    """GroundingDINO's `BertModelWarper` for transformers 5, which removed the `BertModel` methods
    the original wrapper calls (`get_extended_attention_mask`, `get_head_mask`) and changed its
    encoder's arguments: the original code cannot build its text encoder beside milr's transformers.

    Same submodules as the original wrapper (`embeddings`, `encoder`, `pooler`: checkpoint keys
    `bert.*` load unchanged), same arithmetic: the [B, T, T] phrase mask GroundingDINO builds
    becomes the additive mask `(1 - mask) * finfo.min` of `get_extended_attention_mask`.
    """

    def __init__(self, bert_model):
        super().__init__()
        self.config = bert_model.config
        self.embeddings, self.encoder, self.pooler = bert_model.embeddings, bert_model.encoder, bert_model.pooler

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, **unused) -> dict:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        hidden = self.embeddings(input_ids=input_ids, token_type_ids=token_type_ids, position_ids=position_ids)
        mask = attention_mask[:, None, :, :] if attention_mask.dim() == 3 else attention_mask[:, None, None, :]
        mask = (1.0 - mask.to(hidden.dtype)) * torch.finfo(hidden.dtype).min
        sequence = self.encoder(hidden, attention_mask=mask)[0]
        pooled = self.pooler(sequence) if self.pooler is not None else None
        return {"last_hidden_state": sequence, "pooler_output": pooled}


@contextlib.contextmanager
def _bert_wrapper_for_this_transformers():
    """While the original code builds its model: its `BertModelWarper` replaced by
    `OriginalBertForTransformers5` when the installed transformers lacks what the original needs."""
    import groundingdino.models.GroundingDINO.groundingdino as original
    from transformers import BertModel

    if hasattr(BertModel, "get_extended_attention_mask"):  # transformers 4: the original runs as it is
        yield
        return
    saved = original.BertModelWarper
    original.BertModelWarper = OriginalBertForTransformers5
    try:
        yield
    finally:
        original.BertModelWarper = saved


# the wrapper swap is a module attribute of the original code: one build at a time
_BUILD_LOCK = threading.Lock()


def build_original_model(args):
    """`groundingdino.models.build_model(args)` (an `SLConfig`), quietly (upstream prints while it
    builds) and with its BERT wrapper fitted to the installed transformers."""
    build_model, *_ = _groundingdino_api()
    printed = io.StringIO()
    with _BUILD_LOCK, _bert_wrapper_for_this_transformers(), contextlib.redirect_stdout(printed):
        model = build_model(args)
    log.debug("groundingdino_built", printed=printed.getvalue().strip())
    return model


def _is_pth(checkpoint) -> bool:
    return isinstance(checkpoint, str | os.PathLike) and os.fspath(checkpoint).lower().endswith(".pth")


def detector_backend(backend: str | None, checkpoint: str | os.PathLike | None = None) -> str:
    """The GroundingDINO backend to use: `backend` checked ("transformers" or "groundingdino-py"), or,
    when None, "groundingdino-py" for a checkpoint ending in `.pth` and "transformers" otherwise."""
    if backend is None:
        return "groundingdino-py" if _is_pth(checkpoint) else "transformers"
    key = backend.strip().lower().replace("_", "-") if isinstance(backend, str) else backend
    if key not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not a detector backend; valid: {', '.join(BACKENDS)}")
    if key == "groundingdino-py" and checkpoint is None:
        raise ValueError(
            "backend='groundingdino-py' needs checkpoint=PATH to an original GroundingDINO .pth "
            "(e.g. groundingdino_swint_ogc.pth)"
        )
    if key == "transformers" and _is_pth(checkpoint):
        raise ValueError(
            f"checkpoint={str(checkpoint)!r} is an original .pth checkpoint, which transformers' port "
            "cannot read: pass backend='groundingdino-py' (or a transformers model folder or hub id)"
        )
    return key


def grounding_dino_detector(
    backend: str | None = None, checkpoint: str | os.PathLike | None = None, *, device=None, **options
):
    """A lazily loading GroundingDINO detector of `backend` (see `detector_backend`): transformers'
    `GroundingDinoDetector(model_name=checkpoint)` or the original code's `GroundingDinoPyDetector(checkpoint)`.
    `options` go to the detector (e.g. `min_score`, `batch_size`; `config`, `text_encoder` for groundingdino-py)."""
    if detector_backend(backend, checkpoint) == "groundingdino-py":
        return GroundingDinoPyDetector(checkpoint, device=device, **options)
    if checkpoint is not None:
        options["model_name"] = os.fspath(checkpoint)
    return GroundingDinoDetector(device=device, **options)


class GroundingDinoPyDetector(GroundingDinoDetector):
    """GroundingDINO run by its original code (package `groundingdino` of groundingdino-py) from an
    original `.pth` checkpoint, e.g. `groundingdino_swint_ogc.pth`.

    Only the network differs from `GroundingDinoDetector`: captions, token spans and the reading of
    queries (a class's score is the highest sigmoid over its tokens; relative centre boxes to pixel
    corners) are its code, run on this model's `pred_logits` and `pred_boxes`. Images are prepared
    as upstream's `load_image` does: `RandomResize([800], max_size=1333)` (one size: not random),
    `ToTensor`, ImageNet `Normalize`; a batch holds images of one size and one caption (see
    `detect_batch`), so nothing is padded. Under transformers 5 the model is built with
    `OriginalBertForTransformers5` in place of the original BERT wrapper.

    Args:
        checkpoint (`str` or `Path`): the `.pth` (a dict with "model", or a bare state dict), loaded
            with `weights_only=True`. A checkpoint that leaves any model parameter unset is refused
            (upstream loads with `strict=False` and would run those parameters random).
        model (*optional*): an already-built `groundingdino` model (tests pass tiny random ones);
            then `checkpoint` may be None.
        config (`str` or `Path`, *optional*): the original Python config; defaults to the package's
            `GroundingDINO_SwinT_OGC.py` (pass `GroundingDINO_SwinB_cfg.py` for the Swin-B checkpoint).
        text_encoder (`str`, defaults to `"bert-base-uncased"`): the BERT the config builds. Upstream
            builds it with `from_pretrained` before loading the checkpoint (which holds BERT's weights
            too), so it must be cached or downloadable, or a local folder.
        image_size (`(int, int)`, defaults to (800, 1333)): shorter side, longest allowed side.
        device, min_score, batch_size: as `GroundingDinoDetector`.

    The package is imported when the detector is built: `BackendUnavailableError` says how to install it.
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike | None = None,
        *,
        model=None,
        config: str | os.PathLike | None = None,
        text_encoder: str = "bert-base-uncased",
        image_size: tuple[int, int] = GROUNDINGDINO_IMAGE_SIZE,
        device: str | torch.device | None = None,
        min_score: float = 0.05,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ):
        require_groundingdino()
        if checkpoint is None and model is None:
            raise ValueError("GroundingDinoPyDetector needs checkpoint=PATH to an original .pth, or a built model=")
        name = os.fspath(checkpoint) if checkpoint is not None else "(built model)"
        super().__init__(model_name=name, device=device, min_score=min_score, batch_size=batch_size)
        self.checkpoint, self.config, self.text_encoder = checkpoint, config, text_encoder
        self.image_size = tuple(image_size)
        if model is not None:
            self._use(model)
            self._loaded = True

    def _use(self, model) -> None:
        self.model = model.to(self.device).eval()
        # the original model carries its tokenizer; the shared span code reads `processor.tokenizer`
        self.processor = SimpleNamespace(tokenizer=model.tokenizer)

    def checkpoint_path(self) -> Path:
        """The `.pth` to load (a detector built around a model has none to load)."""
        if self.checkpoint is None:
            raise ValueError("this GroundingDinoPyDetector was built around a model and has no checkpoint to load")
        return Path(self.checkpoint).expanduser()

    def config_path(self) -> Path:
        """The original config file: `config`, else the package's Swin-T config."""
        if self.config is not None:
            return Path(self.config).expanduser()
        return Path(require_groundingdino().__file__).parent / "config" / "GroundingDINO_SwinT_OGC.py"

    def check(self) -> None:
        """Cheap pre-flight (`WeightsUnavailableError`): the checkpoint and config are files, and the
        text encoder that upstream builds first is a folder, cached or downloadable."""
        if self._loaded:
            return
        for what, path in (("checkpoint", self.checkpoint_path()), ("config", self.config_path())):
            if not path.is_file():
                raise WeightsUnavailableError(
                    f"GroundingDINO {what} {os.fspath(path)!r} is not a file: download the original "
                    "groundingdino_swint_ogc.pth (IDEA-Research/GroundingDINO's releases) and pass checkpoint=PATH"
                    + ("" if what == "checkpoint" else ", and config=PATH of its original config")
                )
        problem = weights_problem(self.text_encoder)
        if problem is not None:
            what = "GroundingDINO's text encoder"
            raise WeightsUnavailableError(WEIGHTS_HELP.format(what=what, name=self.text_encoder) + f" ({problem})")

    def _load(self) -> None:
        _, clean_state_dict, SLConfig, _ = _groundingdino_api()
        args = SLConfig.fromfile(os.fspath(self.config_path()))
        args.device, args.text_encoder_type = str(self.device), self.text_encoder
        try:
            model = build_original_model(args)
        except OSError as err:
            what = "GroundingDINO's text encoder"
            raise WeightsUnavailableError(
                WEIGHTS_HELP.format(what=what, name=self.text_encoder) + f" (loader said: {err})"
            ) from err
        checkpoint = self.checkpoint_path()
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        state = state.get("model", state) if isinstance(state, dict) else state
        result = model.load_state_dict(clean_state_dict(state), strict=False)
        if result.missing_keys:
            raise ValueError(
                f"checkpoint {str(checkpoint)!r} leaves {len(result.missing_keys)} parameters of the "
                f"model unset (first: {result.missing_keys[:3]}): pass config= of the checkpoint's architecture"
            )
        log.debug("groundingdino_loaded", checkpoint=str(checkpoint), unused=result.unexpected_keys)
        self._use(model)

    @torch.no_grad()
    def detect_batch(self, images: Sequence[Image.Image], classes: Sequence[Sequence[str]]) -> list[list[Detection]]:
        """Each image's detections of its own classes, `batch_size` images of one size and one caption
        per forward. One caption, not only one size: the original text enhancer repeats its phrase
        masks head-major (`src_mask.repeat(nhead, 1, 1)`) where `nn.MultiheadAttention` reads them
        batch-major, so in a batch of different captions each caption gets another's mask (on a tiny
        random model, scores moved by up to 0.92 against each image alone)."""
        if len(images) != len(classes):
            raise ValueError(f"need one list of classes per image, got {len(classes)} for {len(images)} images")
        self.load()
        wanted = [list(dict.fromkeys(c)) for c in classes]
        groups: dict[tuple, list[int]] = {}
        for i, cls in enumerate(wanted):
            if cls:
                groups.setdefault((images[i].size, tuple(cls)), []).append(i)
        out: list[list[Detection]] = [[] for _ in images]
        for rows in groups.values():
            for chunk in batches(rows, self.batch_size):
                found = self._detect([images[i].convert("RGB") for i in chunk], [wanted[i] for i in chunk])
                for i, dets in zip(chunk, found, strict=True):
                    out[i] = dets
        return out

    def pixels(self, image: Image.Image) -> torch.Tensor:
        """[3, H, W] input of one image, prepared as upstream's `load_image`."""
        *_, T = _groundingdino_api()
        short, longest = self.image_size
        transform = T.Compose(
            [T.RandomResize([short], max_size=longest), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
        )
        return transform(image.convert("RGB"), None)[0]

    def _detect(self, images: list[Image.Image], classes: list[list[str]]) -> list[list[Detection]]:
        captions, spans = zip(*(grounding_caption(c) for c in classes), strict=True)
        # the model tokenises its captions itself, padded to the longest: the same call locates the spans
        tokens = self.model.tokenizer(list(captions), padding="longest", return_tensors="pt")
        positions = [
            self._class_tokens(caption, span, cls, tokens["input_ids"][b].tolist(), tokens["attention_mask"][b])
            for b, (caption, span, cls) in enumerate(zip(captions, spans, classes, strict=True))
        ]
        pixels = torch.stack([self.pixels(image) for image in images]).to(self.device)
        out = self.model(pixels, captions=list(captions))
        outputs = SimpleNamespace(logits=out["pred_logits"], pred_boxes=out["pred_boxes"])
        return [
            self._detections(outputs, b, cls, pos, image.size)
            for b, (image, cls, pos) in enumerate(zip(images, classes, positions, strict=True))
        ]


@dataclass
class Part:
    """One graded requirement."""

    requirement: str
    score: float


def _count_score(n: int, want: int, exact: bool, wrong: float) -> float:
    if n == 0:
        return 0.0
    right = n == want if exact else n >= want
    return 1.0 if right else wrong


def soft_color_asks(spec: PromptSpec, detected: Mapping[str, list[Detection]]) -> list[tuple[list[Detection], str]]:
    """The (objects, cls) whose colours `soft_parts` asks for: each colour clause's first `count`
    objects, as many as were found (GenEval's check asks a subset of these)."""
    asks = []
    for item in spec.include:
        found = detected.get(item.cls, [])[: item.count]
        if item.color is not None and found:
            asks.append((found, item.cls))
    return asks


def soft_parts(
    spec: PromptSpec,
    detected: Mapping[str, list[Detection]],
    colors_of: Callable[[list[Detection], str], list[str]],
    *,
    margin: float = POSITION_THRESHOLD,
    wrong_count: float = WRONG_COUNT,
) -> list[Part]:
    """The graded requirements of `spec` on filtered detections (see the module docstring)."""
    exact = {(e.cls, e.count - 1) for e in spec.exclude}
    parts = []
    for item in spec.include:
        dets = detected.get(item.cls, [])
        is_exact = (item.cls, item.count) in exact
        label = f"{'exactly' if is_exact else 'at least'} {item.count} {item.cls}"
        parts.append(Part(f"{label} (saw {len(dets)})", _count_score(len(dets), item.count, is_exact, wrong_count)))
        found = dets[: item.count]
        if item.color is not None:
            colors = colors_of(found, item.cls) if found else []
            parts.append(Part(f"{item.color} {item.cls} (saw {colors})", colors.count(item.color) / item.count))
        if item.position is not None:
            relation, target = item.position
            target_item = spec.include[target]
            targets = detected.get(target_item.cls, [])[: target_item.count]
            ok = bool(found) and bool(targets) and holds_relation(found, targets, relation, margin)
            parts.append(Part(f"{item.cls} {relation} {target_item.cls}", float(ok)))
    for item in spec.exclude:
        if (item.cls, item.count - 1) not in {(i.cls, i.count) for i in spec.include}:
            n = len(detected.get(item.cls, []))
            parts.append(Part(f"fewer than {item.count} {item.cls} (saw {n})", float(n < item.count)))
    return parts


class DetectorCritic:
    """Soft GenEval-style score from a detector and CLIP colours (module docstring has the rules).

    Args:
        detector (`callable`, *optional*): `detector(image, classes) -> list[Detection]`; defaults to
            `GroundingDinoDetector()` (`IDEA-Research/grounding-dino-tiny`, loaded lazily). Pass
            `GroundingDinoDetector(model, processor)` to use already-built objects.
        backend (`str`, *optional*), checkpoint (`str` or `Path`, *optional*): build the default
            detector with another backend or weights instead: "transformers" (a hub id or folder)
            or "groundingdino-py" (an original `.pth`; a `.pth` checkpoint picks it). Not with `detector`.
        detector_options (`dict`, *optional*): more arguments of that detector, e.g. `min_score`, or
            `config` and `text_encoder` of `GroundingDinoPyDetector`.
        color_classifier (`callable`, *optional*): `(image, detections, cls) -> colours`; defaults to
            `ClipColorClassifier()` (CLIP ViT-L/14, loaded lazily, only for prompts with a colour).
        box_threshold (`float`, defaults to 0.3), nms_iou (`float`, defaults to 0.5), max_objects
            (`int`, defaults to 16), position_threshold (`float`, defaults to 0.1), wrong_count
            (`float`, defaults to 0.2): the constants above.
    """

    name = "detector"

    def __init__(
        self,
        detector: Callable[[Image.Image, Sequence[str]], list[Detection]] | None = None,
        color_classifier: ColorClassifier | None = None,
        *,
        backend: str | None = None,
        checkpoint: str | os.PathLike | None = None,
        detector_options: Mapping | None = None,
        box_threshold: float = BOX_THRESHOLD,
        nms_iou: float = NMS_IOU,
        max_objects: int = MAX_OBJECTS,
        position_threshold: float = POSITION_THRESHOLD,
        wrong_count: float = WRONG_COUNT,
        device: str | None = None,
        name: str | None = None,
    ):
        if detector is not None and (backend is not None or checkpoint is not None or detector_options):
            raise ValueError(
                "pass either a built detector or backend/checkpoint/detector_options to build one, not both"
            )
        if detector is None:
            detector = grounding_dino_detector(backend, checkpoint, device=device, **dict(detector_options or {}))
        self.detector = detector
        self.color_classifier = (
            color_classifier if color_classifier is not None else ClipColorClassifier(device=device)
        )
        self.box_threshold, self.nms_iou, self.max_objects = box_threshold, nms_iou, max_objects
        self.position_threshold, self.wrong_count = position_threshold, wrong_count
        self.name = name or self.name

    def check(self) -> None:
        """Cheap pre-flight: the default models' weights are on disk or downloadable (`WeightsUnavailableError`)."""
        check_parts(self.detector, self.color_classifier)

    def __call__(self, image: Image.Image, prompt: str, spec: PromptSpec | Mapping | None = None) -> Critique:
        return self.score_batch([image], [prompt], [spec])[0]

    def score_batch(
        self, images: Sequence[Image.Image], prompts: Sequence[str], specs: Sequence[PromptSpec | Mapping | None]
    ) -> list[Critique]:
        """One verdict per image: the images with requirements detected in one batch, then their colours in one."""
        started = time.perf_counter()
        images, prompts, specs = check_batch(images, prompts, specs)
        out: list[Critique | None] = [None] * len(images)
        todo: list[tuple[int, PromptSpec]] = []
        for i, (prompt, spec) in enumerate(zip(prompts, specs, strict=True)):
            parsed = self._spec_or_abstention(prompt, spec, started)
            if isinstance(parsed, Critique):
                out[i] = parsed
            else:
                todo.append((i, parsed))
        if todo:
            found = detect_many(self.detector, [images[i] for i, _ in todo], [spec_classes(s) for _, s in todo])
            detected = [self._select(d, s) for d, (_, s) in zip(found, todo, strict=True)]
            asks = [soft_color_asks(s, d) for d, (_, s) in zip(detected, todo, strict=True)]
            memos = memos_for(self.color_classifier, [images[i] for i, _ in todo], asks)
            for (i, spec), d, memo in zip(todo, detected, memos, strict=True):
                out[i] = self._verdict(images[i], spec, d, memo, started)
        return out

    def _spec_or_abstention(self, prompt: str, spec: PromptSpec | Mapping | None, started: float):
        """The prompt's spec, or the abstention when there is none to check."""
        try:
            spec = spec_for(prompt, spec)
        except ValueError as err:
            return Critique(critic=self.name, error=str(err), seconds=time.perf_counter() - started)
        if not spec.include and not spec.exclude:
            return Critique(critic=self.name, error="the spec states no requirement", seconds=0.0)
        return spec

    def _select(self, detections: list[Detection], spec: PromptSpec) -> dict[str, list[Detection]]:
        return select_detections(
            detections,
            spec.tag,
            threshold=self.box_threshold,
            counting_threshold=None,
            max_objects=self.max_objects,
            max_overlap=self.nms_iou,
        )

    def _verdict(
        self, image: Image.Image, spec: PromptSpec, detected: dict[str, list[Detection]], memo: ColorMemo, started
    ) -> Critique:
        parts = soft_parts(spec, detected, memo, margin=self.position_threshold, wrong_count=self.wrong_count)
        hard = evaluate_selected(
            spec, detected, image=image, classify_colors=memo.classify, position_threshold=self.position_threshold
        )
        score = sum(p.score for p in parts) / len(parts)
        verdict = Critique(
            critic=self.name,
            score=min(1.0, max(0.0, score)),
            rationale="; ".join(f"{p.requirement}: {p.score:g}" for p in parts),
            details={
                "tag": spec.tag,
                "requirements": [{"requirement": p.requirement, "score": p.score} for p in parts],
                "geneval_correct": hard.correct,
                "geneval_reasons": hard.reasons,
                "detected": detections_dict(detected),
            },
            seconds=time.perf_counter() - started,
        )
        log.info("detector_scored", critic=self.name, score=verdict.score, seconds=verdict.seconds)
        return verdict
