"""GenEval's decision rules and constants (djghosh13/geneval, `evaluation/evaluate_images.py`), as
pure functions over detections, plus `GenEvalOracle`, the critic that feeds them from a detector.

Public API (the rules import nothing heavier than `milr.critics.base`; ShapesWorld reuses them):

- Constants, GenEval's defaults: `THRESHOLD = 0.3` (keep a detection when score > it),
  `COUNTING_THRESHOLD = 0.9` (used instead, for every class, when `spec.tag == "counting"`),
  `MAX_OBJECTS = 16` (per class, most confident first), `MAX_OVERLAP = 1.0` (per-class NMS IoU;
  1.0 = NMS off), `POSITION_THRESHOLD = 0.1` (margin of `relative_position`), `COLORS` (10 names),
  `COLOR_TEMPLATES` (3 CLIP templates, `{color}` and `{cls}`), `TAGS` (the 6 tasks), `COCO_CLASSES`
  (GenEval's 80 object names in detector order).
- `Detection(cls, box=(x1, y1, x2, y2), score=1.0, color=None, mask=None)`: one detected object in
  pixels, y pointing down. `color` is the object's colour when the detector knows it (ShapesWorld);
  otherwise a `classify_colors` callable is asked. `mask` (bool HxW array) only shapes colour crops.
- `select_detections(detections, tag, ...) -> {cls: [Detection, ...]}`: GenEval's per-class filter
  (threshold, top `max_objects`, optional greedy NMS), most confident first; empty classes absent.
- `evaluate(spec, detections, *, image=None, classify_colors=None, ...) -> GenEvalResult`: filter,
  then `evaluate_selected`. `GenEvalResult` is a NamedTuple `(correct, reasons, requirements)`:
  `correct` is GenEval's boolean, `reasons` its list of failure messages, `requirements` one
  `RequirementResult` per include clause, then per exclude clause.
- `evaluate_selected(spec, detected, ...)`: the rules on an already filtered `{cls: [...]}` dict.
- `relative_position(box_a, box_b, margin=0.1) -> set[str]`: relations of A to B ("left of",
  "right of", "above", "below"); `holds_relation(objects, targets, relation, margin)`: the
  position rule (every object holds it to every target).
- `compute_iou(box_a, box_b)`: GenEval's IoU (inclusive pixels, +1 on each side).
- `summarize(results) -> dict`: the benchmark summary (% correct images and prompts, mean per tag,
  overall = unweighted mean of the tag scores).
- `GenEvalOracle` (name "geneval"): a Critic scoring 1/0 per image with a pluggable detector
  (`detector(image, classes) -> list[Detection]`, Mask2Former from transformers by default) and
  CLIP colours (`milr.critics.vision`). Models load lazily on first use. `score_batch` detects a
  batch at once when the detector has `detect_batch` (`BatchDetector`), and classifies every image's
  colours in one batch when the classifier has `classify_batch` (`BatchColorClassifier`).

`spec` is a `PromptSpec` or GenEval's metadata dict. Rules, exactly as GenEval codes them:
include clauses AND, exclude clauses OR. Include: the first `count` objects of the class are
"found"; fewer → fail. Colour: pass when at least `count` found objects have the target colour.
Position (checked only when the clause has matched so far): the target clause must have matched,
and every found object must hold the relation to every found target object. Exclude: fail when
`len(detected[cls]) >= count`. Position targets must point at an earlier include clause (GenEval
indexes its list of already matched groups; a later index would crash it, here it is a ValueError).

Two known disagreements with GenEval's own code, left as they are. An outside cross-check ran
GenEval's decision code against `GenEvalOracle` on 36,000 synthetic cases: with continuous scores
every tag agreed on every case, with exact-threshold and tied scores 99.18% did, and these two were
the only causes:

- Precision at the threshold. GenEval compares mmdet's float32 score arrays with the threshold in
  float32; here scores are Python floats, compared in float64. A score of float32(0.3) =
  0.30000001… equals the threshold in float32 (fails GenEval's `> 0.3`) and exceeds it in float64
  (passes here). At 0.9 both reject float32(0.9) = 0.89999998.
- Order of tied detections. GenEval ranks a class's detections with `np.argsort(score)[::-1]`, which
  puts equal scores in reverse detector order; `select_detections` sorts stably (detector order). With
  ties, the first `count` objects (colour and position checks) and the box NMS keeps can differ.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

import structlog
from PIL import Image

from milr.critics.base import (  # noqa: F401 (COCO_CLASSES, RELATIONS re-exported)
    COCO_CLASSES,
    COLORS,
    RELATIONS,
    Critique,
    PromptSpec,
    check_batch,
    check_parts,
)
from milr.critics.spec_parse import spec_for

log = structlog.get_logger(__name__)

THRESHOLD = 0.3
COUNTING_THRESHOLD = 0.9
MAX_OBJECTS = 16
MAX_OVERLAP = 1.0
POSITION_THRESHOLD = 0.1
BACKGROUND = "#999"  # GenEval pastes masked objects on this grey before cropping

COLOR_TEMPLATES: tuple[str, ...] = (
    "a photo of a {color} {cls}",
    "a photo of a {color}-colored {cls}",
    "a photo of a {color} object",
)
TAGS: tuple[str, ...] = ("single_object", "two_object", "counting", "colors", "position", "color_attr")

Box = tuple[float, float, float, float]
# classify_colors(image, found_objects, cls) -> one colour name per object, in order
ColorClassifier = Callable[[Image.Image | None, list["Detection"], str], list[str]]


@dataclass(frozen=True)
class Detection:
    """One detected object: class name, pixel box (x1, y1, x2, y2) with y down, confidence."""

    cls: str
    box: Box
    score: float = 1.0
    color: str | None = None
    mask: Any = field(default=None, compare=False, repr=False)  # bool array [H, W] or None


@dataclass
class RequirementResult:
    """The verdict on one include or exclude clause, with what the rules saw."""

    clause: Literal["include", "exclude"]
    index: int
    cls: str
    count: int
    detected: int  # detections of this class after filtering (all of them, not just the first `count`)
    passed: bool
    color: str | None = None
    colors: list[str] | None = None  # predicted colours of the found objects, when a colour was required
    position: tuple[str, int] | None = None
    relations: list[list[str]] | None = None  # relations of each found object to each target, when checked
    reason: str = ""


class GenEvalResult(NamedTuple):
    correct: bool
    reasons: list[str]
    requirements: list[RequirementResult]


# ---------------------------------------------------------------------------------------------- geometry
def compute_iou(box_a: Sequence[float], box_b: Sequence[float]) -> float:
    """GenEval's IoU: boxes as inclusive pixel ranges, hence the +1 on each side."""

    def area(b: Sequence[float]) -> float:
        return max(b[2] - b[0] + 1, 0) * max(b[3] - b[1] + 1, 0)

    inter = area((max(box_a[0], box_b[0]), max(box_a[1], box_b[1]), min(box_a[2], box_b[2]), min(box_a[3], box_b[3])))
    union = area(box_a) + area(box_b) - inter
    return inter / union if union else 0.0


