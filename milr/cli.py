"""The `milr` command: run, resume, traces, bench.

`milr run "PROMPT"` uses the packaged ShapesWorld model and its exact oracle unless told otherwise,
so it works offline on any machine. Critics are chosen by name (`--critic gpt4o:0.5,detector:0.5`);
the name → constructor table in `milr.orchestrator.registry` is the only registry milr has. Every
`MILRConfig` field is a flag (`--lambda-text`, `--temperature`, ...), its help and default taken
from the field's description: the config class is the one source of truth.

Streams: results (what a run returned, listings, markdown, `--json` documents) go to stdout, plain
and never wrapped, so they pipe; progress and diagnostics go to stderr. On a terminal the progress
is a live table (elapsed time, ETA), and log lines (warnings and errors unless `-v`) are printed
through the same rich console, so they land above the table, never inside it. Elsewhere progress is
plain lines (none with `--quiet`; `--json-logs` makes stderr JSON log lines only). Every command
that runs something also writes its log, info and up, as JSON lines (redacted) to
`<out>/milr.log`: one file per output folder, not per run, since a batched critic's warning belongs
to every run of its batch.

Failures: an expected one (bad value, missing file, unknown critic, ...) prints one line naming the
cause and the fix and exits 2; anything else prints one line and exits 1 (`--debug` shows the
traceback); Ctrl-C says how to resume and exits 130. Text that comes from users or models (prompts,
reasoning, run names, critic errors) reaches the terminal only as `rich.text.Text` or plain text
passed through `terminal_text`: never parsed as markup, control characters shown as visible escapes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import sys
import time
import traceback
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path

import structlog
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from milr import __version__
from milr.config import PLACEMENT_FIELDS, ConfigError, MILRConfig
from milr.log import LEVELS, DeferredFileHandler, add_handler, configure_logging, event_formatter, remove_handlers
from milr.orchestrator.registry import CRITICS, JUDGES, build_critics, build_model, parse_critic_list

log = structlog.get_logger(__name__)

console = Console(stderr=True)  # progress and diagnostics
stdout = Console()  # tables of results (trace listings, one run's rounds); plain lines go through `_out`
DEFAULT_BATCH = 16  # runs per decode: batching pays on a CPU too (4.2x images/s at 16 on ShapesWorld)
REASONING_CHARS = 300  # reasoning shown per table cell, then "…" (the whole of it: `milr traces show`)
RUN_LOG = "milr.log"  # <out>/milr.log
# Failures the user can fix: one line with the cause (and the fix, which the messages carry), exit 2.
# What a user can fix: bad values and files (a critic that cannot work is a ValueError too), missing
# weights or extras.
EXPECTED = (ConfigError, ValueError, OSError, ImportError)
EXIT_EXPECTED, EXIT_UNEXPECTED, EXIT_INTERRUPTED = 2, 1, 130


def _safe(text: object, *, newlines: bool = False) -> str:
    """User or model text made safe for the terminal (see `milr.traces.views.terminal_text`).
    Imported here: the traces package loads torch, and `milr --help` must not."""
    from milr.traces.views import terminal_text

    return terminal_text(text, newlines=newlines)


def _text(text: object, style: str = "") -> Text:
    return Text(_safe(text), style=style)


def _out(text: str) -> None:
    """Human output on stdout: plain text (no markup, no wrapping at any width, so a path stays on
    one line in a pipe), control characters escaped."""
    sys.stdout.write(_safe(text, newlines=True) + "\n")
    sys.stdout.flush()


def _out_json(data: object) -> None:
    """`--json`: one JSON document on stdout (ASCII: no byte of it can act on a terminal)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


class Interrupted(Exception):
    """Ctrl-C during runs: the trace folders to resume, and how many runs had finished or not started."""

    def __init__(self, unfinished: list[str], finished: int, not_started: int):
        super().__init__(f"interrupted: {len(unfinished)} runs unfinished, {finished} finished, {not_started} queued")
        self.unfinished, self.finished, self.not_started = unfinished, finished, not_started


def _int_at_least(low: int):
    """An argparse type: an integer >= `low`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {text!r}")
        return value

    return parse


_positive_int, _nonnegative_int = _int_at_least(1), _int_at_least(0)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0, got {text!r}")
    return value


# --------------------------------------------------------------------------- progress
def _clock(seconds: float) -> str:
    """12 → "0:12", 3725 → "1:02:05"."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class RunProgress:
    """Elapsed time and an ETA for `total` runs of at most `max_rounds` rounds each, from the events.

    The ETA is an upper bound ("ETA ≤"): it assumes every unfinished run uses all its rounds, at the
    pace of the rounds finished so far in this process, while a run may stop at its threshold."""

    def __init__(self, total: int, max_rounds: int, clock: Callable[[], float] = time.monotonic):
        self.total, self.max_rounds, self.clock = total, max_rounds, clock
        self.started_at = clock()
        self.next_round: dict[str, int] = {}  # run_id -> rounds on disk
        self.finished: set[str] = set()
        self.rounds_here = 0  # rounds finished by this process (a resumed run's earlier ones are not)
        self.running: tuple[str, int] | None = None

    def on_event(self, ev: dict) -> None:
        kind = ev["event"]
        if kind == "run_start":
            self.next_round[ev["run_id"]] = ev["from_round"]
        elif kind == "round_start":
            self.running = (ev["run_id"], ev["round"])
        elif kind == "round_end":
            self.next_round[ev["run_id"]] = ev["round"] + 1
            self.rounds_here += 1
            self.running = None
        elif kind == "done":
            self.finished.add(ev["run_id"])

    @property
    def elapsed(self) -> float:
        return self.clock() - self.started_at

    def rounds_left(self) -> int:
        started = sum(max(0, self.max_rounds - n) for r, n in self.next_round.items() if r not in self.finished)
        return started + max(0, self.total - len(self.next_round)) * self.max_rounds

    def eta(self) -> float | None:
        """Seconds left at most; None before the first round (no pace yet)."""
        if not self.rounds_here:
            return None
        return self.elapsed / self.rounds_here * self.rounds_left()

    def status(self) -> str:
        """`3 of at most 21 rounds · elapsed 0:04 · ETA ≤ 0:19` (a batch: runs done, rounds)."""
        eta = self.eta()
        times = f"elapsed {_clock(self.elapsed)} · ETA {'-' if eta is None else '≤ ' + _clock(eta)}"
        if self.total == 1:
            done = sum(self.next_round.values())
            running = f"round {self.running[1]} running · " if self.running else ""
            return f"{running}{done} of at most {self.max_rounds} rounds · {times}"
        return f"{len(self.finished)} of {self.total} runs done, {self.rounds_here} rounds · {times}"


