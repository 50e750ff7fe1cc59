"""structlog set-up. Library modules only call `structlog.get_logger(__name__)`;
`configure_logging` is called by the CLI (never at import), so embedding apps keep control.

Secrets never reach a log line: `redact_event` redacts every string of the event dict (keys, values,
nested data, a JSON traceback), a console traceback is formatted plainly (no wrapping that could
split a key) and redacted, and the rendered line is redacted once more. See `milr.traces.redaction`.
"""

from __future__ import annotations

import io
import logging
import sys

import structlog

# `milr.traces.redaction` is imported where it is used: importing `milr.traces` loads torch, and
# `milr --help` must not


def redact_event(logger, method_name: str, event_dict: dict) -> dict:
    """structlog processor: the event dict with every string redacted (silently: a warning from
    inside logging would log again)."""
    from milr.traces.redaction import redact_data

    return redact_data(event_dict, warn=False)


def redacted_traceback(sio, exc_info) -> None:
    """structlog's plain traceback, redacted (a pretty one wraps long lines, splitting a key)."""
    from milr.traces.redaction import redact

    buf = io.StringIO()
    structlog.dev.plain_traceback(buf, exc_info)
    sio.write(redact(buf.getvalue(), warn=False))


class RedactedRenderer:
    """A renderer whose output line is redacted (a traceback the renderer formats itself included)."""

    def __init__(self, renderer):
        self.renderer = renderer

    def __call__(self, logger, method_name: str, event_dict: dict):
        from milr.traces.redaction import redact

        line = self.renderer(logger, method_name, event_dict)
        return redact(line, warn=False) if isinstance(line, str) else line


class StderrLoggerFactory:
    """`PrintLogger`s on whatever `sys.stderr` is when a line is logged, not when logging was set up
    (a stream swapped or closed since, as by pytest's capture, must not break every later line)."""

    def __call__(self, *args) -> structlog.PrintLogger:
        return structlog.PrintLogger(file=sys.stderr)


def configure_logging(json: bool | None = None, level: int = logging.INFO) -> None:
    """Console lines on a TTY, JSON lines otherwise (`json=None` decides from stderr); secrets redacted."""
    if json is None:
        json = not sys.stderr.isatty()
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso"),
    ]
    renderer = (
        [structlog.processors.dict_tracebacks, redact_event, RedactedRenderer(structlog.processors.JSONRenderer())]
        if json
        else [redact_event, RedactedRenderer(structlog.dev.ConsoleRenderer(exception_formatter=redacted_traceback))]
    )
    structlog.configure(
        processors=[*shared, *renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=StderrLoggerFactory(),
        cache_logger_on_first_use=False,
    )
