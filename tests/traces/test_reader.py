"""Trace reader: damaged tails, missing files, schema versions, scanning, pickling."""

from __future__ import annotations

import copy
import json
import pickle
import warnings

import pytest

from milr.traces import SCHEMA_VERSION, RunInfo, Trace, TraceWarning, TraceWriter
from tests.traces.helpers import image, record, summary, write_run


def _rounds_file(run):
    return run / "rounds.jsonl"


def test_a_truncated_last_line_is_skipped_with_a_warning(tmp_path):
    run = tmp_path / "run"
    write_run(run, 2)
    with open(_rounds_file(run), "a") as f:
        f.write(record(2).model_dump_json()[:40])
    with pytest.warns(TraceWarning, match="half-written last line"):
        trace = Trace.load(run)
    assert [r.round for r in trace.rounds] == [0, 1]
    # Resuming cuts the partial line, so the next append starts on a clean line.
    TraceWriter(run, resume=True).write_round(record(2), image(2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [r.round for r in Trace.load(run).rounds] == [0, 1, 2]


def test_a_line_cut_inside_a_multibyte_character_is_a_warning_not_an_error(tmp_path):
    run = tmp_path / "run"
    write_run(run, 1)
    line = record(1, reasoning="ein Kreis über dem Quadrat").model_dump_json().encode()
    cut = line.index("ü".encode()) + 1  # half of the two UTF-8 bytes of "ü"
    with open(_rounds_file(run), "ab") as f:
        f.write(line[:cut])
    with pytest.warns(TraceWarning):
        assert len(Trace.load(run).rounds) == 1


def test_a_tail_of_nul_bytes_after_a_power_cut_is_skipped(tmp_path):
    run = tmp_path / "run"
    write_run(run, 2)
    with open(_rounds_file(run), "ab") as f:
        f.write(b"\x00" * 300 + b"\n" + b'{"round": 2, "ima')
    with pytest.warns(TraceWarning):
        assert len(Trace.load(run).rounds) == 2


def test_damage_followed_by_valid_rounds_raises_naming_the_line(tmp_path):
    run = tmp_path / "run"
    write_run(run, 3)
    lines = _rounds_file(run).read_text().splitlines()
    lines[0] = "{not json"
    _rounds_file(run).write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="line 1 is damaged"):
        Trace.load(run)


def test_a_complete_line_that_is_not_a_round_raises_naming_the_line(tmp_path):
    run = tmp_path / "run"
    write_run(run, 1)
    with open(_rounds_file(run), "a") as f:
        f.write('{"round": "two"}\n')
    with pytest.raises(ValueError, match="line 2 is not a valid round record"):
        Trace.load(run)


def test_a_missing_image_is_reported_with_round_and_file(tmp_path):
    run = tmp_path / "run"
    write_run(run, 2)
    (run / "round_01.png").unlink()
    trace = Trace.load(run)  # loading stays lazy: the other rounds remain usable
    assert trace.rounds[0].image.size == (16, 16)
    with pytest.raises(FileNotFoundError, match="round 1: image file 'round_01.png' is missing from trace 'run'"):
        _ = trace.rounds[1].image


def test_missing_latents_and_rounds_are_reported(tmp_path):
    run = tmp_path / "run"
    write_run(run, 2)
    (run / "latents" / "round_01.safetensors").unlink()
    trace = Trace.load(run)
    with pytest.raises(FileNotFoundError, match="round 1: latents file 'latents/round_01.safetensors' is missing"):
        trace.latents(1)
    with pytest.raises(KeyError, match="no round 7"):
        trace.round(7)


def test_a_folder_that_is_not_a_trace_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="'empty' is not a milr trace"):
        Trace.load(tmp_path / "empty")


def test_a_newer_schema_is_refused_clearly(tmp_path):
    run = tmp_path / "run"
    write_run(run, 1)
    data = json.loads((run / "run.json").read_text())
    data["schema_version"] = SCHEMA_VERSION + 1
    (run / "run.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="written by a newer milr .* upgrade milr"):
        Trace.load(run)


def test_an_older_minimal_trace_still_loads(tmp_path):
    # What an early writer left: no schema_version, few run fields, rounds without the later fields,
    # and fields this milr does not know.
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"run_id": "old", "prompt": "p", "retired_field": 1}))
    (run / "rounds.jsonl").write_text(json.dumps({"round": 0, "image": "round_00.png", "score": 0.4}) + "\n")
    image(0).save(run / "round_00.png")
    trace = Trace.load(run)
    assert trace.run.schema_version == 1 and trace.run.prompt == "p"
    assert trace.rounds[0].score == 0.4 and trace.rounds[0].critiques == [] and trace.summary is None
    assert trace.best.round == 0 and trace.final is None


def test_best_prefers_the_earliest_of_equal_scores_and_ignores_abstentions(tmp_path):
    writer = TraceWriter(tmp_path / "run")
    writer.start(RunInfo(run_id="run", prompt="p"))
    for k, score in enumerate([0.3, None, 0.7, 0.7]):
        writer.write_round(record(k, score=score), image(k))
    assert Trace.load(tmp_path / "run").best.round == 2


def test_scan_lists_runs_without_hiding_broken_or_unfinished_ones(tmp_path, finished_run):
    write_run(tmp_path / "unfinished", 2)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "run.json").write_text("{half")
    (tmp_path / "not-a-run").mkdir()
    infos = {i.path.name: i for i in Trace.scan(tmp_path)}
    assert set(infos) == {"run", "unfinished", "broken"}
    assert infos["run"].rounds == 3 and infos["run"].summary == summary(3)
    assert infos["unfinished"].rounds == 2 and infos["unfinished"].summary is None
    assert infos["broken"].run is None and "not valid JSON" in infos["broken"].error
    assert [r.round for r in infos["run"].load().rounds] == [0, 1, 2]


def test_loaded_rounds_survive_copy_and_pickle(finished_run):
    r = Trace.load(finished_run).rounds[1]
    for clone in (copy.deepcopy(r), pickle.loads(pickle.dumps(r))):
        assert clone.record == r.record and clone.score == r.score
        assert clone.image.getpixel((0, 0)) == r.image.getpixel((0, 0))
    with pytest.raises(AttributeError):
        _ = r.no_such_field
