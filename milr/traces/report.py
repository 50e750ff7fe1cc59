"""`report.html` and GenEval export.

The report is one self-contained static page per run that opens from disk with no network: images are
embedded as base64 PNG data URLs, the reward curve is inline SVG, there is no script, and a
Content-Security-Policy forbids any request besides those data URLs. It
shows the prompt and config, the reward curve, and per round the image, the reasoning with the
optimised prefix marked and a word diff against the round before, and each critic's score, rationale
and error. The page is `templates/report.html` on the shared layout (`milr.traces.html`), where every
user- or model-written string is redacted, then HTML-escaped.

Only files inside the run folder are embedded: an image that a record names outside it (`..`, an
absolute path), reaches through a symbolic link, or that is not a PNG is shown as refused, with a
`TraceWarning`, never read into the page.
"""

from __future__ import annotations

import difflib
import json
import re
import shutil
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from markupsafe import Markup

from milr.traces.files import UnsafePathError, atomic_write_bytes, atomic_write_text, read_member
from milr.traces.html import (
    CSP,
    data_url,
    escape_text,
    fmt_score,
    one_secrets_read,
    render,
    svg_chart,
    svg_shape,
    template_source,
)
from milr.traces.reader import LoadedRound, Trace, TraceWarning
from milr.traces.redaction import redact_data, secret_values

__all__ = ["CSP", "CSS", "esc", "export_geneval", "reasoning_html", "render_report", "reward_curve_svg", "word_diff",
           "write_report", "geneval_metadata", "image_src"]  # fmt: skip

CSS = template_source("base.css") + template_source("report.css")  # the page's whole stylesheet


def esc(value: object) -> Markup:
    """Redacted and HTML-escaped text (quotes included): the only way text enters the page."""
    return escape_text(value)


