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

import pytest
import structlog
from PIL import Image

from milr.config import MILRConfig
from milr.critics.base import Critique
from milr.log import configure_logging
from milr.orchestrator import MILR
from milr.orchestrator.serde import RedactingSerializer, memory_saver, sqlite_saver
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
