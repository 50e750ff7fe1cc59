"""Vision-language judges behind any OpenAI-compatible server: `OpenAIJudge` (GPT-4o) and `UnifiedReward`.

Both send the image as a base64 PNG data URL through the real `openai` SDK, which owns per-request
timeouts and retries (429, 5xx, connection errors, with backoff). Every failure the judge can meet
(refusal, unparsable output, exhausted retries, timeout, no API key) becomes an abstention
(`score=None`) with the error recorded, never an exception, so that one flaky request cannot end a
run. The API key never enters a Critique or a log line: errors are redacted before they are kept.

The SDK's timeout bounds each read, not a call: a server trickling a byte every few seconds would
hold a call forever, and one that never answers costs (1 + max_retries) x timeout. So each call also
has a total wall-clock `deadline`, retries included: the request runs in a worker thread the caller
stops waiting for at the deadline (it then abstains with "deadline of N s exceeded"), and every
socket connect, read and write of the judge's own HTTP client is bounded by the time left, so the
abandoned request fails at once instead of lingering. `check()` is the cheap pre-flight: an API
key, and a `base_url` server that accepts a TCP connection.

Verdicts are cached per (image hash, prompt, model, mode, spec): MILR often re-decodes an image it
has already scored, and a judge call costs money. Abstentions are not cached (they may be transient).
"""

from __future__ import annotations

import base64
import contextvars
import hashlib
import importlib
import io
import json
import math
import os
import re
import socket
import threading
import time
from collections import OrderedDict
from typing import Literal
from urllib.parse import urlsplit

import openai
import structlog
from PIL import Image
from pydantic import BaseModel, Field

from milr import prompts
from milr.critics.base import CriticCheckError, Critique, PromptSpec, SpecItem
from milr.critics.spec_parse import english_plural

log = structlog.get_logger(__name__)

Mode = Literal["binary", "graded"]
CACHE_SIZE = 1024
DEFAULT_DEADLINE = 120.0  # seconds per call, retries included
CHECK_TIMEOUT = 3.0  # seconds `check()` waits for a TCP connection to `base_url`
OPENAI_HOST = "api.openai.com"
DEFAULT_MODEL = "gpt-4o"  # OpenAIJudge's model unless given or set in OPENAI_MODEL


# ---------------------------------------------------------------------------------------------- verdicts
class BinaryVerdict(BaseModel):
    """GPT-4o's answer in `binary` mode: the authors' pass/fail reward, with a reason."""

    reason: str = Field(description="One or two sentences on why the image does or does not fulfil the prompt.")
    satisfied: bool = Field(description="True only if the image clearly and completely fulfils the prompt.")


class Check(BaseModel):
    requirement: str = Field(description="One checkable requirement of the prompt.")
    satisfied: bool = Field(description="True only if the image clearly satisfies this requirement.")
    evidence: str = Field(description="A few words of visual evidence.")


class GradedVerdict(BaseModel):
    """GPT-4o's answer in `graded` mode: one check per requirement; the score is the fraction met."""

    checks: list[Check]
    summary: str = Field(description="One sentence summing up the checks.")


# ---------------------------------------------------------------------------------------------- helpers
def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="PNG")
    return buf.getvalue()


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _count_phrase(item: SpecItem, exact: bool) -> str:
    noun = item.cls if item.count == 1 else english_plural(item.cls)
    words = f"{item.color} {noun}" if item.color else noun
    if item.count == 1:
        number = "exactly one" if exact else ("an" if words[0] in "aeiou" else "a")
    else:
        number = f"{'exactly' if exact else 'at least'} {item.count}"
    return f"{number} {words}"


