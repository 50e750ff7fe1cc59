"""The `milr` command end to end (in-process `main`, real argument parsing, real files)."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import Field

import milr
from milr import cli
from milr.cli import build_parser, main
from milr.config import MILRConfig
from milr.orchestrator.registry import CRITICS, parse_critic_list
from tests.critics.test_openai_judge import KEY, FakeServer, verdict

TINY = ["--model", "tiny", "--critic", "self", "--max-reasoning-tokens", "8"]


def test_critic_list_parsing():
    assert parse_critic_list("gpt4o:0.5,detector:0.5") == [("gpt4o", 0.5), ("detector", 0.5)]
    assert parse_critic_list("self") == [("self", 1.0)]
    with pytest.raises(ValueError, match="valid names: gpt4o, unified, self, detector, geneval, blip_vqa") as err:
        parse_critic_list("gpt5")
    assert str(err.value).endswith("valid names: " + ", ".join(CRITICS))  # every registered critic, in order
    with pytest.raises(ValueError, match="must be a number"):
        parse_critic_list("self:x")
    with pytest.raises(ValueError, match="> 0"):
        parse_critic_list("self:0")


def test_run_then_traces_commands(tmp_path, capsys):
    out = tmp_path / "runs"
    code = main(
        ["run", "a photo of a red cat", "--model", "tiny", "--critic", "self", "--steps", "2", "--out", str(out)]
    )
    assert code == 0
    (run_dir,) = [d for d in out.iterdir() if d.is_dir()]
    rounds = (run_dir / "rounds.jsonl").read_text().splitlines()
    assert 1 <= len(rounds) <= 3
    assert json.loads(rounds[0])["critiques"][0]["critic"] == "self"
    assert (run_dir / "report.html").is_file() and (out / "checkpoints.sqlite").is_file()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["rounds"] == len(rounds)
    assert main(["traces", "list", str(out)]) == 0
    assert main(["traces", "show", str(run_dir)]) == 0
    assert "a photo of a red cat" in capsys.readouterr().out
    (run_dir / "report.html").unlink()
    assert main(["traces", "report", str(run_dir)]) == 0
    assert (run_dir / "report.html").is_file()


def test_bad_arguments_give_clear_errors(tmp_path, capsys):
    assert main(["run", "a cat", "--model", "tiny", "--critic", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown critic 'nope'" in capsys.readouterr().err
    assert main(["run", "a cat", "--model", "tiny", "--steps", "-1", "--out", str(tmp_path)]) == 2
    assert "steps" in capsys.readouterr().err
    assert main(["run", "a cat", "a dog", "--name", "x", "--model", "tiny", "--out", str(tmp_path)]) == 2
    assert "--name names one run" in capsys.readouterr().err
    assert main(["run", "--model", "tiny", "--out", str(tmp_path)]) == 2
    assert "--prompts FILE" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "a cat", "--batch", "0"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "a cat", "--strategy", "sideways"])


def test_resume_command_finishes_an_unfinished_run(tmp_path):
    out = tmp_path / "runs"
    assert main(["run", "a photo of a dog", "--model", "tiny", "--critic", "self", "--steps", "3",
                 "--threshold", "1.0", "--out", str(out), "--name", "r1"]) == 0  # fmt: skip
    run_dir = out / "r1"
    lines = (run_dir / "rounds.jsonl").read_text().splitlines()
    # Pretend the process died after round 1: cut the log and the summary.
    (run_dir / "rounds.jsonl").write_text("\n".join(lines[:2]) + "\n")
    (run_dir / "summary.json").unlink()
    assert main(["resume", str(run_dir)]) == 0
    assert len((run_dir / "rounds.jsonl").read_text().splitlines()) == 4


def test_run_several_prompts_from_a_file_in_batches_refills_slots(tmp_path):
    prompts = [f"a photo of {n} cats" for n in ("one", "two", "three", "four")] + ["a dog", "a red car", "a bench"]
    (tmp_path / "prompts.txt").write_text("\n".join(prompts[2:]) + "\n\n")
    out = tmp_path / "runs"
    code = main(["run", prompts[0], prompts[1], "--prompts", str(tmp_path / "prompts.txt"), "--batch", "3",
                 "--model", "tiny", "--critic", "self", "--steps", "2", "--out", str(out)])  # fmt: skip
    assert code == 0
    runs = [d for d in out.iterdir() if d.is_dir()]
    assert sorted(json.loads((d / "run.json").read_text())["prompt"] for d in runs) == sorted(prompts)
    for d in runs:
        summary = json.loads((d / "summary.json").read_text())
        assert summary["rounds"] == len((d / "rounds.jsonl").read_text().splitlines()) == 3
        assert (d / "report.html").is_file()
    assert main(["resume", *map(str, runs)]) == 0  # finished runs: resume has nothing left to do
    assert all(len((d / "rounds.jsonl").read_text().splitlines()) == 3 for d in runs)


def test_the_cli_module_loads_no_torch():
    """`milr --help` and argument errors stay fast: torch loads only once a command needs it."""
    import subprocess
    import sys

    code = "import sys, milr.cli; milr.cli.build_parser(); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_debug_is_accepted_before_and_after_every_subcommand():
    parser = build_parser()
    for argv in (["run", "p"], ["resume", "d"], ["traces", "list"], ["bench", "shapes", "--out", "o"],
                 ["bench", "compare", "a", "b"]):  # fmt: skip
        assert parser.parse_args(argv).debug is False
        assert parser.parse_args(["--debug", *argv]).debug is True
        assert parser.parse_args([*argv, "--debug"]).debug is True


# --------------------------------------------------------------------------- help, flags, global flags
def squeezed(text: str) -> str:
    return " ".join(text.split())


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(name, parser) of every command and subcommand, `bench shapes` included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield " ".join((*path, name)), sub
                yield from commands(sub, (*path, name))


def shown_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The help `--help` prints for `action` (squeezed), checked to be in the printed help."""
    text = squeezed(parser._get_formatter()._expand_help(action))
    assert "".join(text.split()) in "".join(parser.format_help().split())  # argparse wraps at spaces and hyphens
    return text


