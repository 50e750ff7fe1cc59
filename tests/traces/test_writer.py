"""TraceWriter: writer → reader round trip, atomic files, resume, run ids."""

from __future__ import annotations

import hashlib
import json
import math
import os
import random

import pytest
import torch
from safetensors.torch import save as safetensors_save

from milr.traces import RunInfo, Trace, TraceWriter, new_run_id
from milr.traces import report as report_module
from milr.traces.reader import LatentsDamagedError
from milr.traces.writer import RunLockedError
from tests.traces.helpers import SPEC, image, record, summary, write_run


def test_round_trip(finished_run):
    trace = Trace.load(finished_run)
    assert trace.run.prompt == "a photo of a red circle" and trace.run.spec == SPEC
    assert trace.run.config == {"threshold": 0.9} and trace.run.created  # ISO time filled in by default
    assert [r.round for r in trace.rounds] == [0, 1, 2]
    r1 = trace.rounds[1]
    sha = hashlib.sha256((finished_run / "latents" / "round_01.safetensors").read_bytes()).hexdigest()
    assert r1.record == record(1, score=0.2, latents="latents/round_01.safetensors", latents_sha256=sha)
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
    writer.close()
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


# ----------------------------------------------------------------------------- one writer per run folder
def test_a_second_writer_of_a_run_is_refused_until_the_first_closes(tmp_path):
    first = write_run(tmp_path / "run", 2)  # started, so it holds the folder's lock
    assert first.locked and (tmp_path / "run" / ".lock").read_text().strip() == str(os.getpid())
    for second in (lambda: TraceWriter(tmp_path / "run", resume=True), lambda: write_run(tmp_path / "run", 1)):
        with pytest.raises(RunLockedError, match=f"run run is being written by process {os.getpid()}") as err:
            second()
        assert isinstance(err.value, OSError)  # the CLI's one-line, exit-2 class of failures
    first.close()
    first.close()  # idempotent
    with TraceWriter(tmp_path / "run", resume=True) as again:
        assert again.last_round == 1 and again.locked
        again.write_round(record(2), image(2))
    assert not again.locked
    assert [r.round for r in Trace.load(tmp_path / "run").rounds] == [0, 1, 2]  # the reader ignores .lock


def test_a_dropped_writer_frees_its_folder_and_a_closed_one_cannot_write(tmp_path):
    write_run(tmp_path / "run", 1)  # never closed, only dropped
    writer = TraceWriter(tmp_path / "run", resume=True)
    writer.close()
    with pytest.raises(RuntimeError, match="does not hold the run's lock"):
        writer.write_round(record(1), image(1))
    with pytest.raises(RuntimeError, match="does not hold the run's lock"):
        writer.save_latents(1, {"text.z": torch.zeros(1)})
    assert len(Trace.load(tmp_path / "run").rounds) == 1


def test_a_folder_killed_before_its_run_json_is_taken_over(tmp_path):
    # What a kill between taking the lock and renaming run.json leaves behind.
    run = tmp_path / "run"
    (run / "latents").mkdir(parents=True)
    (run / ".lock").write_text("12345\n")
    (run / ".run.json.tmp").write_text('{"run_id": "ru')
    (run / "latents" / ".round_00.safetensors.tmp").write_bytes(b"\0" * 10)
    writer = TraceWriter(run)
    writer.start(RunInfo(run_id="run", prompt="p"))
    writer.close()
    assert Trace.load(run).run.prompt == "p" and not list(run.rglob("*.tmp"))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")  # not a leftover of milr: never taken over
    with pytest.raises(FileExistsError, match="already holds a run"):
        TraceWriter(tmp_path / "other").start(RunInfo(run_id="other", prompt="p"))
    assert sorted(p.name for p in (tmp_path / "other").iterdir()) == [".lock", "notes.txt"]


