"""Every benchmark figure the README quotes agrees with its JSON under benchmarks/results/ (issue 15):
the generated tables equal what benchmarks/readme_tables.py builds from the JSON, every figure in prose
matches its file, and every speed JSON says what it was measured on. A figure planted wrong, in a
table or in a sentence, is named."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import readme_tables  # noqa: E402

sys.path.remove(str(ROOT / "benchmarks"))


@pytest.fixture
def readme() -> str:
    return readme_tables.README.read_text()


def bump_first_digit(text: str) -> str:
    """The text with its first digit changed (9 → 0, else + 1): a figure planted wrong."""
    for i, ch in enumerate(text):
        if ch.isdigit():
            return text[:i] + str((int(ch) + 1) % 10) + text[i + 1 :]
    raise AssertionError(f"no digit in {text!r}")


def test_the_readme_agrees_with_benchmarks_results(readme):
    assert readme_tables.problems(readme) == []


def test_a_wrong_figure_in_a_generated_table_is_named(readme):
    start, end = readme_tables.table_block(readme, "shapes-eval")
    milr_overall = f"**{readme_tables.shapes('milr')['overall']:.3f}**"
    table = readme[start:end]
    assert milr_overall in table
    planted = readme[:start] + table.replace(milr_overall, bump_first_digit(milr_overall), 1) + readme[end:]
    assert readme_tables.table_problems(planted) == [
        "table shapes-eval: differs from benchmarks/results (run python benchmarks/readme_tables.py)"
    ]
    assert readme_tables.table_problems(readme_tables.regenerate(planted)) == []  # regenerating repairs it


@pytest.mark.parametrize("figure", readme_tables.FIGURES, ids=lambda f: f.phrase[:40])
def test_a_wrong_figure_in_prose_is_named(readme, figure):
    expected = figure.expected()
    flat = readme_tables.squash(readme)
    assert expected in flat
    before = set(readme_tables.figure_problems(flat))
    found = set(readme_tables.figure_problems(flat.replace(expected, bump_first_digit(expected))))
    assert found - before == {f"figure from {figure.source}: the README should say {expected!r}"}


def test_a_speed_json_without_provenance_is_named(tmp_path, monkeypatch):
    results = tmp_path / "results"
    shutil.copytree(readme_tables.RESULTS, results)
    data = json.loads((results / "bench_traces.json").read_text())
    monkeypatch.setattr(readme_tables, "RESULTS", results)
    readme_tables.result.cache_clear()
    try:
        before = set(readme_tables.provenance_problems())
        del data["provenance"]["threads"]
        (results / "bench_traces.json").write_text(json.dumps(data))
        readme_tables.result.cache_clear()
        assert set(readme_tables.provenance_problems()) - before == {"bench_traces.json: provenance lacks threads"}
    finally:
        readme_tables.result.cache_clear()


def test_every_script_result_at_the_top_of_results_is_a_known_speed_json():
    others = {"shapes_checkpoint.json", "mutation.json", "mutation_holdout.json", "bench_study.study.json"}
    known = {*readme_tables.SPEED_JSONS, *readme_tables.OPTIONAL_SPEED_JSONS, *others}
    top = {p.name for p in readme_tables.RESULTS.glob("*.json")}
    assert top - known == set(), "a new results file: list it in readme_tables.SPEED_JSONS if it holds timings"