def _clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, and then visibly so: it ends with "…"."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _progress_table(rows: list[dict], title: str, *, batch: bool | None = None, hidden: int = 0) -> Table:
    """One row per finished round (a single run) or per run with its latest round (a batch). The
    reasoning wraps, and past `REASONING_CHARS` ends in "…"; `hidden` earlier rows are said to be
    left out in the caption."""
    batch = len({ev["run_id"] for ev in rows}) > 1 if batch is None else batch
    caption = f"… {hidden} earlier {'runs' if batch else 'rounds'} not shown" if hidden else None
    table = Table(title=_text(title), title_justify="left", caption=caption, caption_justify="left")
    for col in (("run",) if batch else ()) + ("round", "score", "critics"):
        table.add_column(col, overflow="fold")
    table.add_column("reasoning", overflow="fold")
    for ev in rows:
        critics = ", ".join(f"{k}={_score(v)}" for k, v in ev["critics"].items())
        cells = [str(ev["round"]), _score(ev["score"]), critics, _clip(_safe(ev["reasoning"]), REASONING_CHARS)]
        table.add_row(*map(_text, [ev["run_id"]] if batch else []), *map(_text, cells))
    return table


class _Off:
    """No progress view (`--quiet`, `--json-logs`)."""

    def __init__(self, title: str, progress: RunProgress):
        self.title, self.progress = title, progress

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def on_event(self, ev: dict) -> None:
        pass

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        yield


class _Lines(_Off):
    """Progress as plain lines on stderr (not a terminal): one a round, each with elapsed and ETA."""

    def __enter__(self):
        console.print(_text(self.title), soft_wrap=True)
        return self

    def on_event(self, ev: dict) -> None:
        if ev["event"] == "run_start":
            _started(ev)
        elif ev["event"] == "round_end":
            who = f"run {ev['run_id']} " if self.progress.total > 1 else ""
            critics = ", ".join(f"{k} {_score(v)}" for k, v in ev["critics"].items())
            line = f"{who}round {ev['round']}: score {_score(ev['score'])} ({critics}) · {self.progress.status()}"
            console.print(_text(line), soft_wrap=True)


def _started(ev: dict) -> None:
    first = ev["from_round"]
    what = "started" if not first else f"resumed at round {first}"
    console.print(_text(f"run {ev['run_id']} {what}: {ev['trace_dir']}"), soft_wrap=True)