def _sign(x: float) -> float:
    return (x > 0) - (x < 0)


def relative_position(box_a: Sequence[float], box_b: Sequence[float], margin: float = POSITION_THRESHOLD) -> set[str]:
    """Relations of A to B from box centres, GenEval's rule.

    The centre offset is shrunk on each axis by `margin` times the sum of both objects' extents on
    that axis, so touching or overlapping objects have no relation; the shrunk offset over the full
    offset's length must exceed 0.5 along an axis for the relation to hold.
    """
    ca = ((box_a[0] + box_a[2]) / 2, (box_a[1] + box_a[3]) / 2)
    cb = ((box_b[0] + box_b[2]) / 2, (box_b[1] + box_b[3]) / 2)
    dim_a = (abs(box_a[2] - box_a[0]), abs(box_a[3] - box_a[1]))
    dim_b = (abs(box_b[2] - box_b[0]), abs(box_b[3] - box_b[1]))
    offset = (ca[0] - cb[0], ca[1] - cb[1])
    revised = [
        max(abs(o) - margin * (da + db), 0.0) * _sign(o) for o, da, db in zip(offset, dim_a, dim_b, strict=True)
    ]
    if all(abs(r) < 1e-3 for r in revised):
        return set()
    norm = math.hypot(*offset)
    dx, dy = revised[0] / norm, revised[1] / norm
    relations = set()
    if dx < -0.5:
        relations.add("left of")
    if dx > 0.5:
        relations.add("right of")
    if dy < -0.5:
        relations.add("above")
    if dy > 0.5:
        relations.add("below")
    return relations