# ----------------------------------------------------------------------------- latents integrity
def _damage(path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncated":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif how == "random":
        path.write_bytes(random.Random(0).randbytes(len(data)))
    elif how == "bit-flipped":
        data[-3] ^= 0x10  # inside the tensor data: safetensors itself would load it without a word
        path.write_bytes(bytes(data))
    else:  # the same tensors saved again with another value: a valid file that is not the run's
        path.write_bytes(safetensors_save({"text.z": torch.full((2, 4), 9.0)}, metadata={"reasoning": "r1"}))


@pytest.mark.parametrize("how", ["truncated", "random", "bit-flipped", "replaced"])
def test_damaged_latents_give_one_clear_error_naming_round_and_file(tmp_path, how):
    writer = write_run(tmp_path / "run", 2)
    path = tmp_path / "run" / "latents" / "round_01.safetensors"
    assert Trace.load(tmp_path / "run").rounds[1].latents_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    _damage(path, how)
    expected = "latents of round 1 do not match their checksum: the file was changed or damaged"
    for load in (lambda: writer.load_latents(1), lambda: Trace.load(tmp_path / "run").latents(1)):
        with pytest.raises(LatentsDamagedError, match=expected) as err:
            load()
        assert "latents/round_01.safetensors" in str(err.value) and isinstance(err.value, ValueError)
    assert torch.equal(writer.load_latents(0)[0]["text.z"], torch.zeros(2, 4))  # the other rounds are fine


def test_damaged_latents_of_an_older_trace_without_checksums_are_named_too(tmp_path):
    run = tmp_path / "run"
    write_run(run, 1).close()
    lines = [json.loads(line) for line in (run / "rounds.jsonl").read_text().splitlines()]
    for line in lines:
        del line["latents_sha256"]  # what a writer before checksums wrote
    (run / "rounds.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert torch.equal(Trace.load(run).latents(0)["text.z"], torch.zeros(2, 4))  # still loads
    _damage(run / "latents" / "round_00.safetensors", "truncated")
    with pytest.raises(LatentsDamagedError, match="latents of round 0 cannot be read: the file is damaged"):
        TraceWriter(run, resume=True).load_latents(0)


def test_latents_files_are_byte_identical_for_identical_tensors(tmp_path):
    # safetensors writes its metadata in hash order (it differs between processes); the writer sorts
    # it, so two identical runs record the same checksum.
    meta = {f"key{i}": str(i) for i in range(20)}
    shas = set()
    for name in ("a", "b"):
        w = TraceWriter(tmp_path / name)
        w.start(RunInfo(run_id=name, prompt="p"))
        w.save_latents(0, {"b": torch.ones(3), "a": torch.zeros(2)}, meta)
        shas.add(hashlib.sha256((tmp_path / name / "latents" / "round_00.safetensors").read_bytes()).hexdigest())
        tensors, got = w.load_latents(0)
        assert got == meta and torch.equal(tensors["b"], torch.ones(3))
    assert len(shas) == 1


# ----------------------------------------------------------------------------- no secret in a run id
def test_run_ids_never_carry_a_secret(monkeypatch):
    key = "sk-proj-Zq81LmN0pX4vB7tR2wYc9dKe"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    ids = [new_run_id(f"a cat next to {key} on a mat"), new_run_id("p", f"run-{key}"), new_run_id(key.upper())]
    for run_id in ids:
        assert key.lower() not in run_id.lower() and "zq81lmn0px4vb7tr2wyc9dke" not in run_id.lower()
    assert "a-cat-next-to-redacted-on-a-mat" in ids[0] and ids[1] == "run--REDACTED"  # "[" became "-"
    monkeypatch.delenv("OPENAI_API_KEY")
    shaped = "hf_" + "aB3dE5gH7jK9mN1pQ3sT5vW7yZ2xC4fG6"  # never exported: caught by its shape
    assert "ab3de5gh7jk9mn1pq3st5vw7yz2xc4fg6" not in new_run_id(f"a dog {shaped}").lower()


def test_a_run_id_is_stable_under_redaction_even_when_its_slug_looks_like_a_key():
    from milr.traces.redaction import redact

    prompt = "sk abcdefghijk lmnopqrstu 12345 x"  # not a key, but its slug "sk-abcdefghijk-..." is key-shaped
    for run_id in (new_run_id(prompt), new_run_id("x", name=prompt)):
        assert redact(run_id, warn=False) == run_id and "abcdefghijk" not in run_id