class _LiveTable(_Off):
    """The live round table on a terminal, redrawn in place with elapsed time and ETA below it.

    Everything else printed meanwhile (run starts, log lines: `ConsoleHandler` prints through this
    same console) goes above it. Only the latest rows that fit the terminal are shown (a table taller
    than the screen cannot be redrawn in place); the whole table is printed once the runs end."""

    def __init__(self, title: str, progress: RunProgress):
        super().__init__(title, progress)
        self.rows: list[dict] = []
        self.batch = progress.total > 1
        self._fit_cache: tuple[tuple, Table] | None = None
        self.live = Live(self, console=console, refresh_per_second=4, transient=True)

    def __enter__(self):
        self.live.start()
        _ACTIVE_VIEWS.append(self)
        return self

    def __exit__(self, *exc) -> None:
        _ACTIVE_VIEWS.remove(self)
        self.live.stop()
        if self.rows:
            console.print(_progress_table(self._shown_rows(), self.title, batch=self.batch))

    def on_event(self, ev: dict) -> None:
        if ev["event"] == "run_start":
            _started(ev)
        elif ev["event"] == "round_end":
            self.rows.append(ev)
        self.live.refresh()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Take the table off the screen while a person is asked something at this terminal (an
        interactive critic); it comes back, redrawn, afterwards."""
        self.live.stop()
        try:
            yield
        finally:
            self.live.start()

    def _shown_rows(self) -> list[dict]:
        return list({ev["run_id"]: ev for ev in self.rows}.values()) if self.batch else self.rows

    def _fitted(self, con: Console, width: int, height: int) -> Table:
        """The table of the latest rows whose rendering fits `height` lines (cached per rows and size)."""
        rows = self._shown_rows()
        key = (len(self.rows), width, height)
        if self._fit_cache and self._fit_cache[0] == key:
            return self._fit_cache[1]
        options = con.options.update(width=width)
        hidden = 0
        while True:
            table = _progress_table(rows[hidden:], self.title, batch=self.batch, hidden=hidden)
            lines = len(con.render_lines(table, options, pad=False))
            if lines <= height or hidden >= len(rows) - 1:
                break
            per_row = max(1, (lines - 4) // max(1, len(rows) - hidden))  # 4: title, borders, header
            hidden = min(len(rows) - 1, hidden + max(1, -(-(lines - height) // per_row)))
        self._fit_cache = (key, table)
        return table

    def __rich_console__(self, con, options):
        height = con.size.height - 2  # the status line, and a line rich keeps for the cursor
        yield self._fitted(con, options.max_width, max(6, height))
        yield Text(self.progress.status(), style="dim")


# Live views on screen now: an interactive critic pauses them while it asks (`pausing`).
_ACTIVE_VIEWS: list[_LiveTable] = []


def pausing(ask: Callable) -> Callable:
    """`ask` (a function that asks a person at this terminal, e.g. the human critic's
    `ask_at_terminal`) wrapped so that the live table leaves the screen while it asks and comes back
    after: a question must never be drawn over by the table."""

    def ask_paused(*args, **kwargs):
        with contextlib.ExitStack() as stack:
            for view in list(_ACTIVE_VIEWS):
                stack.enter_context(view.paused())
            return ask(*args, **kwargs)

    return ask_paused


def _view_kind(args) -> str:
    if args.quiet or args.json_logs:
        return "off"
    return "live" if console.is_terminal else "lines"


def _run_view(args, title: str, progress: RunProgress) -> _Off:
    return {"off": _Off, "lines": _Lines, "live": _LiveTable}[_view_kind(args)](title, progress)


def _drive(events, title: str, total: int, max_rounds: int, args) -> list:
    """Show the events of `total` runs (at most `max_rounds` rounds each) as they come; return what
    each run returned. Ctrl-C becomes `Interrupted` with the trace folders of the runs that started
    and did not finish. An interactive critic asks inside `pausing(...)`, which takes the live view
    off the screen meanwhile."""
    progress = RunProgress(total, max_rounds)
    results = []
    unfinished: dict[str, str] = {}  # run_id -> trace folder, from `run_start` until `done`
    started: set[str] = set()
    view = _run_view(args, title, progress)
    try:
        # closing: an interrupted graph stream releases its run folders. A Ctrl-C the graph swallows is
        # raised again by the stream itself (milr.orchestrator.facade.noted_interrupts).
        with contextlib.closing(events), view:
            for ev in events:
                progress.on_event(ev)
                if ev["event"] == "run_start":
                    unfinished[ev["run_id"]] = ev["trace_dir"]
                    started.add(ev["run_id"])
                    _open_run_log(args, Path(ev["trace_dir"]).parent)
                elif ev["event"] == "done":
                    unfinished.pop(ev["run_id"], None)
                    results.append(ev["result"])
                view.on_event(ev)
    except KeyboardInterrupt:
        raise Interrupted(list(unfinished.values()), len(started) - len(unfinished), total - len(started)) from None
    return results


def _result_json(result) -> dict:
    return {
        "run_id": result.trace_dir.name,
        "trace_dir": str(result.trace_dir),
        "report": str(result.trace_dir / "report.html"),
        "stop_reason": result.stop_reason,
        "final_round": result.final_round,
        "best_round": result.best_round,
        "score": result.score,
        "rounds": len(result.rounds),
        "seconds": result.seconds,
    }


def _show_results(results: list, args) -> None:
    """What each run returned, on stdout: two lines a run, or one `--json` document."""
    if args.json:
        _out_json({"runs": [_result_json(r) for r in results]})
        return
    for result in results:
        _out(
            f"done: {result.stop_reason}, returned round {result.final_round} (score {_score(result.score)}), "
            f"{len(result.rounds)} rounds in {result.seconds:.1f}s"
        )
        _out(f"trace: {result.trace_dir}  report: {result.trace_dir / 'report.html'}")


def _unscored(results: list) -> int:
    """Say which runs no critic scored in any round (every verdict abstained: a missing key, a dead
    server); the exit status, so that such a run never passes for a success."""
    failed = [r for r in results if r.rounds and all(rec.score is None for rec in r.rounds)]
    for result in failed:
        errors = [c.error for rec in result.rounds for c in rec.critiques if c.error]
        why = f" (first error: {errors[0]})" if errors else ""
        _error(
            f"run {result.trace_dir.name}: no critic scored any of its {len(result.rounds)} rounds{why}; "
            "fix the critic (API key, --judge-base-url, weights) and run again"
        )
    return EXIT_EXPECTED if failed else 0


# --------------------------------------------------------------------------- logs
def _stderr_level(args) -> int:
    """What stderr shows: --log-level, else --quiet (errors), -v (info) / -vv (debug), else warnings
    (info for --json-logs, which asks for the log itself)."""
    if args.log_level:
        return logging.getLevelName(args.log_level.upper())
    if args.quiet:
        return logging.ERROR
    if args.verbose:
        return logging.DEBUG if args.verbose > 1 else logging.INFO
    return logging.INFO if args.json_logs else logging.WARNING


def _configure_logs(args) -> None:
    """stderr: log lines through the progress console (or JSON with --json-logs); commands that run
    something also keep `<out>/milr.log`, opened once their output folder exists."""
    level = _stderr_level(args)
    configure_logging(json=args.json_logs, level=level, console=console)
    args.run_log = None
    if args.func in (cmd_run, cmd_resume, cmd_bench):
        handler = DeferredFileHandler()
        handler.setFormatter(event_formatter("file"))
        args.run_log = add_handler(handler, min(level, logging.INFO))


def _open_run_log(args, folder: Path) -> None:
    """Start writing the command's log lines (those logged so far first) to `<folder>/milr.log`."""
    handler = getattr(args, "run_log", None)
    if handler is None or handler.path is not None:
        return
    try:
        handler.open(Path(folder) / RUN_LOG)
    except OSError as err:  # a log that cannot be written must not stop a run
        args.run_log = None
        logging.getLogger("milr").removeHandler(handler)
        handler.close()
        log.warning("run_log_unavailable", path=str(Path(folder) / RUN_LOG), error=str(err))


