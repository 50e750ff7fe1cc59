"""OpenAIJudge and UnifiedReward with the real `openai` client against a loopback server we start.

The server implements `/v1/chat/completions` from a script of replies (status, body, headers,
delay), and records what each request carried.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest
import structlog
from PIL import Image

from milr.critics import PromptSpec
from milr.critics.openai_judge import OpenAIJudge, UnifiedReward, final_score, spec_requirements, unified_to_unit
from milr.critics.wise import WiseJudge, parse_wise_scores, wiscore

KEY = "sk-test-0123456789abcdefSECRET"
FAST_RETRY = {"retry-after-ms": "10"}  # the SDK honours it, so retries take milliseconds


def completion(content=None, refusal=None, finish_reason="stop"):
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": refusal},
                "finish_reason": finish_reason,
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def verdict(satisfied, reason="because"):
    return completion(json.dumps({"reason": reason, "satisfied": satisfied}))


class FakeServer:
    """Replies in order from `script` (the last one repeats); entries are (status, body, headers, delay)."""

    def __init__(self):
        self.script: list[tuple] = []
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                headers = {k.lower(): v for k, v in self.headers.items()}
                server.requests.append({"path": self.path, "headers": headers, "body": body})
                i = min(len(server.requests), len(server.script)) - 1
                status, reply, headers, delay = server.script[i]
                time.sleep(delay)
                if callable(reply):
                    reply = reply(self)
                data = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def reply(self, body, status=200, headers=None, delay=0.0):
        self.script.append((status, body, headers or {}, delay))
        return self


@pytest.fixture
def server():
    s = FakeServer()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


@pytest.fixture
def image():
    img = Image.new("RGB", (16, 12), "white")
    img.putpixel((3, 4), (255, 0, 0))
    return img


def judge(server, **kw):
    kw = {"base_url": server.url, "api_key": KEY, "max_retries": 2, "timeout": 5.0, **kw}
    return OpenAIJudge(**kw)


def _image_of(request) -> Image.Image:
    user = request["body"]["messages"][-1]["content"]
    url = next(part["image_url"]["url"] for part in user if part["type"] == "image_url")
    assert url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


def _text_of(request) -> str:
    user = request["body"]["messages"][-1]["content"]
    return next(part["text"] for part in user if part["type"] == "text")


# --------------------------------------------------------------------------- OpenAIJudge
def test_pass_carries_image_prompt_and_schema(server, image):
    server.reply(verdict(True, "a red dot on white"))
    critique = judge(server)(image, "a photo of a red dot")
    assert critique.score == 1.0 and critique.critic == "gpt4o" and critique.error is None
    assert critique.rationale == "a red dot on white"
    (req,) = server.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["authorization"] == f"Bearer {KEY}"
    body = req["body"]
    assert body["model"] == "gpt-4o" and body["temperature"] == 0.0 and body["max_completion_tokens"] == 1024
    assert body["response_format"]["type"] == "json_schema"
    assert set(body["response_format"]["json_schema"]["schema"]["properties"]) == {"reason", "satisfied"}
    assert body["messages"][0]["role"] == "system"
    assert '"a photo of a red dot"' in _text_of(req)
    sent = _image_of(req)
    assert sent.size == image.size and sent.convert("RGB").tobytes() == image.tobytes()


def test_reasoning_models_get_no_sampling_settings(server, image):
    server.reply(verdict(True))
    judge(server, model="o4-mini", temperature=None, max_tokens=None)(image, "p")
    body = server.requests[0]["body"]
    assert body["model"] == "o4-mini" and "temperature" not in body and "max_completion_tokens" not in body


def test_fail(server, image):
    server.reply(verdict(False, "no dog"))
    critique = judge(server)(image, "a photo of a dog")
    assert critique.score == 0.0 and critique.rationale == "no dog"
    assert critique.details["verdict"] == {"reason": "no dog", "satisfied": False}


def test_429_then_success(server, image):
    server.reply({"error": {"message": "slow down"}}, status=429, headers=FAST_RETRY).reply(verdict(True))
    critique = judge(server)(image, "p")
    assert critique.score == 1.0 and len(server.requests) == 2


def echo_auth(handler):
    # a careless server that echoes the credentials in its error: the key must still not leak
    return {"error": {"message": f"boom for {handler.headers['Authorization']}"}}


def test_500_until_retries_run_out(server, image):
    server.reply(echo_auth, status=500, headers=FAST_RETRY)
    with structlog.testing.capture_logs() as logs:
        critique = judge(server, max_retries=2)(image, "p")
    assert critique.score is None and critique.abstained
    assert critique.error.startswith("InternalServerError")
    assert len(server.requests) == 3  # first try + 2 retries
    assert "***" in critique.error
    _assert_no_key(critique, logs)
    assert any(e["event"] == "judge_abstained" for e in logs)


def test_malformed_verdict_abstains(server, image):
    server.reply(completion("{not json"))
    critique = judge(server)(image, "p")
    assert critique.score is None and "ValidationError" in critique.error


def test_malformed_body_abstains(server, image):
    server.reply(b"<html>gateway</html>")
    critique = judge(server)(image, "p")
    assert critique.score is None and critique.error


def test_refusal_abstains(server, image):
    server.reply(completion(None, refusal="I can't help with that."))
    critique = judge(server)(image, "p")
    assert critique.score is None and "refused: I can't help with that." in critique.error


def test_slow_reply_past_timeout_abstains(server, image):
    server.reply(verdict(True), delay=1.5)
    start = time.perf_counter()
    critique = judge(server, timeout=0.3, max_retries=0)(image, "p")
    assert time.perf_counter() - start < 1.4
    assert critique.score is None and critique.error.startswith("APITimeoutError")


def test_missing_api_key_abstains_clearly(server, image, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    critique = OpenAIJudge(base_url=server.url)(image, "p")
    assert critique.score is None and "api_key" in critique.error
    assert not server.requests


def test_graded_with_spec_lists_requirements(server, image):
    spec = PromptSpec.parse("a photo of two red cars left of a dog")
    checks = [
        {"requirement": "one dog", "satisfied": True, "evidence": "a dog"},
        {"requirement": "exactly 2 red cars", "satisfied": False, "evidence": "one car"},
        {"requirement": "cars left of the dog", "satisfied": True, "evidence": "left"},
    ]
    server.reply(completion(json.dumps({"checks": checks, "summary": "close"})))
    critique = judge(server, mode="graded")(image, spec.prompt, spec)
    assert critique.score == pytest.approx(2 / 3)
    assert critique.rationale.splitlines()[0] == "close" and "[ ] exactly 2 red cars: one car" in critique.rationale
    text = _text_of(server.requests[0])
    for i, requirement in enumerate(spec_requirements(spec), 1):
        assert f"{i}. {requirement}" in text
    schema = server.requests[0]["body"]["response_format"]["json_schema"]["schema"]
    assert set(schema["properties"]) == {"checks", "summary"}


def test_graded_dropping_requirements_does_not_help(server, image):
    spec = PromptSpec.parse("a photo of a cat and a dog")
    one = [{"requirement": "a cat", "satisfied": True, "evidence": "cat"}]
    server.reply(completion(json.dumps({"checks": one, "summary": "s"})))
    assert judge(server, mode="graded")(image, spec.prompt, spec).score == pytest.approx(0.5)


def test_graded_without_checks_abstains(server, image):
    server.reply(completion(json.dumps({"checks": [], "summary": "s"})))
    assert judge(server, mode="graded")(image, "p").score is None


def test_spec_requirements_read_naturally():
    spec = PromptSpec.parse("a photo of two red cars left of an apple")
    assert spec_requirements(spec) == [
        "The image shows an apple.",
        "The image shows exactly 2 red cars.",
        "Every car is to the left of the apple.",
    ]


def test_cache_per_image_prompt_model_mode(server, image):
    server.reply(verdict(True))
    j = judge(server)
    first = j(image, "p")
    second = j(image, "p")
    assert len(server.requests) == 1 and second.score == first.score
    assert second.details["cached"] and not first.details["cached"]
    j(image, "another prompt")
    other = image.copy()
    other.putpixel((0, 0), (0, 0, 255))
    j(other, "p")
    assert len(server.requests) == 3
    judge(server, client=None)(image, "p")  # a fresh judge has its own cache
    assert len(server.requests) == 4


def test_abstentions_are_not_cached(server, image):
    server.reply({"error": {"message": "down"}}, status=503, headers=FAST_RETRY).reply(verdict(True))
    j = judge(server, max_retries=0)
    assert j(image, "p").score is None
    assert j(image, "p").score == 1.0


def test_injected_client_gets_our_timeout_and_retries(server, image):
    client = openai.OpenAI(api_key=KEY, base_url=server.url, max_retries=5)
    server.reply({"error": {"message": "down"}}, status=500, headers=FAST_RETRY)
    critique = OpenAIJudge(client=client, max_retries=1)(image, "p")
    assert critique.score is None and len(server.requests) == 2


def test_key_never_in_critique_or_logs(server, image):
    server.reply(echo_auth, status=401)
    j = judge(server, max_retries=0)
    with structlog.testing.capture_logs() as logs:
        bad = j(image, "p")
        server.script[:] = [(200, verdict(True), {}, 0.0)]
        good = j(image, "q")
    assert bad.score is None and good.score == 1.0
    _assert_no_key(bad, logs)
    _assert_no_key(good, logs)
    assert KEY not in repr(j)


def _assert_no_key(critique, logs):
    assert KEY not in critique.model_dump_json()
    assert KEY not in json.dumps(logs, default=str)


def test_invalid_mode():
    with pytest.raises(ValueError, match="mode"):
        OpenAIJudge(mode="fuzzy", api_key=KEY)


# --------------------------------------------------------------------------- UnifiedReward
def test_unified_reward_scores_final_score(server, image):
    reply = "cat (object): 1\nred (attribute): 0\nFinal Score: 4"
    server.reply(completion(reply))
    critique = UnifiedReward(base_url=server.url, api_key=KEY)(image, "a photo of a red cat")
    assert critique.critic == "unified" and critique.score == pytest.approx(0.75)
    assert critique.details["raw_score"] == 4.0 and "red (attribute): 0" in critique.rationale
    body = server.requests[0]["body"]
    assert "response_format" not in body and body["model"] == "CodeGoat24/UnifiedReward-qwen-7b"
    assert body["max_tokens"] == 512 and "max_completion_tokens" not in body
    assert _text_of(server.requests[0]).endswith("Text Caption: [a photo of a red cat]")
    assert _image_of(server.requests[0]).size == image.size


def test_unified_reward_without_score_abstains(server, image):
    server.reply(completion("I think it is nice."))
    critique = UnifiedReward(base_url=server.url, api_key=KEY)(image, "p")
    assert critique.score is None and "Final Score" in critique.error


def test_final_score_parsing():
    assert final_score("blah\nFinal Score: 3.5\nFinal Score: 1") == 3.5
    assert final_score("**Final Score:** 5") == 5.0
    assert final_score("final score：2") == 2.0  # full-width colon
    with pytest.raises(ValueError):
        final_score("Score: 4")
    assert [unified_to_unit(x) for x in (1, 3, 5, 7, 0)] == [0.0, 0.5, 1.0, 1.0, 0.0]


# --------------------------------------------------------------------------- WISE judge
def test_wise_judge_scores_wiscore_with_the_explanation(server, image):
    server.reply(completion("**Consistency**: 2\nRealism：1\nAesthetic Quality: 0\nConsistency: 0"))
    explanations = {"Traditional food of the Mid-Autumn Festival": "mooncakes"}
    judge = WiseJudge(base_url=server.url, api_key=KEY, explanations=explanations)
    critique = judge(image, "Traditional food of the Mid-Autumn Festival")
    assert critique.critic == "wise" and critique.score == pytest.approx((0.7 * 2 + 0.2 * 1) / 2)
    assert critique.details["scores"] == {"consistency": 2, "realism": 1, "aesthetic quality": 0}  # first wins
    body = server.requests[0]["body"]
    assert body["model"] == "gpt-4o-2024-05-13" and body["temperature"] == 0.0
    assert body["max_completion_tokens"] == 2000 and body["messages"][0]["role"] == "system"
    text = _text_of(server.requests[0])
    assert "PROMPT: Traditional food of the Mid-Autumn Festival" in text and "EXPLANATION: mooncakes" in text
    assert _image_of(server.requests[0]).size == image.size


def test_wise_judge_abstains_without_explanation_or_scores(server, image):
    server.reply(completion("Consistency: 2\nRealism: 2"))
    judge = WiseJudge(base_url=server.url, api_key=KEY, explanations={"p": "e"})
    missing = judge(image, "p")
    assert missing.score is None and "aesthetic quality" in missing.error
    unknown = judge(image, "another prompt")
    assert unknown.score is None and "no WISE explanation" in unknown.error
    assert len(server.requests) == 1  # no request without an explanation


def test_wiscore_and_parse():
    assert wiscore(2, 2, 2) == pytest.approx(1.0) and wiscore(1, 0, 2) == pytest.approx(0.45)
    with pytest.raises(ValueError, match="consistency must be 0, 1 or 2"):
        wiscore(3, 0, 0)
    assert parse_wise_scores("consistency 1 realism: 0 **Aesthetic Quality**：2") == {
        "consistency": 1,
        "realism": 0,
        "aesthetic quality": 2,
    }
