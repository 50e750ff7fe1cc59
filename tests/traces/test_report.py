"""report.html: escaping, self-containment, content; terminal views."""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser

import jinja2
import pytest
from PIL import Image
from rich.console import Console

from milr.traces import CriticScore, RunInfo, Trace, TraceWriter, list_table, show, write_report
from milr.traces.html import render
from milr.traces.report import reasoning_html, render_report, word_diff
from tests.traces.helpers import EVIL, image, record, summary, write_run

ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "code", "b", "i", "br", "img", "div",
    "section", "span", "mark", "ins", "del", "table", "tr", "th", "td", "details", "summary", "pre",
    "svg", "line", "polyline", "circle", "text",
}  # fmt: skip


class _Page(HTMLParser):
    """Every start tag with its attributes, as a browser's tokenizer would see them."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _parse(page: str) -> _Page:
    parsed = _Page()
    parsed.feed(page)
    return parsed


def _evil_run(path):
    writer = TraceWriter(path)
    writer.start(
        RunInfo(
            run_id="run",
            prompt=EVIL,
            spec={"tag": EVIL, "include": []},
            config={"threshold": 0.9, "note": EVIL},
            model=EVIL,
            critics=[{"name": EVIL, "weight": 1.0}],
        )
    )
    critique = CriticScore(critic=EVIL, score=None, rationale=EVIL, details={EVIL: EVIL}, error=EVIL)
    writer.write_round(record(0, reasoning=EVIL, text_prefix=EVIL, critiques=[critique]), image(0))
    writer.write_round(record(1, reasoning=EVIL + " more </pre>", text_prefix="<b>"), image(1))
    writer.finish(summary(2, stop_reason=EVIL), image(1))
    return path


def test_everything_user_or_model_written_is_escaped(tmp_path):
    page = (_evil_run(tmp_path / "run") / "report.html").read_text()
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&quot;quoted&quot;" in page and "&#x27;single" in page
    tags = _parse(page).tags
    assert {t for t, _ in tags} <= ALLOWED_TAGS
    assert not [a for _, attrs in tags for a in attrs if a.startswith("on")]  # no injected handlers
    # Exactly the images we put there: two rounds, inline PNGs; the curve is inline SVG.
    srcs = [attrs["src"] for t, attrs in tags if t == "img"]
    assert len(srcs) == 2 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert [t for t, _ in tags].count("svg") == 1


def test_the_page_is_self_contained_and_forbids_requests(finished_run):
    page = (finished_run / "report.html").read_text()
    tags = _parse(page).tags
    csp = [a["content"] for t, a in tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp == ["default-src 'none'; img-src data:; style-src 'unsafe-inline'"]
    # Base64 image data may contain "//" by chance: look for addresses in the page without it.
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "data:", page)
    assert not re.search(r"https?://|//[a-z]", text, re.I) and "url(" not in text
    assert not [a for _, attrs in tags for k, a in attrs.items() if k in ("href", "src") and not a.startswith("data:")]


def test_round_images_are_the_real_pngs_and_the_curve_plots_every_score(finished_run):
    page = (finished_run / "report.html").read_text()
    tags = _parse(page).tags
    srcs = [a["src"] for t, a in tags if t == "img"]
    rounds = [Image.open(io.BytesIO(base64.b64decode(s.split(",", 1)[1]))) for s in srcs]
    assert [im.convert("RGB").getpixel((0, 0)) for im in rounds] == [image(k).getpixel((0, 0)) for k in range(3)]
    (score_line,) = [a for t, a in tags if t == "polyline" and a.get("stroke") == "black"]
    ys = [float(p.split(",")[1]) for p in score_line["points"].split()]
    scores = [r.score for r in Trace.load(finished_run).rounds]
    assert len(ys) == 3 and sorted(range(3), key=lambda i: ys[i]) == sorted(range(3), key=lambda i: -scores[i])
    assert [t for t, a in tags if t == "circle" and a.get("class") == "returned"] == ["circle"]


def test_rounds_show_prefix_diff_badges_and_critics(finished_run):
    page = (finished_run / "report.html").read_text()
    sections = re.findall(r'<section class="round" id="round-(\d+)">(.*?)</section>', page, re.S)
    assert [k for k, _ in sections] == ["0", "1", "2"]
    first, _, last = (body for _, body in sections)
    assert "<mark>a</mark> red circle in row one." in first and "diff to round" not in first
    assert "diff to round 1" in last and "returned" in last and "best" in last
    assert "<td>shapes</td><td>0.300</td><td>round 2" in last
    assert "finished: steps after 3 rounds" in page


def test_a_missing_image_is_shown_as_missing_not_broken(tmp_path):
    run = tmp_path / "run"
    write_run(run, 2)
    (run / "round_01.png").unlink()
    page = write_report(run).read_text()
    assert "image round_01.png is missing" in page and "unfinished: 2 rounds on disk" in page
    assert len([t for t, _ in _parse(page).tags if t == "img"]) == 1  # round 0 (the curve is SVG)


def test_word_diff_and_prefix_marking():
    assert word_diff("a red circle", "a blue circle now") == "a <del>red</del> <ins>blue</ins> circle <ins>now</ins>"
    assert word_diff("<x>", "<y>") == "<del>&lt;x&gt;</del> <ins>&lt;y&gt;</ins>"
    assert reasoning_html(" a red circle", "a red") == "<mark>a red</mark> circle"
    # A prefix whose decoded spelling differs from the reasoning is shown apart, not mis-marked.
    assert reasoning_html("a red circle", "ared") == "<mark>ared</mark> <i>(optimised prefix)</i><br>a red circle"
    assert reasoning_html("<b>", "") == "&lt;b&gt;"


def test_report_on_demand_of_an_unfinished_run(tmp_path):
    run = tmp_path / "run"
    write_run(run, 1)
    assert not (run / "report.html").exists()
    assert write_report(Trace.load(run)) == run / "report.html"
    assert "unfinished: 1 rounds on disk" in (run / "report.html").read_text()


def test_terminal_views_print_trace_text_literally(tmp_path, finished_run):
    write_run(tmp_path / "markup", 1, prompt="a [bold]cat[/] [/red]")
    console = Console(record=True, width=200, color_system=None)
    console.print(list_table(tmp_path))
    show(Trace.load(tmp_path / "markup"), console)
    show(Trace.load(finished_run), console)
    out = console.export_text()
    assert out.count("a [bold]cat[/] [/red]") >= 2  # in the list and in `show`, markup not interpreted
    assert "unfinished" in out and "steps" in out and "2 best returned" in out
    assert "returned round 2 (best, score 0.500)" in out


def test_templates_redact_and_escape_every_value_and_refuse_undefined_names(tmp_path):
    key = "sk-" + "a1B2c3D4e5" * 3
    run = tmp_path / "run"
    write_run(run, 1)
    info = json.loads((run / "run.json").read_text())  # a hand-edited run.json: the writer did not redact it
    (run / "run.json").write_text(json.dumps({**info, "prompt": f"a cat, {key} <b>bold</b>"}))
    trace = Trace.load(run)
    page = render_report(trace)  # the page itself, before the writer redacts the file it goes into
    assert key not in page and "a cat, [REDACTED] &lt;b&gt;bold&lt;/b&gt;" in page
    context = dict(run=trace.run, summary=None, rounds_on_disk=0, model="m", critics="", curve="", rounds=[])
    assert "unfinished: 0 rounds on disk" in render("report.html", **context, versions="")
    with pytest.raises(jinja2.UndefinedError, match="'versions' is undefined"):
        render("report.html", **context)  # a missing value is an error, never an empty string


def test_a_secret_exported_after_the_run_is_redacted_from_every_page_value(tmp_path, monkeypatch):
    """The page redacts the environment's secrets as they are when it renders (read once per page):
    a trace written before the key was exported (or crafted by hand) shows none of it, in the prompt,
    the reasoning, the reasoning diff or a critic's rationale; the rendered string itself, before the
    write redacts the file once more."""
    secret = "correct horse battery staple"  # words, not key-shaped: only the environment can name it
    writer = TraceWriter(tmp_path / "run")
    writer.start(RunInfo(run_id="run", prompt=f"a cat {secret}", config={}, model="m", critics=[]))
    critique = CriticScore(critic="judge", score=0.4, rationale=f"saw {secret}")
    writer.write_round(record(0, reasoning=f"draw {secret}", critiques=[critique]), image(0))
    writer.write_round(record(1, reasoning=f"draw {secret} again"), image(1))
    writer.finish(summary(2), image(1))
    assert secret in (tmp_path / "run" / "report.html").read_text()  # no secret was set when it was written

    monkeypatch.setenv("MILR_TEST_API_KEY", secret)
    page = render_report(Trace.load(tmp_path / "run"))
    assert secret not in page.lower() and page.count("[REDACTED]") >= 4
