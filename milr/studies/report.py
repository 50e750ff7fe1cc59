"""The study's numbers and pages: `summarize_study` reads the sweeps back into `study.json`'s data,
`write_reports` writes `study.json`, `study.md` and `study.html` (DESIGN §7).

Tables, as a reward-model paper lays them out:

- accuracy per tag for each reward critic × method (the paper's Table 6): GenEval-style, overall =
  the unweighted mean of the tag accuracies, records pooled over seeds (per-seed overalls listed);
- critic diagnostics against the evaluator (`milr.studies.metrics`) over every image the critic
  scored: its own MILR rounds, where the loop pushes on its blind spots, and the shared best-of-N
  samples, which every critic sees alike; early stops on false passes;
- cost per prompt: generations, seconds of the reward critic, API calls and tokens where the critic
  reports usage (OpenAI-compatible judges), wall seconds;
- MILR against best-of-N at equal generations: accuracy when each is allowed k generations
  (MILR: the round it would return after k; best-of-N: the critic's pick of the first k samples).

`study.html` is one self-contained page (`milr.traces.html`, template `study.html`): the tables, a
calibration plot and accuracy bars as inline SVG, no script, nothing fetched.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from milr.bench.summary import load_records
from milr.studies.metrics import diagnostics, early_false_stops, judged
from milr.studies.rescore import round_verdicts
from milr.traces import Trace

BUDGETS = (1, 2, 4, 8, 16)  # generations at which MILR and best-of-N are compared, plus K + 1


@dataclass
class RunView:
    """One (prompt, sample) of a sweep, round by round: the reward critic's scores, the evaluator's
    verdicts (None where it has none), and what the critic cost."""

    tag: str
    scores: list[float | None]
    correct: list[bool | None]
    stop_reason: str
    select: str
    critic_seconds: float = 0.0
    api_calls: int = 0
    tokens: int = 0


# ----------------------------------------------------------------------------- reading sweeps back
def milr_views(folder: Path, evaluator: str) -> list[RunView]:
    """A MILR sweep's runs: scores from the traces, the evaluator's verdicts from their rescore files."""
    views = []
    for record in load_records(folder):
        trace = Trace.load(folder / record["trace"])
        verdicts = round_verdicts(trace, evaluator)
        calls, tokens = _usage(c.details for r in trace.rounds for c in r.critiques)
        views.append(
            RunView(
                tag=record["tag"],
                scores=[r.score for r in trace.rounds],
                correct=[None if v is None else bool(v["correct"]) for v in verdicts],
                stop_reason=trace.summary.stop_reason if trace.summary else "unfinished",
                select=trace.summary.select if trace.summary else "best",
                critic_seconds=sum(_critic_share(r) for r in trace.rounds),
                api_calls=calls,
                tokens=tokens,
            )
        )
    return views


def sample_views(samples: Path, critic: str, evaluator: str, n: int) -> list[RunView]:
    """Each prompt's best-of-N samples as the critic scored them (rescored) and the evaluator judged them."""
    views = []
    for record in load_records(samples):
        trace = Trace.load(samples / record["trace"])
        mine, judge = round_verdicts(trace, critic)[:n], round_verdicts(trace, evaluator)[:n]
        calls, tokens = _usage(v["details"] or {} for v in mine if v is not None)
        views.append(
            RunView(
                tag=record["tag"],
                scores=[None if v is None else v["score"] for v in mine],
                correct=[None if v is None else bool(v["correct"]) for v in judge],
                stop_reason="best-of-n",
                select="best",
                critic_seconds=sum(v["seconds"] or 0.0 for v in mine if v is not None),
                api_calls=calls,
                tokens=tokens,
            )
        )
    return views


def _critic_share(r) -> float:
    """A round's share of the critic call that scored its batch of runs (`seconds["critics"]` is the
    call, `seconds["batch"]` how many runs it scored); older traces: the critiques' own seconds."""
    if "critics" in r.seconds:
        return r.seconds["critics"] / max(1.0, r.seconds.get("batch", 1.0))
    return sum(c.seconds for c in r.critiques)


