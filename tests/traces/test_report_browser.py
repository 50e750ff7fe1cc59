"""report.html in a real headless Chromium: it renders every round, its images load and are painted,
no request leaves the page, and hostile text in every field a user, model or critic writes stays text.

The run folder is served over HTTP on 127.0.0.1 by a server that records every request it gets, and
Chromium (driven over the DevTools protocol, see `chromium.py`) reports every request the page makes,
blocked or not. The page is opened twice: as shipped, and with its Content-Security-Policy bypassed,
so a reference or a script that only the policy stops still fails the test.

Marked `browser`: skipped, saying why, where Chromium is missing; `-m "not browser"` deselects it.
"""

from __future__ import annotations

import functools
import io
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from milr.traces import CriticScore, RunInfo, RunSummary, TraceWriter, write_report
from tests.traces.chromium import CHROMIUM, Chromium
from tests.traces.helpers import image, record

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium; .ci/run does)"
    ),
]

ROUNDS = 3
PWNED = "document.documentElement.dataset.pwned"  # every payload that runs sets it
HOSTILE = (
    f"<script>{PWNED}='script'</script>"
    f"<img src=x onerror=\"{PWNED}='onerror'\">"
    f"<svg onload=\"{PWNED}='svg'\"></svg>"
    f"<a href=\"javascript:{PWNED}='href'\">click</a>"
    f"<iframe src=\"javascript:parent.{PWNED}='iframe'\"></iframe>"
    '<link rel=stylesheet href="https://example.com/x.css"><base href="https://example.com/">'
    f"\"'></title></textarea></pre></style></svg><script>{PWNED}='breakout'</script>"
    '<img src="https://example.com/beacon.png"> javascript:void(0) &amp; &lt;'
)


def _hostile_run(path):
    """A finished 3-round run with the hostile text in every free-text field of the trace."""
    writer = TraceWriter(path)
    writer.start(
        RunInfo(
            run_id="run",
            prompt=HOSTILE,
            spec={"tag": HOSTILE, "include": [{"class": HOSTILE, "count": 1}]},
            config={"threshold": 0.9, "note": HOSTILE},
            model=HOSTILE,
            critics=[{"name": HOSTILE, "weight": 1.0}, {"name": "plain", "weight": 1.0}],
            versions={HOSTILE: HOSTILE},
            device=HOSTILE,
        )
    )
    for k in range(ROUNDS):
        critiques = [
            CriticScore(critic=HOSTILE, score=0.2 * (k + 1), rationale=HOSTILE, details={HOSTILE: HOSTILE},
                        error=HOSTILE),
            CriticScore(critic="plain", score=0.1 * (k + 1), rationale="fine"),
        ]  # fmt: skip
        reasoning = f"a plan {k} {HOSTILE}"
        writer.write_round(
            record(k, reasoning=reasoning, text_prefix=reasoning.split()[0], critiques=critiques,
                   grad_norm={HOSTILE: 0.1}, seconds={HOSTILE: 0.5}),
            image(k),
        )  # fmt: skip
    summary = RunSummary(stop_reason=HOSTILE, best_round=2, last_round=2, final_round=2, final_score=0.3,
                         rounds=ROUNDS, seconds=1.0, select=HOSTILE)  # fmt: skip
    writer.finish(summary, image(2))
    writer.close()
    return write_report(path)


class RecordingServer:
    """Serves one folder on 127.0.0.1 and records every request line it receives (any method)."""

    def __init__(self, folder):
        self.requests: list[str] = []
        server = self

        class Handler(SimpleHTTPRequestHandler):
            def parse_request(self):
                ok = super().parse_request()
                server.requests.append(f"{self.command} {self.path}")
                return ok

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium = Chromium(tmp_path_factory.mktemp("chromium") / "profile")
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    run = tmp_path_factory.mktemp("served") / "run"
    report = _hostile_run(run)
    server = RecordingServer(run)
    yield server, f"{server.base}/{report.name}"
    server.close()


