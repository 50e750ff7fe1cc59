"""Terminal views of traces for `milr traces list` and `milr traces show` (rich renderables).

Text from traces is shown with `Text` objects, never as console markup, so a prompt holding
`[bold]` or `[/]` is printed as written rather than interpreted (or raising a markup error)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from milr.traces.reader import Trace


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def list_table(folder: str | Path) -> Table:
    """One row per run under `folder`, oldest first: run, prompt, rounds, final score, stop reason."""
    table = Table(title=f"runs in {Path(folder).name}/", title_justify="left")
    for col in ("run", "prompt", "rounds", "final score", "stop reason"):
        table.add_column(col, overflow="fold")
    for info in Trace.scan(folder):
        if info.run is None:
            table.add_row(Text(info.path.name), Text(f"unreadable: {info.error}", style="red"), "-", "-", "-")
            continue
        s = info.summary
        table.add_row(
            Text(info.run.run_id),
            Text(info.run.prompt),
            str(info.rounds),
            _score(s.final_score) if s else "-",
            Text(s.stop_reason) if s else Text("unfinished", style="yellow"),
        )
    return table


def rounds_table(trace: Trace) -> Table:
    """The rounds of one run: score, what the update changed, each critic, reasoning (prefix in bold)."""
    table = Table(show_lines=True)
    for col in ("round", "updated", "score", "critics", "reasoning"):
        table.add_column(col, overflow="fold")
    best = trace.best.round if trace.best is not None else None
    returned = trace.summary.final_round if trace.summary is not None else None
    for r in trace.rounds:
        marks = " best" * (r.round == best) + " returned" * (r.round == returned)
        table.add_row(
            Text(f"{r.round}{marks}"),
            Text(r.modality + (" (prefix changed)" if r.text_prefix_changed else "")),
            _score(r.score),
            _critics_text(r),
            _reasoning_text(r.reasoning, r.text_prefix),
        )
    return table


def _critics_text(r) -> Text:
    text = Text()
    for i, c in enumerate(r.critiques):
        text.append(("\n" if i else "") + f"{c.critic}: {_score(c.score)}")
        if c.error:
            text.append(f" {c.error}", style="red")
    return text


def _reasoning_text(reasoning: str, prefix: str) -> Text:
    prefix, body = prefix.strip(), reasoning.lstrip()
    if prefix and body.startswith(prefix):
        return Text.assemble((prefix, "bold"), body[len(prefix) :])
    return Text(reasoning)


def show(trace: Trace, console: Console) -> None:
    """Print one run: prompt, rounds, how it ended."""
    run = trace.run
    console.print(Text.assemble((run.prompt, "bold"), f"  ({run.run_id}, model {run.model})"))
    console.print(rounds_table(trace))
    s = trace.summary
    if s is None:
        console.print(Text(f"unfinished: {len(trace.rounds)} rounds on disk", style="yellow"))
    else:
        console.print(
            Text(
                f"stop: {s.stop_reason}; returned round {s.final_round} ({s.select}, score {_score(s.final_score)}), "
                f"best round {s.best_round}, {s.seconds:.1f}s"
            )
        )
