"""The `milr` command never answers with a traceback: an expected failure is one line with the
cause and the fix (exit 2), an unexpected one is one line pointing at --debug (exit 1), Ctrl-C says
how to resume (exit 130). Driven in-process through `milr.cli.main` with real argument parsing."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
import torch

from milr.cli import main
from milr.critics import Critique, SelfReward
from milr.orchestrator import registry

TINY = ["--model", "tiny", "--critic", "self"]


def said(err: str) -> list[str]:
    """The lines meant for a person: structlog's JSON lines (stderr is no TTY here) left out."""
    return [line for line in err.splitlines() if line.strip() and not line.startswith("{")]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = said(err)
    assert line.startswith("error: ")
    return line


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--lr", "inf"], "lr: Input should be a finite number"),
        (["--cfg", "nan"], "cfg: Input should be a finite number"),
        (["--threshold=-inf"], "threshold: Input should be a finite number"),
        (["--steps", "100000"], "steps: Input should be less than or equal to 1000"),
        (["--seed", str(2**70)], "seed: Input should be less than or equal to"),
        (["--device", "foo"], "device: 'foo' is not a torch device; use 'cpu', 'cuda'"),
        (["--device", "cuda:99"], "device: "),  # no CUDA here, or fewer than 100 GPUs
    ],
)
def test_bad_values_fail_in_one_line_before_anything_is_written(tmp_path, capsys, flags, expected):
    out = tmp_path / "runs"
    assert main(["run", "a cat", *TINY, *flags, "--out", str(out)]) == 2
    assert expected in one_error_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize("line", ["temperature = 1e-300", "temperature = inf", "cfg = nan", "lr = -inf"])
def test_bad_values_in_a_config_file_name_the_field(tmp_path, capsys, line):
    (tmp_path / "c.toml").write_text(f"[milr]\n{line}\n")
    assert main(["run", "a cat", *TINY, "--config", str(tmp_path / "c.toml"), "--out", str(tmp_path / "o")]) == 2
    assert f"error: invalid MILRConfig: {line.split()[0]}: " in one_error_line(capsys)


def test_cuda_without_cuda_names_the_device_and_the_fix(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["run", "a cat", *TINY, "--device", "cuda", "--out", str(tmp_path / "o")]) == 2
    line = one_error_line(capsys)
    assert "device: CUDA is not available on this machine" in line and "--device cpu" in line


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["traces", "show"], "name the run folder: milr traces show <out>/<run_id>"),
        (["traces", "report"], "name the run folder"),
        (["traces", "show", "{tmp}/nothing"], "nothing"),
        (["traces", "list", "{tmp}/nothing"], "no trace folder 'nothing'"),
        (["resume", "{tmp}/nothing"], "nothing"),
        (["run", "--prompts", "{tmp}/missing.txt", *TINY], "--prompts file 'missing.txt' does not exist"),
        (["run", "--prompts", "{tmp}/latin1.txt", *TINY], "is not UTF-8 text; save it as UTF-8"),
        (["run", "a cat", "--config", "{tmp}/c.yaml", *TINY], "must end in .toml or .json"),
        (["run", "a cat", "--config", "{tmp}/none.toml", *TINY], "config file 'none.toml' does not exist"),
        (["bench", "shapes", "--out", "{tmp}/b", "--judge-timeout", "5"], "--judge-timeout set the OpenAI-compatible"),
    ],
)
def test_missing_and_unreadable_inputs_are_one_line_errors(tmp_path, capsys, argv, expected):
    (tmp_path / "latin1.txt").write_bytes("un caf\xe9\n".encode("latin-1"))
    (tmp_path / "c.yaml").write_text("steps: 1\n")
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    assert expected in one_error_line(capsys)


def test_judge_options_without_a_judge_say_which_critic_takes_them(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["run", "a cat", *TINY, "--judge-model", "my-vlm", "--judge-retries", "0", "--out", str(out)]) == 2
    line = one_error_line(capsys)
    assert "--judge-model, --judge-retries set the OpenAI-compatible judges (gpt4o, unified, wise)" in line
    assert "e.g. --critic gpt4o" in line and not out.exists()


