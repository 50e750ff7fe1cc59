"""Views of traces: in the terminal for `milr traces list` and `milr traces show` (rich renderables),
and in a notebook (`rounds_html`, the `_repr_html_` of `Trace` and `MILRResult`).

Text from traces is shown with `Text` objects, never as console markup, so a prompt holding
`[bold]`, `[link=...]` or `[/]` is printed as written rather than interpreted (or raising a markup
error). `Text` does not strip ANSI escapes, so every piece of trace text also goes through
`terminal_text`, which shows control characters as visible escapes (`\\x1b[31m`, `\\x00`).
The notebook view is built from the report's pieces (`milr.traces.report`): the same escaping (every
string redacted, then HTML-escaped) and the same image embedding (base64 PNG, read only from inside
the run folder)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from milr.traces.reader import LoadedRound, Trace

# C0 controls but tab and newline, DEL, C1 controls (8-bit CSI included), Unicode bidi overrides and
# isolates (they reorder what the terminal shows), and the line/paragraph separators.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def terminal_text(text: object, *, newlines: bool = True) -> str:
    """`text` safe for a terminal: every control character (the ESC of an ANSI sequence, NUL, a
    carriage return, C1, bidi overrides) is replaced by its visible escape, so `"\\x1b[31m"` prints
    as those eight characters. Newlines and tabs stay when `newlines`, else they become spaces.
    This does not escape rich markup: put the result in a `Text`, never in a markup string."""
    text = str(text)
    if not newlines:
        text = text.replace("\n", " ").replace("\t", " ")
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def _text(value: object, style: str = "", *, newlines: bool = False) -> Text:
    return Text(terminal_text(value, newlines=newlines), style=style)


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def list_table(folder: str | Path) -> Table:
    """One row per run under `folder`, oldest first: run, prompt, rounds, final score, stop reason."""
    table = Table(title=_text(f"runs in {Path(folder).name}/"), title_justify="left")
    for col in ("run", "prompt", "rounds", "final score", "stop reason"):
        table.add_column(col, overflow="fold")
    for info in Trace.scan(folder):
        if info.run is None:
            table.add_row(_text(info.path.name), _text(f"unreadable: {info.error}", "red"), "-", "-", "-")
            continue
        s = info.summary
        table.add_row(
            _text(info.run.run_id),
            _text(info.run.prompt),
            str(info.rounds),
            _score(s.final_score) if s else "-",
            _text(s.stop_reason) if s else Text("unfinished", style="yellow"),
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
            _text(r.modality + (" (prefix changed)" if r.text_prefix_changed else "")),
            _score(r.score),
            _critics_text(r),
            _reasoning_text(r.reasoning, r.text_prefix),
        )
    return table


def _critics_text(r) -> Text:
    text = Text()
    for i, c in enumerate(r.critiques):
        text.append(("\n" if i else "") + terminal_text(f"{c.critic}: {_score(c.score)}", newlines=False))
        if c.error:
            text.append(" " + terminal_text(c.error, newlines=False), style="red")
    return text


def _reasoning_text(reasoning: str, prefix: str) -> Text:
    prefix, body = prefix.strip(), reasoning.lstrip()
    if prefix and body.startswith(prefix):
        return Text.assemble((terminal_text(prefix), "bold"), terminal_text(body[len(prefix) :]))
    return Text(terminal_text(reasoning))


def show(trace: Trace, console: Console) -> None:
    """Print one run: prompt, rounds, how it ended."""
    run = trace.run
    console.print(
        Text.assemble(
            (terminal_text(run.prompt, newlines=False), "bold"),
            terminal_text(f"  ({run.run_id}, model {run.model})", newlines=False),
        )
    )
    console.print(rounds_table(trace))
    s = trace.summary
    if s is None:
        console.print(Text(f"unfinished: {len(trace.rounds)} rounds on disk", style="yellow"))
    else:
        console.print(
            _text(
                f"stop: {s.stop_reason}; returned round {s.final_round} ({s.select}, score {_score(s.final_score)}), "
                f"best round {s.best_round}, {s.seconds:.1f}s"
            )
        )


# ----------------------------------------------------------------------------- notebook
def rounds_html(
    rounds: Sequence[LoadedRound], *, title: str, returned: int | None, best: int | None, status: str
) -> str:
    """A run as notebook HTML (`templates/notebook.html`): `title` (the prompt), `status` (how it
    ended), one image per round with its score (per-critic scores on hover), the `returned` round
    framed and the `best` one marked, and the returned round's reasoning (the last round's while a
    run is unfinished). Text is escaped by the template, images embedded as the report embeds them."""
    from milr.traces.html import fmt_score, render
    from milr.traces.report import image_src, reasoning_html

    figures = []
    for r in rounds:
        src, missing = image_src(r)
        hover = "; ".join(f"{c.critic} {fmt_score(c.score)}" for c in r.critiques)
        figures.append({"round": r.round, "src": src, "missing": missing, "score": r.score, "hover": hover,
                        "returned": r.round == returned, "best": r.round == best})  # fmt: skip
    shown = next((r for r in rounds if r.round == returned), rounds[-1] if rounds else None)
    return render(
        "notebook.html",
        title=title,
        status=status,
        returned=returned,
        best=best,
        figures=figures,
        shown=None if shown is None else shown.round,
        reasoning=reasoning_html(shown.reasoning, shown.text_prefix) if shown is not None else "",
    ).strip()
