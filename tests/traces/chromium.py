"""A headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`): no
websocket client, no browser-automation package, only the `chromium` binary. Enough for the report
test: open a page, record every request and every console or security message it causes, read the
DOM's state, take a screenshot.

Chromium reads commands from its fd 3 and writes replies and events to its fd 4, one JSON message
per NUL-terminated chunk.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
    "--disable-default-apps", "--mute-audio", "--remote-debugging-pipe",
)  # fmt: skip
HIGH_FD = 10  # the pipe ends are moved above 4 first, so mapping them onto 3 and 4 cannot clobber one


class BrowserError(RuntimeError):
    """Chromium died, answered an error, or did not answer in time."""


class Chromium:
    """One headless Chromium process with its own throw-away profile; close() ends it."""

    def __init__(self, profile: Path, timeout: float = 60.0):
        if CHROMIUM is None:
            raise BrowserError("no chromium on PATH")
        self.timeout = timeout
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        child_r = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, HIGH_FD)
        child_w = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, HIGH_FD)

        def map_pipes():  # in the child, before exec: dup2 leaves 3 and 4 open across exec
            os.dup2(child_r, 3)
            os.dup2(child_w, 4)

        self._stderr = open(profile.with_suffix(".stderr"), "w+b")  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._stderr,
            close_fds=False, preexec_fn=map_pipes,
        )  # fmt: skip
        for fd in (to_chrome_r, from_chrome_w, child_r, child_w):
            os.close(fd)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    # ------------------------------------------------------------------ protocol
    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send one command and return its result (events that arrive meanwhile are kept)."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        wanted = self._next_id
        reply = self._until(lambda m: m.get("id") == wanted, f"the reply to {method}")
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def wait_for(self, event: str, session: str) -> dict:
        """The next `event` of `session` (one already received counts)."""
        for i, m in enumerate(self.events):
            if m.get("method") == event and m.get("sessionId") == session:
                return self.events.pop(i)
        found = self._until(lambda m: m.get("method") == event and m.get("sessionId") == session, event)
        self.events.remove(found)
        return found

    def _until(self, wanted, what: str) -> dict:
        deadline = time.monotonic() + self.timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "id" not in message:
                    self.events.append(message)
                if wanted(message):
                    return message
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._from_chrome], [], [], max(left, 0))
            if not ready:
                raise BrowserError(f"chromium sent no {what} in {self.timeout:.0f} s{self._stderr_tail()}")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise BrowserError(f"chromium exited (code {self.proc.poll()}){self._stderr_tail()}")
            self._buffer += chunk

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        return ": " + self._stderr.read()[-1500:].decode(errors="replace")

    # ------------------------------------------------------------------ pages
    def page(self, *, bypass_csp: bool = False, width: int = 1100, height: int = 2000) -> Page:
        """A new tab with network, console, security and dialog events on. `bypass_csp` makes the
        tab ignore the page's Content-Security-Policy, so whatever the page itself would load or run
        does load or run: what is then left inert is inert because of the markup, not the policy."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=session)
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
        self.call("Emulation.setDeviceMetricsOverride", metrics, session=session)
        if bypass_csp:
            self.call("Page.setBypassCSP", {"enabled": True}, session=session)
        return Page(self, session)

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.call("Browser.close")
                self.proc.wait(10)
        except (BrowserError, OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        finally:
            for fd in (self._to_chrome, self._from_chrome):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._stderr.close()


class Page:
    """One tab: `open` a URL, then read what happened."""

    def __init__(self, browser: Chromium, session: str):
        self.browser, self.session = browser, session

    def open(self, url: str) -> None:
        """Navigate and wait for the load event (every image loaded or failed by then)."""
        result = self.browser.call("Page.navigate", {"url": url}, session=self.session)
        if result.get("errorText"):
            raise BrowserError(f"navigating to {url}: {result['errorText']}")
        self.browser.wait_for("Page.loadEventFired", self.session)
        self.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")  # painted

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (DevTools runs it whatever the page's CSP;
        the page itself is not changed)."""
        params = {"expression": expression, "returnByValue": True, "awaitPromise": True}
        result = self.browser.call("Runtime.evaluate", params, session=self.session)
        if "exceptionDetails" in result:
            raise BrowserError(f"evaluating {expression[:60]!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self) -> bytes:
        """A PNG of the whole page, beyond the window too, at one device pixel per CSS pixel."""
        size = self.browser.call("Page.getLayoutMetrics", session=self.session)["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        params = {"format": "png", "clip": clip, "captureBeyondViewport": True}
        return base64.b64decode(self.browser.call("Page.captureScreenshot", params, session=self.session)["data"])

    def events(self, *methods: str) -> list[dict]:
        """The params of every event of this tab named in `methods`, in order."""
        return [e["params"] for e in self.browser.events if e.get("sessionId") == self.session and
                e.get("method") in methods]  # fmt: skip

    def requested(self) -> list[str]:
        """Every URL this tab asked for, allowed or blocked (a blocked one is still announced)."""
        return [e["request"]["url"] for e in self.events("Network.requestWillBeSent")]

    def complaints(self) -> list[str]:
        """Everything the tab reported as wrong or risky: console and security messages, script
        errors, dialogs, failed loads."""
        out = [f"log {e['entry']['level']}: {e['entry']['text']} ({e['entry'].get('url', '')})"
               for e in self.events("Log.entryAdded")]  # fmt: skip
        out += [f"console {e['type']}: {e['args']}" for e in self.events("Runtime.consoleAPICalled")]
        out += [f"exception: {e['exceptionDetails']}" for e in self.events("Runtime.exceptionThrown")]
        out += [f"dialog: {e['message']}" for e in self.events("Page.javascriptDialogOpening")]
        out += [f"failed load: {e}" for e in self.events("Network.loadingFailed")]
        return out
