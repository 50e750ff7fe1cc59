"""Study metrics on hand-made images with known answers: precision, recall, false-pass rate, AUC
(ties one half), calibration, early stops on false passes."""

from __future__ import annotations

import pytest

from milr.studies.metrics import (
    Judged,
    auc,
    calibration,
    confusion,
    diagnostics,
    early_false_stops,
    expected_calibration_error,
    false_pass_rate,
    judged,
    pass_precision,
    pass_recall,
    score_auc,
)

# (score, evaluator correct): at threshold 0.9 the critic passes the first four
IMAGES = [(1.0, True), (0.95, True), (0.9, False), (0.92, True), (0.5, True), (0.4, False), (0.2, False),
          (0.0, False), (None, True), (None, False)]  # fmt: skip
ITEMS = [judged(s, c, 0.9, tag="a" if i < 5 else "b") for i, (s, c) in enumerate(IMAGES)]


def test_confusion_precision_recall_and_false_pass_rate_by_hand():
    # passed: 1.0 T, 0.95 T, 0.9 F, 0.92 T -> tp 3, fp 1
    # not passed: 0.5 T, None T -> fn 2; 0.4, 0.2, 0.0, None F -> tn 4
    assert confusion(ITEMS) == {"tp": 3, "fp": 1, "fn": 2, "tn": 4, "abstained": 2}
    assert pass_precision(ITEMS) == pytest.approx(3 / 4)
    assert pass_recall(ITEMS) == pytest.approx(3 / 5)
    assert false_pass_rate(ITEMS) == pytest.approx(1 / 5)  # 1 of the 5 wrong images passed: reward hacking


def test_rates_with_an_empty_denominator_are_none_not_zero():
    never = [judged(0.1, False, 0.9), judged(0.2, False, 0.9)]
    assert pass_precision(never) is None and pass_recall(never) is None and false_pass_rate(never) == 0.0
    assert score_auc(never) is None  # one class only


def test_auc_counts_ties_as_one_half():
    assert auc([0.9, 0.8, 0.3, 0.1], [True, True, False, False]) == 1.0
    assert auc([0.1, 0.3, 0.8, 0.9], [True, True, False, False]) == 0.0
    assert auc([0.5, 0.5], [True, False]) == 0.5
    # positives 0.8, 0.5; negatives 0.5, 0.2: pairs (0.8>0.5) 1, (0.8>0.2) 1, (0.5=0.5) 0.5, (0.5>0.2) 1 -> 3.5/4
    assert auc([0.8, 0.5, 0.5, 0.2], [True, True, False, False]) == pytest.approx(3.5 / 4)
    # the scored images of ITEMS: positives 1.0, .95, .92, .5; negatives .9, .4, .2, 0 -> 15 of 16 pairs
    assert score_auc(ITEMS) == pytest.approx(15 / 16)
    with pytest.raises(ValueError, match="one label per score"):
        auc([0.1], [True, False])


def test_calibration_bins_and_expected_calibration_error():
    items = [Judged(0.05, False, False), Judged(0.15, False, True), Judged(0.95, True, True), Judged(1.0, True, True),
             Judged(0.92, True, False), Judged(None, False, True)]  # fmt: skip
    bins = calibration(items, bins=10)
    assert [b["n"] for b in bins] == [1, 1, 0, 0, 0, 0, 0, 0, 0, 3]  # a score of 1 falls in the last bin
    last = bins[-1]
    assert last["mean_score"] == pytest.approx((0.95 + 1.0 + 0.92) / 3) and last["accuracy"] == pytest.approx(2 / 3)
    assert bins[2]["accuracy"] is None
    gaps = 1 * 0.05 + 1 * abs(1 - 0.15) + 3 * abs(2 / 3 - (0.95 + 1.0 + 0.92) / 3)
    assert expected_calibration_error(bins) == pytest.approx(gaps / 5)


def test_early_stops_on_false_passes():
    stops = [(True, True), (True, False), (False, False), (True, False), (False, True)]
    assert early_false_stops(stops) == {"early_stops": 3, "false_early_stops": 2, "false_early_stop_rate": 2 / 3}
    assert early_false_stops([(False, False)])["false_early_stop_rate"] is None


def test_diagnostics_overall_and_per_tag():
    d = diagnostics(ITEMS)
    assert d["images"] == 10 and d["false_pass_rate"] == pytest.approx(0.2) and d["auc"] == pytest.approx(15 / 16)
    # tag a: (1.0 T) (.95 T) (.9 F) (.92 T) (.5 T) -> fp 1 of 1 wrong; tag b: no pass, 5 wrong
    assert d["tags"]["a"]["false_pass_rate"] == 1.0 and d["tags"]["a"]["pass_precision"] == 0.75
    assert d["tags"]["b"]["false_pass_rate"] == 0.0 and d["tags"]["b"]["pass_recall"] == 0.0
    assert len(d["calibration"]) == 10 and d["ece"] is not None


def test_milr_and_best_of_n_at_a_budget_of_k_generations():
    from milr.studies.report import RunView, best_of_k_correct, milr_correct_at

    run = RunView("t", scores=[0.5, 0.8, 0.3], correct=[False, True, False], stop_reason="steps", select="best")
    assert [milr_correct_at(run, k) for k in (1, 2, 3, 9)] == [False, True, True, True]  # best round so far
    last = RunView("t", scores=[0.5, 0.8, 0.3], correct=[False, True, False], stop_reason="steps", select="last")
    assert [milr_correct_at(last, k) for k in (1, 2, 3)] == [False, True, False]  # the paper's select="last"
    # best-of-k: the critic's pick of the first k samples, the earliest on ties, abstentions last
    samples = RunView("t", scores=[None, 0.7, 0.7, 0.9], correct=[True, False, True, True], stop_reason="best-of-n",
                      select="best")  # fmt: skip
    assert [best_of_k_correct(samples, k) for k in (1, 2, 3, 4)] == [True, False, False, True]


def test_tag_means_and_api_usage_by_hand():
    from milr.studies.report import _usage, tag_mean

    table = tag_mean([("a", True), ("a", False), ("b", True), ("b", None)])
    assert table == {"tags": {"a": 0.5, "b": 1.0}, "overall": 0.75}  # overall = mean of the tags; None left out
    details = [
        {"usage": {"total_tokens": 120}, "cached": False},
        {"usage": {"total_tokens": 99}, "cached": True},  # a cache hit made no call
        {"critiques": [{"details": {"usage": {"total_tokens": 30}}}, {"details": {}}]},  # a mixer's children
        {},
    ]
    assert _usage(details) == (2, 150)