@contextlib.contextmanager
def _library_bars(args) -> Iterator[None]:
    """transformers' loading bars only under the live view: in a pipe or a log file they are noise."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    if was and _view_kind(args) != "live":
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


# --------------------------------------------------------------------------- run / resume
def _prompts_from_args(args) -> list[str]:
    prompts = list(args.prompt)
    if args.prompts:
        path = Path(args.prompts)
        if not path.is_file():
            raise FileNotFoundError(f"--prompts file {path.name!r} does not exist")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"--prompts file {path.name!r} is not UTF-8 text; save it as UTF-8") from None
        prompts += [line.strip() for line in text.splitlines() if line.strip()]
    if not prompts:
        raise ValueError("give a prompt, several prompts, or --prompts FILE (one prompt per line)")
    if args.name and len(prompts) > 1:
        raise ValueError("--name names one run; with several prompts the run ids are generated")
    return prompts


def _terminal_asker() -> Callable:
    """How `--critic human` asks its person: at this terminal, with the live table off the screen."""
    from milr.critics.human import ask_at_terminal

    return pausing(ask_at_terminal)


def cmd_run(args) -> int:
    from milr.orchestrator import MILR

    prompts = _prompts_from_args(args)
    config = _config_from_args(args)
    parse_critic_list(args.critic)  # an unknown critic fails before the model loads
    judge = _judge_options(args, args.critic)
    with _library_bars(args):
        mug = build_model(args.model, config)
    config = config.with_recommended(mug.recommended)
    critics, weights = build_critics(args.critic, mug, context={"judge": judge})
    milr = MILR(mug, critics, config, weights=weights if len(critics) > 1 else None, out=args.out, checkpoint=True,
                max_batch=args.batch, ask=_terminal_asker())  # fmt: skip
    title = f"milr: {prompts[0]}" if len(prompts) == 1 else f"milr: {len(prompts)} prompts, batch {args.batch}"
    names = [args.name] if args.name else None
    results = _drive(milr.stream_batch(prompts, names=names), title, len(prompts), config.steps + 1, args)
    _show_results(results, args)
    return _unscored(results)


def cmd_resume(args) -> int:
    from milr.orchestrator import MILR
    from milr.orchestrator.facade import run_config
    from milr.traces import Trace, TraceWriter

    first = Trace.load(args.run_dir[0])
    for run_dir in args.run_dir:  # a run another process is writing is refused before the model loads
        TraceWriter.check_free(run_dir)
    # run.json's settings, placed on this machine: the placement flags, not the device the run started on
    config = run_config(first, MILRConfig().override(**{name: getattr(args, name) for name in PLACEMENT_FIELDS}))
    critics_text = args.critic or ",".join(f"{c['name']}:{c['weight']}" for c in first.run.critics)
    judge = _judge_options(args, critics_text)
    # The recorded model at its recorded hub revision: the run goes on with the weights it started with.
    revision = {"revision": first.run.model_revision} if first.run.model_revision and not args.model else {}
    with _library_bars(args):
        mug = build_model(args.model or first.run.model, config, **revision)
    critics, weights = build_critics(critics_text, mug, context={"judge": judge})
    milr = MILR(mug, critics, config, weights=weights if len(critics) > 1 else None,
                out=Path(args.run_dir[0]).parent, max_batch=args.batch, ask=_terminal_asker())  # fmt: skip
    title = f"milr resume: {first.run.prompt}" if len(args.run_dir) == 1 else f"milr resume: {len(args.run_dir)} runs"
    events = milr.stream_resume(*args.run_dir)
    results = _drive(events, title, len(args.run_dir), config.steps + 1, args)  # Ctrl-C: run it again
    _show_results(results, args)
    return _unscored(results)


# --------------------------------------------------------------------------- traces
def _trace_info_json(info) -> dict:
    s = info.summary
    return {
        "run_id": info.run.run_id if info.run else info.path.name,
        "path": str(info.path),
        "prompt": info.run.prompt if info.run else None,
        "rounds": info.rounds if info.run else None,
        "final_score": s.final_score if s else None,
        "stop_reason": s.stop_reason if s else None,
        "finished": s is not None,
        "error": None if info.run else str(info.error),
    }


def cmd_traces(args) -> int:
    from milr.traces import Trace, list_table, show, write_report

    if args.action == "list":
        folder = args.path or "traces"
        if args.json:
            _out_json({"folder": str(folder), "runs": [_trace_info_json(i) for i in Trace.scan(folder)]})
        else:
            stdout.print(list_table(folder))
        return 0
    if args.path is None:
        raise ValueError(f"name the run folder: milr traces {args.action} <out>/<run_id>")
    if args.action == "show":
        trace = Trace.load(args.path)
        if args.json:
            _out_json(
                {
                    "run": trace.run.model_dump(mode="json"),
                    "rounds": [r.model_dump(mode="json") for r in trace.rounds],
                    "summary": trace.summary.model_dump(mode="json") if trace.summary else None,
                }
            )
        else:
            show(trace, stdout)
    elif args.action == "report":
        report = write_report(args.path)
        if args.json:
            _out_json({"report": str(report)})
        else:
            _out(f"report: {report}")
    return 0


# --------------------------------------------------------------------------- bench
SHAPES_PER_TAG = 50  # ShapesEval's default size: 50 prompts of each of its tags


SOURCE_FLAGS = {"geneval": "metadata", "t2i": "prompts", "wise": "data"}  # ShapesEval is built in


def _bench_source(args) -> str | None:
    """The benchmark's file: `--metadata`, `--prompts` or `--data`."""
    flag = SOURCE_FLAGS.get(args.dataset)
    return getattr(args, flag) if flag else None


def _per_tag(args) -> int | None:
    return SHAPES_PER_TAG if args.per_tag is None and args.dataset == "shapes" else args.per_tag


def _bench_items(args):
    from milr.bench import datasets

    return datasets.load_benchmark(
        args.dataset, _bench_source(args), category=getattr(args, "category", None), per_tag=_per_tag(args)
    )


def _bench_selection(args) -> dict:
    from milr.bench.runner import describe_selection

    return describe_selection(args.dataset, _bench_source(args), tags=_tags(args), per_tag=_per_tag(args),
                              limit=args.limit, limit_seed=args.limit_seed)  # fmt: skip


def _tags(args) -> list[str] | None:
    return args.tags.split(",") if args.tags else None