def holds_relation(
    objects: Sequence[Detection], targets: Sequence[Detection], relation: str, margin: float = POSITION_THRESHOLD
) -> bool:
    """GenEval's position rule: every object holds `relation` to every target (vacuous if either is empty)."""
    return all(relation in relative_position(o.box, t.box, margin) for o in objects for t in targets)


# ---------------------------------------------------------------------------------------------- filtering
def select_detections(
    detections: Iterable[Detection],
    tag: str,
    *,
    threshold: float = THRESHOLD,
    counting_threshold: float | None = COUNTING_THRESHOLD,
    max_objects: int = MAX_OBJECTS,
    max_overlap: float = MAX_OVERLAP,
) -> dict[str, list[Detection]]:
    """GenEval's per-class filter: score > threshold, top `max_objects`, then greedy NMS.

    The counting threshold replaces `threshold` for every class when `tag == "counting"`; pass
    `counting_threshold=None` to never switch (detectors whose scores live on another scale).
    NMS drops a box whose IoU with a kept, more confident box of its class is >= `max_overlap`;
    `max_overlap=1.0` turns it off, as in GenEval's default.
    """
    cut = counting_threshold if (tag == "counting" and counting_threshold is not None) else threshold
    by_class: dict[str, list[Detection]] = defaultdict(list)
    for det in detections:
        by_class[det.cls].append(det)
    selected: dict[str, list[Detection]] = {}
    for cls, dets in by_class.items():
        ranked = sorted((d for d in dets if d.score > cut), key=lambda d: -d.score)[:max_objects]
        kept: list[Detection] = []
        while ranked:
            best = ranked.pop(0)
            kept.append(best)
            if max_overlap < 1:
                ranked = [d for d in ranked if compute_iou(best.box, d.box) < max_overlap]
        if kept:
            selected[cls] = kept
    return selected


# ---------------------------------------------------------------------------------------------- the rules
def _as_spec(spec: PromptSpec | Mapping) -> PromptSpec:
    return spec if isinstance(spec, PromptSpec) else PromptSpec.from_geneval(dict(spec))


def _colors_of(
    found: list[Detection], cls: str, image: Image.Image | None, classify_colors: ColorClassifier | None
) -> list[str]:
    """Colours of the found objects: their own `color` if all have one, else the classifier's."""
    if all(d.color is not None for d in found):
        return [d.color for d in found]
    if classify_colors is None:
        raise ValueError(f"a colour is required for {cls!r} but the detections carry none and no classify_colors")
    return list(classify_colors(image, found, cls))


def _check_color(req: RequirementResult, found: list[Detection], colors: list[str]) -> str:
    req.colors = colors
    n_target = colors.count(req.color)
    if n_target >= req.count:
        return ""
    others = ", ".join(f"{colors.count(c)} {c}" for c in COLORS if c in colors)
    return f"expected {req.color} {req.cls}>={req.count}, found {n_target} {req.color}; and {others}"


def _check_position(
    req: RequirementResult, found: list[Detection], targets: list[Detection] | None, margin: float
) -> str:
    relation, _ = req.position
    if targets is None:
        return f"no target for {req.cls} to be {relation}"
    req.relations = [sorted(relative_position(o.box, t.box, margin)) for o in found for t in targets]
    for rels in req.relations:
        if relation not in rels:
            return f"expected {req.cls} {relation} target, found {' and '.join(rels)} target"
    return ""