def spec_requirements(spec: PromptSpec) -> list[str]:
    """The spec as plain sentences, one checkable requirement each (counts, colours, relations)."""
    exact = {e.cls: e.count - 1 for e in spec.exclude}
    out = []
    for item in spec.include:
        out.append(f"The image shows {_count_phrase(item, exact.get(item.cls) == item.count)}.")
        if item.position is not None:
            relation, target = item.position
            words = {"left of": "to the left of", "right of": "to the right of"}.get(relation, relation)
            subject = f"The {item.cls} is" if item.count == 1 else f"Every {item.cls} is"
            out.append(f"{subject} {words} the {spec.include[target].cls}.")
    return out


class _Redactor:
    """Replaces the API key wherever it might surface (error bodies can echo request headers)."""

    def __init__(self, secret: str | None):
        self.secret = secret if secret and len(secret) >= 4 else None

    def __call__(self, text: str) -> str:
        return text.replace(self.secret, "***") if self.secret else text

    def data(self, value):
        """`value` (JSON-like: a verdict's details) with the key replaced in every string: a server
        that echoes the request puts it in the parsed verdict too, not only in the rationale."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self.data(k): self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value


# ---------------------------------------------------------------------------------------------- deadlines
class JudgeDeadlineExceeded(TimeoutError):
    """A judge call ran past its total deadline (retries included)."""

    def __init__(self, deadline: float):
        self.deadline = deadline
        super().__init__(f"deadline of {deadline:g} s exceeded")


# the monotonic time by which the current judge call must end; set in the call's worker thread
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("milr_judge_deadline", default=None)


def _time_left(timeout: float | None, timeout_error: type[Exception]) -> float | None:
    """`timeout` cut to what is left of the current call's deadline; `timeout_error` once it passed."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise timeout_error("the judge call's deadline has passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream:
    """A socket stream (httpcore's `NetworkStream` interface) whose every read and write waits at
    most until the call's deadline."""

    def __init__(self, stream, errors):
        self._stream, self._errors = stream, errors

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _time_left(timeout, self._errors.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _time_left(timeout, self._errors.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None):
        timeout = _time_left(timeout, self._errors.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, timeout), self._errors)

    def get_extra_info(self, info: str):
        return self._stream.get_extra_info(info)


class _DeadlineBackend:
    """httpcore's socket backend (its `NetworkBackend` interface) with connects, reads and writes
    bounded by the call's deadline."""

    def __init__(self, backend, errors):
        self._backend, self._errors = backend, errors

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        timeout = _time_left(timeout, self._errors.ConnectTimeout)
        stream = self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        return _DeadlineStream(stream, self._errors)

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        timeout = _time_left(timeout, self._errors.ConnectTimeout)
        return _DeadlineStream(self._backend.connect_unix_socket(path, timeout, socket_options), self._errors)

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def _sdk_http_modules():
    """(httpx, httpcore) as the installed `openai` SDK uses them: `httpx`/`httpcore`, or their
    `httpx2`/`httpcore2` successors in newer SDKs."""
    base = next(
        c for c in openai.DefaultHttpxClient.__mro__ if c.__name__ == "Client" and c is not openai.DefaultHttpxClient
    )
    httpx_name = base.__module__.split(".")[0]
    core_name = {"httpx": "httpcore", "httpx2": "httpcore2"}.get(httpx_name)
    return importlib.import_module(httpx_name), importlib.import_module(core_name) if core_name else None


def deadline_http_client():
    """The SDK's default httpx client, its sockets bounded by the current call's deadline.

    (httpx has no public hook for the socket layer: the backend of the transport's httpcore pool is
    wrapped. Should that ever fail, the client is the SDK's plain default, and the worker thread
    still bounds what the caller waits.)"""
    try:
        httpx, httpcore = _sdk_http_modules()
        transport = httpx.HTTPTransport(limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100))
        pool = transport._pool
        if not isinstance(pool, httpcore.ConnectionPool) or not hasattr(pool._network_backend, "connect_tcp"):
            raise TypeError(f"unexpected connection pool {type(pool).__name__}")
        pool._network_backend = _DeadlineBackend(pool._network_backend, httpcore)
    except Exception as err:  # an SDK or httpx we do not know: no socket bound, the thread still holds
        log.warning("judge_deadline_sockets_unbounded", error=f"{type(err).__name__}: {err}")
        return openai.DefaultHttpxClient()
    return openai.DefaultHttpxClient(transport=transport)


