"""Mutation survivors of milr/traces/redaction.py, killed (benchmarks/mutate.py; results in
benchmarks/results/mutation.json): overlapping secrets are redacted whole, longest first; a long
credential after its head is redacted; each key-shaped value found is reported; `redact_object`
keeps container types and its depth limit."""

from __future__ import annotations

import dataclasses
import secrets
from collections import OrderedDict, defaultdict
from typing import NamedTuple

import structlog.testing

from milr.traces.redaction import REDACTED, redact, redact_object, secret_values

SHORT = "plainvalue1234"
LONG = SHORT + "tail9"  # a secret that starts with another one


def test_a_secret_that_starts_with_another_is_redacted_whole():
    for given in ([SHORT, LONG], [LONG, SHORT]):
        assert redact(f"token {LONG} end", given, warn=False) == f"token {REDACTED} end"
        assert redact(f"token {SHORT} end", given, warn=False) == f"token {REDACTED} end"


def test_secret_values_come_longest_first(monkeypatch):
    monkeypatch.setenv("MUTATION_TEST_TOKEN", SHORT)
    monkeypatch.setenv("MUTATION_TEST_API_KEY", LONG)
    values = [v for v in secret_values() if v in (SHORT, LONG)]
    assert values == [LONG, SHORT]


def test_a_long_credential_right_after_bearer_is_redacted():
    """A base64 run this long is data (an image) unless a credential's head comes just before it."""
    token = ("AbC9" * 300)[:1200]
    text = f"Authorization: Bearer {token}"
    assert redact(text, [], warn=False) == f"Authorization: Bearer {REDACTED}"
    assert redact(f"png {token}", [], warn=False) == f"png {token}"  # no head: data, kept


def test_each_key_shaped_value_is_reported_once_by_kind():
    value = "Zq7" + secrets.token_hex(8)  # fresh: warnings are once per secret and process
    with structlog.testing.capture_logs() as logs:
        assert redact(f"password={value}", []) == f"password={REDACTED}"
    reported = [(e["event"], e["kind"], e["length"]) for e in logs]
    assert reported == [("secret_redacted", "key-shaped value", len(value))]


class Pair(NamedTuple):
    left: str
    right: str


@dataclasses.dataclass
class Note:
    text: str
    count: int = 0


def test_redact_object_keeps_every_container_type_and_redacts_inside():
    out = redact_object(
        {
            "ordered": OrderedDict(key=SHORT),
            "default": defaultdict(list, key=SHORT),  # its constructor refuses the items: a plain dict
            "pair": Pair(SHORT, "kept"),
            "note": Note(SHORT, 3),
            "set": {SHORT},
        },
        [SHORT],
        warn=False,
    )
    assert type(out["ordered"]) is OrderedDict and out["ordered"] == {"key": REDACTED}
    assert out["default"] == {"key": REDACTED}
    assert out["pair"] == Pair(REDACTED, "kept") and type(out["pair"]) is Pair
    assert out["note"] == Note(REDACTED, 3)
    assert out["set"] == {REDACTED}


def test_redact_object_goes_64_levels_deep_and_stops_at_a_cycle():
    deep: list = [SHORT]
    for _ in range(60):
        deep = [deep]
    out = redact_object(deep, [SHORT], warn=False)
    for _ in range(60):
        out = out[0]
    assert out == [REDACTED]
    cycle: list = [SHORT]
    cycle.append(cycle)
    assert redact_object(cycle, [SHORT], warn=False)[0] == REDACTED  # no RecursionError