def _usage(details: Iterable[dict]) -> tuple[int, int]:
    """(API calls, tokens) from critiques' details: a judge's `usage` per call made (cache hits made
    none); a mixer's children are looked into."""
    calls = tokens = 0
    for d in details:
        for child in d.get("critiques") or []:
            c, t = _usage([child.get("details") or {}])
            calls, tokens = calls + c, tokens + t
        usage = d.get("usage")
        if isinstance(usage, dict) and not d.get("cached"):
            calls += 1
            tokens += int(usage.get("total_tokens") or 0)
    return calls, tokens


# ----------------------------------------------------------------------------- budgets
def _pick(scores: Sequence[float | None]) -> int:
    """The highest score, the earliest on ties, abstentions last (MILR's `best_round`, best-of-N's pick)."""
    return max(range(len(scores)), key=lambda j: (scores[j] if scores[j] is not None else -1.0, -j))


def milr_correct_at(view: RunView, k: int) -> bool | None:
    """Is the image MILR returns after at most k generations correct? (A run that stopped sooner
    returns what it returned.)"""
    scores = view.scores[:k]
    j = _pick(scores) if view.select == "best" else len(scores) - 1
    return view.correct[j]


def best_of_k_correct(view: RunView, k: int) -> bool | None:
    """Is the critic's pick among the first k samples correct?"""
    return view.correct[_pick(view.scores[:k])]


def tag_mean(pairs: Iterable[tuple[str, bool | None]]) -> dict:
    """Accuracy per tag and overall (mean of the tags), leaving out unjudged entries."""
    by_tag: dict[str, list[bool]] = {}
    for tag, ok in pairs:
        if ok is not None:
            by_tag.setdefault(tag, []).append(ok)
    tags = {t: sum(v) / len(v) for t, v in by_tag.items()}
    return {"tags": tags, "overall": sum(tags.values()) / len(tags) if tags else None}


def budget_curve(milr: list[RunView], best_of_n: list[RunView], steps: int, threshold: float) -> dict:
    ks = sorted({k for k in BUDGETS if k <= steps + 1} | {steps + 1})
    out: dict = {"k": ks}
    if milr:
        out["milr"] = [tag_mean((v.tag, milr_correct_at(v, k)) for v in milr)["overall"] for k in ks]
        out["milr_mean_generations"] = sum(len(v.scores) for v in milr) / len(milr)
    if best_of_n:
        out["best_of_n"] = [tag_mean((v.tag, best_of_k_correct(v, k)) for v in best_of_n)["overall"] for k in ks]
        # a best-of-N that stops at the first sample the critic passes spends this many
        first = [next((j + 1 for j, s in enumerate(v.scores) if s is not None and s >= threshold), len(v.scores))
                 for v in best_of_n]  # fmt: skip
        out["best_of_n_first_pass_generations"] = sum(first) / len(first)
    return out


# ----------------------------------------------------------------------------- the summary
def accuracy(records_by_seed: dict[int, list[dict]], tag_order: list[str]) -> dict:
    """Table-6 accuracy of one sweep: per tag and overall (records pooled over seeds), per-seed
    overalls, mean generations, and the records counted."""
    pooled = [r for rs in records_by_seed.values() for r in rs]
    if not pooled:
        return {"tags": {}, "overall": None, "records": 0}
    table = tag_mean((r["tag"], bool(r["correct"])) for r in pooled)
    return {
        "tags": {t: table["tags"][t] for t in tag_order if t in table["tags"]},
        "overall": table["overall"],
        "overall_by_seed": {
            str(s): tag_mean((r["tag"], bool(r["correct"])) for r in rs)["overall"]
            for s, rs in records_by_seed.items()
        },  # fmt: skip
        "records": len(pooled),
        "mean_generations": sum(r["generations"] for r in pooled) / len(pooled),
    }


