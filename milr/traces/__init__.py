"""Traces (DESIGN §5): the crash-safe writer, the typed reader, the HTML report, terminal views.

This package imports nothing else of milr, so traces stay readable without models or critics."""

from milr.traces.reader import LoadedRound, Trace, TraceInfo, TraceWarning
from milr.traces.redaction import redact
from milr.traces.report import export_geneval, render_report, write_report
from milr.traces.schema import SCHEMA_VERSION, CriticScore, RoundRecord, RunInfo, RunSummary
from milr.traces.views import list_table, rounds_table, show
from milr.traces.writer import TraceWriter, new_run_id

__all__ = [
    "SCHEMA_VERSION",
    "CriticScore",
    "LoadedRound",
    "RoundRecord",
    "RunInfo",
    "RunSummary",
    "Trace",
    "TraceInfo",
    "TraceWarning",
    "TraceWriter",
    "export_geneval",
    "list_table",
    "new_run_id",
    "redact",
    "render_report",
    "rounds_table",
    "show",
    "write_report",
]
