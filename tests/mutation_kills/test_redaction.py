"""Mutation survivors of milr/traces/redaction.py, killed (benchmarks/mutate.py; results in
benchmarks/results/mutation.json): overlapping secrets are redacted whole, longest first; a long
credential after its head is redacted and reported; each key-shaped value found is reported; a plain
word after a keyword is kept; an exported secret found in another letter case is reported by its
variable; `redact_object` keeps container types and its depth limit."""

from __future__ import annotations

import base64
import dataclasses
import os
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


def nested(value, levels: int):
    for _ in range(levels):
        value = [value]
    return value


def unwrap(value, levels: int):
    for _ in range(levels):
        (value,) = value
    return value


def test_redact_object_redacts_64_levels_deep_and_leaves_deeper_nesting_as_it_is():
    assert unwrap(redact_object(nested(SHORT, 64), [SHORT], warn=False), 64) == REDACTED
    deeper = nested(SHORT, 65)
    assert unwrap(redact_object(deeper, [SHORT], warn=False), 65) == SHORT  # left to the serialiser


def test_a_plain_word_after_a_keyword_is_kept():
    for text in ("token: notarandomvalue", "the password=correcthorsebattery is a comic"):
        assert redact(text, [], warn=False) == text


def test_a_long_credential_after_bearer_is_reported_once():
    token = base64.b64encode(os.urandom(900)).decode()  # 1200 characters, fresh: warnings are once per secret
    with structlog.testing.capture_logs() as logs:
        assert redact(f"Authorization: Bearer {token}", []) == f"Authorization: Bearer {REDACTED}"
    reported = [(e["event"], e["kind"], e["length"]) for e in logs]
    assert reported == [("secret_redacted", "key-shaped value", len(token))]


def test_a_long_credential_is_redacted_however_much_whitespace_follows_its_keyword():
    """A long base64 token (data-sized: skipped as a run) after `Bearer` or `token=` padded with spaces:
    the keyword is looked for behind the padding, whatever its length."""
    token = base64.b64encode(os.urandom(900)).decode()
    for head in ("Bearer" + " " * 35, "Bearer" + " " * 300, "token=" + " " * 34, "token =" + "\t" * 50 + "'"):
        text = f"header {head}{token} tail"
        assert redact(text, [], warn=False) == f"header {head}{REDACTED} tail", repr(head[:12])
    for data in (f"data:image/png;base64,{token}", f"header xtoken={' ' * 34}{token}"):  # no keyword: data stays
        assert redact(data, [], warn=False) == data


def test_an_exported_secret_in_another_letter_case_is_reported_by_its_variable(monkeypatch):
    value = "MixedCase" + secrets.token_hex(6)  # fresh: warnings are once per secret and process
    monkeypatch.setenv("MUTATION_TEST_TOKEN", value)
    with structlog.testing.capture_logs() as logs:
        assert redact(f"folder {value.lower()}") == f"folder {REDACTED}"  # folder names are lower case
    assert [(e["kind"], e["length"]) for e in logs] == [("env MUTATION_TEST_TOKEN", len(value))]