def cost(views: list[RunView], records: list[dict]) -> dict:
    n = len(views) or 1
    return {
        "prompts": len(views),
        "generations": sum(len(v.scores) for v in views) / n,
        "critic_seconds": sum(v.critic_seconds for v in views) / n,
        "api_calls": sum(v.api_calls for v in views) / n,
        "tokens": sum(v.tokens for v in views) / n,
        # each record's own seconds: a MILR run's wall time (the runs of a batch overlap), a
        # best-of-N pick's share of its draws plus its critic's time
        "run_seconds": sum(r["seconds"] for r in records) / len(records) if records else None,
    }


def critic_diagnostics(milr: list[RunView], samples: list[RunView], threshold: float) -> dict:
    def items(views):
        return [
            judged(s, c, threshold, v.tag) for v in views for s, c in zip(v.scores, v.correct, strict=False)
            if c is not None
        ]  # fmt: skip

    out = {"all": diagnostics(items(milr) + items(samples))}
    if milr:
        out["milr_rounds"] = diagnostics(items(milr))
        # a run that stopped on the threshold stopped on its last round: did the evaluator agree?
        judged_last = [v for v in milr if v.correct and v.correct[-1] is not None]
        out["stops"] = early_false_stops((v.stop_reason == "threshold", v.correct[-1]) for v in judged_last)
    if samples:
        out["samples"] = diagnostics(items(samples))
    return out


def summarize_study(spec, items, sweeps, out: Path, evaluator: str, reward_names: dict[str, str]) -> dict:
    """`study.json`'s data from the sweeps on disk (see the module docstring)."""
    tag_order = list(dict.fromkeys(it.tag for it in items))
    threshold = spec.milr_config(spec.seeds[0]).threshold
    steps = spec.steps
    by = {(s.method, s.label, s.seed): s.folder for s in sweeps}
    seeds = spec.seeds

    def records(method: str, label: str | None) -> dict[int, list[dict]]:
        return {s: load_records(by[(method, label, s)]) for s in seeds if (method, label, s) in by}

    data: dict = {
        "name": spec.name,
        "description": spec.description,
        "evaluator": evaluator,
        "critics": dict(spec.critics),
        "critic_names": reward_names,
        "methods": list(spec.methods),
        "prompts": len(items),
        "tags": tag_order,
        "per_tag": {t: sum(it.tag == t for it in items) for t in tag_order},
        "samples": spec.samples,
        "seeds": list(seeds),
        "steps": steps,
        "threshold": threshold,
        "best_of_n": steps + 1,
        "accuracy": {},
        "diagnostics": {},
        "cost": {},
        "budget": {},
    }
    acc, cost_table = data["accuracy"], data["cost"]
    if "baseline" in spec.methods:
        acc["baseline"] = accuracy(records("baseline", None), tag_order)
    if "best_of_n" in spec.methods:
        acc["best_of_n_by_evaluator"] = accuracy(records("best_of_n", None), tag_order)
    for label, name in reward_names.items():
        milr = [v for s in seeds if ("milr", label, s) in by for v in milr_views(by[("milr", label, s)], evaluator)]
        samples = [
            v for s in seeds if ("best_of_n", None, s) in by
            for v in sample_views(by[("best_of_n", None, s)], name, evaluator, steps + 1)
        ]  # fmt: skip
        for method, views in (("milr", milr), ("best_of_n", samples)):
            if method in spec.methods:
                recs = records(method, label)
                acc.setdefault(method, {})[label] = accuracy(recs, tag_order)
                cost_table.setdefault(method, {})[label] = cost(views, [r for rs in recs.values() for r in rs])
        data["diagnostics"][label] = critic_diagnostics(milr, samples, threshold)
        data["budget"][label] = budget_curve(milr, samples, steps, threshold)
    return data


# ----------------------------------------------------------------------------- writing
def write_reports(out: Path, data: dict) -> None:
    (out / "study.json").write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    (out / "study.md").write_text(markdown(data), encoding="utf-8")
    (out / "study.html").write_text(html_page(data), encoding="utf-8")


