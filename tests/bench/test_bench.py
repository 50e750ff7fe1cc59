"""Benchmark harness: loaders on the shared files, resume, best-of-N, summaries, the CLI."""

from __future__ import annotations

import json

import pytest

from milr.bench.datasets import load_geneval, load_shapes, load_t2i_compbench, load_wise, wise_category
from milr.bench.runner import (
    SAMPLE_SEED_STRIDE,
    BenchSpec,
    append_record,
    finished_keys,
    first_pass,
    item_seed,
    parse_shard,
    run_bench,
    select_items,
)
from milr.bench.summary import compare, markdown_table, scaling_curve, summarize, wise_overall, write_summary
from milr.config import MILRConfig
from milr.critics.base import Critique
from tests.conftest import shared_path
from tests.orchestrator.helpers import PixelCritic

GENEVAL_TAGS = {"single_object", "two_object", "counting", "colors", "position", "color_attr"}


def test_geneval_loader_reads_all_553_prompts_with_specs():
    items = load_geneval(shared_path("benchmarks", "geneval", "evaluation_metadata.jsonl"))
    assert len(items) == 553 and {i.tag for i in items} == GENEVAL_TAGS
    assert items[0].spec.include[0].cls == "bench" and len({i.key for i in items}) == 553


@pytest.mark.parametrize("category", ["color", "shape", "texture", "spatial", "non_spatial", "complex"])
def test_t2i_compbench_loader_reads_300_prompts(category):
    items = load_t2i_compbench(shared_path("benchmarks", "t2i-compbench", f"{category}_val.txt"))
    assert len(items) == 300 and all(i.tag == category and i.prompt for i in items)


def test_wise_loader_on_a_fixture_in_its_schema(tmp_path):
    records = [
        {"Prompt": "Traditional food of the Mid-Autumn Festival", "Explanation": "mooncakes",
         "Category": "Cultural knowledge", "Subcategory": "Festival", "prompt_id": 1},
        {"Prompt": "A candle burning in a sealed jar after an hour", "Explanation": "it goes out",
         "Category": "Chemistry", "Subcategory": "Combustion", "prompt_id": 950},
    ]  # fmt: skip
    path = tmp_path / "wise.json"
    path.write_text(json.dumps(records))
    items = load_wise(path)
    assert [i.tag for i in items] == ["Culture", "Chemistry"] and items[1].extra["explanation"] == "it goes out"
    assert [wise_category(p) for p in (400, 401, 567, 568, 700, 701, 801, 901)] == [
        "Culture", "Time", "Time", "Space", "Space", "Biology", "Physics", "Chemistry"]  # fmt: skip


def test_bad_files_are_rejected_naming_file_and_line(tmp_path):
    bad = tmp_path / "meta.jsonl"
    bad.write_text('{"tag": "colors", "include": [], "prompt": "a"}\n{"tag": oops}\n')
    with pytest.raises(ValueError, match="meta.jsonl line 2"):
        load_geneval(bad)
    with pytest.raises(ValueError, match="does not exist"):
        load_geneval(tmp_path / "missing.jsonl")
    wise = tmp_path / "w.json"
    wise.write_text(json.dumps([{"Prompt": "x"}]))
    with pytest.raises(ValueError, match="w.json record 0: missing WISE field"):
        load_wise(wise)
    t2i = tmp_path / "color_val.txt"
    t2i.write_text("a red cat\n\na blue dog")
    with pytest.raises(ValueError, match="color_val.txt line 2"):
        load_t2i_compbench(t2i)


def test_selection_by_tag_shard_and_limit():
    items = load_shapes(per_tag=4)
    assert len(items) == 24
    assert [i.key for i in select_items(items, shard="1/4")] == [i.key for i in items[1::4]]
    assert len(select_items(items, tags=["counting"], limit=3)) == 3
    with pytest.raises(ValueError, match="unknown tag"):
        select_items(items, tags=["nope"])
    with pytest.raises(ValueError, match="i/n"):
        parse_shard("3")


