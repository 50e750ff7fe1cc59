"""Logging: structlog events through the standard `logging` module, under the `milr` logger.

Library modules only call `structlog.get_logger(__name__)`. Importing `milr` routes structlog through
stdlib logging (`use_stdlib_logging`, unless the application configured structlog first) and gives
the `milr` logger a `NullHandler`, so a library user sees nothing until they ask, and the usual
`logging` controls work: `logging.getLogger("milr").setLevel(logging.INFO)` plus any handler
(`logging.basicConfig()`), or `configure_logging()` for rendered lines on stderr.

Secrets never reach a log line: `redact_event` redacts every string of the event (keys, values,
nested data, the traceback, which `format_exc_info` has already made plain text, so no wrapping can
split a key) before any handler sees it, and each rendered line is redacted once more. Lines meant
for a terminal also show control characters as visible escapes (`\\x1b[31m`), so a prompt or a
server's reply can never colour, move or clear the terminal. See `milr.traces.redaction`.
"""

from __future__ import annotations

import logging
import os
import sys
from collections import deque
from pathlib import Path

import structlog

# `milr.traces.redaction` and `milr.traces.views` are imported where they are used: importing
# `milr.traces` loads torch, and `milr --help` must not

LOGGER = "milr"
LEVELS = ("debug", "info", "warning", "error")
_PROCESSOR_FORMATTER = structlog.stdlib.ProcessorFormatter


def redact_event(logger, method_name: str, event_dict: dict) -> dict:
    """structlog processor: the event dict with every string redacted (silently: a warning from
    inside logging would log again)."""
    from milr.traces.redaction import redact_data

    return redact_data(event_dict, warn=False)


class RedactedRenderer:
    """A renderer whose output line is redacted (whatever the renderer added itself included)."""

    def __init__(self, renderer):
        self.renderer = renderer

    def __call__(self, logger, method_name: str, event_dict: dict):
        from milr.traces.redaction import redact

        line = self.renderer(logger, method_name, event_dict)
        return redact(line, warn=False) if isinstance(line, str) else line


def _rounded(value: object) -> object:
    """Floats to 4 significant digits, inside dicts and lists too: a terminal line is read, not parsed."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


def _shown(value: object) -> str:
    value = _rounded(value)
    return value if isinstance(value, str) and value and " " not in value and "=" not in value else repr(value)


def key_values(event_dict: dict) -> str:
    """`round_end run_id=r1 round=0 score=0.5`: the event and its fields (not the level, logger and
    timestamp, which a log line shows its own way), control characters shown as escapes."""
    from milr.traces.views import terminal_text

    fields = {k: v for k, v in event_dict.items() if k not in ("level", "logger", "timestamp", "exception")}
    event = fields.pop("event", "")
    line = " ".join([str(event), *(f"{k}={_shown(v)}" for k, v in fields.items())])
    if event_dict.get("exception"):
        line += "\n" + str(event_dict["exception"]).rstrip("\n")
    return terminal_text(line, newlines=True)


def render_terminal_line(logger, method_name: str, event_dict: dict) -> str:
    """`warning: judge_abstained critic=gpt4o error='...'`: short (the timestamp is in the log
    file), no colour codes, and every control character shown as its escape."""
    return f"{event_dict.get('level', method_name)}: {key_values(event_dict)}"


class EventMessage(dict):
    """The event dict as the message of a stdlib `LogRecord`: structlog's `ProcessorFormatter`
    reads the dict, and a plain `logging.Formatter` (`logging.basicConfig()`) shows
    `round_end run_id=... round=0 score=0.5` instead of a dict's repr."""

    def __str__(self) -> str:
        return key_values(self)


def wrap_for_logging(logger, method_name: str, event_dict: dict):
    """structlog's last processor: `ProcessorFormatter.wrap_for_formatter` with the event as an `EventMessage`."""
    (event,), kwargs = _PROCESSOR_FORMATTER.wrap_for_formatter(logger, method_name, event_dict)
    return (EventMessage(event),), kwargs


def _library_processors() -> list:
    """What runs inside each logging call, before stdlib logging hands the event to its handlers."""
    return [
        structlog.stdlib.filter_by_level,  # first: a disabled level costs one isEnabledFor call
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso"),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,  # plain text before redaction: a traceback is redacted too
        redact_event,
        wrap_for_logging,
    ]


def use_stdlib_logging() -> None:
    """Route structlog through stdlib logging: `structlog.get_logger("milr.x")` logs to the stdlib
    logger `milr.x`, whose levels and handlers decide what is shown. Called when `milr` is imported
    (only if structlog is not configured yet) and by `configure_logging`."""
    structlog.configure(
        processors=_library_processors(),
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,  # `structlog.testing.capture_logs` must keep working
    )


def install_library_defaults() -> None:
    """What `import milr` does: a `NullHandler` on the `milr` logger (nothing prints unless the
    application adds a handler or calls `configure_logging`) and structlog routed through stdlib
    logging, unless the application configured structlog itself (its configuration wins)."""
    logger = logging.getLogger(LOGGER)
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())
    if not structlog.is_configured():
        use_stdlib_logging()


# ---------------------------------------------------------------------------------------------- handlers
def _add_pid(logger, method_name: str, event_dict: dict) -> dict:
    event_dict["pid"] = os.getpid()  # several processes may append to one <out>/milr.log
    return event_dict


