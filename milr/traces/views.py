"""Terminal views of traces for `milr traces list` and `milr traces show` (rich renderables)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from milr.traces.reader import Trace


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def list_table(folder: str | Path) -> Table:
    """One row per run under `folder`: run, prompt, rounds, final score, stop reason."""
    table = Table(title=f"runs in {Path(folder).name}/", title_justify="left")
    for col in ("run", "prompt", "rounds", "final score", "stop reason"):
        table.add_column(col, overflow="fold")
    for trace in Trace.scan(folder):
        summary = trace.summary
        table.add_row(
            trace.run.run_id,
            trace.run.prompt,
            str(len(trace.rounds)),
            _score(summary.final_score) if summary else "-",
            summary.stop_reason if summary else "unfinished",
        )
    return table


def show(trace: Trace, console: Console) -> None:
    """The rounds of one run: score, what was updated, critics, reasoning."""
    console.print(f"[bold]{trace.run.prompt}[/]  ({trace.run.run_id}, model {trace.run.model})")
    table = Table(show_lines=True)
    for col in ("round", "updated", "score", "critics", "reasoning"):
        table.add_column(col, overflow="fold")
    for r in trace.rounds:
        critics = "\n".join(f"{c.critic}: {_score(c.score)} {c.error or ''}".strip() for c in r.critiques)
        table.add_row(str(r.round), r.modality, _score(r.score), critics, r.reasoning)
    console.print(table)
    if trace.summary:
        s = trace.summary
        console.print(f"stop: {s.stop_reason}; returned round {s.final_round} ({s.select}), best {s.best_round}")
