"""How a reward critic agrees with the evaluator, image by image (the study's diagnostics).

Every image a study scores gives one `Judged`: the critic's score, whether the critic passed it (its
score reached the loop's threshold, the test MILR stops on) and whether the evaluator calls it
correct. From these:

- pass precision: of the images the critic passed, the fraction the evaluator calls correct;
- pass recall: of the correct images, the fraction the critic passed;
- false-pass rate: of the images the evaluator fails, the fraction the critic passed. This is reward
  hacking: the loop stops on, or best-of-N picks, an image that is wrong;
- AUC: the probability that a correct image scores above a wrong one (ties count one half), the
  Mann-Whitney statistic; it says how well the score ranks, whatever the threshold;
- calibration: per score bin, the mean score against the fraction correct, and the expected
  calibration error (bin-weighted mean gap);
- early stops on false passes: MILR runs that stopped on the threshold at a round the evaluator fails.

An abstention (score None) is not a pass, and it is left out of the AUC and the calibration bins.
A rate whose denominator is empty is None, never 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Judged:
    """One image: the critic's score (None: it abstained), its pass, the evaluator's verdict."""

    score: float | None
    passed: bool
    correct: bool
    tag: str | None = None


def judged(score: float | None, correct: bool, threshold: float, tag: str | None = None) -> Judged:
    """A `Judged` whose pass is MILR's stopping test: score >= threshold."""
    return Judged(score, score is not None and score >= threshold, bool(correct), tag)


def confusion(items: Iterable[Judged]) -> dict[str, int]:
    """Counts of (critic pass, evaluator correct): tp, fp (false passes), fn, tn, and abstentions."""
    out = {"tp": 0, "fp": 0, "fn": 0, "tn": 0, "abstained": 0}
    for it in items:
        out["abstained"] += it.score is None
        key = ("tp" if it.correct else "fp") if it.passed else ("fn" if it.correct else "tn")
        out[key] += 1
    return out


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def pass_precision(items: Iterable[Judged]) -> float | None:
    c = confusion(items)
    return _ratio(c["tp"], c["tp"] + c["fp"])


def pass_recall(items: Iterable[Judged]) -> float | None:
    c = confusion(items)
    return _ratio(c["tp"], c["tp"] + c["fn"])


def false_pass_rate(items: Iterable[Judged]) -> float | None:
    c = confusion(items)
    return _ratio(c["fp"], c["fp"] + c["tn"])


def auc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """P(score of a correct image > score of a wrong one), ties counted 0.5 (average ranks); None
    when either class is empty."""
    if len(scores) != len(labels):
        raise ValueError(f"auc needs one label per score, got {len(scores)} scores and {len(labels)} labels")
    positives = sum(map(bool, labels))
    negatives = len(labels) - positives
    if not positives or not negatives:
        return None
    ranks = _average_ranks(scores)
    rank_sum = sum(r for r, label in zip(ranks, labels, strict=True) if label)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def _average_ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks; tied values share the mean of their ranks."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def score_auc(items: Iterable[Judged]) -> float | None:
    scored = [it for it in items if it.score is not None]
    return auc([it.score for it in scored], [it.correct for it in scored])


def calibration(items: Iterable[Judged], bins: int = 10) -> list[dict]:
    """Equal-width score bins over [0, 1] (a score of 1 falls in the last): per bin its range, count,
    mean score and fraction correct (None for an empty bin)."""
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    members: list[list[Judged]] = [[] for _ in range(bins)]
    for it in items:
        if it.score is not None:
            members[min(int(it.score * bins), bins - 1)].append(it)
    return [
        {
            "low": b / bins,
            "high": (b + 1) / bins,
            "n": len(group),
            "mean_score": _ratio(sum(it.score for it in group), len(group)),
            "accuracy": _ratio(sum(it.correct for it in group), len(group)),
        }
        for b, group in enumerate(members)
    ]


def expected_calibration_error(bins: list[dict]) -> float | None:
    total = sum(b["n"] for b in bins)
    if not total:
        return None
    return sum(b["n"] * abs(b["accuracy"] - b["mean_score"]) for b in bins if b["n"]) / total


def early_false_stops(stops: Iterable[tuple[bool, bool]]) -> dict:
    """`stops`: per MILR run, (stopped on the threshold before its last step, the evaluator calls the
    stopping round correct). Early stops, how many were on false passes, and their share."""
    early = false = 0
    for stopped_early, correct in stops:
        if stopped_early:
            early += 1
            false += not correct
    return {"early_stops": early, "false_early_stops": false, "false_early_stop_rate": _ratio(false, early)}


def diagnostics(items: Sequence[Judged], bins: int = 10) -> dict:
    """Everything above for one critic on one set of images, overall and per tag."""
    items = list(items)
    out = _summary(items, bins)
    tags = sorted({it.tag for it in items if it.tag is not None})
    out["tags"] = {t: _summary([it for it in items if it.tag == t], bins, with_bins=False) for t in tags}
    return out


def _summary(items: list[Judged], bins: int, with_bins: bool = True) -> dict:
    c = confusion(items)
    out = {
        "images": len(items),
        **c,
        "pass_rate": _ratio(c["tp"] + c["fp"], len(items)),
        "evaluator_accuracy": _ratio(c["tp"] + c["fn"], len(items)),
        "pass_precision": _ratio(c["tp"], c["tp"] + c["fp"]),
        "pass_recall": _ratio(c["tp"], c["tp"] + c["fn"]),
        "false_pass_rate": _ratio(c["fp"], c["fp"] + c["tn"]),
        "auc": score_auc(items),
    }
    if with_bins:
        out["calibration"] = calibration(items, bins)
        out["ece"] = expected_calibration_error(out["calibration"])
    return out