def event_formatter(kind: str) -> logging.Formatter:
    """A `ProcessorFormatter` rendering milr's events: `"json"` (one JSON object a line), `"file"`
    (JSON with the process id) or `"terminal"` (`render_terminal_line`)."""
    renderer = {
        "json": structlog.processors.JSONRenderer(),
        "file": structlog.processors.JSONRenderer(),
        "terminal": render_terminal_line,
    }[kind]
    processors = [_PROCESSOR_FORMATTER.remove_processors_meta, *([_add_pid] if kind == "file" else [])]
    return _PROCESSOR_FORMATTER(
        processors=[*processors, RedactedRenderer(renderer)],
        # records logged with plain `logging` under `milr` get the same fields
        foreign_pre_chain=_library_processors()[1:-1],
    )


class StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a line is logged, not when logging was set up (a
    stream swapped or closed since, as by pytest's capture, must not break every later line)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ and setStream assign it; the moment's stderr wins
        pass


class ConsoleHandler(logging.Handler):
    """Prints each line through a rich `Console`: while that console shows a live view (the CLI's
    round table, a progress bar), rich prints the line above it instead of through it."""

    STYLES = {"WARNING": "yellow", "ERROR": "red", "CRITICAL": "bold red"}

    def __init__(self, console):
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        from rich.text import Text

        try:
            line = self.format(record)
            # on a terminal rich wraps the line to its width; elsewhere one log line stays one line
            self.console.print(
                Text(line, style=self.STYLES.get(record.levelname, "")), soft_wrap=not self.console.is_terminal
            )
        except Exception:
            self.handleError(record)


class DeferredFileHandler(logging.Handler):
    """JSON lines appended to a file that may not exist yet: lines logged before `open(path)` are
    kept in memory (the newest `keep`) and written first. Never opened, it writes nothing (a
    command that failed before its output folder existed leaves no file behind)."""

    def __init__(self, keep: int = 1000):
        super().__init__()
        self.pending: deque[str] = deque(maxlen=keep)
        self.file = None
        self.path: Path | None = None

    def open(self, path: str | Path) -> None:
        """Start writing to `path` (appending; a symlink is refused with OSError, never followed)."""
        path = Path(path)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        with self.lock:
            self.file = os.fdopen(fd, "a", encoding="utf-8")
            self.path = path
            self.file.write("".join(line + "\n" for line in self.pending))
            self.file.flush()
            self.pending.clear()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            if self.file is None:
                self.pending.append(line)
                return
            self.file.write(line + "\n")
            self.file.flush()
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        with self.lock:
            if self.file is not None:
                self.file.close()
                self.file = None
            self.pending.clear()
        super().close()


# ---------------------------------------------------------------------------------------------- set-up
def parse_level(level: int | str) -> int:
    """`logging.INFO`, `"info"` or `"INFO"` → 20; anything else is a ValueError naming the choices."""
    if isinstance(level, int) and not isinstance(level, bool):
        return level
    if isinstance(level, str) and level.lower() in LEVELS:
        return logging.getLevelName(level.upper())
    raise ValueError(f"log level must be one of {', '.join(LEVELS)}, got {level!r}")


def _ours(handler: logging.Handler) -> bool:
    return getattr(handler, "_milr_configured", False)


def add_handler(handler: logging.Handler, level: int | str) -> logging.Handler:
    """Attach `handler` to the `milr` logger at `level`; the logger's own level follows the most
    verbose handler attached this way."""
    handler.setLevel(parse_level(level))
    handler._milr_configured = True
    logger = logging.getLogger(LOGGER)
    logger.addHandler(handler)
    logger.setLevel(min(h.level for h in logger.handlers if _ours(h)))
    return handler


def remove_handlers() -> None:
    """Detach (and close) every handler `configure_logging` and `add_handler` attached."""
    logger = logging.getLogger(LOGGER)
    for handler in [h for h in logger.handlers if _ours(h)]:
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(logging.NOTSET)


def configure_logging(json: bool | None = None, level: int | str = logging.INFO, *, console=None) -> logging.Handler:
    """Show milr's log lines on stderr; returns the handler it attached.

    Args:
        json: JSON lines (for log collectors) or short human lines (`warning: event key=value`);
            `None` picks human lines when stderr is a terminal, else JSON.
        level: the least level shown (`logging.INFO`, or `"debug"`, `"info"`, `"warning"`, `"error"`).
        console: a rich `Console` to print human lines through, so they land above whatever live
            view it shows (the `milr` command passes its own).

    Replaces the handlers an earlier call attached (calling it twice never doubles lines), routes
    structlog through stdlib logging, and stops the `milr` logger propagating to the root logger,
    so a line is shown once even where the root logger has handlers of its own. Every line is
    redacted (`milr.traces.redaction`) and control characters in human lines are escaped.

        >>> from milr.log import configure_logging
        >>> configure_logging(level="info")  # round_end lines and warnings on stderr
    """
    if json is None:
        json = not sys.stderr.isatty()
    use_stdlib_logging()
    remove_handlers()
    handler = StderrHandler() if json or console is None else ConsoleHandler(console)
    handler.setFormatter(event_formatter("json" if json else "terminal"))
    logging.getLogger(LOGGER).propagate = False
    return add_handler(handler, level)