def test_every_flag_of_every_command_shows_its_default(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    parser = build_parser()
    every = dict(commands(parser))
    assert {"run", "resume", "traces", "bench", "bench shapes", "bench geneval", "bench compare", "bench report",
            "study", "rescore"} <= set(every)  # fmt: skip
    for name, sub in [("", parser), *every.items()]:
        for action in sub._actions:
            if not action.option_strings or isinstance(action, argparse._HelpAction | argparse._VersionAction):
                continue
            text = shown_help(sub, action)
            assert "default" in text or "required" in text, f"milr {name} {action.option_strings[0]}: {text!r}"


def config_parsers():
    parser = build_parser()
    every = dict(commands(parser))
    return [every["run"], *(every[f"bench {kind}"] for kind in ("geneval", "t2i", "wise", "shapes"))]


def test_every_milr_config_field_is_a_flag_with_its_description_and_default():
    """One source of truth: a field added to MILRConfig gets its flag, help and default from it."""
    for sub in config_parsers():
        by_dest = {a.dest: a for a in sub._actions}
        for name, field in MILRConfig.model_fields.items():
            action = by_dest[name]
            assert "--" + name.replace("_", "-") in action.option_strings and action.default is None
            text = shown_help(sub, action)
            assert field.description and squeezed(field.description) in text
            if field.default is None:  # "not set": the description says what happens then
                assert "default" in field.description
                continue
            given = re.search(r"\(default: ([^)]*)\)$", text).group(1)
            if isinstance(field.default, bool):
                assert given == ("on" if field.default else "off")
            elif isinstance(field.default, frozenset):
                assert set(given.split(",")) == set(field.default)
            else:
                assert given == str(field.default)


def test_a_new_config_field_gets_a_flag_and_an_unknown_type_is_refused(monkeypatch):
    class Extended(MILRConfig):
        beam_width: int = Field(3, ge=1, description="Beams kept per round.")

    monkeypatch.setattr(cli, "MILRConfig", Extended)
    args = build_parser().parse_args(["run", "p", "--beam-width", "5"])
    assert args.beam_width == 5
    (action,) = [a for a in dict(commands(build_parser()))["run"]._actions if a.dest == "beam_width"]
    assert action.help == "Beams kept per round. (default: 3)"

    class Odd(MILRConfig):
        weights: dict = Field(default_factory=dict, description="Per-critic weights.")

    monkeypatch.setattr(cli, "MILRConfig", Odd)
    with pytest.raises(TypeError, match="MILRConfig.weights .* has no CLI flag type"):
        build_parser()


def test_config_flags_reach_the_run(tmp_path, capsys):
    out = tmp_path / "runs"
    flags = ["--lambda-text", "0.5", "--lambda-image", "0.05", "--temperature", "0.7", "--optimize", "text",
             "--max-reasoning-tokens", "8", "--image-subset", "random", "--no-compile", "--lr", "0.01",
             "--seed", "3"]  # fmt: skip
    assert main(["run", "a photo of a cat", "--model", "tiny", "--critic", "self", "--steps", "1", *flags,
                 "--out", str(out), "--name", "r"]) == 0  # fmt: skip
    config = json.loads((out / "r" / "run.json").read_text())["config"]
    assert (config["lambda_text"], config["lambda_image"], config["temperature"]) == (0.5, 0.05, 0.7)
    assert (config["max_reasoning_tokens"], config["optimize"], config["image_subset"]) == (8, ["text"], "random")
    assert (config["compile"], config["lr"], config["seed"]) == (False, 0.01, 3)
    capsys.readouterr()
    assert main(["run", "a cat", "--model", "tiny", "--lambda-text", "2", "--out", str(out)]) == 2
    assert "lambda_text: Input should be less than or equal to 1" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--version"], ["run", "--version"], ["bench", "shapes", "--out", "o", "--version"]])
def test_version_before_or_after_the_subcommand(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 0 and capsys.readouterr().out == f"milr {milr.__version__}\n"


GLOBAL_FLAGS = [
    (["--quiet"], "quiet", True),
    (["-q"], "quiet", True),
    (["-v"], "verbose", 1),
    (["-vv"], "verbose", 2),
    (["--log-level", "INFO"], "log_level", "info"),
    (["--json-logs"], "json_logs", True),
    (["--json"], "json", True),
    (["--debug"], "debug", True),
]
DEFAULTS = {"quiet": False, "verbose": 0, "log_level": None, "json_logs": False, "json": False, "debug": False}
SUBCOMMANDS = [["run", "p"], ["resume", "d"], ["traces", "list"], ["bench", "shapes", "--out", "o"],
               ["bench", "compare", "a", "b"]]  # fmt: skip


@pytest.mark.parametrize(("flag", "dest", "value"), GLOBAL_FLAGS)
def test_global_flags_are_accepted_before_and_after_every_subcommand(flag, dest, value):
    parser = build_parser()
    for argv in SUBCOMMANDS:
        assert {k: getattr(parser.parse_args(argv), k) for k in DEFAULTS} == DEFAULTS
        assert getattr(parser.parse_args([*flag, *argv]), dest) == value
        assert getattr(parser.parse_args([*argv, *flag]), dest) == value


def test_a_bad_log_level_is_refused_with_the_choices(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "p", "--log-level", "loud"])
    assert re.search(r"--log-level: invalid choice: 'loud' \(choose from '?debug'?, '?info", capsys.readouterr().err)


# --------------------------------------------------------------------------- stdout: pipes and --json
def test_run_prints_each_report_path_on_one_line(tmp_path, capsys):
    out = tmp_path / ("a-folder-whose-name-is-long-enough-to-wrap-at-eighty-columns-" * 2)
    assert main(["run", "a photo of a cat", *TINY, "--steps", "0", "--out", str(out), "--name", "r"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == f"trace: {out / 'r'}  report: {out / 'r' / 'report.html'}" and len(lines[1]) > 200
    assert len(lines) == 2 and lines[0].startswith("done: steps, returned round 0")


def test_json_outputs_are_one_document_on_stdout(tmp_path, capsys):
    out = tmp_path / "runs"
    assert (
        main(["run", "a photo of a cat", "a photo of a dog", *TINY, "--steps", "1", "--out", str(out), "--json"]) == 0
    )
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert sorted(len(r["run_id"]) > 0 and r["rounds"] for r in runs) == [2, 2]
    assert all(Path(r["report"]).is_file() and r["stop_reason"] == "steps" for r in runs)

    assert main(["traces", "list", str(out), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {r["run_id"] for r in listed["runs"]} == {r["run_id"] for r in runs}
    assert all(r["finished"] and r["rounds"] == 2 and r["prompt"].startswith("a photo of") for r in listed["runs"])
    run_dir = runs[0]["trace_dir"]
    assert main(["--json", "traces", "show", run_dir]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [r["round"] for r in shown["rounds"]] == [0, 1] and shown["summary"]["rounds"] == 2
    assert main(["traces", "report", run_dir, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"report": str(Path(run_dir) / "report.html")}
    assert main(["resume", *(r["trace_dir"] for r in runs), "--json"]) == 0  # finished: nothing left to do
    resumed = json.loads(capsys.readouterr().out)["runs"]
    assert sorted(r["run_id"] for r in resumed) == sorted(r["run_id"] for r in runs)


def test_bench_json_and_unwrapped_markdown(tmp_path, capsys):
    long = "a-bench-folder-with-a-name-long-enough-to-wrap-" * 2
    a, b = tmp_path / f"{long}best", tmp_path / f"{long}base"
    common = ["--per-tag", "1", "--limit", "2", "--steps", "1", "--batch", "2", "--json"]
    assert main(["bench", "shapes", "--method", "best-of-n", "--n", "2", "--out", str(a), *common]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["records"] == 2 and summary["out"] == str(a) and 0 <= summary["overall"] <= 1
    assert main(["bench", "shapes", "--method", "baseline", "--out", str(b), *common]) == 0
    capsys.readouterr()
    assert main(["bench", "compare", str(a), str(b)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "## Accuracy per tag" and lines[2].startswith("| folder | method |")
    assert lines[3].startswith("|---") and lines[4].startswith(f"| {a.name} | ") and len(lines[4]) > 100
    assert lines[5].startswith(f"| {b.name} | ") and "## Wins and losses" in lines
    assert main(["bench", "compare", str(a), str(b), "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {a.name, b.name}


def test_real_pipes_get_the_table_and_the_markdown(tmp_path):
    """`milr traces list | wc -l` and `milr bench compare A B > f.md`, through real pipes and files."""
    out = tmp_path / "runs"
    assert main(["run", "a photo of a cat", *TINY, "--steps", "0", "--out", str(out), "--name", "r1"]) == 0
    command = [sys.executable, "-c", "import sys; from milr.cli import main; sys.exit(main())"]
    listed = subprocess.run([*command, "traces", "list", str(out)], capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0 and listed.stderr == ""
    rows = listed.stdout.splitlines()
    assert len(rows) >= 5 and any("r1" in row and "a photo of a cat" in row for row in rows)
    for name in ("a", "b"):  # two tiny result folders, written as `milr bench` writes them
        (tmp_path / name).mkdir()
        record = {"key": "k", "sample": 0, "tag": "single_object", "correct": name == "a", "generations": 1,
                  "seconds": 1.0}  # fmt: skip
        (tmp_path / name / "results.jsonl").write_text(json.dumps(record) + "\n")
    with open(tmp_path / "f.md", "w") as md:
        compared = subprocess.run([*command, "bench", "compare", str(tmp_path / "a"), str(tmp_path / "b")],
                                  stdout=md, stderr=subprocess.PIPE, text=True, timeout=120)  # fmt: skip
    assert compared.returncode == 0 and compared.stderr == ""
    rows = (tmp_path / "f.md").read_text().splitlines()
    assert rows[4].startswith("| a | ") and "| 1.000 (n=1) | 1.000 |" in rows[4] and rows[5].startswith("| b | ")


# --------------------------------------------------------------------------- the OpenAI-compatible judge
@pytest.fixture
def judge_server(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    for name in ("OPENAI_BASE_URL", "OPENAI_MODEL"):
        monkeypatch.delenv(name, raising=False)
    server = FakeServer().reply(verdict(True))
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


JUDGED = ["run", "a photo of a cat", "--model", "tiny", "--critic", "gpt4o", "--max-reasoning-tokens", "8",
          "--steps", "0", "--judge-timeout", "5"]  # fmt: skip


def test_the_judge_server_receives_the_model_given_by_flag(tmp_path, judge_server, capsys):
    argv = [*JUDGED, "--judge-model", "my-vlm", "--base-url", judge_server.url, "--out", str(tmp_path)]
    assert main(argv) == 0
    assert [r["body"]["model"] for r in judge_server.requests] == ["my-vlm"]
    assert build_parser().parse_args(["run", "p", "--judge-base-url", "u"]).judge_base_url == "u"  # the old name


def test_the_judge_honours_the_openai_environment_variables(tmp_path, judge_server, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_BASE_URL", judge_server.url)
    monkeypatch.setenv("OPENAI_MODEL", "env-vlm")
    assert main([*JUDGED, "--out", str(tmp_path / "a")]) == 0
    assert main([*JUDGED, "--judge-model", "flag-vlm", "--out", str(tmp_path / "b")]) == 0  # a flag wins
    assert [r["body"]["model"] for r in judge_server.requests] == ["env-vlm", "flag-vlm"]


def test_run_with_a_human_critic_asks_at_the_terminal(tmp_path, capsys, monkeypatch):
    """`--critic shapes:0.5,human:0.5`: the person's answers, read from stdin, are mixed into each round."""
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("0.2\nnot it\nhigh\n1\nright\n"))
    argv = ["run", "a red circle", "--critic", "shapes:0.5,human:0.5", "--steps", "1", "--threshold", "1",
            "--out", str(tmp_path), "--name", "asked", "--json"]  # fmt: skip
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["runs"][0]["rounds"] == 2
    assert err.count("human critic asks about run asked, round") == 2 and "not a score: high" in err
    rounds = [json.loads(line) for line in (tmp_path / "asked" / "rounds.jsonl").read_text().splitlines()]
    human = [next(c for c in r["critiques"] if c["critic"] == "human") for r in rounds]
    assert [h["score"] for h in human] == [0.2, 1.0] and [h["rationale"] for h in human] == ["not it", "right"]


def test_resume_takes_the_placement_fields_as_flags():
    """`milr resume` runs where this process runs (--device, --dtype, --compile), the rest from run.json."""
    from milr.config import PLACEMENT_FIELDS

    assert set(PLACEMENT_FIELDS) <= set(MILRConfig.model_fields)  # each is a config field, flag and all
    args = build_parser().parse_args(["resume", "d", "--device", "cpu", "--dtype", "float32", "--no-compile"])
    assert (args.device, args.dtype, args.compile) == ("cpu", "float32", False)


def test_resume_loads_the_recorded_model_revision_and_a_run_at_another_revision_is_refused(
    tmp_path, monkeypatch, capsys
):
    out = tmp_path / "runs"
    assert main(["run", "a photo of a dog", *"--model tiny --critic self --steps 2 --threshold 1.0".split(),
                 "--out", str(out), "--name", "r1"]) == 0  # fmt: skip
    run_dir = out / "r1"
    info = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({**info, "model_revision": "v1.1"}))
    lines = (run_dir / "rounds.jsonl").read_text().splitlines()
    (run_dir / "rounds.jsonl").write_text(lines[0] + "\n")
    (run_dir / "summary.json").unlink()
    loaded = []
    real = cli.build_model

    def spy(model, config, **load_kwargs):
        loaded.append(load_kwargs)
        return real(model, config)  # the random tiny model has no revisions: built at None

    monkeypatch.setattr(cli, "build_model", spy)
    capsys.readouterr()
    assert main(["resume", str(run_dir)]) == 2
    assert "r1 was run with tiny at revision 'v1.1'" in capsys.readouterr().err  # and says how to resume
    assert loaded == [{"revision": "v1.1"}]
    assert len((run_dir / "rounds.jsonl").read_text().splitlines()) == 1  # nothing was added to the run
