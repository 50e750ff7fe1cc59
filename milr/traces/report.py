"""`report.html`: one self-contained static page per run (opens from disk, no network): prompt and
config, reward curve, and per round the image, the reasoning with the optimised prefix marked and a
word diff against the round before, and the critics' scores and rationales. Every user- or
model-written string is HTML-escaped."""

from __future__ import annotations

import base64
import difflib
import html
import io
import json
from pathlib import Path

from milr.traces.reader import LoadedRound, Trace
from milr.traces.writer import atomic_write_text

CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
h1{font-size:1.4em} .round{border-top:1px solid #ccc;padding:1em 0;display:flex;gap:1.5em}
.round img{width:192px;height:192px;image-rendering:pixelated;border:1px solid #999}
mark{background:#ffe08a} ins{background:#c8f7c5;text-decoration:none} del{background:#f7c5c5}
table{border-collapse:collapse;font-size:.9em} td,th{border:1px solid #ddd;padding:.2em .5em;text-align:left}
pre{white-space:pre-wrap;font-size:.85em;background:#f6f6f6;padding:.5em}
"""


def _data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def reward_curve_png(trace: Trace) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [r.round for r in trace.rounds]
    scores = [float("nan") if r.score is None else r.score for r in trace.rounds]
    fig, ax = plt.subplots(figsize=(5, 2.4), dpi=80)
    ax.plot(rounds, scores, marker="o")
    threshold = trace.run.config.get("threshold")
    if threshold is not None:
        ax.axhline(threshold, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("round")
    ax.set_ylabel("score")
    ax.set_ylim(-0.05, 1.05)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def word_diff(before: str, after: str) -> str:
    """HTML word diff: removed words in <del>, added in <ins>, all text escaped."""
    a, b = before.split(), after.split()
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b).get_opcodes():
        if op == "equal":
            out.append(html.escape(" ".join(a[i1:i2])))
        if op in ("delete", "replace"):
            out.append(f"<del>{html.escape(' '.join(a[i1:i2]))}</del>")
        if op in ("insert", "replace"):
            out.append(f"<ins>{html.escape(' '.join(b[j1:j2]))}</ins>")
    return " ".join(out)


def _reasoning_html(r: LoadedRound) -> str:
    prefix, text = r.text_prefix.strip(), r.reasoning
    if prefix and text.startswith(prefix):
        return f"<mark>{html.escape(prefix)}</mark>{html.escape(text[len(prefix) :])}"
    return html.escape(text)


def _critics_table(r: LoadedRound) -> str:
    rows = "".join(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
            html.escape(c.critic),
            "abstained" if c.score is None else f"{c.score:.3f}",
            html.escape(c.rationale),
            html.escape(c.error or ""),
        )
        for c in r.critiques
    )
    return f"<table><tr><th>critic</th><th>score</th><th>rationale</th><th>error</th></tr>{rows}</table>"


def _round_html(r: LoadedRound, before: LoadedRound | None, image_png: bytes) -> str:
    score = "abstained" if r.score is None else f"{r.score:.3f}"
    diff = f"<p><b>diff to round {before.round}:</b> {word_diff(before.reasoning, r.reasoning)}</p>" if before else ""
    return (
        f'<section class="round" id="round-{r.round}"><div><img alt="round {r.round}" src="{_data_url(image_png)}">'
        f"</div><div><h2>Round {r.round} — score {score} (updated: {html.escape(r.modality)})</h2>"
        f"<p><b>reasoning</b> (optimised prefix marked): {_reasoning_html(r)}</p>{diff}{_critics_table(r)}</div>"
        "</section>"
    )


def render_report(trace: Trace) -> str:
    run = trace.run
    summary = trace.summary.model_dump() if trace.summary else {"status": "unfinished"}
    rounds_html = []
    for i, r in enumerate(trace.rounds):
        path = trace.path / r.image_file
        png = path.read_bytes() if path.is_file() else b""
        rounds_html.append(_round_html(r, trace.rounds[i - 1] if i else None, png))
    curve = _data_url(reward_curve_png(trace)) if trace.rounds else ""
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>milr: {html.escape(run.prompt)}</title><style>{CSS}</style></head><body>"
        f"<h1>{html.escape(run.prompt)}</h1>"
        f"<p>run <code>{html.escape(run.run_id)}</code>, model <code>{html.escape(run.model)}</code>, "
        f"critics {html.escape(', '.join(c['name'] for c in run.critics))}</p>"
        f"<pre>{html.escape(json.dumps(summary, indent=1))}</pre>"
        + (f'<img class="curve" alt="reward curve" src="{curve}">' if curve else "")
        + f"<details><summary>config</summary><pre>{html.escape(json.dumps(run.config, indent=1))}</pre></details>"
        + "".join(rounds_html)
        + "</body></html>"
    )


def write_report(trace_or_dir: Trace | str | Path) -> Path:
    trace = trace_or_dir if isinstance(trace_or_dir, Trace) else Trace.load(trace_or_dir)
    out = trace.path / "report.html"
    atomic_write_text(out, render_report(trace))
    return out


def export_geneval(traces: list[Trace | str | Path], out_dir: str | Path, *, which: str = "final") -> Path:
    """Write runs in GenEval's folder layout so its official evaluator can score milr's images:
    `<out>/<idx:05d>/metadata.jsonl` (the prompt's spec) and `<out>/<idx:05d>/samples/0000.png`.

    `which="final"` exports the returned image; `"round0"` the baseline image of each run."""
    out = Path(out_dir)
    for idx, item in enumerate(traces):
        trace = item if isinstance(item, Trace) else Trace.load(item)
        if trace.run.spec is None:
            raise ValueError(f"{trace.path.name}: no GenEval spec in run.json; GenEval needs one per prompt")
        folder = out / f"{idx:05d}"
        (folder / "samples").mkdir(parents=True, exist_ok=True)
        meta = dict(trace.run.spec, prompt=trace.run.prompt)
        (folder / "metadata.jsonl").write_text(json.dumps(meta) + "\n", encoding="utf-8")
        source = trace.path / "final.png" if which == "final" else trace.path / trace.rounds[0].image_file
        if not source.is_file():
            raise FileNotFoundError(f"{trace.path.name}: {source.name} is missing (unfinished run?)")
        (folder / "samples" / "0000.png").write_bytes(source.read_bytes())
    return out
