"""Summaries of a sweep in the paper's format: per-tag and overall scores (GenEval: overall = the
unweighted mean of the tag scores), mean generations and seconds per prompt, the test-time scaling
curve (accuracy of the best round so far vs optimisation step, the paper's Figure 4), WiScore, and a
side-by-side comparison of two result folders."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from milr.bench.datasets import WISE_CATEGORY_WEIGHTS


def wise_overall(category_scores: dict[str, float], weights: dict[str, float]) -> float:
    """WISE's Overall: category means weighted by the published weights."""
    missing = set(weights) - set(category_scores)
    if missing:
        raise ValueError(f"missing WISE categories: {', '.join(sorted(missing))}")
    return sum(weights[c] * category_scores[c] for c in weights)


def load_records(folder: str | Path) -> list[dict]:
    path = Path(folder) / "results.jsonl"
    if not path.is_file():
        raise ValueError(f"{Path(folder).name}: no results.jsonl (not a milr bench folder)")
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a crash
    return out


def summarize(records: list[dict]) -> dict:
    """Per-tag accuracy, overall = mean of tag accuracies, mean generations and seconds."""
    if not records:
        raise ValueError("no records to summarise")
    by_tag: dict[str, list[dict]] = {}
    for r in records:
        by_tag.setdefault(r["tag"], []).append(r)
    tags = {t: sum(r["correct"] for r in rs) / len(rs) for t, rs in sorted(by_tag.items())}
    summary = {
        "tags": tags,
        "overall": sum(tags.values()) / len(tags),
        "records": len(records),
        "mean_generations": sum(r["generations"] for r in records) / len(records),
        "mean_seconds": sum(r["seconds"] for r in records) / len(records),
        # The evaluation critic's mean score per tag (abstentions left out): WiScore for WISE,
        # BLIP-VQA / CLIP / spatial scores for T2I-CompBench, whose papers report means, not accuracy.
        "mean_score_tags": {t: _mean_score(rs) for t, rs in sorted(by_tag.items())},
    }
    means = summary["mean_score_tags"]
    if all(means.get(c) is not None for c in WISE_CATEGORY_WEIGHTS):  # every category judged at least once
        summary["wise_overall"] = wise_overall(means, WISE_CATEGORY_WEIGHTS)
    return summary


def _mean_score(records: list[dict]) -> float | None:
    scores = [r["eval_score"] for r in records if r.get("eval_score") is not None]
    return sum(scores) / len(scores) if scores else None


def markdown_table(rows: dict[str, dict]) -> str:
    """Methods as rows, tags then Overall as columns (the paper's layout)."""
    tags = sorted({t for s in rows.values() for t in s["tags"]})
    head = "| method | " + " | ".join(tags) + " | overall | generations |"
    sep = "|---" * (len(tags) + 3) + "|"
    lines = [head, sep]
    for name, s in rows.items():
        cells = [f"{s['tags'].get(t, float('nan')):.3f}" for t in tags]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {s['overall']:.3f} | {s['mean_generations']:.2f} |")
    return "\n".join(lines) + "\n"


def csv_table(summary: dict) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["tag", "score"])
    for t, v in summary["tags"].items():
        writer.writerow([t, f"{v:.4f}"])
    writer.writerow(["overall", f"{summary['overall']:.4f}"])
    return buf.getvalue()


def scaling_curve(records: list[dict]) -> list[float]:
    """Accuracy if the run had stopped after step k (best round so far correct), k = 0..K.
    A run that stopped early keeps its last value for later steps."""
    runs = [r["eval_by_round"] for r in records if r.get("eval_by_round")]
    if not runs:
        return []
    steps = max(map(len, runs))
    curve = []
    for k in range(steps):
        curve.append(sum(any(run[: k + 1]) for run in runs) / len(runs))
    return curve


def write_summary(folder: str | Path, name: str | None = None) -> dict:
    """summary.json, summary.md, summary.csv and (when rounds were evaluated) scaling_curve.png."""
    folder = Path(folder)
    records = load_records(folder)
    summary = summarize(records)
    summary["curve"] = scaling_curve(records)
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (folder / "summary.md").write_text(markdown_table({name or folder.name: summary}))
    (folder / "summary.csv").write_text(csv_table(summary))
    if summary["curve"]:
        _plot_curve(summary["curve"], folder / "scaling_curve.png")
    return summary


def _plot_curve(curve: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3), dpi=100)
    ax.plot(range(len(curve)), curve, marker="o")
    ax.set_xlabel("optimisation step")
    ax.set_ylabel("accuracy (best so far)")
    ax.set_ylim(0, 1)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def compare(a: str | Path, b: str | Path) -> str:
    """Markdown table of two result folders side by side."""
    return markdown_table({Path(a).name: summarize(load_records(a)), Path(b).name: summarize(load_records(b))})