# ----------------------------------------------------------------------------- reward curve
CURVE_W, CURVE_H, PAD = 480, 200, 32  # inline SVG, in px
CRITIC_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def reward_curve_svg(trace: Trace) -> Markup:
    """Score per round (with each critic's score when there are several), threshold and returned round,
    as inline SVG: about a millisecond to write, where a matplotlib PNG took ~90 ms per run (it was
    most of a batched sweep's trace writing). Only numbers and escaped critic names go in."""
    rounds = [r.round for r in trace.rounds]
    last = max(max(rounds), 1)

    def x(k: float) -> float:
        return PAD + (CURVE_W - 2 * PAD) * k / last

    def y(s: float) -> float:
        return CURVE_H - PAD - (CURVE_H - 2 * PAD) * s

    def line(scores: list[float | None], title: str | None = None, **style) -> list:
        points = " ".join(f"{x(k):.1f},{y(s):.1f}" for k, s in zip(rounds, scores, strict=True) if s is not None)
        return [svg_shape("polyline", title=title, fill="none", **style, points=points)] if points else []

    shapes = [svg_shape("line", x1=PAD, y1=y(0), x2=CURVE_W - PAD, y2=y(0), stroke="#999")]
    shapes += [svg_shape("text", f"{s:.1f}", x=4, y=y(s) + 4, font_size=11) for s in (0.0, 0.5, 1.0)]
    for k in sorted({0, last, *rounds[:: max(1, len(rounds) // 8)]}):
        shapes.append(svg_shape("text", k, x=x(k) - 4, y=CURVE_H - 12, font_size=11))
    critic_names = sorted({c.critic for r in trace.rounds for c in r.critiques})
    if len(critic_names) > 1:
        for name, colour in zip(critic_names, CRITIC_COLOURS * len(critic_names), strict=False):
            scores = [_critic_score_or_none(r, name) for r in trace.rounds]
            shapes += line(scores, title=name, stroke=colour, stroke_opacity="0.5")
    threshold = trace.run.config.get("threshold")
    if isinstance(threshold, int | float) and 0 <= threshold <= 1:
        y_t = y(float(threshold))
        dashed = {"stroke": "grey", "stroke_dasharray": "4 3"}
        shapes.append(svg_shape("line", x1=PAD, y1=y_t, x2=CURVE_W - PAD, y2=y_t, **dashed))
    shapes += line([r.score for r in trace.rounds], stroke="black", stroke_width="2")
    shapes += [svg_shape("circle", cx=x(r.round), cy=y(r.score), r="3") for r in trace.rounds if r.score is not None]
    if trace.final is not None and trace.final.score is not None:
        shapes.append(svg_shape("circle", class_="returned", cx=x(trace.final.round), cy=y(trace.final.score), r="7",
                                fill="none", stroke="#1f77b4", stroke_width="2"))  # fmt: skip
    return svg_chart(shapes, width=CURVE_W, height=CURVE_H, label="reward curve")


def _critic_score_or_none(r: LoadedRound, name: str) -> float | None:
    return next((c.score for c in r.critiques if c.critic == name), None)


def word_diff(before: str, after: str) -> Markup:
    """HTML word diff: removed words in <del>, added in <ins>, all text escaped."""
    a, b = before.split(), after.split()
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(esc(" ".join(a[i1:i2])))
        if op in ("delete", "replace"):
            out.append(Markup("<del>{}</del>").format(esc(" ".join(a[i1:i2]))))
        if op in ("insert", "replace"):
            out.append(Markup("<ins>{}</ins>").format(esc(" ".join(b[j1:j2]))))
    return Markup(" ").join(out)


def reasoning_html(reasoning: str, prefix: str) -> Markup:
    """The reasoning with the optimised prefix in <mark>. The prefix is decoded from its own tokens,
    so its spacing can differ from the reasoning's; then it is shown apart rather than guessed."""
    prefix, text = prefix.strip(), reasoning.lstrip()
    if not prefix:
        return esc(reasoning)
    if text.startswith(prefix):
        return Markup("<mark>{}</mark>{}").format(esc(prefix), esc(text[len(prefix) :]))
    return Markup("<mark>{}</mark> <i>(optimised prefix)</i><br>{}").format(esc(prefix), esc(reasoning))


# ----------------------------------------------------------------------------- page
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def image_src(r: LoadedRound) -> tuple[Markup | None, str | None]:
    """(data URL of the round's PNG, None) or (None, why it is not shown): missing, outside the run
    folder or through a link, or not a PNG. Refusals warn (`TraceWarning`); nothing else is read."""
    try:
        png = r.image_bytes()
    except FileNotFoundError:
        return None, f"image {r.image_file} is missing"
    except UnsafePathError as exc:
        warnings.warn(f"report: {exc}", TraceWarning, stacklevel=2)
        return None, f"image {r.image_file} refused: not a plain file in the run folder"
    if not png.startswith(PNG_SIGNATURE):
        warnings.warn(f"report: round {r.round} image {r.image_file!r} is not a PNG file; refused", TraceWarning,
                      stacklevel=2)  # fmt: skip
        return None, f"image {r.image_file} refused: not a PNG file"
    return data_url(png), None


def _stats(r: LoadedRound) -> list[str]:
    parts = [f"reward {fmt_score(r.reward)}"]
    parts += [f"grad norm {k} {v:.3g}" for k, v in r.grad_norm.items()]
    parts += [f"step norm {k} {v:.3g}" for k, v in r.step_norm.items()]
    parts += [f"{k} {v:.2f}s" for k, v in r.seconds.items()]
    return parts


def _round_view(r: LoadedRound, before: LoadedRound | None, best: int | None, returned: int | None) -> dict:
    """What the template shows of one round; text stays plain (the template escapes it), HTML built
    here (reasoning with its prefix marked, the diff) is Markup of escaped parts."""
    src, missing = image_src(r)
    return {
        "round": r,
        "src": src,
        "missing": missing,
        "best": r.round == best,
        "returned": r.round == returned,
        "stats": _stats(r),
        "reasoning": reasoning_html(r.reasoning, r.text_prefix),
        "before": before.round if before is not None else None,
        "diff": word_diff(before.reasoning, r.reasoning) if before is not None else None,
    }


def render_report(trace: Trace) -> str:
    """The report page of `trace` as a string."""
    with one_secrets_read():  # the views escape text too, before the page renders
        return _report_page(trace)


def _report_page(trace: Trace) -> str:
    run = trace.run
    best = trace.best.round if trace.best is not None else None
    returned = trace.summary.final_round if trace.summary is not None else None
    return render(
        "report.html",
        run=run,
        summary=trace.summary,
        rounds_on_disk=len(trace.rounds),
        model=run.model + (f"@{run.model_revision}" if run.model_revision else ""),
        critics=", ".join(f"{c.get('name', '?')} ×{c.get('weight', 1)}" for c in run.critics),
        versions=", ".join(f"{k} {v}" for k, v in run.versions.items()),
        curve=reward_curve_svg(trace) if trace.rounds else "",
        rounds=[
            _round_view(r, trace.rounds[i - 1] if i else None, best, returned) for i, r in enumerate(trace.rounds)
        ],
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
