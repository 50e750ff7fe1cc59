"""Keep secrets out of traces: any value of a secret-looking environment variable is redacted from
every string milr writes (an API key pasted into a prompt or echoed in a rationale included)."""

from __future__ import annotations

import os
import re

_SECRET_NAME = re.compile(r"(API_KEY|TOKEN|SECRET|PASSWORD)", re.IGNORECASE)
REDACTED = "[REDACTED]"


def secret_values() -> list[str]:
    """Values of secret-looking environment variables, longest first (so overlaps redact fully)."""
    values = {v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= 6}
    return sorted(values, key=len, reverse=True)


def redact(text: str, secrets: list[str] | None = None) -> str:
    for value in secret_values() if secrets is None else secrets:
        text = text.replace(value, REDACTED)
    return text
