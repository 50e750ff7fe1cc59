"""LangGraph checkpoints without secrets: every string is redacted before a checkpoint is stored.

`RedactingSerializer` is LangGraph's `JsonPlusSerializer` (msgpack, the same wire format and
allow-lists) that runs `milr.traces.redaction.redact_object` over each checkpoint and each pending
write first. A prompt holding an API key is checkpointed with `[REDACTED]` in its place, so
`checkpoints.sqlite` never holds the key. Loading is unchanged.

`memory_saver()` and `sqlite_saver(path)` are the two checkpointers milr compiles its graph with.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver

from milr.traces.redaction import redact_object

__all__ = ["RedactingSerializer", "memory_saver", "sqlite_saver"]


class RedactingSerializer(JsonPlusSerializer):
    """`JsonPlusSerializer` that redacts every string (dict keys, model fields, nested values) before
    serialising; containers keep their types, anything else (numbers, tensors, bytes) is untouched."""

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        return super().dumps_typed(redact_object(obj))


def memory_saver() -> InMemorySaver:
    """An in-memory checkpointer whose checkpoints are redacted like the on-disk ones."""
    return InMemorySaver(serde=RedactingSerializer())


@contextlib.contextmanager
def sqlite_saver(path: str | Path) -> Iterator[SqliteSaver]:
    """`SqliteSaver.from_conn_string(path)` with the redacting serializer; the connection closes on exit."""
    # check_same_thread=False as in SqliteSaver.from_conn_string: the saver locks around its own use
    with contextlib.closing(sqlite3.connect(str(path), check_same_thread=False)) as conn:
        yield SqliteSaver(conn, serde=RedactingSerializer())