class Scripted:
    """Scores the i-th image it sees from a list; marks `correct` like GenEval critics do."""

    name = "scripted"

    def __init__(self, scores):
        self.scores, self.calls = list(scores), 0

    def __call__(self, image, prompt, spec=None):
        s = self.scores[self.calls % len(self.scores)]
        self.calls += 1
        return Critique(critic=self.name, score=s, details={"correct": s >= 0.9})


def test_best_of_n_keeps_the_best_sample_and_matches_milr_budget(mug, tmp_path):
    items = load_shapes(per_tag=1)[:1]
    spec = BenchSpec("best-of-n", MILRConfig(steps=4, max_reasoning_tokens=8))
    assert spec.n == 5  # steps + 1: MILR's worst case
    reward = Scripted([0.1, 0.3, 0.95, 0.2, 0.4])
    results = run_bench(items, mug, spec, reward, PixelCritic(), tmp_path, progress=False)
    rec = json.loads(results.read_text())
    assert rec["reward_scores"] == [0.1, 0.3, 0.95, 0.2, 0.4] and rec["generations"] == 5
    assert rec["first_pass"] == 3  # a best-of-N stopping at the first passing sample spends 3


def test_every_entry_has_its_own_seed_so_repeated_prompts_draw_differently():
    items = load_shapes(per_tag=10)
    assert len({i.prompt for i in items}) < len(items)  # ShapesEval repeats prompts ...
    seeds = {item_seed(7, i, s) for i in items for s in range(3)}
    assert len(seeds) == 3 * len(items)  # ... but no two (entry, sample) pairs share a seed
    assert item_seed(7, items[2], 1) == 7 + items[2].seed + SAMPLE_SEED_STRIDE
    assert first_pass([0.2, None, 0.5], 0.9) is None and first_pass([None, 0.95], 0.9) == 2


