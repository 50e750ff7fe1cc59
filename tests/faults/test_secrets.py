"""Secrets never reach a file or a log line: env-var values and key-shaped strings are redacted in
traces, checkpoints (checkpoints.sqlite), folder names and logs, and a warning says so.

Every secret here is fake and made up per test (random letters), never a real key.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import random
import secrets
import string
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import structlog
from PIL import Image

from milr.config import ConfigError, MILRConfig
from milr.critics import Mixer, OpenAIJudge, PromptSpec
from milr.critics.base import Critique
from milr.log import configure_logging
from milr.orchestrator import MILR
from milr.orchestrator.serde import RedactingSerializer, memory_saver, sqlite_saver
from milr.shapes import ShapesOracle
from milr.shapes.world import COLOR_NAMES, SHAPES
from milr.traces.redaction import REDACTED, redact, redact_data, redact_object


def fake(prefix: str, n: int = 40) -> str:
    """A made-up, random-looking credential with a digit in it (never a real one)."""
    body = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(n - 1))
    return f"{prefix}{body}7"


@pytest.fixture
def env_key(monkeypatch):
    """A fake OPENAI_API_KEY exported for the test: not key-shaped, so only the env rule catches it."""
    value = "zz" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(22)) + "Qq"
    monkeypatch.setenv("OPENAI_API_KEY", value)
    return value


# --------------------------------------------------------------------------- redact
@pytest.mark.parametrize(
    "secret",
    [
        fake("sk-"),
        fake("sk-proj-", 120),
        fake("sk-ant-api03-", 90),
        fake("hf_", 34),
        fake("ghp_", 36),
        fake("github_pat_", 60),
        "AKIA" + "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(15)) + "7",
        fake("AIza", 35),
        fake("xoxb-", 30),
    ],
    ids=["sk", "sk-proj", "sk-ant", "hf", "ghp", "github_pat", "AKIA", "AIza", "xoxb"],  # the same in every process
)
def test_key_shaped_strings_are_redacted_wherever_they_stand(secret):
    texts = (
        secret,
        f"my key is {secret}.",
        f"KEY={secret}",
        f'{{"k": "{secret}"}}',
        f"(see {secret})",
        f"key_{secret}",
    )
    for text in texts:
        out = redact(text, [])
        assert secret not in out and REDACTED in out, text
    if secret[:4].islower():  # a folder-name slug of a prompt not redacted first
        assert secret.lower() not in redact(f"a-photo-of-{secret.lower()}", []).lower()


def test_tokens_after_bearer_and_assignments_are_redacted_keeping_the_keyword():
    token = fake("", 32)
    assert redact(f"Authorization: Bearer {token}", []) == f"Authorization: Bearer {REDACTED}"
    assert redact(f"api_key='{token}' ok", []) == f"api_key='{REDACTED}' ok"
    assert redact(f"OPENAI_API_KEY={token}", []) == f"OPENAI_API_KEY={REDACTED}"
    assert redact(f"password: {token}", []) == f"password: {REDACTED}"


@pytest.mark.parametrize(
    "text",
    [
        "a photo of a red cat left of a dog",
        "use sk-learn-compatible-estimators-for-this",  # a word, not a key: no digit, one case
        "the bearer of good news came today",
        "max_tokens=1024, token counts, secret garden",
        "20261128-201500-a-red-cat-3f9a1c",
        "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "ask-me-anything hf_hub_download task-sk-abc",
    ],
)
def test_prose_ids_and_hashes_are_untouched(text):
    assert redact(text, []) == text


def test_base64_image_data_is_never_touched():
    rng = random.Random(0)
    for _ in range(200):
        blob = base64.b64encode(rng.randbytes(3000)).decode()
        for text in (blob, "data:image/png;base64," + blob, f'<img src="data:image/png;base64,{blob}">'):
            assert redact(text, []) == text
    png = Image.new("RGB", (64, 64), "red")
    buf = io.BytesIO()
    png.save(buf, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    assert redact(url, []) == url


def test_env_secrets_are_redacted_in_any_case_and_a_warning_says_so_without_the_secret(env_key):
    with structlog.testing.capture_logs() as logs:
        out = redact(f"prompt {env_key} and {env_key.lower()} and {env_key.upper()}")
        again = redact(f"once more {env_key}")
    assert env_key.lower() not in out.lower() and out.count(REDACTED) == 3 and REDACTED in again
    warned = [e for e in logs if e["event"] == "secret_redacted"]
    assert len(warned) == 1  # once per secret, not once per string
    assert warned[0]["kind"] == "env OPENAI_API_KEY" and warned[0]["log_level"] == "warning"
    assert env_key.lower() not in json.dumps(logs, default=str).lower()


def test_a_string_redacted_before_its_secret_was_exported_is_redacted_after(monkeypatch):
    """`redact` remembers its answers (checkpoints redact the same strings again and again): the
    secrets in force are part of what it remembers."""
    value = "zz" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(22)) + "Qq"
    text = f"a cat named {value}"
    state = {"runs": {"r": {"prompt": text}}}
    assert redact(text) == text and redact_object(state) == state  # nothing secret yet
    monkeypatch.setenv("OPENAI_API_KEY", value)
    assert redact(text) == f"a cat named {REDACTED}"
    assert redact_object(state) == {"runs": {"r": {"prompt": f"a cat named {REDACTED}"}}}
    monkeypatch.delenv("OPENAI_API_KEY")
    assert redact(text) == text  # and forgotten again


def test_a_remembered_redaction_still_warns(monkeypatch):
    """The log processor redacts silently first; a later redaction of the same string, answered from
    memory, must still say that a secret was replaced."""
    import milr.traces.redaction as redaction

    key = fake("sk-")
    text = f"prompt {key}"
    assert redact(text, [], warn=False) == f"prompt {REDACTED}"
    monkeypatch.setattr(redaction, "_warned", set())
    with structlog.testing.capture_logs() as logs:
        assert redact(text, []) == f"prompt {REDACTED}"
    assert [e["kind"] for e in logs if e["event"] == "secret_redacted"] == ["key-shaped sk-key"]


def test_short_switches_in_secret_looking_variables_are_not_secrets(monkeypatch):
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    assert redact("false positives are false") == "false positives are false"


def test_redact_data_and_redact_object_reach_every_string(env_key):
    key = fake("sk-")
    data = {"prompt": f"cat {key}", env_key: [1, 2.5, None, (f"x {env_key}",)], "n": 3}
    flat = json.dumps(redact_data(data))
    assert key not in flat and env_key not in flat and "2.5" in flat
    kept = redact_object({"t": (key, 1), "s": {key}, "l": [key], "m": Critique(critic="c", score=0.5, rationale=key)})
    assert kept["t"] == (REDACTED, 1) and kept["s"] == {REDACTED} and kept["l"] == [REDACTED]
    assert isinstance(kept["m"], Critique) and kept["m"].rationale == REDACTED and kept["m"].score == 0.5


# --------------------------------------------------------------------------- checkpoints
def test_the_serializer_redacts_before_storing_and_loads_what_it_stored(env_key):
    key = fake("sk-proj-", 100)
    state = {"queue": [{"prompt": f"a cat {key} {env_key}", "seed": 3}], "ids": [1, 2, 3], "score": 0.25}
    serde = RedactingSerializer()
    kind, blob = serde.dumps_typed(state)
    assert key.encode() not in blob and env_key.encode() not in blob and env_key.lower().encode() not in blob.lower()
    back = serde.loads_typed((kind, blob))
    assert back == {"queue": [{"prompt": f"a cat {REDACTED} {REDACTED}", "seed": 3}], "ids": [1, 2, 3], "score": 0.25}
    assert isinstance(memory_saver().serde, RedactingSerializer)


def test_sqlite_saver_uses_the_redacting_serializer(tmp_path):
    with sqlite_saver(tmp_path / "c.sqlite") as saver:
        assert isinstance(saver.serde, RedactingSerializer)


class EchoCritic:
    """Echoes the prompt into its rationale and details, as a careless judge would."""

    name = "echo"

    def __init__(self):
        self.calls = 0

    def __call__(self, image, prompt, spec=None):
        self.calls += 1
        return Critique(critic=self.name, score=0.2, rationale=f"you asked: {prompt}", details={"prompt": prompt})


def _every_byte_under(root):
    """(relative path, bytes) of every file under root, and every path name (folders included)."""
    names, blobs = [], []
    for path in sorted(root.rglob("*")):
        names.append(str(path.relative_to(root)))
        if path.is_file():
            blobs.append((str(path.relative_to(root)), path.read_bytes()))
    return names, blobs


def spellings(secret: str) -> list[bytes]:
    """The secret as bytes in every form a file might hold it: as is, in either case, URL-encoded,
    hex, and base64 (standard and URL-safe) at each of the three alignments a longer text can give it."""
    raw = secret.encode()
    forms = {raw, raw.lower(), raw.upper(), urllib.parse.quote(secret, safe="").encode(), raw.hex().encode()}
    for pad in (b"", b"x", b"xx"):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            forms.add(encode(pad + raw)[4:-4])  # the middle, which only the secret's bytes decide
    return sorted(forms)


def assert_nowhere(root, logs: str, secrets_: dict[str, str]) -> None:
    """No spelling of any secret in any file under `root` (read as bytes), its names, or `logs`."""
    names, blobs = _every_byte_under(root)
    blobs.append(("log lines", logs.encode()))
    for what, secret in secrets_.items():
        for form in spellings(secret):
            for name in names:
                assert form.decode().lower() not in name.lower(), f"{what} in the name {name!r}"
            for name, blob in blobs:
                assert form not in blob, f"{what} ({form[:12]!r}...) in {name}"


class EchoJudgeServer:
    """An OpenAI-compatible chat server on 127.0.0.1 that records each request and, as a careless
    proxy might, echoes the Authorization header and the user's text back in its verdict."""

    def __init__(self):
        self.requests: list[tuple[dict, bytes]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                server.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                asked = json.loads(body)["messages"][-1]["content"][-1]["text"]
                reason = f"your header was {self.headers.get('Authorization')!r}; you asked: {asked}"
                verdict = json.dumps({"reason": reason, "satisfied": True})
                reply = json.dumps({
                    "id": "x", "object": "chat.completion", "created": 0, "model": "gpt-4o",
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": verdict}}],
                }).encode()  # fmt: skip
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):  # quiet: a test's stderr is checked for secrets
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def judge_server():
    server = EchoJudgeServer()
    yield server
    server.close()


