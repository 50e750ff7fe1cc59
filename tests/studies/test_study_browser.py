"""study.html in a real headless Chromium: it asks for nothing but itself, reports no error, and its
tables and inline SVG plots are there and painted."""

from __future__ import annotations

import pytest
from PIL import Image

from milr.studies.report import accuracy_rows
from tests.traces.chromium import CHROMIUM, Chromium

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium)"),
]

SHAPES = "[...document.querySelectorAll('svg')].map(s => {const r = s.getBoundingClientRect(); " \
    "return [r.width, r.height, s.querySelectorAll('rect, polyline, circle').length]})"  # fmt: skip


def test_the_study_page_renders_self_contained_with_its_plots(study, tmp_path):
    root, result = study
    url = (root / "out" / "study.html").as_uri()
    browser = Chromium(tmp_path / "profile")
    try:
        page = browser.page()
        page.open(url)
        assert page.requested() == [url]  # every plot is inline: nothing else is fetched
        assert page.complaints() == []
        charts = page.evaluate(SHAPES)
        assert len(charts) >= 4 and all(w > 100 and h > 100 and n > 0 for w, h, n in charts)
        rows = page.evaluate("document.querySelector('table').rows.length")
        assert rows == 1 + len(accuracy_rows(result.data))
        shot = tmp_path / "shot.png"
        shot.write_bytes(page.screenshot())
    finally:
        browser.close()
    image = Image.open(shot).convert("RGB")
    pixels = [image.getpixel((x, y)) for y in range(0, image.height, 3) for x in range(0, image.width, 3)]
    assert len(set(pixels)) > 20 and sum(p != (255, 255, 255) for p in pixels) > 0.02 * len(pixels)
