"""`report.html` and GenEval export.

The report is one self-contained static page per run that opens from disk with no network: images are
embedded as base64 PNG data URLs, the reward curve is inline SVG, there is no script, and a
Content-Security-Policy forbids any request besides those data URLs. It
shows the prompt and config, the reward curve, and per round the image, the reasoning with the
optimised prefix marked and a word diff against the round before, and each critic's score, rationale
and error. Every user- or model-written string is redacted, then HTML-escaped.

Only files inside the run folder are embedded: an image that a record names outside it (`..`, an
absolute path), reaches through a symbolic link, or that is not a PNG is shown as refused, with a
`TraceWarning`, never read into the page.
"""

from __future__ import annotations

import base64
import difflib
import html
import json
import re
import shutil
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from milr.traces.files import UnsafePathError, atomic_write_bytes, atomic_write_text, read_member
from milr.traces.reader import LoadedRound, Trace, TraceWarning
from milr.traces.redaction import redact, redact_data, secret_values

# No script, no external anything: only inline styles and data-URL images may load.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;color:#222}
h1{font-size:1.4em;word-break:break-word} h2{font-size:1.1em;margin:0 0 .4em}
.meta{color:#555;font-size:.9em} .curve{display:block;margin:1em 0}
.round{border-top:1px solid #ccc;padding:1em 0;display:flex;gap:1.5em}
.round img,.missing{width:192px;height:192px;image-rendering:pixelated;border:1px solid #999;flex:none}
.missing{display:flex;align-items:center;justify-content:center;background:#eee;color:#a00;text-align:center}
.badge{display:inline-block;font-size:.75em;padding:0 .4em;border-radius:3px;background:#ddd;margin-left:.3em}
.best{background:#c8f7c5} .returned{background:#bcd7ff}
mark{background:#ffe08a} ins{background:#c8f7c5;text-decoration:none} del{background:#f7c5c5}
table{border-collapse:collapse;font-size:.9em;margin-top:.5em}
td,th{border:1px solid #ddd;padding:.2em .5em;text-align:left;vertical-align:top}
pre{white-space:pre-wrap;word-break:break-word;font-size:.85em;background:#f6f6f6;padding:.5em}
.err{color:#a00}
"""


def esc(value: object) -> str:
    """Redacted and HTML-escaped text (quotes included): the only way text enters the page."""
    return html.escape(redact(str(value)))


def _data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


# ----------------------------------------------------------------------------- reward curve
CURVE_W, CURVE_H, PAD = 480, 200, 32  # inline SVG, in px
CRITIC_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def reward_curve_svg(trace: Trace) -> str:
    """Score per round (with each critic's score when there are several), threshold and returned round,
    as inline SVG: about a millisecond to write, where a matplotlib PNG took ~90 ms per run (it was
    most of a batched sweep's trace writing). Only numbers and escaped critic names go in."""
    rounds = [r.round for r in trace.rounds]
    last = max(max(rounds), 1)

    def x(k: float) -> float:
        return PAD + (CURVE_W - 2 * PAD) * k / last

    def y(s: float) -> float:
        return CURVE_H - PAD - (CURVE_H - 2 * PAD) * s

    def line(scores: list[float | None], style: str) -> str:
        points = " ".join(f"{x(k):.1f},{y(s):.1f}" for k, s in zip(rounds, scores, strict=True) if s is not None)
        return f'<polyline fill="none" {style} points="{points}"/>' if points else ""

    parts = [f'<line x1="{PAD}" y1="{y(0)}" x2="{CURVE_W - PAD}" y2="{y(0)}" stroke="#999"/>']
    for s in (0.0, 0.5, 1.0):
        parts.append(f'<text x="4" y="{y(s) + 4:.1f}" font-size="11">{s:.1f}</text>')
    for k in sorted({0, last, *rounds[:: max(1, len(rounds) // 8)]}):
        parts.append(f'<text x="{x(k) - 4:.1f}" y="{CURVE_H - 12}" font-size="11">{k}</text>')
    critic_names = sorted({c.critic for r in trace.rounds for c in r.critiques})
    if len(critic_names) > 1:
        for name, colour in zip(critic_names, CRITIC_COLOURS * len(critic_names), strict=False):
            scores = [_critic_score_or_none(r, name) for r in trace.rounds]
            parts.append(line(scores, f'stroke="{colour}" stroke-opacity="0.5"') + f"<title>{esc(name)}</title>")
    threshold = trace.run.config.get("threshold")
    if isinstance(threshold, int | float) and 0 <= threshold <= 1:
        y_t = y(float(threshold))
        parts.append(f'<line x1="{PAD}" y1="{y_t:.1f}" x2="{CURVE_W - PAD}" y2="{y_t:.1f}" stroke="grey" '
                     'stroke-dasharray="4 3"/>')  # fmt: skip
    parts.append(line([r.score for r in trace.rounds], 'stroke="black" stroke-width="2"'))
    for r in trace.rounds:
        if r.score is not None:
            parts.append(f'<circle cx="{x(r.round):.1f}" cy="{y(r.score):.1f}" r="3"/>')
    if trace.final is not None and trace.final.score is not None:
        parts.append(f'<circle class="returned" cx="{x(trace.final.round):.1f}" cy="{y(trace.final.score):.1f}" '
                     'r="7" fill="none" stroke="#1f77b4" stroke-width="2"/>')  # fmt: skip
    return (
        f'<svg class="curve" role="img" aria-label="reward curve" width="{CURVE_W}" height="{CURVE_H}" '
        f'viewBox="0 0 {CURVE_W} {CURVE_H}">{"".join(parts)}</svg>'
    )


def _critic_score_or_none(r: LoadedRound, name: str) -> float | None:
    return next((c.score for c in r.critiques if c.critic == name), None)


def word_diff(before: str, after: str) -> str:
    """HTML word diff: removed words in <del>, added in <ins>, all text escaped."""
    a, b = before.split(), after.split()
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(esc(" ".join(a[i1:i2])))
        if op in ("delete", "replace"):
            out.append(f"<del>{esc(' '.join(a[i1:i2]))}</del>")
        if op in ("insert", "replace"):
            out.append(f"<ins>{esc(' '.join(b[j1:j2]))}</ins>")
    return " ".join(out)


def reasoning_html(reasoning: str, prefix: str) -> str:
    """The reasoning with the optimised prefix in <mark>. The prefix is decoded from its own tokens,
    so its spacing can differ from the reasoning's; then it is shown apart rather than guessed."""
    prefix, text = prefix.strip(), reasoning.lstrip()
    if not prefix:
        return esc(reasoning)
    if text.startswith(prefix):
        return f"<mark>{esc(prefix)}</mark>{esc(text[len(prefix) :])}"
    return f"<mark>{esc(prefix)}</mark> <i>(optimised prefix)</i><br>{esc(reasoning)}"


# ----------------------------------------------------------------------------- page
def _critics_table(r: LoadedRound) -> str:
    rows = []
    for c in r.critiques:
        details = (
            f"<details><summary>details</summary><pre>{esc(json.dumps(c.details, indent=1, default=str))}</pre>"
            "</details>"
            if c.details
            else ""
        )
        score = "abstained" if c.score is None else _fmt(c.score)
        rows.append(
            f"<tr><td>{esc(c.critic)}</td><td>{score}</td><td>{esc(c.rationale)}{details}</td>"
            f'<td class="err">{esc(c.error or "")}</td><td>{c.seconds:.2f}s</td></tr>'
        )
    head = "<tr><th>critic</th><th>score</th><th>rationale</th><th>error</th><th>time</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>" if rows else ""


def _stats(r: LoadedRound) -> str:
    parts = [f"reward {_fmt(r.reward)}"]
    parts += [f"grad norm {esc(k)} {v:.3g}" for k, v in r.grad_norm.items()]
    parts += [f"step norm {esc(k)} {v:.3g}" for k, v in r.step_norm.items()]
    parts += [f"{esc(k)} {v:.2f}s" for k, v in r.seconds.items()]
    return '<p class="meta">' + " · ".join(parts) + "</p>"


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _image_html(r: LoadedRound) -> str:
    try:
        png = r.image_bytes()
    except FileNotFoundError:
        return f'<div class="missing">image {esc(r.image_file)} is missing</div>'
    except UnsafePathError as exc:
        warnings.warn(f"report: {exc}", TraceWarning, stacklevel=2)
        return f'<div class="missing">image {esc(r.image_file)} refused: not a plain file in the run folder</div>'
    if not png.startswith(PNG_SIGNATURE):
        warnings.warn(f"report: round {r.round} image {r.image_file!r} is not a PNG file; refused", TraceWarning,
                      stacklevel=2)  # fmt: skip
        return f'<div class="missing">image {esc(r.image_file)} refused: not a PNG file</div>'
    return f'<img alt="round {r.round}" src="{_data_url(png)}">'


def _round_html(r: LoadedRound, before: LoadedRound | None, best: int | None, returned: int | None) -> str:
    score = "abstained" if r.score is None else _fmt(r.score)
    badges = f'<span class="badge">updated: {esc(r.modality)}</span>'
    if r.text_prefix_changed:
        badges += '<span class="badge">text prefix changed</span>'
    if r.round == best:
        badges += '<span class="badge best">best</span>'
    if r.round == returned:
        badges += '<span class="badge returned">returned</span>'
    diff = (
        f"<p><b>diff to round {before.round}:</b> {word_diff(before.reasoning, r.reasoning)}</p>"
        if before is not None
        else ""
    )
    return (
        f'<section class="round" id="round-{r.round}">{_image_html(r)}<div>'
        f"<h2>Round {r.round} — score {score}{badges}</h2>{_stats(r)}"
        f"<p><b>reasoning</b> (optimised prefix marked): {reasoning_html(r.reasoning, r.text_prefix)}</p>"
        f"{diff}{_critics_table(r)}</div></section>"
    )


def _header_html(trace: Trace) -> str:
    run, s = trace.run, trace.summary
    critics = ", ".join(f"{c.get('name', '?')} ×{c.get('weight', 1)}" for c in run.critics)
    versions = ", ".join(f"{k} {v}" for k, v in run.versions.items())
    status = (
        f"finished: {esc(s.stop_reason)} after {s.rounds} rounds in {s.seconds:.1f}s; returned round "
        f"{s.final_round} ({esc(s.select)}) with score {_fmt(s.final_score)}; best round {s.best_round}"
        if s is not None
        else f"unfinished: {len(trace.rounds)} rounds on disk"
    )
    model = run.model + (f"@{run.model_revision}" if run.model_revision else "")
    return (
        f"<h1>{esc(run.prompt)}</h1>"
        f'<p class="meta">run <code>{esc(run.run_id)}</code> · model <code>{esc(model)}</code> on '
        f"{esc(run.device)} · seed {esc(run.seed)} · critics {esc(critics)} · {esc(run.created)}</p>"
        f"<p><b>{status}</b></p>"
        f'<p class="meta">{esc(versions)}</p>'
    )


def _json_block(title: str, data) -> str:
    return f"<details><summary>{title}</summary><pre>{esc(json.dumps(data, indent=1, default=str))}</pre></details>"


def render_report(trace: Trace) -> str:
    """The report page of `trace` as a string."""
    curve = reward_curve_svg(trace) if trace.rounds else ""
    best = trace.best.round if trace.best is not None else None
    returned = trace.summary.final_round if trace.summary is not None else None
    rounds = "".join(
        _round_html(r, trace.rounds[i - 1] if i else None, best, returned) for i, r in enumerate(trace.rounds)
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"<title>milr: {esc(trace.run.prompt)}</title><style>{CSS}</style></head><body>"
        f"{_header_html(trace)}{curve}"
        f"{_json_block('config', trace.run.config)}{_json_block('prompt spec', trace.run.spec)}"
        f"{rounds}</body></html>"
    )


def write_report(trace_or_dir: Trace | str | Path) -> Path:
    """Write `report.html` into the run folder (atomically) and return its path."""
    trace = trace_or_dir if isinstance(trace_or_dir, Trace) else Trace.load(trace_or_dir)
    out = trace.path / "report.html"
    atomic_write_text(out, render_report(trace))
    return out


# ----------------------------------------------------------------------------- GenEval export
Which = Literal["final", "best", "last", "first"]


def export_geneval(
    traces: Iterable[Trace | str | Path], out_dir: str | Path, *, which: Which = "final", overwrite: bool = False
) -> Path:
    """Write runs in GenEval's folder layout so its official evaluator scores milr's images:
    `<out>/<idx:05d>/metadata.jsonl` (the prompt's GenEval metadata, one JSON object) and
    `<out>/<idx:05d>/samples/<n:04d>.png`.

    Runs of the same prompt and spec (several seeds) become the samples of one folder, in the order
    given; folders are numbered in order of first appearance. `which` picks the image: `final` (the
    one the run returned; the run must be finished), `best`, `last` or `first` (round 0, the baseline).
    `<out>/export.jsonl` records which run and round each sample came from (GenEval ignores it).
    An out folder that already holds numbered folders is refused unless `overwrite=True`."""
    out = Path(out_dir)
    _clear_numbered(out, overwrite)
    groups: dict[str, int] = {}
    counts: list[int] = []
    index = []
    for item in traces:
        trace = item if isinstance(item, Trace) else Trace.load(item)
        meta = geneval_metadata(trace)
        key = json.dumps(meta, sort_keys=True)
        if key not in groups:
            groups[key] = len(groups)
            counts.append(0)
            folder = out / f"{groups[key]:05d}"
            (folder / "samples").mkdir(parents=True, exist_ok=True)
            atomic_write_text(folder / "metadata.jsonl", json.dumps(redact_data(meta, secret_values())) + "\n")
        idx = groups[key]
        png, round_ = _pick_image(trace, which)
        atomic_write_bytes(out / f"{idx:05d}" / "samples" / f"{counts[idx]:04d}.png", png)
        index.append({"idx": idx, "sample": counts[idx], "run_id": trace.run.run_id, "round": round_, "which": which})
        counts[idx] += 1
    atomic_write_text(out / "export.jsonl", "".join(json.dumps(redact_data(row)) + "\n" for row in index))
    return out


def geneval_metadata(trace: Trace) -> dict:
    """The run's spec as GenEval metadata (with its prompt). GenEval tests `'color' in req`, so keys
    whose value is None are dropped rather than written as null."""
    if trace.run.spec is None:
        raise ValueError(f"trace {trace.path.name!r} has no GenEval spec in run.json; GenEval needs one per prompt")
    meta = _drop_none(trace.run.spec)
    meta.setdefault("prompt", trace.run.prompt)
    if "tag" not in meta or "include" not in meta:
        raise ValueError(f"trace {trace.path.name!r}: its spec lacks GenEval's 'tag' or 'include'")
    return meta


def _drop_none(value):
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def _pick_image(trace: Trace, which: Which) -> tuple[bytes, int]:
    """The PNG bytes of the picked image, read only from inside the run folder, and its round."""
    if which == "final":
        if trace.summary is None:
            raise ValueError(f"trace {trace.path.name!r} is unfinished: no final image (use which='best' or 'last')")
        name, round_ = "final.png", trace.summary.final_round
    else:
        if not trace.rounds:
            raise ValueError(f"trace {trace.path.name!r} has no finished round")
        r = {"best": trace.best or trace.rounds[0], "last": trace.rounds[-1], "first": trace.rounds[0]}[which]
        name, round_ = r.image_file, r.round
    try:
        png = read_member(trace.path, name, f"round {round_} image")
    except FileNotFoundError:
        raise FileNotFoundError(f"trace {trace.path.name!r}: image {name!r} is missing") from None
    if not png.startswith(PNG_SIGNATURE):
        raise ValueError(f"trace {trace.path.name!r}: image {name!r} of round {round_} is not a PNG file")
    return png, round_


def _clear_numbered(out: Path, overwrite: bool) -> None:
    # Stale folders or samples from an earlier export would be scored together with the new ones.
    numbered = [p for p in out.iterdir() if p.is_dir() and re.fullmatch(r"\d+", p.name)] if out.is_dir() else []
    if numbered and not overwrite:
        raise FileExistsError(f"{out.name!r} already holds a GenEval export; pass overwrite=True to replace it")
    for p in numbered:
        shutil.rmtree(p)