def evaluate_selected(
    spec: PromptSpec | Mapping,
    detected: Mapping[str, list[Detection]],
    *,
    image: Image.Image | None = None,
    classify_colors: ColorClassifier | None = None,
    position_threshold: float = POSITION_THRESHOLD,
) -> GenEvalResult:
    """GenEval's `evaluate` on filtered detections (`select_detections`' output), most confident first."""
    spec = _as_spec(spec)
    reasons: list[str] = []
    requirements: list[RequirementResult] = []
    matched_groups: list[list[Detection] | None] = []
    for i, item in enumerate(spec.include):
        all_of_class = list(detected.get(item.cls, []))
        found = all_of_class[: item.count]
        req = RequirementResult(
            "include", i, item.cls, item.count, len(all_of_class), True, color=item.color, position=item.position
        )
        reason = ""
        if len(found) < item.count:
            reason = f"expected {item.cls}>={item.count}, found {len(found)}"
        else:
            if item.color is not None:
                reason = _check_color(req, found, _colors_of(found, item.cls, image, classify_colors))
            if item.position is not None and not reason:
                target = item.position[1]
                if not 0 <= target < i:
                    raise ValueError(
                        f"include[{i}] ({item.cls}) points at include[{target}]; a target must come earlier"
                    )
                reason = _check_position(req, found, matched_groups[target], position_threshold)
        req.passed, req.reason = not reason, reason
        if reason:
            reasons.append(reason)
        matched_groups.append(found if req.passed else None)
        requirements.append(req)
    for i, item in enumerate(spec.exclude):
        n = len(detected.get(item.cls, []))
        reason = f"expected {item.cls}<{item.count}, found {n}" if n >= item.count else ""
        if reason:
            reasons.append(reason)
        requirements.append(RequirementResult("exclude", i, item.cls, item.count, n, not reason, reason=reason))
    return GenEvalResult(not reasons, reasons, requirements)


def evaluate(
    spec: PromptSpec | Mapping,
    detections: Iterable[Detection],
    *,
    image: Image.Image | None = None,
    classify_colors: ColorClassifier | None = None,
    threshold: float = THRESHOLD,
    counting_threshold: float | None = COUNTING_THRESHOLD,
    max_objects: int = MAX_OBJECTS,
    max_overlap: float = MAX_OVERLAP,
    position_threshold: float = POSITION_THRESHOLD,
) -> GenEvalResult:
    """GenEval's verdict on raw detections: `select_detections`, then `evaluate_selected`."""
    spec = _as_spec(spec)
    detected = select_detections(
        detections,
        spec.tag,
        threshold=threshold,
        counting_threshold=counting_threshold,
        max_objects=max_objects,
        max_overlap=max_overlap,
    )
    return evaluate_selected(
        spec, detected, image=image, classify_colors=classify_colors, position_threshold=position_threshold
    )


# ---------------------------------------------------------------------------------------------- summary
def summarize(results: Iterable[Mapping]) -> dict:
    """GenEval's `summary_scores.py`: rows with `tag`, `correct` and optionally `prompt`.

    Returns images, prompts, correct_images (fraction), correct_prompts (fraction of prompts with at
    least one correct image; rows without `prompt` count as their own prompt), `tags` (mean
    correctness per tag, in first-seen order) and `overall` (unweighted mean of the tag scores;
    GenEval's headline number). `complete` says whether all six GenEval tags were present.
    """
    rows = list(results)
    if not rows:
        raise ValueError("summarize needs at least one result row")
    by_tag: dict[str, list[bool]] = {}
    by_prompt: dict[Any, bool] = {}
    for i, row in enumerate(rows):
        correct = bool(row["correct"])
        by_tag.setdefault(row["tag"], []).append(correct)
        key = (row["tag"], row.get("prompt", i))
        by_prompt[key] = by_prompt.get(key, False) or correct
    tags = {tag: sum(v) / len(v) for tag, v in by_tag.items()}
    return {
        "images": len(rows),
        "prompts": len(by_prompt),
        "correct_images": sum(bool(r["correct"]) for r in rows) / len(rows),
        "correct_prompts": sum(by_prompt.values()) / len(by_prompt),
        "tags": tags,
        "overall": sum(tags.values()) / len(tags),
        "complete": set(TAGS) <= set(tags),
    }


# ---------------------------------------------------------------------------------------------- batches
Detector = Callable[[Image.Image, Sequence[str]], list[Detection]]
ColorKey = tuple[str, tuple[Box, ...]]


@runtime_checkable
class BatchDetector(Protocol):
    """A detector that also detects many images at once, each with its own classes."""

    def __call__(self, image: Image.Image, classes: Sequence[str]) -> list[Detection]: ...

    def detect_batch(
        self, images: Sequence[Image.Image], classes: Sequence[Sequence[str]]
    ) -> list[list[Detection]]: ...


@runtime_checkable
class BatchColorClassifier(Protocol):
    """A colour classifier that also answers many (image, detections, cls) requests at once."""

    def __call__(self, image: Image.Image | None, detections: list[Detection], cls: str) -> list[str]: ...

    def classify_batch(
        self, requests: Sequence[tuple[Image.Image | None, list[Detection], str]]
    ) -> list[list[str]]: ...


