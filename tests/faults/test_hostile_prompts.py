"""Hostile prompt text (rich markup, ANSI and OSC escapes, NUL and other control characters, bidi
overrides) runs, is kept as written in the trace, and reaches the terminal neither as markup nor as
escapes: `milr run` (live table, done lines), `milr traces list` and `milr traces show`."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from milr.cli import _progress_table, main
from milr.traces import Trace, list_table, rounds_table
from milr.traces.views import terminal_text

MARKUP = "a [/] cat [bold red]on[/bold red] a [link=file:///etc/passwd]mat[/link] :smile: [/]"
ESCAPES = "a \x1b[31mred\x1b[0m cat \x1b]8;;http://evil.example\x07here\x1b]8;;\x07 \x1b[2J\x1b[H"
CONTROLS = "a cat\x00 on\x07 a\x08 mat\r over \x9b31m \u202egnp.exe\x7f"
RAW = ("\x1b", "\x00", "\x07", "\x08", "\r", "\x9b", "\u202e", "\x7f")
TINY = ["--model", "tiny", "--critic", "self", "--steps", "0"]


def squeezed(text: str) -> str:
    """`text` without whitespace: rich wraps a table title to the table's width."""
    return "".join(text.split())


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # rich folds long cells; keep each prompt on one line


@pytest.fixture
def short(tmp_path) -> list[str]:
    """Flags for a short reasoning: the random tiny model rarely says EOS, and the text is not the point."""
    (tmp_path / "short.toml").write_text("max_reasoning_tokens = 12\n")
    return ["--config", str(tmp_path / "short.toml")]


def shown(capsys) -> tuple[str, str]:
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "MarkupError" not in err
    for text in (out, err):
        assert not [c for c in RAW if c in text], "a raw control character reached the terminal"
    return out, err


def test_a_hostile_prompt_runs_and_is_shown_literally(tmp_path, capsys, short):
    prompt = f"{MARKUP} {ESCAPES} {CONTROLS}"
    out_dir = tmp_path / "runs"
    assert main(["run", prompt, *TINY, "--steps", "1", *short, "--out", str(out_dir), "--name", "hostile"]) == 0
    out, err = shown(capsys)
    assert "done: steps" in out
    safe = terminal_text(prompt, newlines=False)
    assert squeezed(f"milr: {safe}") in squeezed(err)  # the live table's title, markup and escapes as written
    assert "[link=file:///etc/passwd]mat[/link]" in err and "\\x1b[31mred\\x1b[0m" in err
    assert json.loads((out_dir / "hostile" / "run.json").read_text())["prompt"] == prompt  # the trace keeps it

    assert main(["traces", "show", str(out_dir / "hostile")]) == 0
    out, _ = shown(capsys)
    assert out.splitlines()[0].startswith(f"{safe}  (hostile, model tiny)")
    assert main(["traces", "list", str(out_dir)]) == 0
    out, _ = shown(capsys)
    assert (
        "[/] cat [bold red]on[/bold red]" in out and "\\x00 on\\x07 a\\x08 mat\\r over \\x9b31m \\u202egnp.exe" in out
    )


def test_a_batch_of_hostile_prompts_runs_and_lists_literally(tmp_path, capsys, short):
    prompts = [MARKUP, ESCAPES, CONTROLS]
    out_dir = tmp_path / "runs"
    assert main(["run", *prompts, *TINY, *short, "--batch", "3", "--out", str(out_dir)]) == 0
    out, err = shown(capsys)
    assert out.count("done: steps") == 3 and err.count(" started: ") == 3
    assert main(["traces", "list", str(out_dir)]) == 0
    out, _ = shown(capsys)
    for prompt in prompts:
        assert terminal_text(prompt, newlines=False) in out
    stored = sorted(json.loads((d / "run.json").read_text())["prompt"] for d in out_dir.iterdir() if d.is_dir())
    assert stored == sorted(prompts)


def test_a_hostile_file_name_in_an_error_is_one_literal_line(tmp_path, capsys):
    name = "[blink][link=evil.example]x\x1b[31m.txt"  # a file name cannot hold the "/" of a closing tag
    assert main(["run", "--prompts", str(tmp_path / name), *TINY]) == 2
    _, err = shown(capsys)
    assert [line for line in err.splitlines() if not line.startswith("{")] == [
        "error: --prompts file '[blink][link=evil.example]x\\x1b[31m.txt' does not exist"
    ]


def render_on_a_terminal(renderable) -> str:
    """What a colour terminal receives: rich's own styling escapes, and OSC 8 for real [link] markup."""
    buffer = io.StringIO()
    Console(file=buffer, force_terminal=True, color_system="truecolor", width=400).print(renderable)
    return buffer.getvalue()


def test_on_a_colour_terminal_user_text_is_never_markup_nor_an_escape(tmp_path, capsys, short):
    out_dir = tmp_path / "runs"
    assert main(["run", f"{MARKUP} {ESCAPES}", *TINY, *short, "--out", str(out_dir), "--name", "r"]) == 0
    capsys.readouterr()
    trace = Trace.load(out_dir / "r")
    # a batch's live table: the run column too (a library caller's run ids are not sanitised by the CLI)
    events = [
        {"run_id": f"[link=file:///x]{i}\x1b[31m", "round": 0, "score": None, "critics": {}, "reasoning": MARKUP}
        for i in range(2)
    ]
    batch = render_on_a_terminal(_progress_table(events, "milr: 2 prompts"))
    assert squeezed("[link=file:///x]0\\x1b[31m") in squeezed(batch) and "[/bold red]" in batch
    for renderable in (list_table(out_dir), rounds_table(trace), _progress_table([events[0]], f"milr: {MARKUP}")):
        text = render_on_a_terminal(renderable)
        assert "\x1b]8" not in text  # no hyperlink: [link=...] was not taken as markup
        assert "\x1b[31m" not in text and "\x1b[2J" not in text and "\x07" not in text
    assert "\x1b]8" not in batch and "\x1b[31m" not in batch
    title = render_on_a_terminal(_progress_table([], f"milr: {MARKUP}"))
    assert squeezed("[link=file:///etc/passwd]mat[/link] :smile: [/]") in squeezed(title)


@pytest.mark.parametrize(
    ("text", "safe"),
    [
        ("\x1b[31mred", "\\x1b[31mred"),
        ("nul\x00 bell\x07 bs\x08 cr\r del\x7f", "nul\\x00 bell\\x07 bs\\x08 cr\\r del\\x7f"),
        ("c1 \x9b31m \x85", "c1 \\x9b31m \\x85"),
        ("bidi \u202eabc\u2066x\u2069", "bidi \\u202eabc\\u2066x\\u2069"),
        ("lines\nand\ttabs", "lines\nand\ttabs"),
        ("caf\u00e9 \u732b \U0001f408\u200d\u2b1b [b]", "caf\u00e9 \u732b \U0001f408\u200d\u2b1b [b]"),  # kept
    ],
)
def test_terminal_text_shows_control_characters_as_escapes(text, safe):
    assert terminal_text(text) == safe
    assert terminal_text("a\nb\tc", newlines=False) == "a b c"
