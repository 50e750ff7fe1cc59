"""`run_study` and `milr study`: the spec's errors name their field; a small ShapesWorld study runs every
sweep, its best-of-N picks equal the bench runner's best-of-N under each critic, its diagnostics see
the count-blind critic's blind spot, and a study run again redoes no finished sweep."""

from __future__ import annotations

import json
import shutil

import pytest

from milr.bench.runner import BenchSpec, run_bench
from milr.cli import build_parser
from milr.config import MILRConfig
from milr.critics.base import PromptSpec
from milr.shapes.lab import lab_critic
from milr.shapes.oracle import ShapesOracle
from milr.studies.report import milr_correct_at, milr_views, tag_mean
from milr.studies.spec import load_spec, parse_spec
from milr.studies.study import run_study, select_prompts
from milr.traces import Trace
from tests.studies.conftest import SPEC


def minimal(**changes) -> dict:
    data = {"eval_critic": "shapes", "critics": {"oracle": "shapes"}}
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"critics": {"oracle": "shapes"}}, "eval_critic: required; add it"),
        (minimal(critics={}), "critics: .*name at least one reward critic"),
        (minimal(critics={"a/b": "shapes"}), "label 'a/b' must be letters"),
        (minimal(critics={"x": "shapes-cuntblind"}), "unknown critic 'shapes-cuntblind'.*in critics.x"),
        (minimal(eval_critic="gpt5"), "unknown critic 'gpt5'.*in eval_critic"),
        (minimal(prompts={"per_tag": 0}), "prompts.per_tag: Input should be greater than or equal to 1"),
        (minimal(prompts={"benchmark": "geneval"}), "benchmark geneval needs `path`"),
        (minimal(methods=["milr", "beam"]), "methods.1: Input should be 'baseline', 'milr' or 'best_of_n'"),
        (minimal(config={"steps": -1}), "config: steps: Input should be greater than or equal to 0"),
        (minimal(seeds=[0, 0]), "seeds must be distinct"),
        (minimal(extra=1), "extra: unknown field; remove it"),
    ],
)
def test_spec_errors_name_the_field(data, message):
    with pytest.raises(ValueError, match=message):
        parse_spec(data, source="SPEC.toml")


def test_spec_files_read_as_toml_with_paths_relative_to_the_file(tmp_path):
    (tmp_path / "bad.toml").write_text("name = [")
    with pytest.raises(ValueError, match="bad.toml is not valid TOML"):
        load_spec(tmp_path / "bad.toml")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_spec(tmp_path / "missing.toml")
    (tmp_path / "meta.jsonl").write_text(
        '{"tag": "colors", "include": [{"class": "cat", "count": 1, "color": "red"}], "prompt": "a red cat"}\n'
    )
    (tmp_path / "g.toml").write_text(SPEC.replace("per_tag = 1", 'benchmark = "geneval"\npath = "meta.jsonl"'))
    spec = load_spec(tmp_path / "g.toml")
    assert spec.prompts.path == "meta.jsonl"  # as written: no local path goes into the study folder
    assert [it.prompt for it in select_prompts(spec)] == ["a red cat"]


def test_limit_spreads_prompts_evenly_over_tags():
    spec = parse_spec(minimal(prompts={"per_tag": 10, "limit": 12, "limit_seed": 3}))
    items = select_prompts(spec)
    assert len(items) == 12 and {it.tag: sum(i.tag == it.tag for i in items) for it in items} == dict.fromkeys(
        ("single_object", "two_object", "counting", "colors", "position", "color_attr"), 2)  # fmt: skip


def test_a_study_runs_every_sweep_and_writes_its_report(study):
    root, result = study
    out = root / "out"
    kinds = [(s.method, s.label) for s in result.sweeps]
    assert kinds == [("baseline", None), ("milr", "oracle"), ("milr", "countblind"), ("best_of_n", None),
                     ("best_of_n", "oracle"), ("best_of_n", "countblind")]  # fmt: skip
    assert all(s.ran == 6 and s.reused == 0 for s in result.sweeps)
    data = json.loads((out / "study.json").read_text())
    assert data["prompts"] == 6 and data["best_of_n"] == 3
    assert set(data["accuracy"]["milr"]) == {"oracle", "countblind"} and "baseline" in data["accuracy"]
    md = (out / "study.md").read_text()
    assert "| reward critic | method | single_object | two_object | counting |" in md
    assert "| countblind | MILR |" in md and "| countblind | best-of-3 |" in md
    html = (out / "study.html").read_text()
    assert "Content-Security-Policy" in html and html.count("<svg") >= 4 and "http" not in html.replace(
        'http-equiv', '')  # fmt: skip


def test_diagnostics_see_the_count_blind_critics_blind_spot(study):
    root, result = study
    diag = result.data["diagnostics"]
    assert diag["oracle"]["all"]["false_pass_rate"] == 0.0 and diag["oracle"]["all"]["pass_precision"] == 1.0
    blind = diag["countblind"]
    assert blind["all"]["images"] == blind["milr_rounds"]["images"] + 6 * 3
    for tag, d in blind["all"]["tags"].items():  # it can only pass a wrong image on a counting prompt
        if tag != "counting":
            assert d["fp"] == 0, tag
    # the samples' confusion, recomputed from the PNGs by the critics themselves
    critic, oracle, counts = lab_critic("countblind"), ShapesOracle(), dict.fromkeys(("tp", "fp", "fn", "tn"), 0)
    for run in (root / "out" / "sweeps" / "seed-0" / "samples" / "traces").iterdir():
        trace = Trace.load(run)
        spec = PromptSpec.from_geneval(trace.run.spec)
        for r in trace.rounds:
            passed = critic(r.image, trace.run.prompt, spec).score >= 0.9
            correct = oracle(r.image, trace.run.prompt, spec).details["correct"]
            counts[("tp" if correct else "fp") if passed else ("fn" if correct else "tn")] += 1
    assert {k: blind["samples"][k] for k in counts} == counts