def test_a_sweep_killed_midway_finishes_without_redoing_or_losing_records(mug, tmp_path):
    items = load_shapes(per_tag=1)
    spec = BenchSpec("baseline", MILRConfig(steps=3, max_reasoning_tokens=8))
    seen = []

    def crash_after_three(record):
        seen.append(record["key"])
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_bench(
            items, mug, spec, PixelCritic(), PixelCritic(), tmp_path, progress=False, on_record=crash_after_three
        )
    assert len(finished_keys(tmp_path / "results.jsonl")) == 3
    rest = []
    run_bench(
        items,
        mug,
        spec,
        PixelCritic(),
        PixelCritic(),
        tmp_path,
        progress=False,
        on_record=lambda r: rest.append(r["key"]),
    )
    keys = [json.loads(line)["key"] for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert sorted(keys) == sorted(i.key for i in items) and len(keys) == len(set(keys)) == 6
    assert not set(rest) & set(seen)


def test_a_line_half_written_by_a_crash_is_cut_before_the_next_record(tmp_path):
    results = tmp_path / "results.jsonl"
    append_record(results, {"key": "a", "sample": 0})
    with open(results, "ab") as f:
        f.write(b'{"key": "b", "sam')  # the process died mid-write
    assert finished_keys(results) == {("a", 0)}
    append_record(results, {"key": "c", "sample": 0})
    assert [json.loads(line)["key"] for line in results.read_text().splitlines()] == ["a", "c"]


def test_milr_sweep_with_curve_and_summary_files(mug, tmp_path):
    items = load_shapes(per_tag=1)[:2]
    spec = BenchSpec("milr", MILRConfig(steps=2, max_reasoning_tokens=8))
    run_bench(items, mug, spec, PixelCritic(), Scripted([0.2, 0.95, 0.1]), tmp_path, progress=False, curve=True)
    summary = write_summary(tmp_path)
    assert summary["records"] == 2 and len(summary["curve"]) == 3
    assert (tmp_path / "summary.md").read_text().startswith("| method |")
    assert (tmp_path / "scaling_curve.png").is_file() and (tmp_path / "summary.csv").is_file()
    assert "| " + tmp_path.name in compare(tmp_path, tmp_path)


def test_summary_numbers_equal_hand_computed_ones():
    records = [
        {"tag": "counting", "correct": True, "generations": 1, "seconds": 1.0},
        {"tag": "counting", "correct": False, "generations": 5, "seconds": 3.0},
        {"tag": "colors", "correct": True, "generations": 2, "seconds": 2.0},
        {"tag": "position", "correct": False, "generations": 4, "seconds": 2.0},
    ]
    s = summarize(records)
    assert s["tags"] == {"colors": 1.0, "counting": 0.5, "position": 0.0}
    assert s["overall"] == pytest.approx(0.5)  # mean of tags, not of images (which would be 0.5 too by chance)
    assert s["mean_generations"] == 3.0 and s["mean_seconds"] == 2.0
    skewed = records + [{"tag": "colors", "correct": True, "generations": 1, "seconds": 1.0}] * 6
    assert summarize(skewed)["overall"] == pytest.approx(0.5)  # image mean would be 0.8
    assert "| x | 1.000 | 0.500 | 0.000 | 0.500 | 3.00 |" in markdown_table({"x": s})
    curve = scaling_curve([{"eval_by_round": [False, True]}, {"eval_by_round": [False, False, True]}])
    assert curve == [0.0, 0.5, 1.0]


def test_wise_summary_weights_category_mean_scores():
    w = {"Culture": 0.4, "Time": 0.6}
    assert wise_overall({"Culture": 1.0, "Time": 0.5}, w) == pytest.approx(0.7)
    scores = {"Culture": [1.0, 0.5], "Time": [0.2], "Space": [0.4], "Biology": [0.0], "Physics": [1.0],
              "Chemistry": [0.6, None]}  # fmt: skip
    records = [
        {"tag": t, "eval_score": s, "correct": bool(s and s > 0.9), "generations": 1, "seconds": 1.0}
        for t, ss in scores.items()
        for s in ss
    ]
    summary = summarize(records)
    assert summary["mean_score_tags"]["Culture"] == pytest.approx(0.75)
    assert summary["mean_score_tags"]["Chemistry"] == pytest.approx(0.6)  # an abstention is left out
    expected = 0.4 * 0.75 + 0.167 * 0.2 + 0.133 * 0.4 + 0.1 * 0.0 + 0.1 * 1.0 + 0.1 * 0.6
    assert summary["wise_overall"] == pytest.approx(expected)
    unjudged = [r if r["tag"] != "Time" else {**r, "eval_score": None} for r in records]
    assert "wise_overall" not in summarize(unjudged)  # a category the judge never scored: no overall


def test_bench_cli_on_the_tiny_model(tmp_path):
    from milr.cli import main

    out = tmp_path / "b"
    args = ["bench", "shapes", "--per-tag", "1", "--limit", "2", "--model", "tiny", "--critic", "self",
            "--eval-critic", "shapes", "--method", "milr", "--steps", "1", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    assert len((out / "results.jsonl").read_text().splitlines()) == 2
    assert main(args) == 0  # finished work is skipped, not redone
    assert len((out / "results.jsonl").read_text().splitlines()) == 2
    assert json.loads((out / "summary.json").read_text())["records"] == 2


def test_ten_prompts_through_batch_four_give_ten_complete_traces_equal_to_their_records(tmp_path):
    from milr.cli import main
    from milr.traces import Trace

    out = tmp_path / "b"
    args = ["bench", "shapes", "--per-tag", "2", "--limit", "10", "--model", "shapes", "--critic", "shapes",
            "--method", "milr", "--steps", "4", "--batch", "4", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(records) == len({r["key"] for r in records}) == 10
    assert len({r["generations"] for r in records}) > 1  # runs stopped at different rounds: slots were refilled
    for rec in records:
        trace = Trace.load(out / rec["trace"])
        assert trace.run.prompt == rec["prompt"] and trace.run.seed == rec["seed"]
        assert [r.score for r in trace.rounds] == rec["reward_scores"]
        assert [r.round for r in trace.rounds] == list(range(rec["generations"]))
        assert trace.summary.rounds == rec["generations"] and trace.final.image.size == (64, 64)
        assert (out / rec["trace"] / "report.html").is_file()