@pytest.mark.parametrize("judge_key_kind", ["key-shaped", "plain"])
def test_no_secret_reaches_any_file_of_a_shapes_run_with_a_real_judge(
    shapes_mug, one_thread, tmp_path, env_key, judge_server, capsys, restore_structlog, judge_key_kind
):
    """A whole run (ShapesWorld model, the exact critic mixed with an HTTP judge, sqlite checkpoints,
    report) with secrets in the environment, in the judge's options, in the prompt and in the run's
    name: none reaches a byte of any file under the out folder, a file name, or a log line.

    The judge's own key comes key-shaped (`sk-...`) or plain (a local server's token, which only the
    judge itself knows to be secret), and the server echoes it and the prompt back in its verdict."""
    judge_key = fake("sk-proj-", 64) if judge_key_kind == "key-shaped" else "local" + env_key[2:22][::-1]
    prompt_key = fake("hf_", 34)
    name_key = fake("ghp_", 36)
    secrets_ = {"OPENAI_API_KEY": env_key, "judge api_key": judge_key, "prompt key": prompt_key, "name": name_key}
    configure_logging(json=True, level=logging.DEBUG)
    judge = OpenAIJudge(base_url=judge_server.url, api_key=judge_key, max_retries=0, deadline=30)
    config = MILRConfig(steps=2, seed=0, threshold=1.0).with_recommended(shapes_mug.recommended)
    out = tmp_path / "out"
    milr = MILR(shapes_mug, Mixer([ShapesOracle(), judge]), config, out=out, checkpoint=True)
    prompt = f"a photo of a red circle {prompt_key} {env_key}"
    spec = PromptSpec.parse("a photo of a red circle", classes=SHAPES, colors=COLOR_NAMES)
    result = milr(prompt, spec, name=f"run-{name_key}")

    # the secrets were really in play: the judge got its key and the prompt, and its echo was kept
    assert len(result.rounds) == 3 and len(judge_server.requests) == 3
    headers, body = judge_server.requests[0]
    assert headers["authorization"] == f"Bearer {judge_key}" and prompt_key.encode() in body
    assert [c.score for c in result.rounds[0].critiques if c.critic == "gpt4o"] == [1.0]
    assert (out / "checkpoints.sqlite").stat().st_size > 0 and (result.trace_dir / "report.html").is_file()
    assert REDACTED.encode() in (result.trace_dir / "rounds.jsonl").read_bytes()
    assert_nowhere(out, capsys.readouterr().err, secrets_)