def spec_classes(spec: PromptSpec) -> list[str]:
    """The classes a detector is asked for: every class the spec names, sorted."""
    return sorted({i.cls for i in [*spec.include, *spec.exclude]})


def detect_many(
    detector: Detector, images: Sequence[Image.Image], classes: Sequence[Sequence[str]]
) -> list[list[Detection]]:
    """Each image's detections: one `detect_batch` call when the detector has it, else one call per image."""
    if isinstance(detector, BatchDetector):
        return detector.detect_batch(images, classes)
    return [list(detector(image, c)) for image, c in zip(images, classes, strict=True)]


def color_key(dets: Sequence[Detection], cls: str) -> ColorKey:
    return cls, tuple(d.box for d in dets)


class ColorMemo:
    """One image's object colours per (class, boxes), asked of the classifier at most once: the rules
    may ask twice for the same objects (the detector critic's soft parts and GenEval's check), and
    `memos_for` fills many images' memos ahead in one classifier batch."""

    def __init__(self, classifier: ColorClassifier, image: Image.Image | None):
        self.classifier, self.image = classifier, image
        self.known: dict[ColorKey, list[str]] = {}

    def __call__(self, dets: list[Detection], cls: str) -> list[str]:
        key = color_key(dets, cls)
        if key not in self.known:
            self.known[key] = list(self.classifier(self.image, dets, cls))
        return self.known[key]

    def classify(self, _image: Image.Image | None, dets: list[Detection], cls: str) -> list[str]:
        """The memo as a `ColorClassifier` (for `evaluate_selected`): always this memo's image."""
        return self(dets, cls)


def memos_for(
    classifier: ColorClassifier,
    images: Sequence[Image.Image | None],
    asks: Sequence[Sequence[tuple[list[Detection], str]]],
) -> list[ColorMemo]:
    """One `ColorMemo` per image, holding already the colours of its `asks` ((objects, cls) pairs),
    computed in one `classify_batch` call when the classifier has it (else one call per ask)."""
    memos = [ColorMemo(classifier, image) for image in images]
    pending: dict[tuple[int, ColorKey], tuple[Image.Image | None, list[Detection], str]] = {}
    for n, (image, wanted) in enumerate(zip(images, asks, strict=True)):
        for dets, cls in wanted:
            pending.setdefault((n, color_key(dets, cls)), (image, dets, cls))
    requests = list(pending.values())
    if isinstance(classifier, BatchColorClassifier):
        answers = classifier.classify_batch(requests)
    else:
        answers = [classifier(image, dets, cls) for image, dets, cls in requests]
    for (n, key), colors in zip(pending, answers, strict=True):
        memos[n].known[key] = list(colors)
    return memos


def geneval_color_asks(spec: PromptSpec, detected: Mapping[str, list[Detection]]) -> list[tuple[list[Detection], str]]:
    """The (objects, cls) whose colours `evaluate_selected` will ask a classifier for: each colour
    clause's first `count` objects, when all were found and they carry no colour of their own."""
    asks = []
    for item in spec.include:
        found = detected.get(item.cls, [])[: item.count]
        if item.color is not None and len(found) == item.count and not all(d.color is not None for d in found):
            asks.append((found, item.cls))
    return asks


# ---------------------------------------------------------------------------------------------- the oracle


def requirement_dict(req: RequirementResult) -> dict:
    """A JSON-safe view of one clause's verdict, for `Critique.details`."""
    out = {k: v for k, v in asdict(req).items() if v is not None and v != ""}
    if req.position is not None:
        out["position"] = list(req.position)
    return out


def detections_dict(detected: Mapping[str, list[Detection]]) -> dict[str, list[list[float]]]:
    """GenEval's `details` field: per class, [x1, y1, x2, y2, score] of each kept detection."""
    return {cls: [[*map(float, d.box), float(d.score)] for d in dets] for cls, dets in detected.items()}