@pytest.mark.parametrize("flag", ["--judge-timeout", "--judge-deadline"])
@pytest.mark.parametrize("value", ["0", "-1", "inf", "nan", "soon"])
def test_judge_seconds_must_be_finite_and_positive(capsys, flag, value):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "a cat", "--critic", "gpt4o", flag, value])
    assert exit_.value.code == 2
    assert f"{flag}: must be a finite number of seconds > 0, got {value!r}" in capsys.readouterr().err


class Stop(Exception):
    """Ends a command once the critics are built: the test only wants their options."""


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "a cat", "--model", "tiny", "--critic", "gpt4o"],
        ["bench", "shapes", "--per-tag", "1", "--limit", "1", "--critic", "self", "--eval-critic", "gpt4o"],
    ],
)
def test_judge_flags_reach_the_judge_constructors(tmp_path, capsys, monkeypatch, argv):
    built = []

    def recording_gpt4o(mug, **kw):
        built.append(registry._gpt4o(mug, **kw))
        raise Stop

    monkeypatch.setitem(registry.CRITICS, "gpt4o", recording_gpt4o)
    flags = ["--judge-model", "my-vlm", "--judge-base-url", "http://127.0.0.1:9/v1", "--judge-timeout", "5",
             "--judge-retries", "0", "--judge-deadline", "9.5"]  # fmt: skip
    assert main([*argv, *flags, "--out", str(tmp_path / "o")]) == 1  # Stop is no expected failure
    (judge,) = built
    assert (judge.model, judge.base_url, judge.timeout, judge.max_retries) == ("my-vlm", "http://127.0.0.1:9/v1", 5, 0)
    assert judge.deadline == 9.5
    assert "unexpected Stop" in capsys.readouterr().err


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    def broken(model, config):
        raise RuntimeError("probability tensor contains either `inf`, `nan`\n  or element < 0")

    monkeypatch.setattr("milr.cli.build_model", broken)
    argv = ["run", "a cat", *TINY, "--out", str(tmp_path / "o")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert said(err) == [
        "error: unexpected RuntimeError: probability tensor contains either `inf`, `nan` or element < 0 "
        "(a bug or an unhandled case; run with --debug for the traceback)"
    ]
    for debug_argv in (["--debug", *argv], [*argv, "--debug"]):  # before or after the subcommand
        assert main(debug_argv) == 1
        err = capsys.readouterr().err
        assert "Traceback (most recent call last)" in err and "in broken" in err
        assert "run with --debug" not in err


def test_debug_shows_the_traceback_of_an_expected_failure_too(tmp_path, capsys):
    assert main(["--debug", "run", "a cat", "--model", "tiny", "--lr", "nan", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and said(err)[-1].startswith("error: invalid MILRConfig: lr")


def test_ctrl_c_before_any_run_started_says_there_is_nothing_to_resume(tmp_path, capsys, monkeypatch):
    def interrupted(model, config):
        raise KeyboardInterrupt

    monkeypatch.setattr("milr.cli.build_model", interrupted)
    assert main(["run", "a cat", *TINY, "--out", str(tmp_path / "o")]) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and said(err) == ["interrupted before any run started; nothing to resume"]


def test_a_run_no_critic_ever_scored_exits_non_zero_with_the_reason(tmp_path, capsys, monkeypatch):
    def abstain(self, image, prompt, spec=None):
        return Critique(critic="self", score=None, error="AuthenticationError: no key", seconds=0.0)

    monkeypatch.setattr(SelfReward, "__call__", abstain)
    (tmp_path / "short.toml").write_text("max_reasoning_tokens = 12\n")
    argv = ["run", "a cat", *TINY, "--steps", "1", "--config", str(tmp_path / "short.toml"), "--out", str(tmp_path)]
    assert main([*argv, "--name", "r"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and said(err)[-1] == (
        "error: run r: no critic scored any of its 2 rounds (first error: AuthenticationError: no key); "
        "fix the critic (API key, --judge-base-url, weights) and run again"
    )
    monkeypatch.undo()
    assert main([*argv, "--name", "r2"]) == 0


def interrupt_at_call(monkeypatch, n: int) -> None:
    """The self critic's n-th call sends the process a real SIGINT, as Ctrl-C does."""
    calls = []
    score = SelfReward.__call__

    def interrupting(self, image, prompt, spec=None):
        calls.append(prompt)
        if len(calls) == n:
            os.kill(os.getpid(), signal.SIGINT)
        return score(self, image, prompt, spec)

    monkeypatch.setattr(SelfReward, "__call__", interrupting)


def rounds_of(run_dir) -> list[int]:
    return [json.loads(line)["round"] for line in (run_dir / "rounds.jsonl").read_text().splitlines()]


def test_ctrl_c_during_a_run_prints_how_to_resume_and_that_resume_finishes(tmp_path, capsys, monkeypatch):
    interrupt_at_call(monkeypatch, 2)  # while round 1 is being scored
    out = tmp_path / "runs"
    argv = ["run", "a photo of a dog", *TINY, "--steps", "3", "--threshold", "1.0", "--out", str(out), "--name", "r1"]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = said(err)
    assert f"run r1 started: {out / 'r1'}" in lines
    assert lines[-1] == f"interrupted: finished rounds are on disk; resume with: milr resume {out / 'r1'}"
    assert not (out / "r1" / "summary.json").exists()

    monkeypatch.undo()
    resume = re.search(r"milr (resume .+)$", lines[-1]).group(1).split()
    assert main(resume) == 0
    assert rounds_of(out / "r1") == [0, 1, 2, 3]


def test_ctrl_c_in_a_batch_names_the_started_runs_and_the_queued_prompts(tmp_path, capsys, monkeypatch):
    (tmp_path / "short.toml").write_text("max_reasoning_tokens = 12\n")
    out = tmp_path / "runs"
    interrupt_at_call(monkeypatch, 3)  # round 1 of the first two runs; the third prompt still queued
    argv = ["run", "a dog", "a cat", "a red car", *TINY, "--batch", "2", "--steps", "2", "--threshold", "1.0",
            "--config", str(tmp_path / "short.toml"), "--out", str(out)]  # fmt: skip
    assert main(argv) == 130
    err = capsys.readouterr().err
    started = sorted(out / line.split()[1] for line in said(err) if line.startswith("run ") and " started: " in line)
    assert len(started) == 2 and "Traceback" not in err
    message = said(err)[-1]
    assert message.startswith("interrupted: finished rounds are on disk; resume with: milr resume ")
    assert sorted(map(Path, message.split("milr resume ")[1].split(";")[0].split())) == started
    assert message.endswith("; 1 queued prompt had not started: run it again")

    interrupt_at_call(monkeypatch, 1)  # Ctrl-C during the resume as well: the same command continues
    assert main(["resume", *map(str, started)]) == 130
    assert said(capsys.readouterr().err)[-1] == (
        f"interrupted: finished rounds are on disk; continue with: milr resume {' '.join(map(str, started))}"
    )
    monkeypatch.undo()
    assert main(["resume", *map(str, started)]) == 0
    assert [rounds_of(d) for d in started] == [[0, 1, 2], [0, 1, 2]]


def test_a_judge_without_its_key_fails_before_any_decode_or_trace(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    out = tmp_path / "runs"
    assert main(["run", "a photo of a cat", "--model", "tiny", "--critic", "gpt4o", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "OPENAI_API_KEY" in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())  # failed at once, not after round 0


def test_a_ctrl_c_that_the_graph_swallows_still_ends_the_run(tmp_path, capsys, monkeypatch):
    """LangGraph may run a done callback in the main thread, and that callback swallows every exception
    (`BackgroundExecutor.done`): a Ctrl-C raised in there is lost. The facade's stream notes the signal
    itself (`noted_interrupts`) and stops at the next event, so the CLI says how to resume all the same."""
    from milr.orchestrator.facade import MILR

    real = MILR.stream_batch

    def swallowing(self, *args, **kwargs):
        rounds = 0
        for event in real(self, *args, **kwargs):
            if event["event"] == "round_end":
                rounds += 1
                if rounds == 2:
                    try:  # as LangGraph's callback does, around a real SIGINT to this process
                        os.kill(os.getpid(), signal.SIGINT)
                        time.sleep(0.2)
                    except BaseException:
                        pass
            yield event

    monkeypatch.setattr(MILR, "stream_batch", swallowing)
    out = tmp_path / "runs"
    argv = ["run", "a photo of a dog", *TINY, "--steps", "4", "--threshold", "1.0", "--out", str(out), "--name", "r1"]
    assert main(argv) == 130
    assert said(capsys.readouterr().err)[-1].startswith("interrupted: finished rounds are on disk; resume with:")
    assert not (out / "r1" / "summary.json").exists()
