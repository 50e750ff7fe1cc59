"""Judges against loopback servers that trickle, never answer, or fail every time, through the real
`openai` client over HTTP: each call ends within its total deadline (retries included), abstains
with "deadline of N s exceeded", and the run goes on.

Without the deadline, the trickling server holds a call forever (the SDK's timeout is per read) and
the silent one costs (1 + max_retries) x timeout.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from PIL import Image

from milr.config import MILRConfig
from milr.critics import Mixer, OpenAIJudge, UnifiedReward, WiseJudge
from milr.critics.base import Critique
from milr.orchestrator import MILR

KEY = "sk-test-0123456789abcdefSECRET"  # fake, as in tests/critics
IMAGE = Image.new("RGB", (16, 12), "white")


class RawServer:
    """A TCP server on 127.0.0.1 that reads each HTTP request, then behaves as `mode` says:

    - "trickle": sends a valid 200 reply one byte every `interval` seconds;
    - "silent": never sends a byte;
    - "fail": answers 500 at once (with `headers`).

    It records each connection's start and when the client hung up on it. A connection is dropped
    after `give_up` seconds, so that a judge without a working deadline fails these tests in bounded
    time instead of hanging them."""

    def __init__(self, mode: str, interval: float = 1.0, headers: dict | None = None, give_up: float = 10.0):
        self.mode, self.interval, self.headers, self.give_up = mode, interval, headers or {}, give_up
        self.connections: list[dict] = []
        self.requests = 0
        self.stop = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def close(self):
        self.stop.set()
        self.thread.join(2)
        self.sock.close()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            record = {"started": time.monotonic(), "hung_up": None}
            self.connections.append(record)
            threading.Thread(target=self._handle, args=(conn, record), daemon=True).start()

    def _recv(self, conn) -> bytes:
        """The next bytes from the client; b"" once it hung up (or the server stops)."""
        while not self.stop.is_set():
            try:
                return conn.recv(65536)
            except TimeoutError:
                continue
        return b""

    def _read_request(self, conn) -> bool:
        """Read one whole request (headers and Content-Length body); False if the client hung up."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self._recv(conn)
            if not chunk:
                return False
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        lengths = [
            line.split(b":", 1)[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        ]
        while len(body) < (int(lengths[0]) if lengths else 0):
            chunk = self._recv(conn)
            if not chunk:
                return False
            body += chunk
        self.requests += 1
        return True

    def _handle(self, conn, record):
        conn.settimeout(0.05)
        try:
            while self._read_request(conn):
                if self.mode == "fail":
                    conn.sendall(_http(500, {"error": {"message": "down"}}, self.headers))
                    continue
                if self.mode == "silent":
                    self._wait_for_hang_up(conn, self.give_up)
                    break
                reply = _http(200, _verdict(), {})
                ends = time.monotonic() + self.give_up
                for i in range(len(reply)):
                    if time.monotonic() > ends or self._wait_for_hang_up(conn, self.interval):
                        break
                    conn.sendall(reply[i : i + 1])
                break
        except OSError:
            pass
        finally:
            record["hung_up"] = record["hung_up"] or time.monotonic()
            conn.close()

    def _wait_for_hang_up(self, conn, seconds: float) -> bool:
        """Wait `seconds` or until the client hangs up (True) or the server stops."""
        ends = time.monotonic() + seconds
        while not self.stop.is_set() and time.monotonic() < ends:
            try:
                if conn.recv(1) == b"":
                    return True
            except TimeoutError:
                continue
            except OSError:
                return True
        return False


def _http(status: int, body: dict, headers: dict) -> bytes:
    data = json.dumps(body).encode()
    lines = [f"HTTP/1.1 {status} X", "Content-Type: application/json", f"Content-Length: {len(data)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


def _verdict() -> dict:
    content = json.dumps({"reason": "fine", "satisfied": True})
    return {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
    }


@pytest.fixture
def servers():
    made: list[RawServer] = []

    def make(mode: str, **kw) -> RawServer:
        made.append(RawServer(mode, **kw))
        return made[-1]

    yield make
    for s in made:
        s.close()


def _judge_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("judge-")]


def _timed(judge, prompt="a photo of a cat"):
    started = time.monotonic()
    critique = judge(IMAGE, prompt)
    return critique, time.monotonic() - started


def _wait_until(predicate, seconds: float) -> bool:
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


# --------------------------------------------------------------------------- the servers
def test_a_trickling_server_costs_the_deadline_and_no_more(servers):
    server = servers("trickle", interval=1.0)  # a byte a second: no per-read timeout ever fires
    judge = OpenAIJudge(base_url=server.url, api_key=KEY, timeout=5.0, max_retries=2, deadline=2.0)
    critique, seconds = _timed(judge)
    assert critique.score is None and critique.error == "deadline of 2 s exceeded"
    assert 1.9 <= seconds <= 3.0
    assert critique.critic == "gpt4o" and critique.details["model"] == "gpt-4o"
    # the abandoned request hangs up at the deadline too: no thread or socket left trickling
    assert _wait_until(lambda: server.connections and server.connections[0]["hung_up"], 1.5)
    assert server.connections[0]["hung_up"] - server.connections[0]["started"] <= 3.0
    assert _wait_until(lambda: not _judge_threads(), 3.0)


def test_a_silent_server_costs_the_deadline_not_retries_times_timeout(servers):
    server = servers("silent")
    judge = OpenAIJudge(base_url=server.url, api_key=KEY, timeout=60.0, max_retries=2, deadline=1.5)
    critique, seconds = _timed(judge)  # without the deadline: 3 x 60 s
    assert critique.score is None and critique.error == "deadline of 1.5 s exceeded"
    assert 1.4 <= seconds <= 2.5
    assert _wait_until(lambda: not _judge_threads(), 3.0)  # its retries fail at once, past the deadline
    assert len(server.connections) == 1 and server.requests == 1  # and never reach the server


def test_a_failing_server_is_retried_within_the_deadline(servers):
    server = servers("fail", headers={"retry-after-ms": "10"})  # the SDK honours it: fast retries
    judge = OpenAIJudge(base_url=server.url, api_key=KEY, timeout=5.0, max_retries=3, deadline=5.0)
    critique, seconds = _timed(judge)
    assert critique.score is None and critique.error.startswith("InternalServerError")
    assert server.requests == 4 and seconds < 2.0  # first try + 3 retries, well inside the deadline


def test_retries_that_outlast_the_deadline_are_cut_at_it(servers):
    server = servers("fail", headers={"retry-after": "30"})  # the SDK would sleep 30 s between tries
    judge = OpenAIJudge(base_url=server.url, api_key=KEY, timeout=5.0, max_retries=3, deadline=1.0)
    critique, seconds = _timed(judge)
    assert critique.error == "deadline of 1 s exceeded" and 0.9 <= seconds <= 2.0
    assert server.requests == 1


@pytest.mark.parametrize("kind", ["unified", "wise"])
def test_every_openai_compatible_judge_has_the_deadline(servers, kind):
    server = servers("silent")
    options = {"base_url": server.url, "api_key": KEY, "timeout": 30.0, "max_retries": 1, "deadline": 1.0}
    judge = UnifiedReward(**options) if kind == "unified" else WiseJudge(explanations={"p": "e"}, **options)
    critique, seconds = _timed(judge, "p")
    assert critique.critic == kind and critique.error == "deadline of 1 s exceeded" and seconds <= 2.0


def test_the_deadline_is_the_judges_option_and_none_turns_it_off():
    assert OpenAIJudge(api_key=KEY).deadline == 120.0 and UnifiedReward(api_key=KEY).deadline == 240.0
    assert WiseJudge(api_key=KEY, deadline=7).deadline == 7.0
    assert OpenAIJudge(api_key=KEY, deadline=None).deadline is None
    for bad in (0, -1, float("inf"), float("nan"), "10", True):
        with pytest.raises(ValueError, match="deadline must be a positive number of seconds"):
            OpenAIJudge(api_key=KEY, deadline=bad)
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        OpenAIJudge(api_key=KEY, timeout=0)
    with pytest.raises(ValueError, match="max_retries must be an integer >= 0"):
        UnifiedReward(api_key=KEY, max_retries=-1)


class Fixed:
    name = "fixed"

    def __call__(self, image, prompt, spec=None):
        return Critique(critic=self.name, score=0.4)


def test_the_run_goes_on_past_a_judge_that_blows_its_deadline(servers, mug, tmp_path):
    server = servers("trickle", interval=1.0)
    judge = OpenAIJudge(base_url=server.url, api_key=KEY, timeout=5.0, max_retries=1, deadline=1.0)
    milr = MILR(mug, Mixer([judge, Fixed()]), MILRConfig(steps=1, max_reasoning_tokens=8), out=tmp_path)
    started = time.monotonic()
    result = milr("a photo of a red cat")
    assert len(result.rounds) == 2 and result.stop_reason == "steps"
    assert time.monotonic() - started < 2 * 1.0 + 6.0  # a deadline per round, plus the tiny model
    for r in result.rounds:
        scores = {c.critic: c for c in r.critiques}
        assert scores["fixed"].score == 0.4 and scores["gpt4o"].score is None
        assert scores["gpt4o"].error == "deadline of 1 s exceeded"
        assert r.score == pytest.approx(0.4)
