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
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import structlog
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
from milr.critics.vision import ClipColorClassifier, GroundingDinoDetector

log = structlog.get_logger(__name__)

BOX_THRESHOLD = 0.3
NMS_IOU = 0.5
WRONG_COUNT = 0.2


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
        box_threshold: float = BOX_THRESHOLD,
        nms_iou: float = NMS_IOU,
        max_objects: int = MAX_OBJECTS,
        position_threshold: float = POSITION_THRESHOLD,
        wrong_count: float = WRONG_COUNT,
        device: str | None = None,
        name: str | None = None,
    ):
        self.detector = detector if detector is not None else GroundingDinoDetector(device=device)
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
