"""TraceWriter: writer → reader round trip, atomic files, resume, run ids."""

from __future__ import annotations

import json
import math

import pytest
import torch

from milr.traces import RunInfo, Trace, TraceWriter, new_run_id
from milr.traces import report as report_module
from tests.traces.helpers import SPEC, image, record, summary, write_run


def test_round_trip(finished_run):
    trace = Trace.load(finished_run)
    assert trace.run.prompt == "a photo of a red circle" and trace.run.spec == SPEC
    assert trace.run.config == {"threshold": 0.9} and trace.run.created  # ISO time filled in by default
    assert [r.round for r in trace.rounds] == [0, 1, 2]
    r1 = trace.rounds[1]
    assert r1.record == record(1, score=0.2, latents="latents/round_01.safetensors")
    assert r1.critiques[0].rationale == "round 1" and r1.critiques[0].details == {"k": 1}
    assert r1.image.getpixel((0, 0)) == image(1).getpixel((0, 0))
    assert trace.best.round == 2 and trace.final.round == 2 and trace.finished
    assert trace.summary == summary(3)
    assert torch.equal(trace.latents(1)["text.z"], torch.full((2, 4), 1.0))
    assert (finished_run / "final.png").is_file() and (finished_run / "report.html").is_file()


def test_latents_keep_metadata_and_leave_no_temp_files(tmp_path):
    writer = write_run(tmp_path / "run", 2)
    tensors, meta = writer.load_latents(1)
    assert torch.equal(tensors["text.z"], torch.full((2, 4), 1.0)) and meta == {"reasoning": "r1"}
    assert not list((tmp_path / "run").rglob("*.tmp"))
    with pytest.raises(FileNotFoundError, match="no latents for round 5"):
        writer.load_latents(5)


def test_a_nan_gradient_norm_does_not_lose_the_round(tmp_path):
    # pydantic writes NaN as null by default, which the float field then refuses on reading.
    writer = TraceWriter(tmp_path / "run")
    writer.start(RunInfo(run_id="run", prompt="p"))
    writer.write_round(record(0, grad_norm={"text": math.nan}, step_norm={"image": math.inf}), image(0))
    line = (tmp_path / "run" / "rounds.jsonl").read_text()
    json.loads(line, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    r = Trace.load(tmp_path / "run").rounds[0]
    assert math.isnan(r.grad_norm["text"]) and r.step_norm["image"] == math.inf


def test_a_started_run_is_never_overwritten(tmp_path):
    write_run(tmp_path / "run", 1)
    with pytest.raises(FileExistsError, match="already holds a run"):
        TraceWriter(tmp_path / "run").start(RunInfo(run_id="run", prompt="other"))
    assert Trace.load(tmp_path / "run").run.prompt == "a photo of a red circle"


def test_resume_appends_after_the_last_round_and_keeps_run_json(tmp_path):
    write_run(tmp_path / "run", 2)
    writer = TraceWriter(tmp_path / "run", resume=True)
    writer.start(RunInfo(run_id="run", prompt="changed"))  # resuming keeps the original run.json
    with pytest.raises(ValueError, match="already on disk"):
        writer.write_round(record(1), image(1))
    writer.write_round(record(2), image(2))
    trace = Trace.load(tmp_path / "run")
    assert [r.round for r in trace.rounds] == [0, 1, 2] and trace.run.prompt == "a photo of a red circle"
    with pytest.raises(ValueError, match="holds run 'run'"):
        TraceWriter(tmp_path / "run", resume=True).start(RunInfo(run_id="another", prompt="p"))


def test_resume_of_a_folder_without_a_run_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a milr trace"):
        TraceWriter(tmp_path / "nothing", resume=True)


@pytest.mark.parametrize("bad", ["../escape.png", "/abs.png", "sub/../../x.png", ".hidden.png"])
def test_record_file_names_stay_inside_the_run_folder(tmp_path, bad):
    writer = TraceWriter(tmp_path / "run")
    writer.start(RunInfo(run_id="run", prompt="p"))
    with pytest.raises(ValueError, match="file name inside the run folder"):
        writer.write_round(record(0, image=bad), image(0))
    with pytest.raises(ValueError, match="file name inside the run folder"):
        writer.write_round(record(0, latents=bad), image(0))
    assert not (tmp_path / "escape.png").exists() and not (tmp_path / "run" / "rounds.jsonl").exists()


def test_png_bytes_are_written_as_given(tmp_path):
    writer = TraceWriter(tmp_path / "run")
    writer.start(RunInfo(run_id="run", prompt="p"))
    from milr.traces.writer import png_bytes

    png = png_bytes(image(3))
    writer.write_round(record(0), png)
    assert (tmp_path / "run" / "round_00.png").read_bytes() == png


def test_a_failing_report_does_not_fail_the_finished_run(tmp_path, monkeypatch):
    writer = write_run(tmp_path / "run", 1)

    def broken(_):
        raise RuntimeError("matplotlib exploded")

    monkeypatch.setattr(report_module, "write_report", broken)
    assert writer.finish(summary(1), image(0)) is None
    trace = Trace.load(tmp_path / "run")
    assert trace.summary == summary(1) and not (tmp_path / "run" / "report.html").exists()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../x", "x"),
        ("a/b", "a-b"),
        ("a\\b", "a-b"),
        ("ok_name-1.v2", "ok_name-1.v2"),
        ("x" * 300, "x" * 80),
        ("a/../../b", "a-.-.-b"),
        ("--flag", "flag"),
        ("café crème", "cafe-creme"),
    ],
)
def test_run_names_are_sanitised(name, expected):
    clean = new_run_id("p", name)
    assert clean == expected
    assert "/" not in clean and "\\" not in clean and ".." not in clean and len(clean) <= 80


@pytest.mark.parametrize("bad", ["..", "/", "..///..", "...", "日本語", "   "])
def test_unusable_run_names_are_refused(bad):
    with pytest.raises(ValueError, match="no usable characters"):
        new_run_id("p", bad)


def test_generated_run_ids_are_timestamped_slugs_and_unique():
    ids = {new_run_id("A Red/Circle! left of ../../etc " + "x" * 200) for _ in range(50)}
    assert len(ids) == 50
    run_id = ids.pop()
    stamp, rest = run_id[:15], run_id[16:]
    assert stamp[:8].isdigit() and stamp[8] == "-" and stamp[9:].isdigit()
    assert rest.startswith("a-red-circle-left-of-etc-") and "/" not in run_id and ".." not in run_id
    assert len(run_id) <= 80
    assert new_run_id("日本語").split("-")[2] == "run"  # nothing left of the prompt: a neutral slug
