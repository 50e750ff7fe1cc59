"""Keep secrets out of traces: the value of every secret-looking environment variable (`*_API_KEY`,
`*TOKEN*`, `*SECRET*`, `*PASSWORD*`) is replaced by `[REDACTED]` in every string milr writes to a
trace, an API key pasted into a prompt or echoed in a judge's rationale included.

Redaction works on the data (every string, dict keys included) before it is serialised, so a secret
is caught even where JSON or HTML escaping would change its spelling, and numbers are never touched.
"""

from __future__ import annotations

import os
import re

_SECRET_NAME = re.compile(r"API_KEY|TOKEN|SECRET|PASSWORD|PASSWD", re.IGNORECASE)
# Shorter values ("1", "true", "false") are switches, not secrets, and replacing them would mangle text.
MIN_SECRET_LENGTH = 6
REDACTED = "[REDACTED]"


def secret_values() -> list[str]:
    """Values of secret-looking environment variables, longest first (so overlapping ones redact fully).

    Read on every call: a key exported after import (a test's monkeypatch, a notebook) still counts."""
    values = {v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v.strip()) >= MIN_SECRET_LENGTH}
    return sorted(values, key=len, reverse=True)


def redact(text: str, secrets: list[str] | None = None) -> str:
    """`text` with every secret value replaced by `[REDACTED]`."""
    for value in secret_values() if secrets is None else secrets:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def redact_data(obj, secrets: list[str] | None = None):
    """A copy of a JSON-like value (dicts, lists, strings, numbers) with every string redacted."""
    secrets = secret_values() if secrets is None else secrets
    if not secrets:
        return obj
    if isinstance(obj, str):
        return redact(obj, secrets)
    if isinstance(obj, dict):
        return {redact_data(k, secrets): redact_data(v, secrets) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact_data(v, secrets) for v in obj]
    return obj