class _BenchView:
    """A sweep's progress: a bar with elapsed time and ETA on a terminal (through the console that
    log lines use, so they print above it), about twenty plain lines elsewhere, nothing when quiet."""

    def __init__(self, args, method: str, total: int, clock: Callable[[], float] = time.monotonic):
        self.kind, self.method, self.total, self.clock = _view_kind(args), method, total, clock
        self.done = self.correct = 0
        self.started_at = clock()
        self.every = max(1, total // 20)
        self.bar = None
        if self.kind == "live":
            self.bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[score]}"),
                TextColumn("elapsed"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=console,
            )
            self.task = self.bar.add_task(_safe(f"bench {method}"), total=total, score="")

    def __enter__(self):
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()

    def line(self) -> str:
        elapsed = self.clock() - self.started_at
        eta = elapsed / self.done * (self.total - self.done) if self.done else None
        accuracy = f", correct {self.correct / self.done:.3f}" if self.done else ""
        return (
            f"bench {self.method}: {self.done}/{self.total} records{accuracy} · elapsed {_clock(elapsed)} · "
            f"ETA {'-' if eta is None else _clock(eta)}"
        )

    def on_record(self, record: dict) -> None:
        self.done += 1
        self.correct += bool(record["correct"])
        if self.bar is not None:
            self.bar.update(self.task, advance=1, score=f"correct {self.correct / self.done:.3f}")
        elif self.kind == "lines" and (self.done % self.every == 0 or self.done == self.total):
            console.print(_text(self.line()), soft_wrap=True)


def _pairs_left(items, samples: int, out: Path) -> int:
    """(item, sample) pairs of the sweep not yet in `out/results.jsonl` (a resumed sweep skips them)."""
    from milr.bench.runner import finished_keys

    done = finished_keys(out / "results.jsonl")
    return sum((it.key, s) not in done for it in items for s in range(samples))


def cmd_bench_compare(args) -> int:
    """Two or more bench folders: per-tag accuracy, wins and losses, the prompts they disagree on."""
    from milr.bench.report import compare_markdown
    from milr.bench.summary import load_records, summarize

    if len(args.dirs) < 2:
        raise ValueError("milr bench compare needs two or more bench folders; for one, read its summary.md")
    if args.json:
        _out_json({Path(p).name: summarize(load_records(p)) for p in args.dirs})
    else:
        _out(compare_markdown(args.dirs).rstrip("\n"))  # unwrapped markdown: `> cmp.md` gets the tables
    return 0


def cmd_bench_report(args) -> int:
    """One self-contained index.html over bench folders: per-tag table, curves, a gallery."""
    from milr.bench.report import write_sweep_report

    path = write_sweep_report(args.dirs, args.out)
    if args.json:
        _out_json({"report": str(path)})
    else:
        _out(f"report: {path}")
    return 0


def cmd_bench(args) -> int:
    from milr.bench.distributed import BenchSetup
    from milr.bench.runner import select_items
    from milr.bench.summary import write_summary

    items = select_items(_bench_items(args), tags=_tags(args), limit=args.limit, limit_seed=args.limit_seed,
                         shard=args.shard)  # fmt: skip
    eval_critic, context = args.eval_critic, None
    if args.dataset == "t2i":
        context = {"category": items[0].tag if items else args.category}
        eval_critic = eval_critic or "t2i_compbench"  # the category's own metric (BLIP-VQA, CLIP, spatial)
    elif args.dataset == "wise":
        context = {"explanations": {it.prompt: it.extra["explanation"] for it in items}}
        eval_critic = eval_critic or "wise"  # WiScore from the GPT-4o judge
    config = _config_from_args(args)
    judge = _judge_options(args, args.critic, eval_critic)
    if judge:
        context = {**(context or {}), "judge": judge}
    setup = BenchSetup(args.model, args.critic, eval_critic, config, context=context)
    out = Path(args.out)
    total = _pairs_left(items, args.samples, out)
    if args.ray:
        from milr.bench.distributed import run_bench_ray

        out.mkdir(parents=True, exist_ok=True)
        _open_run_log(args, out)
        with _BenchView(args, args.method, total) as view:
            results = run_bench_ray(items, setup, args.method, out, n=args.n, samples=args.samples,
                                    curve=args.curve, address=args.ray, workers=args.workers, batch=args.batch,
                                    progress=False, on_record=view.on_record, benchmark=_bench_selection(args),
                                    new_folder=args.new_folder)  # fmt: skip
    else:
        from milr.bench.runner import BenchSpec, run_bench

        with _library_bars(args):
            mug, config, reward, evaluate = setup.build()
        out.mkdir(parents=True, exist_ok=True)
        _open_run_log(args, out)
        spec = BenchSpec(args.method, config, args.n)
        with _BenchView(args, args.method, total) as view:
            results = run_bench(items, mug, spec, reward, evaluate, out, samples=args.samples, curve=args.curve,
                                batch=args.batch, progress=False, on_record=view.on_record,
                                benchmark=_bench_selection(args), new_folder=args.new_folder)  # fmt: skip
    out = results.parent  # `--new-folder` may have chosen a sibling
    summary = write_summary(out)
    if args.json:
        _out_json({"out": str(out), **summary})
    else:
        _out(f"overall {_score(summary['overall'])} over {summary['records']} records; {out}/summary.md")
    return 0


