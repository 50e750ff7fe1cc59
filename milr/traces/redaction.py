"""Keep secrets out of everything milr writes: traces, folder names, checkpoints, logs.

Two kinds of secret are replaced by `[REDACTED]`:

- the value of every secret-looking environment variable (`*_API_KEY`, `*TOKEN*`, `*SECRET*`,
  `*PASSWORD*`), in any letter case (a folder name is the prompt in lower case);
- anything shaped like a credential, exported or not: OpenAI/Anthropic `sk-…`, Hugging Face `hf_…`,
  GitHub `ghp_…`/`github_pat_…`, AWS `AKIA…`, Google `AIza…`, Slack `xox?-…`, JWTs, the token
  after `Bearer`, and the value in `api_key=…`/`token: …`. Only random-looking strings count
  (a digit, or upper and lower case letters), so prose such as "sk-learn-compatible" stays; a key
  shape never starts inside a longer run of letters and digits, so base64 image data is never touched.

Redaction works on the data (every string, dict keys included) before it is serialised, so a secret
is caught even where JSON or HTML escaping would change its spelling, and numbers are never touched.
The first time a secret is redacted, a `secret_redacted` warning names its kind (never the value).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import re
import string
import threading

import structlog
from pydantic import BaseModel

log = structlog.get_logger(__name__)

_SECRET_NAME = re.compile(r"API_KEY|TOKEN|SECRET|PASSWORD|PASSWD", re.IGNORECASE)
# Shorter values ("1", "true", "false") are switches, not secrets, and replacing them would mangle text.
MIN_SECRET_LENGTH = 6
REDACTED = "[REDACTED]"

# A key shape must not continue a run of letters, digits or base64 characters on its left (checked
# on each match), and long runs of base64 characters (image data URLs) are skipped whole: inside
# base64 data or a longer word, nothing is ever redacted.
_NOT_LEFT = frozenset(string.ascii_letters + string.digits + "+/")
KEY_SHAPES: dict[str, str] = {
    # OpenAI (sk-, sk-proj-, sk-svcacct-, sk-admin-) and Anthropic (sk-ant-api03-) keys
    "sk-key": r"sk-[A-Za-z0-9_-]{20,}",
    "huggingface": r"hf_[A-Za-z0-9]{30,}",
    "github": r"gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}",
    "aws": r"(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Za-z0-9])",
    "google": r"AIza[0-9A-Za-z_-]{35}(?![A-Za-z0-9_-])",
    "slack": r"xox[abposr]-[A-Za-z0-9-]{10,}",
    "jwt": r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
}
# a plain alternation (no lookbehind, no named groups) keeps re's fast scan for the first characters
_SHAPES = re.compile("|".join(KEY_SHAPES.values()))
_SHAPE_KINDS = [(kind, re.compile(pattern)) for kind, pattern in KEY_SHAPES.items()]
# a credential after a keyword: keep the keyword, redact the value
_KEYWORDS = ("bearer", "key", "token", "secret", "passw")
_HEAD = (
    r"(?:\b(?:[Bb]earer|BEARER)\s+|"
    r"(?<![A-Za-z0-9])(?i:api[_-]?key|access[_-]?token|auth[_-]?token|token|secret|password|passwd)"
    r"(?![A-Za-z0-9])[\"']?\s*[:=]\s*[\"']?)"
)
_AFTER = re.compile(rf"(?P<head>{_HEAD})(?P<value>[A-Za-z0-9._~+/-]{{12,}}=*)")
_HEAD_AT_END = re.compile(rf"{_HEAD}$")
# runs this long of base64 characters are data (images), never a key: skipped whole
LONG_RUN = 1000
_LONG_RUN = re.compile(rf"[A-Za-z0-9+/]{{{LONG_RUN},}}={{0,2}}")

_warned: set[str] = set()
_warned_lock = threading.Lock()


@functools.lru_cache(maxsize=16)
def _secret_names(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(k for k in names if _SECRET_NAME.search(k))


def _env_secrets() -> dict[str, str]:
    """{value: variable name} of secret-looking environment variables (read now, not at import)."""
    out: dict[str, str] = {}
    for k in _secret_names(tuple(os.environ)):
        v = os.environ.get(k)
        if v is not None and len(v.strip()) >= MIN_SECRET_LENGTH:
            out.setdefault(v, k)
    return out


def secret_values() -> list[str]:
    """Values of secret-looking environment variables, longest first (so overlapping ones redact fully).

    Read on every call: a key exported after import (a test's monkeypatch, a notebook) still counts."""
    return sorted(_env_secrets(), key=len, reverse=True)


@functools.lru_cache(maxsize=64)
def _values_pattern(values: tuple[str, ...]) -> re.Pattern | None:
    if not values:
        return None
    return re.compile("|".join(re.escape(v) for v in sorted(values, key=len, reverse=True)), re.IGNORECASE)


def looks_random(token: str) -> bool:
    """A digit, or both upper and lower case letters: a generated credential, not a word."""
    return any(c.isdigit() for c in token) or (any(c.isupper() for c in token) and any(c.islower() for c in token))


def _warn(kind: str, secret: str) -> None:
    # once per secret and process: the same key in every record of a run is one event, not hundreds
    digest = hashlib.sha256(secret.lower().encode("utf-8", "surrogatepass")).hexdigest()
    with _warned_lock:
        if digest in _warned:
            return
        _warned.add(digest)
    log.warning("secret_redacted", kind=kind, length=len(secret), replaced_by=REDACTED)


def redact(text: str, secrets: list[str] | None = None, *, warn: bool = True) -> str:
    """`text` with every secret replaced by `[REDACTED]`: the values of secret-looking environment
    variables (or `secrets`, when given) in any letter case, and every key-shaped string.

    `warn=False` redacts silently (the log processor uses it: a warning from inside logging would
    log again)."""
    if not text:
        return text
    return _Strings(_env_secrets() if secrets is None else dict.fromkeys(secrets, ""), warn)(text)


class _Strings:
    """Redacts strings against one reading of the secrets ({value: variable name or ""})."""

    __slots__ = ("names", "key", "warn")

    def __init__(self, names: dict[str, str], warn: bool):
        self.names, self.key, self.warn = names, tuple(names.items()), warn

    @classmethod
    def of(cls, secrets: list[str] | None, warn: bool) -> _Strings:
        """For `secrets`, or the environment's secret values as read now."""
        return cls(dict.fromkeys(secret_values() if secrets is None else secrets, ""), warn)

    def __call__(self, text: str) -> str:
        if not text:
            return text
        if len(text) <= MEMO_LENGTH:
            text, found = _redact_remembered(text, self.key)
        else:
            text, found = _redact_found(text, self.names)
        if self.warn:
            for kind, secret in found:
                _warn(kind, secret)
        return text


# A checkpoint redacts the whole graph state each time it is stored, and most of its strings (prompts,
# run ids, reasonings, field names) are the ones the previous checkpoint redacted: the answer for a
# string and a set of secrets is remembered. The secrets are part of the key, so a key exported later
# is still caught; the warnings are replayed on every call (`_warn` says each secret once).
MEMO_LENGTH = 4096  # longer texts (pages, data URLs) are rare and not worth keeping
MEMO_ENTRIES = 8192


@functools.lru_cache(maxsize=MEMO_ENTRIES)
def _redact_remembered(text: str, names: tuple[tuple[str, str], ...]) -> tuple[str, tuple[tuple[str, str], ...]]:
    return _redact_found(text, dict(names))


def _redact_found(text: str, names: dict[str, str]) -> tuple[str, tuple[tuple[str, str], ...]]:
    """`text` redacted, and what was found: (kind, secret) pairs, for the warnings."""
    found: list[tuple[str, str]] = []
    low = text.lower()
    present = tuple(v for v in names if v and v.lower() in low)  # str.find is far faster than the regex
    if present:

        def env(m: re.Match) -> str:
            value = next((v for v in present if v.lower() == m.group().lower()), m.group())
            name = names.get(value) or _env_secrets().get(value)  # which variable (only on a match: rare)
            found.append((f"env {name}" if name else "secret", value))
            return REDACTED

        text = _values_pattern(present).sub(env, text)
    if len(text) < LONG_RUN:
        text = _redact_shapes(text, found)
    else:
        text = _redact_around_long_runs(text, found)
    return text, tuple(found)


def _redact_shapes(text: str, found: list) -> str:
    def shaped(m: re.Match) -> str:
        token = m.group()
        if (m.start() > 0 and m.string[m.start() - 1] in _NOT_LEFT) or not looks_random(token):
            return token
        kind = next((k for k, p in _SHAPE_KINDS if p.fullmatch(token)), "key")
        found.append((f"key-shaped {kind}", token))
        return REDACTED

    def after(m: re.Match) -> str:
        value = m.group("value")
        if not looks_random(value):
            return m.group()
        found.append(("key-shaped value", value))
        return m.group("head") + REDACTED

    text = _SHAPES.sub(shaped, text)
    low = text.lower()
    if any(k in low for k in _KEYWORDS):
        text = _AFTER.sub(after, text)
    return text


def _head_window(text: str, start: int, end: int) -> str:
    """The end of `text[start:end]` where a keyword head before a long run would stand: 40 characters
    (the longest head's keyword and punctuation) plus the whitespace, quotes, `:` and `=` run it ends
    with, of any length, so `Bearer` with many spaces before a long token is still seen."""
    gap = text[start:end]
    padding = len(gap) - len(gap.rstrip(" \t\r\n\f\v\"':="))
    return gap[-(40 + padding) :]


def _redact_around_long_runs(text: str, found: list) -> str:
    """`_redact_shapes` on everything but long base64 runs (data); a run right after `Bearer ` or
    `token=` is a credential all the same."""
    pieces, last = [], 0
    for m in _LONG_RUN.finditer(text):
        before = _redact_shapes(text[last : m.start()], found)
        pieces.append(before)
        if _HEAD_AT_END.search(_head_window(text, last, m.start())) and looks_random(m.group()):
            found.append(("key-shaped value", m.group()))
            pieces.append(REDACTED)
        else:
            pieces.append(m.group())
        last = m.end()
    pieces.append(_redact_shapes(text[last:], found))
    return "".join(pieces)


def redact_data(obj, secrets: list[str] | None = None, *, warn: bool = True):
    """A copy of a JSON-like value (dicts, lists, strings, numbers) with every string redacted."""
    return _redact_data(obj, _Strings.of(secrets, warn))


def _redact_data(obj, clean: _Strings):
    if isinstance(obj, str):
        return clean(obj)
    if isinstance(obj, dict):
        return {_redact_data(k, clean): _redact_data(v, clean) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_redact_data(v, clean) for v in obj]
    return obj


def redact_object(obj, secrets: list[str] | None = None, *, warn: bool = True):
    """`redact_data` that keeps the container types: tuples stay tuples, sets stay sets, pydantic
    models and dataclasses are copied with their string fields redacted. Other objects (numbers,
    tensors, bytes) are returned as they are. For serialisers of arbitrary state (checkpoints)."""
    return _redact_object(obj, _Strings.of(secrets, warn), 0)


_SCALARS = (int, float, bool, type(None))  # by far the most common leaves of a state: no check needed


def _redact_object(obj, clean: _Strings, depth: int):
    if type(obj) in _SCALARS:
        return obj
    if depth > 64:  # a cycle or absurd nesting: leave it to the serialiser to complain
        return obj
    depth += 1
    if isinstance(obj, str):
        return clean(obj)
    if isinstance(obj, dict):
        items = {_redact_object(k, clean, depth): _redact_object(v, clean, depth) for k, v in obj.items()}
        if type(obj) is dict:
            return items
        try:
            return type(obj)(items)
        except Exception:
            return items
    if isinstance(obj, list | tuple | set | frozenset):
        values = [_redact_object(v, clean, depth) for v in obj]
        if type(obj) is list:
            return values
        if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # a namedtuple
            return type(obj)(*values)
        try:
            return type(obj)(values)
        except Exception:
            return values
    if isinstance(obj, BaseModel):
        fields = type(obj).model_fields
        return obj.model_copy(
            update={k: _redact_object(getattr(obj, k), clean, depth) for k in fields if hasattr(obj, k)}
        )
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        changes = {
            f.name: _redact_object(getattr(obj, f.name), clean, depth) for f in dataclasses.fields(obj) if f.init
        }
        try:
            return dataclasses.replace(obj, **changes)
        except Exception:
            return obj
    return obj
