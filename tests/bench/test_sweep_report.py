"""Sweep reports: `compare_markdown` of N folders, `index.html` (tables, curves, gallery, filters), its
links and images confined to the folder, hostile text inert, and the page in real headless Chromium."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from milr.bench.report import compare_markdown, load_sweeps, md_cell, wins_matrix, write_sweep_report
from milr.cli import main
from tests.bench.sweeps import colour, make_sweep
from tests.traces.helpers import EVIL

CHROMIUM = Path("/usr/bin/chromium")
A = {"p0": True, "p1": True, "p2": False, "p3": True, "p4": False, "p5": True}
B = {"p0": True, "p1": False, "p2": False, "p3": False, "p4": True, "p5": True}
C = {"p0": False, "p1": True, "p2": True, "p4": False, "p5": True}  # never ran p3


def make_three(root: Path) -> list[Path]:
    return [make_sweep(root / name, method, outcomes)
            for name, method, outcomes in (("A", "milr", A), ("B", "best-of-n", B), ("C", "baseline", C))]  # fmt: skip


@pytest.fixture(scope="module")
def three(tmp_path_factory) -> list[Path]:
    """Three folders the tests only read (their report goes into the folder above them)."""
    return make_three(tmp_path_factory.mktemp("sweeps"))


class Page(HTMLParser):
    """Start tags with attributes, the text inside each gallery row, and every script's text."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts.append(data)


def parse(page: str) -> Page:
    parsed = Page()
    parsed.feed(page)
    return parsed


# ----------------------------------------------------------------------------- compare
def test_compare_of_three_folders_counts_known_wins_and_losses(three):
    assert wins_matrix(load_sweeps(three)) == [[0, 2, 1], [1, 0, 2], [1, 2, 0]]
    md = compare_markdown(three)
    for row in ("| A | — | 2 (6) | 1 (5) |", "| B | 1 (6) | — | 2 (5) |", "| C | 1 (5) | 2 (5) | — |"):
        assert row in md
    assert "| A | milr | shapes×1.0 | 0.500 (n=2) | 1.000 (n=2) | 0.500 (n=2) | 0.667 | 6 | 2.00 |" in md
    assert "| C | baseline | shapes×1.0 | 1.000 (n=1) | 0.500 (n=2) | 0.500 (n=2) | 0.667 | 5 | 2.00 |" in md
    assert "## Prompts on which they disagree (5 of 6)" in md
    assert "| p3 | 0 | colors | a photo of prompt p3 | ✓ | ✗ | — |" in md
    assert "p5 |" not in md  # all three right: no disagreement to show


def test_compare_cli_writes_markdown_to_stdout_and_needs_two_folders(three, capsys):
    assert main(["bench", "compare", *map(str, three)]) == 0
    out, err = capsys.readouterr()
    assert out == compare_markdown(three) and err == ""
    assert main(["bench", "compare", str(three[0])]) == 2
    assert "two or more bench folders" in capsys.readouterr().err


def test_report_cli_writes_the_index_and_prints_its_path(three, capsys):
    assert main(["bench", "report", *map(str, three), "--json"]) == 0
    report = Path(json.loads(capsys.readouterr().out)["report"])
    assert report.name == "index.html" and report.parent == three[0].parent and report.is_file()


def test_markdown_cells_are_inert_in_a_table_and_a_terminal():
    assert md_cell("a | b\nc\x1b[31m red") == "a \\| b c\\x1b[31m red"
    assert md_cell("x\u2028y\x07") == "x y\\x07"