def test_a_key_pasted_into_a_config_file_is_not_echoed_by_its_error(tmp_path, env_key):
    # MILRConfig has no field for a key, so a key in a config file is an error, and the error shows
    # what was given: the `milr` command prints it, a log collector keeps it.
    shaped = fake("sk-proj-", 60)
    path = tmp_path / "milr.toml"
    path.write_text(f'[milr]\nsteps = 2\napi_key = "{shaped}"\ndevice = "{env_key}"\n')
    with pytest.raises(ConfigError) as err:
        MILRConfig.from_file(path)
    message = str(err.value)
    assert "api_key: Extra inputs are not permitted" in message and "device" in message
    assert shaped not in message and env_key not in message and message.count(REDACTED) == 3  # device: twice


def test_a_pasted_key_leaves_no_byte_under_the_out_folder(mug, tmp_path, env_key):
    """Target of issue 12: zero bytes of either secret in any file under out (checkpoints.sqlite, run
    folder, report), and in the folder names, with the checkpointer on."""
    shaped = fake("sk-proj-", 80)
    prompt = f"a photo of a red cat {shaped} {env_key}"
    out = tmp_path / "out"
    milr = MILR(mug, EchoCritic(), MILRConfig(steps=2, max_reasoning_tokens=8), out=out, checkpoint=True)
    result = milr(prompt)
    assert len(result.rounds) == 3 and (out / "checkpoints.sqlite").stat().st_size > 0
    names, blobs = _every_byte_under(out)
    assert any(name.endswith("rounds.jsonl") for name, _ in blobs) and any("report.html" in n for n in names)
    needles = [s.encode() for s in (shaped, env_key)]
    needles += [s.lower().encode() for s in (shaped, env_key)] + [s.upper().encode() for s in (shaped, env_key)]
    # the key's body, not only all of it (a folder name keeps a prefix of the prompt's slug)
    needles += [shaped[8:30].encode(), shaped[8:30].lower().encode(), env_key[2:20].encode()]
    for name in names:
        assert not any(n.decode() in name or n.decode() in name.lower() for n in needles), name
    for name, blob in blobs:
        low = blob.lower()
        assert not any(n in blob or n.lower() in low for n in needles), name
    # the redacted prompt is what was kept
    assert REDACTED.encode() in (out / result.trace_dir.name / "run.json").read_bytes()