def _positive(name: str, value: float | None, *, none_ok: bool = False) -> float | None:
    if value is None and none_ok:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number of seconds{' or None' if none_ok else ''}, got {value!r}")
    return float(value)


# ---------------------------------------------------------------------------------------------- the machinery
class ChatJudge:
    """Shared machinery of OpenAI-compatible judges: client, cache, deadline, abstentions, redaction, check.

    Options every judge takes (`OpenAIJudge`, `UnifiedReward`, `WiseJudge`): `model`, `base_url`,
    `api_key`, `timeout` (seconds per request, the SDK's), `max_retries` (the SDK's), `deadline`
    (seconds per call, retries included; None: no total limit), `temperature`, `max_tokens`,
    `client`, `name`.

    Subclasses implement `_ask(client, image_url, prompt, spec) -> (score, rationale, details)` and
    raise to abstain (the SDK's `openai.OpenAIError`s, pydantic's `ValidationError` on a malformed
    verdict, `ValueError` for a refusal or an unreadable reply).
    """

    name = "judge"
    mode = "default"
    # OpenAI's newer models reject `max_tokens`; vLLM-era servers may not know `max_completion_tokens`
    token_limit = "max_completion_tokens"
    # a judge only some server of your own can serve (no point in api.openai.com): check() wants a base_url
    needs_base_url = False

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        deadline: float | None = DEFAULT_DEADLINE,
        temperature: float | None = 0.0,
        max_tokens: int | None = 1024,
        client: openai.OpenAI | None = None,
        name: str | None = None,
    ):
        self.model = model
        self.base_url = base_url
        self._api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        self.timeout, self.max_retries = _positive("timeout", timeout), max_retries
        self.deadline = _positive("deadline", deadline, none_ok=True)
        self.temperature, self.max_tokens = temperature, max_tokens
        self.name = name or self.name
        self._redact = _Redactor(self._api_key)
        self._given_client = client
        self._client: openai.OpenAI | None = None
        self._cache: OrderedDict[tuple, Critique] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # no key in reprs (tracebacks and debuggers print them)
        return (
            f"{type(self).__name__}(name={self.name!r}, model={self.model!r}, mode={self.mode!r}, "
            f"deadline={self.deadline!r})"
        )

    @property
    def client(self) -> openai.OpenAI:
        """The SDK client, built on first use with our timeout and retries (an injected one too)."""
        with self._lock:
            if self._client is None:
                if self._given_client is not None:
                    base = self._given_client
                else:
                    base = openai.OpenAI(
                        api_key=self._api_key, base_url=self.base_url, http_client=deadline_http_client()
                    )
                self._client = base.with_options(timeout=self.timeout, max_retries=self.max_retries)
            return self._client

    def __call__(self, image: Image.Image, prompt: str, spec: PromptSpec | None = None) -> Critique:
        started = time.perf_counter()
        png = png_bytes(image)
        key = (hashlib.sha256(png).hexdigest(), prompt, self.model, self.mode, _spec_key(spec))
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
        if hit is not None:
            return hit.model_copy(
                update={"seconds": time.perf_counter() - started, "details": {**hit.details, "cached": True}}
            )
        try:
            score, rationale, details = self._ask_in_time(data_url(png), prompt, spec)
        except JudgeDeadlineExceeded as err:
            return self._abstain(err, started, error=str(err))
        except Exception as err:  # whatever the server or the SDK throws, a judge abstains and the run goes on
            return self._abstain(err, started)
        verdict = Critique(
            critic=self.name,
            score=score,
            rationale=self._redact(rationale),
            details=self._redact.data({"model": self.model, "mode": self.mode, "cached": False, **details}),
            seconds=time.perf_counter() - started,
        )
        with self._lock:
            self._cache[key] = verdict
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        log.info(
            "judge_scored", critic=self.name, model=self.model, mode=self.mode, score=score, seconds=verdict.seconds
        )
        return verdict

    def _ask_in_time(self, image_url: str, prompt: str, spec: PromptSpec | None):
        """`_ask` within the deadline: in a worker thread (with the caller's contextvars) that the
        caller waits for until the deadline, then abandons (`JudgeDeadlineExceeded`); the worker's
        sockets fail from then on, so it ends soon after."""
        client = self.client
        if self.deadline is None:
            return self._ask(client, image_url, prompt, spec)
        ends = time.monotonic() + self.deadline
        done, box = threading.Event(), {}

        def work():
            _DEADLINE.set(ends)
            try:
                box["value"] = self._ask(client, image_url, prompt, spec)
            except BaseException as err:  # handed to the caller, who decides
                box["error"] = err
            finally:
                done.set()

        worker = threading.Thread(
            target=contextvars.copy_context().run, args=(work,), name=f"judge-{self.name}", daemon=True
        )
        worker.start()
        if not done.wait(self.deadline):
            raise JudgeDeadlineExceeded(self.deadline)
        if "error" in box:
            if time.monotonic() >= ends:  # the last attempt failed because the deadline cut it
                raise JudgeDeadlineExceeded(self.deadline) from box["error"]
            raise box["error"]
        return box["value"]

    def check(self) -> None:
        """Cheap pre-flight (no request, no cost): an API key, and for a server of your own
        (`base_url`, or `OPENAI_BASE_URL`) a TCP connection within `CHECK_TIMEOUT` seconds.
        `CriticCheckError` naming the judge and the fix."""
        if self._given_client is None and not self._api_key:
            raise CriticCheckError(self.name, "OPENAI_API_KEY is not set; export it or pass api_key=")
        url = self.base_url or (
            str(self._given_client.base_url) if self._given_client is not None else os.environ.get("OPENAI_BASE_URL")
        )
        if not url:
            if self.needs_base_url:
                raise CriticCheckError(
                    self.name,
                    f"no base_url: {self.model} is served by a server of your own (vLLM, SGLang); "
                    "pass base_url='http://host:8000/v1' or set OPENAI_BASE_URL",
                )
            return
        _check_reachable(self.name, url, CHECK_TIMEOUT)

    def _abstain(self, err: Exception, started: float, error: str | None = None) -> Critique:
        error = self._redact(error if error is not None else f"{type(err).__name__}: {_short(err)}")
        log.warning("judge_abstained", critic=self.name, model=self.model, error=error)
        return Critique(
            critic=self.name,
            score=None,
            error=error,
            details={"model": self.model, "mode": self.mode},
            seconds=time.perf_counter() - started,
        )

    def _ask(self, client: openai.OpenAI, image_url: str, prompt: str, spec: PromptSpec | None):
        raise NotImplementedError

    def _messages(self, image_url: str, text: str, system: str | None) -> list[dict]:
        user = [{"type": "image_url", "image_url": {"url": image_url}}, {"type": "text", "text": text}]
        head = [{"role": "system", "content": system}] if system else []
        return [*head, {"role": "user", "content": user}]

    def _sampling(self) -> dict:
        out = {} if self.temperature is None else {"temperature": self.temperature}
        if self.max_tokens:
            out[self.token_limit] = self.max_tokens
        return out


