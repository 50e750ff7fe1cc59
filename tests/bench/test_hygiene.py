"""Sweep hygiene: a bench folder is continued only by the same sweep, `--limit` is stratified and
seeded, `--per-tag` works for every benchmark, and best-of-N keeps its samples as a trace."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from milr.bench.datasets import (
    BenchItem,
    load_benchmark,
    load_geneval,
    load_shapes,
    load_t2i_compbench,
    load_wise,
    stratified,
    tag_quotas,
)
from milr.bench.folder import SweepMismatchError, differences
from milr.bench.runner import BenchSpec, bench_json, describe_selection, run_bench, select_items, start_sweep
from milr.config import MILRConfig
from milr.traces import Trace
from tests.bench.test_bench import Scripted
from tests.conftest import shared_path
from tests.orchestrator.helpers import PixelCritic

CONFIG = MILRConfig(steps=5, max_reasoning_tokens=8)


def _settings(method="milr", config=CONFIG, n=None, scripted_reward=False, **kw) -> dict:
    spec = BenchSpec(method, config, n)
    return bench_json(spec, Scripted([1.0]) if scripted_reward else PixelCritic(), PixelCritic(), **kw)


# ----------------------------------------------------------------------------- the folder check
def test_a_milr_folder_rerun_as_best_of_n_is_refused_naming_every_difference(mug, tmp_path):
    items = load_shapes(per_tag=1)[:1]
    milr = BenchSpec("milr", MILRConfig(steps=1, max_reasoning_tokens=4))
    run_bench(items, mug, milr, PixelCritic(), PixelCritic(), tmp_path, progress=False)
    before = {name: (tmp_path / name).read_bytes() for name in ("bench.json", "results.jsonl")}
    other = BenchSpec("best-of-n", milr.config.override(steps=2))
    with pytest.raises(SweepMismatchError) as err:
        run_bench(items, mug, other, PixelCritic(), PixelCritic(), tmp_path, progress=False)
    message = str(err.value)
    assert 'method: "milr" on disk, "best-of-n" now' in message and "n: null on disk, 3 now" in message
    assert "config.steps: 1 on disk, 2 now" in message and "another --out folder" in message
    assert "--new-folder" in message
    assert {name: (tmp_path / name).read_bytes() for name in before} == before  # nothing rewritten
    # asked for a new folder: a sibling, and the same command again resumes that same sibling
    results = run_bench(items, mug, other, PixelCritic(), PixelCritic(), tmp_path, progress=False, new_folder=True)
    assert results == tmp_path.with_name(tmp_path.name + "-2") / "results.jsonl"
    assert json.loads(results.read_text())["method"] == "best-of-n"
    again = run_bench(items, mug, other, PixelCritic(), PixelCritic(), tmp_path, progress=False, new_folder=True)
    assert again == results and len(results.read_text().splitlines()) == 1
    assert {name: (tmp_path / name).read_bytes() for name in before} == before


def test_other_critics_curve_or_selection_are_refused_and_placement_is_not(tmp_path):
    items = load_shapes(per_tag=1)
    selection = describe_selection("shapes", per_tag=1, limit=4, limit_seed=0)
    start_sweep(items, tmp_path, _settings(curve=False, benchmark=selection), samples=1)
    cases = {
        "reward_critic": _settings(scripted_reward=True, curve=False, benchmark=selection),
        "curve": _settings(curve=True, benchmark=selection),
        "benchmark": _settings(curve=False, benchmark={**selection, "limit_seed": 1}),
    }
    for field, settings in cases.items():
        with pytest.raises(SweepMismatchError, match=f"{field}: "):
            start_sweep(items, tmp_path, settings, samples=1)
    # where it runs is not what it computes; more samples only add records
    moved = _settings(config=CONFIG.override(dtype="bfloat16", compile=True), curve=False, benchmark=selection)
    _, todo, _ = start_sweep(items, tmp_path, moved, samples=2)
    assert len(todo) == 2 * len(items)
    start_sweep(items, tmp_path, moved, samples=1)  # the records of sample 1 stay valid: bench.json says so
    assert json.loads((tmp_path / "bench.json").read_text())["samples"] == 2


def test_an_older_bench_json_is_compared_on_what_it_records(tmp_path):
    legacy = {"method": "milr", "n": None, "config": CONFIG.to_json_dict(), "samples": 1}
    assert differences(legacy, _settings(curve=True)) == []
    assert differences(legacy, _settings(config=CONFIG.override(lr=0.1))) == ["config.lr: 0.03 on disk, 0.1 now"]
    (tmp_path / "bench.json").write_text("{oops")
    with pytest.raises(ValueError, match="bench.json is not valid JSON.*another --out folder"):
        start_sweep([], tmp_path, _settings(), samples=1)


# ----------------------------------------------------------------------------- selection
def test_stratified_limit_of_geneval_covers_the_tags_and_is_seeded():
    items = load_geneval(shared_path("benchmarks", "geneval", "evaluation_metadata.jsonl"))
    assert {i.tag for i in items[:12]} == {"single_object"}  # what --limit 12 used to take
    first = select_items(items, limit=12, limit_seed=0)
    assert Counter(i.tag for i in first) == dict.fromkeys(Counter(i.tag for i in items), 2)
    assert [i.key for i in select_items(items, limit=12, limit_seed=0)] == [i.key for i in first]
    other = select_items(items, limit=12, limit_seed=1)
    assert [i.key for i in other] != [i.key for i in first] and len({i.tag for i in other}) == 6
    assert [i.key for i in first] == sorted(i.key for i in first)  # file order
    # shards partition the limited selection
    halves = select_items(items, limit=12, shard="0/2") + select_items(items, limit=12, shard="1/2")
    assert sorted(i.key for i in halves) == [i.key for i in first]


def test_quotas_hand_what_a_small_tag_lacks_to_the_others():
    items = [BenchItem(key=f"{t}{k}", prompt="p", tag=t) for t, n in (("a", 1), ("b", 5), ("c", 5)) for k in range(n)]
    picked = Counter(i.tag for i in stratified(items, 7, seed=3))
    assert picked == {"a": 1, "b": 3, "c": 3}
    import random

    assert tag_quotas({"a": 4, "b": 4, "c": 4}, 4, random.Random(0)) in (
        {"a": 2, "b": 1, "c": 1}, {"a": 1, "b": 2, "c": 1}, {"a": 1, "b": 1, "c": 2})  # fmt: skip
    assert len(stratified(items, 50)) == len(items)
    with pytest.raises(ValueError, match="limit must be a whole number >= 1"):
        stratified(items, 0)


def test_per_tag_exists_for_every_benchmark(tmp_path):
    geneval = load_geneval(shared_path("benchmarks", "geneval", "evaluation_metadata.jsonl"), per_tag=3)
    assert Counter(i.tag for i in geneval) == dict.fromkeys({i.tag for i in geneval}, 3) and len(geneval) == 18
    t2i = load_t2i_compbench(shared_path("benchmarks", "t2i-compbench", "color_val.txt"), per_tag=4)
    assert [i.key for i in t2i] == [f"t2i-color-{k:06d}" for k in range(4)]
    wise = tmp_path / "wise.json"
    wise.write_text(json.dumps([{"Prompt": f"p{k}", "Explanation": "e", "prompt_id": pid}
                                for k, pid in enumerate((1, 2, 3, 450, 451))]))  # fmt: skip
    assert [i.tag for i in load_wise(wise, per_tag=1)] == ["Culture", "Time"]
    assert Counter(i.tag for i in load_benchmark("shapes", per_tag=2)) == dict.fromkeys(
        {i.tag for i in load_shapes(per_tag=1)}, 2
    )
    assert [i.key for i in select_items(load_wise(wise), per_tag=2)] == ["wise-0001", "wise-0002", "wise-0450",
                                                                         "wise-0451"]  # fmt: skip
    with pytest.raises(ValueError, match="per_tag must be a whole number >= 1"):
        load_benchmark("geneval", shared_path("benchmarks", "geneval", "evaluation_metadata.jsonl"), per_tag=0)
    with pytest.raises(ValueError, match="needs the path of its file"):
        load_benchmark("wise")


def test_the_selection_names_the_file_not_its_path():
    sel = describe_selection("geneval", "/home/someone/data/evaluation_metadata.jsonl", tags=["b", "a"], limit=12)
    assert sel == {"benchmark": "geneval", "file": "evaluation_metadata.jsonl", "tags": ["a", "b"], "per_tag": None,
                   "limit": 12, "limit_seed": 0}  # fmt: skip


# ----------------------------------------------------------------------------- best-of-N traces
def test_best_of_n_keeps_its_samples_as_a_finished_trace(mug, tmp_path):
    items = load_shapes(per_tag=1)[:1]
    spec = BenchSpec("best-of-n", MILRConfig(steps=2, max_reasoning_tokens=8))
    left = tmp_path / "traces" / "shapes-0000-s0"
    left.mkdir(parents=True)
    (left / "run.json").write_text("{}")  # what a killed attempt left: no record, so it is redone
    results = run_bench(items, mug, spec, Scripted([0.2, 0.7, 0.4]), PixelCritic(), tmp_path, progress=False)
    rec = json.loads(results.read_text())
    trace = Trace.load(tmp_path / rec["trace"])
    assert trace.path == left and [r.score for r in trace.rounds] == rec["reward_scores"] == [0.2, 0.7, 0.4]
    assert trace.summary.final_round == 1 and trace.summary.stop_reason == "best-of-n"
    assert trace.run.seed == rec["seed"] and trace.run.prompt == rec["prompt"]
    assert (trace.path / "final.png").read_bytes() == trace.rounds[1].image_bytes()
    assert PixelCritic()(trace.final.image, "").score == rec["eval_score"]  # the image that was evaluated
    assert (trace.path / "report.html").is_file() and len({r.reasoning for r in trace.rounds}) == 1