# --------------------------------------------------------------------------- logs
@pytest.fixture
def restore_structlog():
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.mark.parametrize("as_json", [True, False])
def test_log_lines_are_redacted(capsys, env_key, restore_structlog, as_json):
    shaped, long_key = fake("hf_", 34), fake("sk-proj-", 160)  # a long one, which a pretty traceback would wrap
    configure_logging(json=as_json, level=logging.INFO)
    log = structlog.get_logger("milr.test")
    log.warning("judge_said", text=f"the key {env_key}", nested={"k": [shaped]}, **{shaped: 1})
    try:
        api_key = long_key  # a local a traceback could show
        raise RuntimeError(f"server echoed Bearer {shaped} and {env_key} for {api_key}")
    except RuntimeError:
        log.exception("call_failed")
    err = capsys.readouterr().err
    assert "judge_said" in err and "call_failed" in err and "RuntimeError" in err and REDACTED in err
    flat = "".join(err.split())  # a key wrapped over lines must not survive either
    for secret in (env_key, shaped, long_key):
        assert secret.lower() not in flat.lower()


def test_logging_writes_to_the_stderr_of_the_moment(monkeypatch, restore_structlog):
    """A stream closed since logging was set up (pytest's capture of an earlier CLI call) must not
    make every later log line (a `secret_redacted` warning inside `redact` included) raise."""
    old = io.StringIO()
    monkeypatch.setattr(sys, "stderr", old)
    configure_logging(json=True)
    old.close()
    new = io.StringIO()
    monkeypatch.setattr(sys, "stderr", new)
    key = fake("sk-")
    assert redact(f"a cat {key}") == f"a cat {REDACTED}"  # its warning is logged, not raised
    assert '"event": "secret_redacted"' in new.getvalue() and key not in new.getvalue()