def test_best_of_n_picks_equal_the_bench_runners_best_of_n_under_each_critic(study, shapes_mug, tmp_path):
    root, result = study
    spec = load_spec(root / "SPEC.toml")
    items = select_prompts(spec)
    config = MILRConfig(steps=2).with_recommended(shapes_mug.recommended)
    folder = root / "out" / "sweeps" / "seed-0" / "best_of_n" / "countblind"
    ours = {r["key"]: r for r in map(json.loads, (folder / "results.jsonl").read_text().splitlines())}
    run_bench(items, shapes_mug, BenchSpec("best-of-n", config), lab_critic("countblind"), ShapesOracle(),
              tmp_path / "b", progress=False, batch=6)  # fmt: skip
    theirs = [json.loads(line) for line in (tmp_path / "b" / "results.jsonl").read_text().splitlines()]
    fields = ("reward_scores", "eval_score", "correct", "generations", "first_pass", "seed", "tag")
    assert len(theirs) == 6
    for rec in theirs:
        assert {f: ours[rec["key"]][f] for f in fields} == {f: rec[f] for f in fields}


def test_milr_at_its_full_budget_is_what_the_sweep_returned(study):
    root, result = study
    views = milr_views(root / "out" / "sweeps" / "seed-0" / "milr" / "countblind", "shapes")
    full = tag_mean((v.tag, milr_correct_at(v, 3)) for v in views)["overall"]
    assert full == result.data["accuracy"]["milr"]["countblind"]["overall"]
    assert result.data["budget"]["countblind"]["milr"][-1] == full


def test_a_study_run_again_redoes_no_finished_sweep_and_reruns_a_deleted_one(study, tmp_path, shapes_mug, capsys):
    root, first = study
    out = tmp_path / "out"
    shutil.copytree(root / "out", out)
    again = run_study(root / "SPEC.toml", out, mug=shapes_mug)
    assert [s.ran for s in again.sweeps] == [0] * 6 and all(s.reused == 6 for s in again.sweeps)
    assert again.data["accuracy"] == first.data["accuracy"]
    shutil.rmtree(out / "sweeps" / "seed-0" / "milr" / "countblind")  # one sweep's outputs lost
    (out / "sweeps" / "seed-0" / "best_of_n" / "oracle" / "results.jsonl").unlink()
    ran = {(s.method, s.label): s.ran for s in run_study(root / "SPEC.toml", out, mug=shapes_mug).sweeps}
    assert ran == {("baseline", None): 0, ("milr", "oracle"): 0, ("milr", "countblind"): 6, ("best_of_n", None): 0,
                   ("best_of_n", "oracle"): 6, ("best_of_n", "countblind"): 0}  # fmt: skip
    assert json.loads((out / "study.json").read_text())["accuracy"] == first.data["accuracy"]


def test_a_study_folder_of_another_spec_is_refused_naming_the_difference(study, tmp_path, shapes_mug):
    root, _ = study
    out = tmp_path / "out"
    shutil.copytree(root / "out", out)
    (tmp_path / "SPEC.toml").write_text(SPEC.replace("steps = 2", "steps = 3"))
    with pytest.raises(ValueError, match="holds sweeps of another spec \\(config.steps: 2 there, 3 now\\)"):
        run_study(tmp_path / "SPEC.toml", out, mug=shapes_mug)
    swapped = SPEC.replace('countblind = "shapes-countblind"', 'countblind = "shapes-lenient"')
    (tmp_path / "SPEC.toml").write_text(swapped)
    with pytest.raises(ValueError, match="critics.countblind: 'shapes-countblind' there, 'shapes-lenient' now"):
        run_study(tmp_path / "SPEC.toml", out, mug=shapes_mug)


def test_a_critic_added_to_a_finished_study_runs_only_its_own_sweeps(study, tmp_path, shapes_mug):
    root, first = study
    out = tmp_path / "out"
    shutil.copytree(root / "out", out)
    (tmp_path / "SPEC.toml").write_text(SPEC.replace("[config]", 'lenient = "shapes-lenient"\n[config]'))
    result = run_study(tmp_path / "SPEC.toml", out, mug=shapes_mug)
    ran = {(s.method, s.label): s.ran for s in result.sweeps if s.ran}
    assert ran == {("milr", "lenient"): 6, ("best_of_n", "lenient"): 6}
    assert result.data["accuracy"]["milr"]["oracle"] == first.data["accuracy"]["milr"]["oracle"]
    assert "lenient" in result.data["diagnostics"] and "| lenient | MILR |" in (out / "study.md").read_text()


def test_study_command_through_its_parser(study, tmp_path, capsys):
    root, _ = study
    out = tmp_path / "out"
    shutil.copytree(root / "out", out)
    parser = build_parser()
    args = parser.parse_args(["study", str(root / "SPEC.toml"), "--out", str(out)])
    assert args.func(args) == 0  # the model loads by name; every sweep is on disk already
    printed = capsys.readouterr().out
    assert "6 sweeps, 0 ran, 6 reused" in printed and "countblind" in printed and "study.html" in printed
