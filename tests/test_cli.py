"""The `milr` command end to end (in-process `main`, real argument parsing, real files)."""

from __future__ import annotations

import json

import pytest

from milr.cli import build_parser, main
from milr.orchestrator.registry import parse_critic_list


def test_critic_list_parsing():
    assert parse_critic_list("gpt4o:0.5,detector:0.5") == [("gpt4o", 0.5), ("detector", 0.5)]
    assert parse_critic_list("self") == [("self", 1.0)]
    with pytest.raises(ValueError, match="valid names: gpt4o, unified, self, detector, geneval, blip_vqa") as err:
        parse_critic_list("gpt5")
    assert str(err.value).endswith("clip, t2i_compbench, wise, shapes")
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