class GenEvalOracle:
    """GenEval as a critic: its rules and constants, a pluggable detector, CLIP colours; score 1 or 0.

    Args:
        detector (`callable`, *optional*): `detector(image, classes) -> list[Detection]`; defaults to
            `Mask2FormerDetector()` (transformers' Swin-S COCO Mask2Former, loaded lazily).
        color_classifier (`callable`, *optional*): `(image, detections, cls) -> colours`; defaults to
            `ClipColorClassifier()` (CLIP ViT-L/14, loaded lazily, only for prompts with a colour).
        threshold, counting_threshold, max_objects, max_overlap, position_threshold: GenEval's
            constants (0.3, 0.9, 16, 1.0 = no NMS, 0.1); change them only to study them.
        device: for the default models.

    Without a spec, the prompt is parsed (`PromptSpec.parse`); a prompt outside GenEval's grammar
    makes the oracle abstain. Missing default weights raise `WeightsUnavailableError`.
    """

    name = "geneval"

    def __init__(
        self,
        detector: Detector | None = None,
        color_classifier: ColorClassifier | None = None,
        *,
        threshold: float = THRESHOLD,
        counting_threshold: float | None = COUNTING_THRESHOLD,
        max_objects: int = MAX_OBJECTS,
        max_overlap: float = MAX_OVERLAP,
        position_threshold: float = POSITION_THRESHOLD,
        device: str | None = None,
        name: str | None = None,
    ):
        # imported here: vision builds on this module (Detection, constants), so a top import would cycle
        from milr.critics.vision import ClipColorClassifier, Mask2FormerDetector

        self.detector = detector if detector is not None else Mask2FormerDetector(device=device)
        self.color_classifier = (
            color_classifier if color_classifier is not None else ClipColorClassifier(device=device)
        )
        self.options = {
            "threshold": threshold,
            "counting_threshold": counting_threshold,
            "max_objects": max_objects,
            "max_overlap": max_overlap,
        }
        self.position_threshold = position_threshold
        self.name = name or self.name

    def check(self) -> None:
        """Cheap pre-flight: the default models' weights are on disk or downloadable (`WeightsUnavailableError`)."""
        check_parts(self.detector, self.color_classifier)

    def __call__(self, image: Image.Image, prompt: str, spec: PromptSpec | Mapping | None = None) -> Critique:
        return self.score_batch([image], [prompt], [spec])[0]

    def score_batch(
        self, images: Sequence[Image.Image], prompts: Sequence[str], specs: Sequence[PromptSpec | Mapping | None]
    ) -> list[Critique]:
        """One verdict per image: the images with a spec detected in one batch, then their colours in one."""
        started = time.perf_counter()
        images, prompts, specs = check_batch(images, prompts, specs)
        out: list[Critique | None] = [None] * len(images)
        todo: list[tuple[int, PromptSpec]] = []
        for i, (prompt, spec) in enumerate(zip(prompts, specs, strict=True)):
            try:
                todo.append((i, spec_for(prompt, spec)))
            except ValueError as err:
                out[i] = Critique(critic=self.name, error=str(err), seconds=time.perf_counter() - started)
        if todo:
            found = detect_many(self.detector, [images[i] for i, _ in todo], [spec_classes(s) for _, s in todo])
            detected = [select_detections(d, s.tag, **self.options) for d, (_, s) in zip(found, todo, strict=True)]
            asks = [geneval_color_asks(s, d) for d, (_, s) in zip(detected, todo, strict=True)]
            memos = memos_for(self.color_classifier, [images[i] for i, _ in todo], asks)
            for (i, spec), d, memo in zip(todo, detected, memos, strict=True):
                out[i] = self._verdict(images[i], spec, d, memo, started)
        return out

    def _verdict(
        self, image: Image.Image, spec: PromptSpec, detected: dict[str, list[Detection]], memo: ColorMemo, started
    ) -> Critique:
        result = evaluate_selected(
            spec,
            detected,
            image=image,
            classify_colors=memo.classify,
            position_threshold=self.position_threshold,
        )
        verdict = Critique(
            critic=self.name,
            score=float(result.correct),
            rationale="correct" if result.correct else "; ".join(result.reasons),
            details={
                "tag": spec.tag,
                "correct": result.correct,
                "requirements": [requirement_dict(r) for r in result.requirements],
                "detected": detections_dict(detected),
            },
            seconds=time.perf_counter() - started,
        )
        log.info("geneval_scored", critic=self.name, tag=spec.tag, correct=result.correct, seconds=verdict.seconds)
        return verdict