# --------------------------------------------------------------------------- flags from MILRConfig
def _default_text(value: object, order: tuple = ()) -> str:
    """A default as a flag would spell it: 0.03, joint, text,image (a set: in `order`), off."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, frozenset | set | list | tuple):
        rank = {v: i for i, v in enumerate(order)}
        return ",".join(map(str, sorted(value, key=lambda v: (rank.get(v, len(rank)), str(v)))))
    return str(value)


def _comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _without_none(annotation):
    """`X | None` → X (the flag's default None means "not given")."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        kept = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(kept) == 1:
            return kept[0]
    return annotation


def config_flag(name: str, field) -> tuple[str, dict]:
    """The flag of the `MILRConfig` field `name`: its option string and argparse keywords, with the
    field's description as help and its default appended. The flag's own default is None ("not
    given"): a --config file and the model's recommended settings apply under given flags only."""
    annotation = _without_none(field.annotation)
    origin = typing.get_origin(annotation)
    if annotation is bool:
        kwargs: dict = {"action": argparse.BooleanOptionalAction}
    elif origin is typing.Literal:
        kwargs = {"choices": list(typing.get_args(annotation))}
    elif origin in (frozenset, set, list, tuple):
        choices = typing.get_args(_without_none(typing.get_args(annotation)[0]))
        kwargs = {"type": _comma_list, "metavar": ",".join(choices) if choices else "A,B", "order": choices}
    elif annotation in (int, float, str):
        kwargs = {"type": annotation}
    else:
        raise TypeError(f"MILRConfig.{name} ({annotation}) has no CLI flag type; add one in milr.cli.config_flag")
    description = (field.description or "").replace("%", "%%")  # argparse %-formats help
    order = kwargs.pop("order", ())
    default = "" if field.default is None else f" (default: {_default_text(field.default, order)})"
    return "--" + name.replace("_", "-"), {**kwargs, "dest": name, "default": None, "help": description + default}


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "MILR settings (MILRConfig)",
        "A flag overrides a --config file, which overrides the decoding settings a model recommends "
        "(the packaged ShapesWorld model ships its own cfg and reasoning length), which override the defaults shown.",
    )
    g.add_argument("--config", help="TOML or JSON file with MILRConfig fields (default: none)")
    for name, field in MILRConfig.model_fields.items():
        option, kwargs = config_flag(name, field)
        g.add_argument(option, **kwargs)


def _add_placement_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "placement (MILRConfig)",
        "Where this process runs the model, not where the run started; every other setting comes from run.json.",
    )
    for name in PLACEMENT_FIELDS:  # `milr resume` runs where this process runs
        option, kwargs = config_flag(name, MILRConfig.model_fields[name])
        g.add_argument(option, **kwargs)


def _config_from_args(args) -> MILRConfig:
    config = MILRConfig.from_file(args.config) if args.config else MILRConfig()
    return config.override(**{name: getattr(args, name) for name in MILRConfig.model_fields})


def _judge_options(args, *critic_texts: str | None) -> dict | None:
    """`--judge-*` as constructor keywords of the OpenAI-compatible judges (registry `context["judge"]`);
    an option given while no such judge is named is an error rather than silently ignored."""
    options = {
        "model": args.judge_model,
        "base_url": args.judge_base_url,
        "timeout": args.judge_timeout,
        "max_retries": args.judge_retries,
        "deadline": args.judge_deadline,
    }
    options = {k: v for k, v in options.items() if v is not None}
    if not options:
        return None
    named = {name for text in critic_texts if text for name, _ in parse_critic_list(text)}
    if not named & set(JUDGES):
        flags = ", ".join("--judge-" + ("retries" if k == "max_retries" else k.replace("_", "-")) for k in options)
        raise ValueError(
            f"{flags} set the OpenAI-compatible judges ({', '.join(JUDGES)}), but none is among the critics "
            f"({', '.join(sorted(named))}); name one, e.g. --critic gpt4o, or drop the option"
        )
    return options


def _add_judge_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        f"OpenAI-compatible judges ({', '.join(JUDGES)})",
        "The judges read OPENAI_API_KEY, and OPENAI_BASE_URL when no --base-url is given, as the openai client does.",
    )
    g.add_argument("--judge-model", help="model the server is asked for (default: $OPENAI_MODEL for gpt4o, else "
                   "the critic's own: gpt-4o; CodeGoat24/UnifiedReward-qwen-7b; wise: gpt-4o-2024-05-13)")  # fmt: skip
    g.add_argument("--base-url", "--judge-base-url", dest="judge_base_url",
                   help="another OpenAI-compatible server, e.g. http://localhost:8000/v1 (default: $OPENAI_BASE_URL, "
                   "else api.openai.com)")  # fmt: skip
    g.add_argument("--judge-timeout", type=_positive_seconds,
                   help="seconds per request (default: 60; unified 120)")  # fmt: skip
    g.add_argument("--judge-retries", type=_nonnegative_int,
                   help="retries on 429/5xx/connection errors (default: 2)")  # fmt: skip
    g.add_argument("--judge-deadline", type=_positive_seconds,
                   help="seconds for a whole judge call, retries included; past it the judge abstains "
                   "(default: 120; unified 240)")  # fmt: skip


# --------------------------------------------------------------------------- parser
_NO_DEFAULT = (argparse._HelpAction, argparse._VersionAction)
_SWITCHES = (argparse._StoreTrueAction, argparse._CountAction)


