"""A clean terminal and a silent library.

- From Python, milr prints nothing: the README's quick start prints only the user's own prints,
  structlog goes through stdlib logging under the `milr` logger, whose levels work.
- On a terminal (a real one: a tmux pane), the live table of `milr run` never has a log line inside
  it, and is never left behind in pieces: log lines print above it, through the same console.
- Log lines for a terminal show control characters as escapes; `<out>/milr.log` keeps the run's
  log as JSON lines, redacted.
- The live table fits the terminal and says what it leaves out; the ETA is an upper bound from the
  pace so far; an interactive question pauses the live view.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import structlog
from rich.console import Console

from milr import cli
from milr.cli import RunProgress, _BenchView, _clock, _LiveTable, _progress_table, main, pausing
from milr.config import MILRConfig
from milr.critics.base import Critique
from milr.log import ConsoleHandler, configure_logging, remove_handlers
from milr.orchestrator import MILR

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--model", "tiny", "--critic", "self", "--max-reasoning-tokens", "8"]
BORDERS = "┏┃┡│└"  # the lines of rich's table (box.HEAVY_HEAD): top, header, header rule, rows, bottom


def quick_start_snippet() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start (Python)", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def run_python(code: str, cwd: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )


# --------------------------------------------------------------------------- a silent library
@pytest.mark.slow
def test_the_quick_start_prints_only_what_the_user_prints(tmp_path):
    """The README snippet, as written, in a fresh process: stdout holds the user's prints and
    nothing else (no `round_end` line), stderr is empty (no log line, no loading bar)."""
    snippet = quick_start_snippet()
    done = run_python(snippet, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr == ""
    assert not re.search(r"round_end|run_done|\[info|level", done.stdout), done.stdout[:2000]
    lines = done.stdout.splitlines()
    score, final_round, stop_reason, trace_dir = lines[0].split()  # print(result.score, ..., result.trace_dir)
    float(score), int(final_round)
    assert stop_reason in ("threshold", "steps") and trace_dir.startswith("traces/")
    rounds = lines[1 : 2 + int(final_round)]  # print(r.round, r.score, r.reasoning), at least to the returned round
    assert [int(line.split()[0]) for line in rounds] == list(range(len(rounds)))
    for line in lines[1:]:
        number, score_, *rest = line.split(" ", 2)
        assert number.isdigit() and re.fullmatch(r"[0-9.]+|None", score_), line


def test_importing_milr_leaves_an_applications_structlog_alone(tmp_path):
    code = (
        "import structlog, logging\n"
        "structlog.configure(processors=[structlog.processors.KeyValueRenderer()])\n"
        "before = structlog.get_config()['processors']\n"
        "import milr\n"
        "assert structlog.get_config()['processors'] is before\n"
        "print(type(logging.getLogger('milr').handlers[0]).__name__)\n"
    )
    done = run_python(code, tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (0, "NullHandler\n", "")


class Fixed:
    name = "fixed"

    def __call__(self, image, prompt, spec=None):
        return Critique(critic=self.name, score=0.25, rationale="fine")


@pytest.fixture
def milr_records():
    """The records the `milr` logger hands to its handlers, as an application would collect them."""
    remove_handlers()  # what an earlier in-process CLI call or configure_logging left
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("milr")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)


@pytest.mark.parametrize("level", [logging.INFO, logging.WARNING])
def test_the_milr_logger_level_decides_what_reaches_handlers(mug, tmp_path, capsys, milr_records, level):
    logging.getLogger("milr").setLevel(level)
    milr = MILR(mug, Fixed(), MILRConfig(steps=1, max_reasoning_tokens=8), out=tmp_path)
    milr("a photo of a cat")
    events = [r.msg["event"] for r in milr_records]
    if level == logging.INFO:
        assert events.count("round_end") == 2 and "run_done" in events
        round_end = next(r for r in milr_records if r.msg["event"] == "round_end")
        assert round_end.name == "milr.nodes.critique" and round_end.levelname == "INFO"
        assert round_end.getMessage().startswith("round_end run_id=")  # a plain Formatter shows key=value
    else:
        assert "round_end" not in events
    assert capsys.readouterr() == ("", "")  # the NullHandler: nothing printed either way


# --------------------------------------------------------------------------- terminal lines
ESCAPES = "a \x1b[31mred\x1b[0m cat \x1b]8;;http://evil.example\x07here\x1b]8;;\x07 \x1b[2J \x00 \r \u202e [bold]x[/]"
RAW = ("\x1b[31m", "\x1b]8", "\x1b[2J", "\x07", "\x00", "\r", "\u202e")


@pytest.fixture
def restore_logging():
    saved = structlog.get_config()
    yield
    remove_handlers()
    logging.getLogger("milr").propagate = True
    structlog.configure(**saved)


def test_terminal_log_lines_show_escapes_never_act_on_the_terminal(capsys, restore_logging):
    """Issue 12: a server's reply or a prompt in a warning can neither colour, link, clear nor
    reorder the terminal, through a rich console (the CLI) or straight on stderr."""
    log = structlog.get_logger("milr.test")
    screen = io.StringIO()
    configure_logging(json=False, console=Console(file=screen, force_terminal=True, color_system="truecolor"))
    log.warning("judge_said", error=ESCAPES)
    configure_logging(json=False)  # no console: plain lines on stderr
    log.warning("judge_said", error=ESCAPES)
    for text in (screen.getvalue(), capsys.readouterr().err):
        assert "judge_said" in text and "\\x1b[31mred\\x1b[0m" in text and "[bold]x[/]" in text
        assert not [raw for raw in RAW if raw in text]


def test_console_lines_are_printed_through_the_given_console_as_text_not_markup(restore_logging):
    console = Console(file=io.StringIO(), width=300, record=True)
    handler = configure_logging(json=False, level="warning", console=console)
    assert isinstance(handler, ConsoleHandler)
    structlog.get_logger("milr.x").warning("odd", text="[link=file:///etc/passwd]x[/link] [/]", seconds=0.123456)
    structlog.get_logger("milr.x").info("not_shown")
    assert console.export_text() == "warning: odd text='[link=file:///etc/passwd]x[/link] [/]' seconds=0.1235\n"


def test_the_run_log_is_json_lines_redacted_and_a_symlink_is_not_followed(tmp_path, capsys, monkeypatch):
    key, env_key = "sk-proj-" + "Ab3" * 12, "env-" + "Zq9" * 10
    monkeypatch.setenv("MILR_TEST_API_KEY", env_key)
    out = tmp_path / "runs"
    prompt = f"a photo of a cat {key} {env_key}"
    assert main(["run", prompt, *TINY, "--steps", "1", "--out", str(out), "--name", "r"]) == 0
    lines = [json.loads(line) for line in (out / "milr.log").read_text().splitlines()]
    events = [e["event"] for e in lines]
    assert events.count("round_end") == 2 and "secret_redacted" in events and "tiny_model" in events
    assert {e["run_id"] for e in lines if e["event"] == "round_end"} == {"r"}
    assert all(e["pid"] == os.getpid() and e["timestamp"] for e in lines)
    text = (out / "milr.log").read_text()
    assert key not in text and "Ab3Ab3" not in text and "Zq9Zq9" not in text.lower().replace("zq9", "Zq9")
    assert "warning: secret_redacted" in capsys.readouterr().err  # stderr shows the warnings

    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("untouched\n")
    other = tmp_path / "other"
    other.mkdir()
    (other / "milr.log").symlink_to(elsewhere)
    assert main(["run", "a photo of a dog", *TINY, "--steps", "0", "--out", str(other)]) == 0
    assert elsewhere.read_text() == "untouched\n"
    assert "run_log_unavailable" in capsys.readouterr().err


def test_quiet_prints_nothing_on_stderr_and_json_logs_only_json(tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["run", "a photo of a cat", *TINY, "--steps", "1", "--out", str(out), "--quiet"]) == 0
    std, err = capsys.readouterr()
    assert err == "" and std.startswith("done: ")
    assert main(["--json-logs", "run", "a photo of a dog", *TINY, "--steps", "1", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    events = [json.loads(line)["event"] for line in err.splitlines()]
    assert events.count("round_end") == 2 and "tiny_model" in events


def test_plain_progress_lines_off_a_terminal(tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["run", "a photo of a cat", *TINY, "--steps", "1", "--out", str(out), "--name", "r"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert "milr: a photo of a cat" in err and f"run r started: {out / 'r'}" in err
    rounds = [line for line in err if line.startswith("round ")]
    assert len(rounds) == 2 and all(
        re.search(r"of at most 2 rounds · elapsed \d+:\d\d · ETA ≤ \d+:\d\d$", r) for r in rounds
    )
    assert any(line.startswith("warning: tiny_model") for line in err)


# --------------------------------------------------------------------------- the live table
def round_event(k: int, reasoning: str = "a plan", run_id: str = "r") -> dict:
    return {"event": "round_end", "run_id": run_id, "round": k, "score": 0.123456, "critics": {"c": 0.5},
            "reasoning": reasoning}  # fmt: skip


def rendered(renderable, width: int = 80, height: int = 200) -> list[str]:
    console = Console(file=io.StringIO(), width=width, height=height, record=True)
    console.print(renderable)
    return console.export_text().splitlines()


def test_round_tables_wrap_the_reasoning_and_cut_only_with_an_ellipsis():
    words = " ".join(f"word{i}" for i in range(100))  # ~690 characters
    lines = rendered(_progress_table([round_event(0, words)], "milr: p"), width=80)
    text = "".join(line.strip("│ ") for line in lines)
    assert "word0" in text and "word30" in text  # wrapped over lines, not cut at the column
    assert "0.123" in text and "0.123456" not in text and "c=0.500" in text  # 3 decimals
    assert "…" in text and "word99" not in text  # past REASONING_CHARS: cut, and visibly so
    short = "".join(rendered(_progress_table([round_event(0, "a short plan")], "milr: p")))
    assert "a short plan" in short and "…" not in short


def test_the_live_table_fits_the_terminal_and_says_what_it_leaves_out():
    progress = RunProgress(total=1, max_rounds=21, clock=lambda: 0.0)
    view = _LiveTable("milr: p", progress)
    progress.on_event({"event": "run_start", "run_id": "r", "from_round": 0})
    for k in range(21):
        view.rows.append(round_event(k, "a plan that wraps over two lines of the reasoning column here " * 2))
        progress.on_event(view.rows[-1])
    lines = rendered(view, width=80, height=24)
    assert len(lines) <= 24 - 1
    assert "earlier rounds not shown" in "\n".join(lines) and "│ 20 " in "\n".join(lines)  # the latest row stays
    assert lines[-1].startswith("21 of at most 21 rounds")
    assert len(rendered(view, width=80, height=200)) > 40  # a tall terminal shows every row


def test_run_progress_eta_is_an_upper_bound_from_the_pace_so_far():
    now = [100.0]
    progress = RunProgress(total=2, max_rounds=5, clock=lambda: now[0])
    assert progress.eta() is None and "ETA -" in progress.status()
    progress.on_event({"event": "run_start", "run_id": "a", "from_round": 0})
    progress.on_event({"event": "run_start", "run_id": "b", "from_round": 3})  # resumed: 3 rounds on disk
    now[0] = 110.0
    for run in ("a", "b"):
        progress.on_event({"event": "round_end", "run_id": run, "round": 0 if run == "a" else 3})
    # 2 rounds in 10 s; left: a 4, b 1 -> 5 rounds at 5 s
    assert progress.rounds_left() == 5 and progress.eta() == 25.0
    progress.on_event({"event": "done", "run_id": "b"})
    assert progress.rounds_left() == 4
    assert progress.status() == "1 of 2 runs done, 2 rounds · elapsed 0:10 · ETA ≤ 0:20"
    assert (_clock(59.6), _clock(61), _clock(3725)) == ("1:00", "1:01", "1:02:05")


def test_bench_lines_show_elapsed_and_eta(capsys, monkeypatch):
    args = type("Args", (), {"quiet": False, "json_logs": False})()
    now = [0.0]
    view = _BenchView(args, "milr", 40, clock=lambda: now[0])
    lines = []
    monkeypatch.setattr(cli.console, "print", lambda text, **kw: lines.append(str(text)))
    for i in range(40):
        now[0] += 1.5
        view.on_record({"correct": i % 2 == 0})
    assert len(lines) == 20  # one every total // 20 records
    assert lines[0] == "bench milr: 2/40 records, correct 0.500 · elapsed 0:03 · ETA 0:57"
    assert lines[-1] == "bench milr: 40/40 records, correct 0.500 · elapsed 1:00 · ETA 0:00"


def test_an_interactive_question_takes_the_live_view_off_the_screen(monkeypatch):
    screen = Console(file=io.StringIO(), force_terminal=True, width=80, height=24)
    monkeypatch.setattr(cli, "console", screen)
    view = _LiveTable("milr: p", RunProgress(1, 3))
    seen = []
    ask = pausing(lambda question: seen.append((question, view.live.is_started)) or 0.5)
    with view:
        assert view.live.is_started
        assert ask("score?") == 0.5
        assert view.live.is_started  # back after the answer
    assert seen == [("score?", False)]
    assert not view.live.is_started and ask("again?") == 0.5  # no live view: asks as it is


# --------------------------------------------------------------------------- a real terminal: tmux
def misplaced(screen: str) -> list[str]:
    """Lines of `screen` that break a table: anything but table lines between a top border and its
    bottom border, a table starting inside another, and table lines that carry a log line."""
    bad, inside = [], []
    for line in screen.splitlines():
        stripped = line.strip()
        if re.search(r"\b(info|warning): |round_end", line) and any(c in line for c in BORDERS):
            bad.append(line)
        if stripped.startswith("┏"):
            if inside:
                bad.append("a table inside a table: " + line)
            inside = [line]
        elif inside and stripped.startswith("└"):
            bad += [x for x in inside[1:] if not x.strip() or x.strip()[0] not in "┃┡│"]
            inside = []
        elif inside:
            inside.append(line)
    return bad


class Tmux:
    """A tmux server of our own (its own socket) with one pane of a fixed size."""

    def __init__(self, name: str, width: int, height: int):
        self.socket = f"milr-test-{os.getpid()}-{name}"
        self.width, self.height = width, height

    def __call__(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", *args], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def start(self, command: str, cwd: Path) -> None:
        # LINES/COLUMNS (a test runner may export them) would override the pane's size for rich
        script = f"unset LINES COLUMNS; cd {shlex.quote(str(cwd))} && {command}; echo __EXIT_$?__; sleep 600"
        self("new-session", "-d", "-s", "t", "-x", str(self.width), "-y", str(self.height), "sh", "-c", script)
        self.path = self("display-message", "-p", "-t", "t", "#{socket_path}").strip()

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "t")

    def history(self) -> str:
        return self("capture-pane", "-p", "-S", "-", "-t", "t")

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)
        if getattr(self, "path", ""):
            Path(self.path).unlink(missing_ok=True)  # tmux leaves its socket file behind


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)")
def test_on_a_real_terminal_no_log_line_lands_inside_the_live_table(tmp_path):
    """`milr run -v` in a 100x14 tmux pane: an info line for every round is printed while the live
    table redraws (up to 13 rows, more than the pane holds). On every capture and in the whole
    scrollback, no log line sits inside a table and no table is left in pieces; the scrollback ends
    with one whole table and the result lines."""
    tmux = Tmux("live", 100, 14)
    main_call = "import sys; from milr.cli import main; sys.exit(main())"
    argv = ["run", "a photo of a red circle", "--steps", "12", "-v", "--out", "runs", "--name", "r"]
    env = f"PYTHONPATH={shlex.quote(str(ROOT))}"
    tmux.start(f"{env} {shlex.quote(sys.executable)} -c {shlex.quote(main_call)} {shlex.join(argv)}", tmp_path)
    try:
        screens, ends = [], time.monotonic() + 240
        while time.monotonic() < ends:
            screens.append(tmux.screen())
            if "__EXIT_" in screens[-1]:
                break
            time.sleep(0.2)
        history = tmux.history()
    finally:
        tmux.kill()
    assert "__EXIT_0__" in history, history[-3000:]
    live = [s for s in screens if "of at most 13 rounds" in s]
    assert len(live) >= 3, "the live table was never captured"
    assert any("earlier rounds not shown" in s for s in live)  # the pane is too short for every row
    for screen in [*screens, history]:
        assert misplaced(screen) == [], screen
    assert history.count("┏") == 1  # the finished table once; no frame of the live view left behind
    rounds = json.loads((tmp_path / "runs" / "r" / "summary.json").read_text())["rounds"]
    info = [line for line in history.splitlines() if line.startswith("info: round_end")]
    assert len(info) == rounds > 7  # more rows than the pane shows at once
    table = history[history.index("┏") : history.index("└")]
    assert all(f"│ {k} " in table for k in range(rounds)) and f"{rounds} rounds in" in history


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)")
def test_on_a_real_terminal_the_bench_bar_stays_whole_below_the_log_lines(tmp_path):
    """`milr bench shapes -v` in a tmux pane: the progress bar (with elapsed time and ETA) is drawn
    once, at the bottom; the info lines of every round print above it, never on or through it."""
    tmux = Tmux("bench", 110, 16)
    main_call = "import sys; from milr.cli import main; sys.exit(main())"
    argv = ["bench", "shapes", "--per-tag", "1", "--limit", "4", "--steps", "2", "--batch", "2", "-v", "--out", "b"]
    env = f"PYTHONPATH={shlex.quote(str(ROOT))}"
    tmux.start(f"{env} {shlex.quote(sys.executable)} -c {shlex.quote(main_call)} {shlex.join(argv)}", tmp_path)
    try:
        ends = time.monotonic() + 240
        while time.monotonic() < ends and "__EXIT_" not in tmux.screen():
            time.sleep(0.5)
        history = tmux.history()
    finally:
        tmux.kill()
    assert "__EXIT_0__" in history, history[-3000:]
    lines = [line for line in history.splitlines() if line.strip()]
    bars = [i for i, line in enumerate(lines) if "━" in line]
    assert len(bars) == 1, history  # one bar, not one per redraw
    bar = lines[bars[0]]
    assert re.search(r"bench milr ━+ 4/4 correct [0-9.]+ elapsed \d+:\d\d:\d\d ETA \d+:\d\d:\d\d$", bar), bar
    info = [i for i, line in enumerate(lines) if line.startswith("info: round_end")]
    assert len(info) >= 4 and max(info) < bars[0]  # every log line above the bar
    assert lines[bars[0] + 1].startswith("overall ") and "__EXIT_0__" in lines[bars[0] + 2]