def _f(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _cell(text: object) -> str:
    """Text in a markdown table cell: a `|` would end the cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def accuracy_rows(data: dict) -> list[dict]:
    """The Table-6 rows: baseline, then per critic MILR and best-of-N, then best-of-N picked by the evaluator."""
    acc, rows = data["accuracy"], []
    if "baseline" in acc:
        rows.append({"critic": "–", "method": "baseline", **acc["baseline"]})
    for label in data["critics"]:
        for method, name in (("milr", "MILR"), ("best_of_n", f"best-of-{data['best_of_n']}")):
            if label in acc.get(method, {}):
                rows.append({"critic": label, "method": name, **acc[method][label]})
    if "best_of_n_by_evaluator" in acc:
        rows.append({"critic": f"{data['evaluator']} (evaluator)", "method": f"best-of-{data['best_of_n']}",
                     **acc["best_of_n_by_evaluator"]})  # fmt: skip
    return rows


def markdown(data: dict) -> str:
    tags = data["tags"]
    lines = [f"# Study: {_cell(data['name'])}", ""]
    if data["description"]:
        lines += [data["description"], ""]
    lines += [
        f"{data['prompts']} prompts ({', '.join(f'{_cell(t)} {n}' for t, n in data['per_tag'].items())}), "
        f"{data['samples']} sample(s) × seeds {data['seeds']}, K = {data['steps']}, threshold {data['threshold']}, "
        f"evaluator `{_cell(data['evaluator'])}`.",
        "",
        "## Accuracy per tag (evaluator's verdict on the returned image)",
        "",
        "| reward critic | method | " + " | ".join(map(_cell, tags)) + " | overall | generations |",
        "|---|---|" + "---|" * (len(tags) + 2),
    ]
    for row in accuracy_rows(data):
        cells = [_f(row["tags"].get(t)) for t in tags]
        gens = _f(row.get("mean_generations"), 2)
        lines.append(f"| {_cell(row['critic'])} | {row['method']} | " + " | ".join(cells)
                     + f" | **{_f(row['overall'])}** | {gens} |")  # fmt: skip
    lines += ["", "## Critic diagnostics against the evaluator", "",
              "Every image the critic scored (its MILR rounds and the shared best-of-N samples). False-pass rate: "
              "of the images the evaluator fails, the share the critic passes (reward hacking). Stops: MILR runs "
              "that stopped on a pass; false: the evaluator fails that image.", "",
              "| critic | images | pass precision | pass recall | false-pass rate | false-pass (MILR rounds) "
              "| false-pass (samples) | AUC | ECE | stops | false stops |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for label, d in data["diagnostics"].items():
        a, stops = d["all"], d.get("stops", {})
        lines.append(
            f"| {_cell(label)} | {a['images']} | {_f(a['pass_precision'])} | {_f(a['pass_recall'])} | "
            f"{_f(a['false_pass_rate'])} | {_f(d.get('milr_rounds', {}).get('false_pass_rate'))} | "
            f"{_f(d.get('samples', {}).get('false_pass_rate'))} | {_f(a['auc'])} | {_f(a['ece'])} | "
            f"{stops.get('early_stops', '–')} | {stops.get('false_early_stops', '–')} |"
        )
    lines += ["", "False-pass rate per tag (all images):", "",
              "| critic | " + " | ".join(map(_cell, tags)) + " |", "|---|" + "---|" * len(tags)]  # fmt: skip
    for label, d in data["diagnostics"].items():
        per = d["all"]["tags"]
        lines.append(f"| {_cell(label)} | " + " | ".join(_f(per.get(t, {}).get("false_pass_rate")) for t in tags)
                     + " |")  # fmt: skip
    lines += ["", "## Cost per prompt", "",
              "| reward critic | method | generations | critic s | API calls | tokens | run s |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for method, per in data["cost"].items():
        for label, c in per.items():
            lines.append(f"| {_cell(label)} | {method} | {_f(c['generations'], 2)} | {_f(c['critic_seconds'], 4)} | "
                         f"{_f(c['api_calls'], 2)} | {_f(c['tokens'], 1)} | {_f(c['run_seconds'], 3)} |")  # fmt: skip
    lines += ["", "critic s: the reward critic's share of the calls that scored the prompt's images; run s: each "
              "record's own seconds (a MILR run's wall time, and the runs of a batch overlap; a best-of-N pick: its "
              "share of the draws plus its critic's time)."]  # fmt: skip
    lines += ["", "## MILR against best-of-N at equal generations", "",
              "Accuracy (overall) when each may use k generations: MILR returns what it would after k, best-of-N "
              "the critic's pick of the first k samples. Generations used: MILR's mean (it stops on a pass); "
              "best-of-N's if it stopped at the first sample the critic passes.", ""]  # fmt: skip
    budgets = data["budget"]
    if budgets:
        ks = next(iter(budgets.values()))["k"]
        lines += ["| critic | method | " + " | ".join(f"k={k}" for k in ks) + " | generations used |",
                  "|---|---|" + "---|" * (len(ks) + 1)]  # fmt: skip
        for label, b in budgets.items():
            for method in ("milr", "best_of_n"):
                if method in b:
                    used = b.get("milr_mean_generations" if method == "milr" else "best_of_n_first_pass_generations")
                    gens = _f(used, 2)
                    lines.append(f"| {_cell(label)} | {method} | " + " | ".join(_f(x) for x in b[method])
                                 + f" | {gens} |")  # fmt: skip
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- html
def html_page(data: dict) -> str:
    from milr.traces.html import render

    return render(
        "study.html",
        data=data,
        rows=accuracy_rows(data),
        bars=accuracy_bars(data),
        calibration=calibration_plot(data),
        budgets=budget_plots(data),
        fmt=_f,
    )


LEGEND_W = 140  # room right of the calibration plot for one line per critic
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22")


def accuracy_bars(data: dict):
    """Overall accuracy per critic, one bar per method (baseline as a dashed line)."""
    from milr.traces.html import svg_chart, svg_shape

    acc, labels = data["accuracy"], list(data["critics"])
    methods = [m for m in ("milr", "best_of_n") if m in acc]
    width, height, pad, top = max(360, 70 * len(labels) + 80), 240, 40, 20
    plot_h = height - pad - top
    group = (width - 2 * pad) / max(1, len(labels))
    bar = group * 0.8 / max(1, len(methods))

    def y(v: float) -> float:
        return top + plot_h * (1 - v)

    shapes = [svg_shape("line", x1=pad, y1=y(0), x2=width - pad, y2=y(0), stroke="#999")]
    shapes += [svg_shape("text", f"{v:.1f}", x=4, y=y(v) + 4, font_size=11) for v in (0.0, 0.5, 1.0)]
    for i, label in enumerate(labels):
        x0 = pad + i * group + group * 0.1
        for j, method in enumerate(methods):
            v = acc[method].get(label, {}).get("overall")
            if v is None:
                continue
            shapes.append(svg_shape("rect", title=f"{label} {method}: {v:.3f}", x=x0 + j * bar, y=y(v),
                                    width=bar * 0.9, height=plot_h * v, fill=PALETTE[j]))  # fmt: skip
        shapes.append(svg_shape("text", label, x=x0, y=height - pad + 14, font_size=11))
    base = acc.get("baseline", {}).get("overall")
    if base is not None:
        shapes.append(svg_shape("line", title=f"baseline: {base:.3f}", x1=pad, y1=y(base), x2=width - pad,
                                y2=y(base), stroke="#000", stroke_dasharray="4 3"))  # fmt: skip
    for j, method in enumerate(methods):
        shapes.append(svg_shape("rect", x=pad + 110 * j, y=height - 16, width=10, height=10, fill=PALETTE[j]))
        shapes.append(svg_shape("text", method.replace("_", "-"), x=pad + 110 * j + 14, y=height - 7, font_size=11))
    return svg_chart(shapes, width=width, height=height, label="overall accuracy per reward critic")


def calibration_plot(data: dict):
    """Fraction correct against mean score per score bin, one line per critic, and the diagonal."""
    from milr.traces.html import svg_chart, svg_shape

    size, pad = 300, 36
    inner = size - 2 * pad

    def xy(score: float, acc: float) -> tuple[float, float]:
        return pad + inner * score, pad + inner * (1 - acc)

    shapes = [
        svg_shape("line", x1=pad, y1=pad + inner, x2=pad + inner, y2=pad + inner, stroke="#999"),
        svg_shape("line", x1=pad, y1=pad, x2=pad, y2=pad + inner, stroke="#999"),
        svg_shape(
            "line",
            title="perfect calibration",
            x1=pad,
            y1=pad + inner,
            x2=pad + inner,
            y2=pad,
            stroke="#bbb",
            stroke_dasharray="4 3",
        ),  # fmt: skip
        svg_shape("text", "critic score", x=size / 2 - 30, y=size - 6, font_size=11),
        svg_shape("text", "fraction correct", x=2, y=pad - 12, font_size=11),
    ]
    for i, (label, d) in enumerate(data["diagnostics"].items()):
        colour = PALETTE[i % len(PALETTE)]
        points = [xy(b["mean_score"], b["accuracy"]) for b in d["all"]["calibration"] if b["n"]]
        if points:
            shapes.append(svg_shape("polyline", title=label, fill="none", stroke=colour, stroke_width=2,
                                    points=" ".join(f"{x:.1f},{y:.1f}" for x, y in points)))  # fmt: skip
        shapes += [svg_shape("circle", cx=x, cy=y, r="2.5", fill=colour) for x, y in points]
        shapes.append(svg_shape("rect", x=size + 4, y=pad + 16 * i, width=10, height=10, fill=colour))
        shapes.append(svg_shape("text", label, x=size + 18, y=pad + 16 * i + 9, font_size=11))
    return svg_chart(shapes, width=size + LEGEND_W, height=size, label="calibration of each reward critic")


def budget_plots(data: dict) -> list:
    """Per critic: accuracy against generations, MILR (solid) and best-of-N (dashed)."""
    from milr.traces.html import svg_chart, svg_shape

    width, height, pad = 220, 150, 28
    charts = []
    for label, b in data["budget"].items():
        ks = b["k"]
        span = max(ks[-1] - 1, 1)

        def xy(k: int, v: float) -> tuple[float, float]:
            return pad + (width - 2 * pad) * (k - 1) / span, 10 + (height - pad - 10) * (1 - v)  # noqa: B023

        shapes = [svg_shape("line", x1=pad, y1=height - pad, x2=width - pad, y2=height - pad, stroke="#999")]
        shapes += [svg_shape("text", f"{v:.1f}", x=2, y=xy(1, v)[1] + 4, font_size=10) for v in (0.0, 1.0)]
        shapes += [svg_shape("text", k, x=xy(k, 0)[0] - 3, y=height - pad + 12, font_size=10) for k in ks]
        for method, dash in (("milr", None), ("best_of_n", "4 3")):
            values = b.get(method)
            if not values:
                continue
            pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(k, v) for k, v in zip(ks, values, strict=True)
                                                           if v is not None))  # fmt: skip
            style = {"stroke_dasharray": dash} if dash else {}
            shapes.append(svg_shape("polyline", title=f"{label} {method}", fill="none", stroke="#1f77b4",
                                    stroke_width=2, points=pts, **style))  # fmt: skip
        shapes.append(svg_shape("text", "generations", x=width / 2 - 28, y=height - 4, font_size=10))
        charts.append((label, svg_chart(shapes, width=width, height=height, label=f"{label}: accuracy vs budget")))
    return charts