class _HelpFormatter(argparse.HelpFormatter):
    """Every flag's help says its default: "(default: X)" is appended where the help does not
    already say it (a switch: off)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if not action.option_strings or action.required or "default" in text or isinstance(action, _NO_DEFAULT):
            return text
        if isinstance(action, _SWITCHES) or action.default is argparse.SUPPRESS:
            return f"{text} (default: off)"
        return f"{text} (default: %(default)s)"


def _global_flags(suppress: bool) -> argparse.ArgumentParser:
    """Flags every command takes, before or after the subcommand. On the subcommands their default
    is SUPPRESS: a subcommand not given a flag leaves the value parsed before it alone."""

    def default(value):
        return argparse.SUPPRESS if suppress else value

    parent = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    g = parent.add_argument_group("output and logging (before or after the subcommand)")
    g.add_argument("-q", "--quiet", action="store_true", default=default(False),
                   help="no progress and no log lines but errors on stderr; results still go to stdout")  # fmt: skip
    g.add_argument("-v", "--verbose", action="count", default=default(0),
                   help="info log lines on stderr too (-vv: debug)")  # fmt: skip
    g.add_argument("--log-level", type=str.lower, choices=LEVELS, default=default(None),
                   help="least level of the log lines on stderr (default: warning; info with --json-logs); "
                   "overrides -v and --quiet")  # fmt: skip
    g.add_argument("--json-logs", action="store_true", default=default(False),
                   help="stderr carries JSON log lines (info and up) and no progress view")  # fmt: skip
    g.add_argument("--json", action="store_true", default=default(False),
                   help="print what the command returns as one JSON document on stdout, instead of text")  # fmt: skip
    g.add_argument("--debug", action="store_true", default=default(False), help="show the traceback of a failure")
    g.add_argument("--version", action="version", version=f"milr {__version__}")
    return parent


def _subparser(sub, name: str, **kw) -> argparse.ArgumentParser:
    return sub.add_parser(
        name, parents=[_global_flags(suppress=True)], formatter_class=_HelpFormatter, allow_abbrev=False, **kw
    )


# --------------------------------------------------------------------------- studies
def cmd_study(args) -> int:
    """Run (or finish) a reward-model study from its SPEC.toml; every finished sweep is reused."""
    from milr.studies.report import accuracy_rows
    from milr.studies.study import run_study

    with _library_bars(args):
        result = run_study(args.spec, args.out, progress=_view_kind(args) == "live")
    rows, ran = accuracy_rows(result.data), [s for s in result.sweeps if s.ran]
    if args.json:
        _out_json({"study": str(result.path), "sweeps": len(result.sweeps), "ran": len(ran), "accuracy": rows})
        return 0
    _out(f"study {result.data['name']}: {len(result.sweeps)} sweeps, {len(ran)} ran, "
         f"{len(result.sweeps) - len(ran)} reused from disk, {result.data['wall_seconds']:.1f} s")  # fmt: skip
    for row in rows:
        _out(f"  {row['critic']:<24} {row['method']:<12} overall {_score(row['overall'])}")
    _out(f"report: {result.path / 'study.md'}  {result.path / 'study.html'}")
    return 0


def cmd_rescore(args) -> int:
    """Score the round images of finished runs with other critics; nothing is regenerated."""
    from milr.studies.rescore import rescore

    with _library_bars(args):
        results = rescore(args.dirs, args.critic, batch=args.batch, model=args.model)
    if args.json:
        _out_json([{"critic": r.critic, "runs": r.runs, "scored": r.scored, "reused": r.reused,
                    "unfinished": r.unfinished, "seconds": r.seconds} for r in results])  # fmt: skip
        return 0
    for r in results:
        skipped = f", {r.unfinished} unfinished runs skipped" if r.unfinished else ""
        _out(f"{r.critic}: {r.scored} images scored, {r.reused} already on disk, {r.runs} runs{skipped}, "
             f"{r.seconds:.2f} s")  # fmt: skip
    return 0


def _add_study_parsers(sub) -> None:
    study = _subparser(sub, "study", help="run a reward-model study from a SPEC.toml (resumable)")
    study.add_argument("spec", help="the study's SPEC.toml (see examples/shapes_study.toml)")
    study.add_argument("--out", help="study folder (default: studies/<name>); run again to finish or reuse it")
    study.set_defaults(func=cmd_study)

    rescore = _subparser(sub, "rescore", help="score finished runs' round images with other critics")
    rescore.add_argument("dirs", nargs="+", metavar="DIR", help="trace, bench or study folders")
    rescore.add_argument(
        "--critic", required=True, help="critic name(s), NAME[,NAME]: each is scored on its own (required)"
    )
    rescore.add_argument("--batch", type=_positive_int, default=32, help="images per critic call")
    rescore.add_argument("--model", help="model for critics that need one (self) (default: the runs' model)")
    rescore.set_defaults(func=cmd_rescore)


def _add_bench_parser(sub) -> None:
    bench = _subparser(sub, "bench", help="benchmark sweeps (resumable) and comparisons")
    kinds = bench.add_subparsers(dest="dataset", required=True)
    for name, help_ in (("geneval", "GenEval"), ("t2i", "T2I-CompBench"), ("wise", "WISE"), ("shapes", "ShapesEval")):
        p = _subparser(kinds, name, help=help_)
        if name == "geneval":
            p.add_argument("--metadata", required=True, help="GenEval evaluation_metadata.jsonl (required)")
        elif name == "t2i":
            p.add_argument("--prompts", required=True, help="T2I-CompBench {category}_val.txt (required)")
            p.add_argument("--category", help="category of the prompts (default: taken from the file name)")
        elif name == "wise":
            p.add_argument("--data", required=True, help="WISE data/*.json (required; not shipped: no licence)")
        p.add_argument("--per-tag", type=_positive_int, default=None,
                       help=f"the first N prompts of each tag (default: all; shapes: {SHAPES_PER_TAG})")  # fmt: skip
        p.add_argument("--method", choices=["baseline", "milr", "best-of-n"], default="milr", help="what is measured")
        p.add_argument("--n", type=int, help="best-of-N budget (default: steps + 1)")
        p.add_argument("--model", default="shapes", help="'shapes' (packaged), 'tiny' (random), hub id or folder")
        p.add_argument("--critic", default="shapes", help="reward critic(s), NAME[:WEIGHT],...")
        p.add_argument("--eval-critic", help="evaluation critic(s) (default: the reward critic; "
                       "t2i: t2i_compbench, the category's metric; wise: wise, WiScore)")  # fmt: skip
        p.add_argument("--out", required=True, help="result folder (required; a sweep run again continues it)")
        p.add_argument("--limit", type=_positive_int,
                       help="at most this many prompts, spread evenly over the tags (default: all)")  # fmt: skip
        p.add_argument("--limit-seed", type=int, default=0, help="seed of the prompts --limit draws")
        p.add_argument("--new-folder", action="store_true",
                       help="if --out holds a sweep with other settings, continue in OUT-2, OUT-3, ... instead "
                       "of refusing")  # fmt: skip
        p.add_argument("--tags", help="comma-separated tags/categories (default: all)")
        p.add_argument("--samples", type=int, default=1, help="samples per prompt")
        p.add_argument("--shard", help="i/n: run every n-th prompt from i (default: all prompts)")
        p.add_argument("--curve", action="store_true", help="evaluate every round (scaling curve)")
        p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                       help="run prompts as Ray tasks (pip install 'milr[ray]'); no ADDRESS: a local Ray "
                       "(default: no Ray, this process)")  # fmt: skip
        p.add_argument("--workers", type=int, help="Ray workers (default: one per GPU, else one per CPU)")
        p.add_argument("--batch", type=_positive_int, default=DEFAULT_BATCH,
                       help="runs per decode (best-of-n: images per decode)")  # fmt: skip
        _add_config_flags(p)
        _add_judge_flags(p)
        p.set_defaults(func=cmd_bench)
    cmp_ = _subparser(kinds, "compare", help="bench folders side by side: per tag, wins, losses (markdown on stdout)")
    cmp_.add_argument("dirs", nargs="+", metavar="DIR", help="two or more result folders of `milr bench`")
    cmp_.set_defaults(func=cmd_bench_compare)
    report = _subparser(kinds, "report", help="one self-contained index.html over bench folders (gallery, curves)")
    report.add_argument("dirs", nargs="+", metavar="DIR", help="result folders of `milr bench`")
    report.add_argument("--out", help="the report file (default: index.html in the folder holding every DIR; "
                        "every DIR must be inside its folder)")  # fmt: skip
    report.set_defaults(func=cmd_bench_report)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="milr",
        description="Test-time latent reasoning for image generation.",
        parents=[_global_flags(suppress=False)],
        formatter_class=_HelpFormatter,
        allow_abbrev=False,  # `--json` must never be read as `--json-logs`; a new flag must not change old ones
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = _subparser(sub, "run", help="run MILR on one prompt or a batch of prompts")
    run.add_argument("prompt", nargs="*", help="one or more prompts")
    run.add_argument("--prompts", help="file with one prompt per line, added to the prompts given (default: none)")
    run.add_argument("--batch", type=_positive_int, default=DEFAULT_BATCH,
                     help="runs that share each decode; a stopped run's slot is refilled")  # fmt: skip
    run.add_argument("--model", default="shapes", help="'shapes' (packaged), 'tiny' (random), hub id or folder")
    run.add_argument("--critic", default="shapes", help=f"NAME[:WEIGHT],... from {', '.join(CRITICS)}")
    run.add_argument("--name", help="run name, sanitised (default: a generated id: time, prompt, hash)")
    run.add_argument("--out", default="traces", help="folder for the trace folders and milr.log")
    _add_config_flags(run)
    _add_judge_flags(run)
    run.set_defaults(func=cmd_run)

    resume = _subparser(sub, "resume", help="continue killed runs from their last finished round")
    resume.add_argument("run_dir", nargs="+", help="one or more run folders (of one parent folder)")
    resume.add_argument("--batch", type=_positive_int, default=DEFAULT_BATCH, help="runs that share each decode")
    resume.add_argument("--model", help="model to load (default: the one in run.json)")
    resume.add_argument("--critic", help="critics (default: the ones in run.json)")
    _add_placement_flags(resume)
    _add_judge_flags(resume)
    resume.set_defaults(func=cmd_resume)

    traces = _subparser(sub, "traces", help="list, show or report traces")
    traces.add_argument("action", choices=["list", "show", "report"])
    traces.add_argument(
        "path", nargs="?", help="folder of runs (list; default: traces) or a run folder (show, report)"
    )
    traces.set_defaults(func=cmd_traces)
    _add_bench_parser(sub)
    _add_study_parsers(sub)
    return parser


def _one_line(err: BaseException, limit: int | None = None) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, OSError) and err.filename is not None and err.strerror:  # raised by the OS, not by milr
        text = f"{err.strerror}: {str(err.filename)!r}; check the path and its permissions"
    return text if limit is None or len(text) <= limit else text[:limit] + "..."


def _error(message: str) -> None:
    console.print(Text.assemble(("error: ", "bold red"), _safe(message)), soft_wrap=True)  # one line, never wrapped


def _note(message: str) -> None:
    console.print(Text(_safe(message), style="yellow"), soft_wrap=True)


def _interrupted(args, err: Interrupted | None) -> str:
    """What Ctrl-C left, and the command that continues it."""
    if args.func is cmd_bench:
        return "interrupted: finished records are kept; run the same `milr bench` command again to continue"
    if args.func is cmd_study:
        return "interrupted: finished sweeps are kept; run the same `milr study` command again to continue"
    if args.func is cmd_resume:
        return f"interrupted: finished rounds are on disk; continue with: milr resume {' '.join(args.run_dir)}"
    if args.func is not cmd_run:
        return "interrupted"
    if err is None or not (err.unfinished or err.finished):
        return "interrupted before any run started; nothing to resume"
    parts = [f"{err.finished} runs finished"] if err.finished else []
    if err.unfinished:
        parts.append(f"finished rounds are on disk; resume with: milr resume {' '.join(err.unfinished)}")
    if err.not_started:
        n = err.not_started
        parts.append(f"{n} queued prompt{'s' * (n != 1)} had not started: run {'them' if n != 1 else 'it'} again")
    return "interrupted: " + "; ".join(parts)


def _run_command(args) -> int:
    try:
        return args.func(args)
    except Interrupted as err:
        _note(_interrupted(args, err))
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        _note(_interrupted(args, None))
        return EXIT_INTERRUPTED
    except EXPECTED as err:
        if args.debug:
            traceback.print_exc()
        _error(_one_line(err))
        return EXIT_EXPECTED
    except Exception as err:
        if args.debug:
            traceback.print_exc()
        hint = "" if args.debug else "; run with --debug for the traceback"
        _error(f"unexpected {type(err).__name__}: {_one_line(err, 300)} (a bug or an unhandled case{hint})")
        return EXIT_UNEXPECTED


def main(argv: list[str] | None = None) -> int:
    """The `milr` command. Returns the exit status: 0, 2 (a failure the user can fix, one line),
    1 (an unexpected failure: one line, the traceback with --debug), 130 (Ctrl-C)."""
    args = build_parser().parse_args(argv)
    _configure_logs(args)
    try:
        return _run_command(args)
    finally:  # called in-process (tests, notebooks): leave the `milr` logger as the library has it
        remove_handlers()
        logging.getLogger("milr").propagate = True


if __name__ == "__main__":
    sys.exit(main())