STATE = """(() => {
  const imgs = [...document.images];
  return {
    rounds: [...document.querySelectorAll('section.round')].map(s => s.id),
    images: imgs.map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight, i.src.slice(0, 22)]),
    curvePoints: [...document.querySelectorAll('svg[aria-label="reward curve"] polyline[stroke="black"]')]
                   .map(p => p.points.length),
    h1: document.querySelector('h1')?.textContent ?? null,
    title: document.title,
    pwned: document.documentElement.dataset.pwned || null,
    tags: [...new Set([...document.querySelectorAll('*')].map(e => e.localName))].sort(),
    handlers: [...document.querySelectorAll('*')].flatMap(e => [...e.attributes].map(a => a.name))
                .filter(n => n.startsWith('on')),
    links: [...document.querySelectorAll('[href], [src], [action], [formaction], [srcdoc]')]
             .map(e => e.getAttribute('href') || e.getAttribute('src') || e.localName)
             .filter(u => !u.startsWith('data:image/png;base64,')),
    rationale: [...document.querySelectorAll('section.round td')].map(td => td.textContent)
                 .filter(t => t.includes('example.com')).length,
  };
})()"""
ALLOWED_TAGS = {
    "html",
    "head",
    "meta",
    "title",
    "style",
    "body",
    "h1",
    "h2",
    "p",
    "code",
    "b",
    "i",
    "br",
    "img",
    "div",
    "section",
    "span",
    "mark",
    "ins",
    "del",
    "table",
    "tbody",
    "tr",
    "th",
    "td",
    "details",
    "summary",
    "pre",
    "svg",
    "line",
    "polyline",
    "circle",
    "text",
}  # fmt: skip  (SVG `title` children are the critic names: "title" is above)


def _complaints(page, bypass_csp: bool) -> list[str]:
    """The page's complaints, but for the 404 of the favicon Chromium asks for when the policy is off."""
    return [c for c in page.complaints() if not (bypass_csp and c.endswith("/favicon.ico)"))]


def _opened(browser, url, *, bypass_csp: bool):
    page = browser.page(bypass_csp=bypass_csp)
    page.open(url)
    return page, page.evaluate(STATE)


def test_the_report_renders_every_round_and_its_images_load_and_are_painted(browser, served, tmp_path):
    _, url = served
    page, state = _opened(browser, url, bypass_csp=False)
    assert state["rounds"] == [f"round-{k}" for k in range(ROUNDS)]
    # every round's <img> decoded from its data URL: complete, at the PNG's own 16x16 size
    assert state["images"] == [[f"round {k}", True, 16, 16, "data:image/png;base64,"] for k in range(ROUNDS)]
    assert state["curvePoints"] == [ROUNDS]
    assert page.complaints() == []  # no CSP violation, no script error, no failed load
    png = page.screenshot()
    (tmp_path / "report.png").write_bytes(png)  # kept for a look when this fails
    shot = Image.open(io.BytesIO(png)).convert("RGB")
    colours = dict((c, n) for n, c in shot.getcolors(shot.width * shot.height))
    assert len(colours) > 50  # text, badges, curve: not a blank page
    for k in range(ROUNDS):  # each round's flat colour fills its 192 px box (pixelated scaling)
        assert colours.get(image(k).getpixel((0, 0)), 0) >= 180 * 180, f"round {k} image not painted"


@pytest.mark.parametrize("bypass_csp", [False, True], ids=["as-shipped", "csp-bypassed"])
def test_no_request_leaves_the_page(browser, served, bypass_csp):
    server, url = served
    before = len(server.requests)
    page, state = _opened(browser, url, bypass_csp=bypass_csp)
    requested = [u for u in page.requested() if not u.startswith("data:")]
    received = server.requests[before:]
    if bypass_csp:  # then Chromium itself may ask the page's own server for /favicon.ico (none is named)
        requested = [u for u in requested if u != f"{server.base}/favicon.ico"]
        received = [r for r in received if r != "GET /favicon.ico"]
    assert requested == [url]
    assert received == ["GET /report.html"]  # and the server saw nothing else either
    assert state["links"] == []  # no href/src but the embedded PNGs: nothing to follow or fetch later
    assert _complaints(page, bypass_csp) == []


@pytest.mark.parametrize("bypass_csp", [False, True], ids=["as-shipped", "csp-bypassed"])
def test_hostile_text_stays_text(browser, served, bypass_csp):
    _, url = served
    page, state = _opened(browser, url, bypass_csp=bypass_csp)
    assert state["pwned"] is None
    assert state["h1"] == HOSTILE and state["title"] == f"milr: {HOSTILE}"  # shown literally, as typed
    assert state["handlers"] == [] and set(state["tags"]) <= ALLOWED_TAGS
    assert state["rationale"] >= 2 * ROUNDS  # critic name, rationale and error cells show it as text
    assert _complaints(page, bypass_csp) == []


def test_the_harness_sees_what_it_must_catch(browser, tmp_path):
    # The control: a page that does load from elsewhere and runs a script must be seen doing both.
    (tmp_path / "bad.html").write_text(
        f"<!doctype html><title>t</title><img src='https://example.com/x.png'><script>{PWNED}='ran'</script>"
    )
    server = RecordingServer(tmp_path)
    try:
        page, state = _opened(browser, f"{server.base}/bad.html", bypass_csp=False)
    finally:
        server.close()
    assert "https://example.com/x.png" in page.requested()
    assert state["pwned"] == "ran" and "script" in state["tags"]