def _check_reachable(critic: str, url: str, timeout: float) -> None:
    """`CriticCheckError` unless `url`'s host accepts a TCP connection within `timeout` seconds
    (only scheme, host and port are shown: a URL may carry credentials)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CriticCheckError(critic, f"base_url must be an http(s) URL such as http://host:8000/v1, got {url!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise CriticCheckError(critic, f"base_url has an invalid port: {url!r}") from None
    shown = f"{parts.scheme}://{parts.hostname}:{port}"
    if parts.hostname == OPENAI_HOST:
        return  # OpenAI's own API: reachable in general, and checked by the first call
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            pass
    except OSError as err:
        raise CriticCheckError(
            critic,
            f"cannot reach the server at {shown} ({type(err).__name__}: {err}); "
            "start it, or pass base_url= of a running one",
        ) from err


def _spec_key(spec: PromptSpec | None) -> str:
    return json.dumps(spec.to_geneval(), sort_keys=True) if spec is not None else ""


def _short(err: Exception, limit: int = 500) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[:limit] + "..."


# ---------------------------------------------------------------------------------------------- GPT-4o
class OpenAIJudge(ChatJudge):
    """GPT-4o (or any OpenAI-compatible VLM with structured output) as an image–prompt judge.

    Args:
        model (`str`, *optional*): defaults to the `OPENAI_MODEL` environment variable, else `"gpt-4o"`.
        mode (`str`, *optional*, defaults to `"binary"`): `"binary"` scores 1 when the image fulfils
            the prompt and 0 otherwise (the authors' GPT-4o reward); `"graded"` asks for one check per
            requirement and scores the fraction satisfied (with a spec, the requirements are given).
        base_url (`str`, *optional*): another OpenAI-compatible server, e.g. vLLM's `http://host:8000/v1`.
        api_key (`str`, *optional*): defaults to the `OPENAI_API_KEY` environment variable.
        timeout (`float`, *optional*, defaults to 60): seconds per request (each read), enforced by the SDK.
        max_retries (`int`, *optional*, defaults to 2): SDK retries on 408/409/429/5xx/connection errors.
        deadline (`float`, *optional*, defaults to 120): seconds per call, retries included; past it
            the judge abstains with "deadline of N s exceeded". None: no total limit.
        temperature (`float`, *optional*, defaults to 0): None leaves it to the server (reasoning models
            accept only their default).
        max_tokens (`int`, *optional*, defaults to 1024): sent as `max_completion_tokens`; None sends none.
        client (`openai.OpenAI`, *optional*): an injected client; timeout, retries and the deadline
            still apply (but its sockets are its own: an abandoned call ends by its own timeouts).
        prompt_files: names in `milr/prompts/` of the system, binary and graded prompts.
    """

    name = "gpt4o"

    def __init__(
        self,
        model: str | None = None,
        mode: Mode = "binary",
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        deadline: float | None = DEFAULT_DEADLINE,
        temperature: float | None = 0.0,
        max_tokens: int | None = 1024,
        client: openai.OpenAI | None = None,
        name: str | None = None,
        system_prompt: str = "judge_system",
        binary_prompt: str = "judge_binary",
        graded_prompt: str = "judge_graded",
    ):
        if mode not in ("binary", "graded"):
            raise ValueError(f"mode must be 'binary' or 'graded', got {mode!r}")
        super().__init__(
            model=model or os.environ.get("OPENAI_MODEL") or DEFAULT_MODEL,
            base_url=base_url,
            api_key=api_key,
            timeout=timeout,
            max_retries=max_retries,
            deadline=deadline,
            temperature=temperature,
            max_tokens=max_tokens,
            client=client,
            name=name,
        )
        self.mode = mode
        self.system = prompts.load(system_prompt)
        self.template = prompts.load(binary_prompt if mode == "binary" else graded_prompt)

    def request_text(self, prompt: str, spec: PromptSpec | None) -> str:
        """The user message's text for this prompt (and, in graded mode, the spec's requirements)."""
        listed = ""
        if self.mode == "graded" and spec is not None:
            lines = "\n".join(f"{i}. {r}" for i, r in enumerate(spec_requirements(spec), 1))
            listed = f" Use exactly these requirements, in this order:\n{lines}\n"
        return self.template.replace("{requirements}", listed).replace("{prompt}", prompt)

    def _ask(self, client, image_url, prompt, spec):
        fmt = BinaryVerdict if self.mode == "binary" else GradedVerdict
        completion = client.chat.completions.parse(
            model=self.model,
            messages=self._messages(image_url, self.request_text(prompt, spec), self.system),
            response_format=fmt,
            **self._sampling(),
        )
        if not completion.choices:
            raise ValueError("the reply has no choices")
        message = completion.choices[0].message
        if message.refusal:
            raise ValueError(f"the model refused: {message.refusal}")
        if message.parsed is None:
            raise ValueError("the reply holds no verdict")
        usage = completion.usage.model_dump() if completion.usage else None
        if self.mode == "binary":
            v: BinaryVerdict = message.parsed
            return float(v.satisfied), v.reason, {"verdict": v.model_dump(), "usage": usage}
        return self._graded(message.parsed, spec, usage)

    def _graded(self, v: GradedVerdict, spec: PromptSpec | None, usage: dict | None):
        if not v.checks:
            raise ValueError("the reply lists no requirement checks")
        # a model that drops requirements it was given must not score higher for it
        expected = len(spec_requirements(spec)) if spec is not None else 0
        denominator = max(len(v.checks), expected)
        score = sum(c.satisfied for c in v.checks) / denominator
        lines = [f"[{'x' if c.satisfied else ' '}] {c.requirement}: {c.evidence}" for c in v.checks]
        return score, "\n".join([v.summary, *lines]), {"verdict": v.model_dump(), "usage": usage}


# ---------------------------------------------------------------------------------------------- UnifiedReward
FINAL_SCORE = re.compile(r"Final Score\s*[:：]\s*\**\s*([-+]?\d+(?:\.\d+)?)", re.IGNORECASE)


def final_score(text: str) -> float:
    """The first number after "Final Score:" (UnifiedReward's 1–5 scale), `ValueError` if none."""
    match = FINAL_SCORE.search(text or "")
    if match is None:
        raise ValueError("no 'Final Score: <number>' in the reply")
    return float(match.group(1))


def unified_to_unit(raw: float) -> float:
    """UnifiedReward's 1–5 to [0, 1] as (x − 1) / 4, clipped like the authors' MixedReward."""
    return min(1.0, max(0.0, (raw - 1.0) / 4.0))


class UnifiedReward(ChatJudge):
    """UnifiedReward-qwen-7b (pointwise) served behind any OpenAI-compatible server (vLLM, SGLang).

    Plain text completion (such servers may not support structured output); the reply lists the
    caption's elements and ends with "Final Score: x", x in 1–5, giving the score (x − 1) / 4.
    `base_url` is usually a local server, e.g. `http://localhost:8000/v1`; `api_key` defaults to
    `OPENAI_API_KEY`, else "EMPTY" (local servers ignore it). `deadline` defaults to 240 s (its
    per-request `timeout` is 120 s). Other arguments as `OpenAIJudge`.
    """

    name = "unified"
    mode = "pointwise"
    token_limit = "max_tokens"
    needs_base_url = True

    def __init__(
        self,
        model: str = "CodeGoat24/UnifiedReward-qwen-7b",
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 2,
        deadline: float | None = 2 * DEFAULT_DEADLINE,
        temperature: float | None = 0.0,
        max_tokens: int | None = 512,
        client: openai.OpenAI | None = None,
        name: str | None = None,
        prompt_file: str = "unified_pointwise",
    ):
        super().__init__(
            model=model,
            base_url=base_url,
            api_key=api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "EMPTY"),
            timeout=timeout,
            max_retries=max_retries,
            deadline=deadline,
            temperature=temperature,
            max_tokens=max_tokens,
            client=client,
            name=name,
        )
        self.template = prompts.load(prompt_file)

    def _ask(self, client, image_url, prompt, spec):
        completion = client.chat.completions.create(
            model=self.model,
            messages=self._messages(image_url, self.template.replace("{prompt}", prompt), None),
            **self._sampling(),
        )
        if not completion.choices:
            raise ValueError("the reply has no choices")
        text = completion.choices[0].message.content or ""
        raw = final_score(text)
        return unified_to_unit(raw), text.strip(), {"raw_score": raw}