def test_a_folder_that_is_not_a_sweep_is_refused_with_the_fix(three, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty: no results.jsonl"):
        compare_markdown([three[0], tmp_path / "empty"])
    (tmp_path / "empty" / "results.jsonl").write_text('{"key": "p0", "tag": "colors"}\n')
    with pytest.raises(ValueError, match=r"line 1: no correct"):
        compare_markdown([three[0], tmp_path / "empty"])


# ----------------------------------------------------------------------------- the page
def _gallery(page: Page) -> list[dict]:
    return [a for t, a in page.tags if t == "tr" and a.get("class") == "prompt"]


def test_report_tables_curves_and_gallery(three):
    index = write_sweep_report(three)
    assert index == three[0].parent / "index.html"
    page = index.read_text()
    parsed = parse(page)
    rows = _gallery(parsed)
    assert [r["data-outcomes"] for r in rows] == ["1 1 0", "1 0 1", "0 0 1", "1 0 -", "0 1 0", "1 1 1"]
    assert [r["data-tag"] for r in rows] == ["counting", "counting", "colors", "colors", "position", "position"]
    # per-tag table: accuracy with n for every folder
    assert page.count('<span class="n">n=2</span>') == 8 and page.count('<span class="n">n=1</span>') == 1
    # one curve per folder, named with its method in the legend
    series = [a for t, a in parsed.tags if t == "polyline" and a.get("class") == "series"]
    assert len(series) == 3
    for label, method in (("A", "milr"), ("B", "best-of-n"), ("C", "baseline")):
        assert f"{label}: {method} (final" in page
    assert "Test-time scaling: accuracy of the best round so far" in page
    assert "not run" in page  # C's missing p3


def test_every_gallery_link_and_image_resolves_to_a_file_inside_the_folder(three):
    index = write_sweep_report(three)
    parsed = parse(index.read_text())
    hrefs = [a["href"] for t, a in parsed.tags if t == "a"]
    assert len(hrefs) == 17  # 6 + 6 + 5 records, each linked to its run report
    for href in hrefs:
        assert not re.match(r"[a-z]+:|/", href) and ".." not in Path(href).parts
        target = (index.parent / href).resolve()
        assert target.is_file() and target.is_relative_to(index.parent) and target.name == "report.html"
    imgs = [a for t, a in parsed.tags if t == "img"]
    assert len(imgs) == 17
    for img, href in zip(imgs, hrefs, strict=True):
        png = base64.b64decode(img["src"].removeprefix("data:image/png;base64,"))
        run_dir = (index.parent / href).parent
        assert png == (run_dir / "final.png").read_bytes()  # the image of the run it links to
        method = json.loads((run_dir.parent.parent / "bench.json").read_text())["method"]
        key = run_dir.name.removesuffix("-s0")
        assert Image.open(io.BytesIO(png)).getpixel((0, 0)) == colour(method, key)


def test_links_and_images_outside_the_folder_or_through_a_link_are_refused(tmp_path):
    three = make_three(tmp_path)
    outside = tmp_path / "outside"
    shutil.copytree(three[0] / "traces" / "p0-s0", outside)
    results = three[0] / "results.jsonl"
    records = [json.loads(line) for line in results.read_text().splitlines()]
    records[0]["trace"] = "../outside"  # p0: a record naming a folder beside the sweep
    results.write_text("".join(json.dumps(r) + "\n" for r in records))
    shutil.rmtree(three[0] / "traces" / "p1-s0")
    (three[0] / "traces" / "p1-s0").symlink_to(outside)  # p1: a trace folder that is a link
    (three[0] / "traces" / "p2-s0" / "report.html").unlink()
    (three[0] / "traces" / "p2-s0" / "report.html").symlink_to(outside / "report.html")  # p2: a linked report
    page = write_sweep_report(three).read_text()
    hrefs = [a["href"] for t, a in parse(page).tags if t == "a"]
    assert [h for h in hrefs if h.startswith("A/")] == [f"A/traces/p{k}-s0/report.html" for k in range(3, 6)]
    assert len(hrefs) == 14 and not [h for h in hrefs if "outside" in h]
    assert page.count("image refused: not a plain file inside the folder") == 2
    with pytest.raises(ValueError, match="not inside the report's folder"):
        write_sweep_report(three, three[0] / "index.html")


def test_hostile_prompts_and_tags_are_inert_and_only_our_script_runs(tmp_path):
    evil = {"p0": EVIL, "p1": "fine"}
    folders = [make_sweep(tmp_path / name, "milr", {"p0": ok, "p1": not ok}, prompts=evil, tags=evil)
               for name, ok in (("A", True), ("B", False))]  # fmt: skip
    page = write_sweep_report(folders).read_text()
    parsed = parse(page)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "onerror=alert(2)&gt;" in page
    assert {t for t, _ in parsed.tags} <= {
        "html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "b", "br", "span", "table", "tr", "th",
        "td", "div", "label", "select", "option", "a", "img", "svg", "line", "polyline", "text", "script",
    }  # fmt: skip
    assert not [k for _, attrs in parsed.tags for k in attrs if k.startswith("on")]
    assert [t for t, _ in parsed.tags].count("script") == 1 and len(parsed.scripts) == 1
    (csp,) = [a["content"] for t, a in parsed.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    digest = base64.b64encode(hashlib.sha256(parsed.scripts[0].encode()).digest()).decode()
    assert csp == f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{digest}'"
    # the hostile tag is a filter value and a row attribute, escaped, never markup
    assert [a["data-tag"] for t, a in parsed.tags if t == "tr" and a.get("class") == "prompt"][0] == EVIL
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "data:", page)
    assert not re.search(r"https?://|//[a-z]", text, re.I) and "url(" not in text


def test_large_images_are_embedded_as_thumbnails(tmp_path):
    folder = make_sweep(tmp_path / "A", "milr", {"p0": True}, size=400)
    page = write_sweep_report([folder]).read_text()
    (src,) = [a["src"] for t, a in parse(page).tags if t == "img"]
    thumb = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
    assert thumb.size == (192, 192) and thumb.getpixel((5, 5)) == colour("milr", "p0")


# ----------------------------------------------------------------------------- in a browser
def _chromium(*args: str) -> subprocess.CompletedProcess:
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed (Debian: apt-get install chromium)")
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)


@pytest.mark.browser
def test_the_report_renders_in_headless_chromium_with_its_images_and_filters(three, tmp_path):
    index = write_sweep_report(three)
    shot = tmp_path / "shot.png"
    _chromium(f"--screenshot={shot}", "--window-size=1200,2200", index.as_uri())
    image = Image.open(shot).convert("RGB")
    pixels = [image.getpixel((x, y)) for y in range(0, image.height, 2) for x in range(0, image.width, 2)]
    assert sum(p != (255, 255, 255) for p in pixels) > 0.05 * len(pixels)  # not a blank page
    assert len(set(pixels)) > 50  # text, tables, curves and images, not a flat fill
    shown = set(pixels)
    for method, outcomes in (("milr", A), ("best-of-n", B), ("baseline", C)):
        for key in outcomes:  # every final image is on screen: the CSP let the embedded images load
            assert colour(method, key) in shown, (method, key)
    # The filter script ran under the page's CSP (it shows the filters and counts the rows) and
    # applies the filter named in the address: counting prompts that A gets right and B wrong.
    dom = _chromium("--dump-dom", index.as_uri() + "#tag=counting&outcome=0%3E1").stdout
    assert "showing 1 of 6 prompts" in dom and '<div class="filters" id="filters">' in dom
    visible = re.findall(r'<tr class="prompt" data-tag="(\w+)" data-outcomes="([^"]+)">', dom)
    assert visible == [("counting", "1 0 1")]
