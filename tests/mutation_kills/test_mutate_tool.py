"""benchmarks/mutate.py itself: which mutants it proposes, that each one is a real one-place change,
that its sample is the same on every run, and that its copy of the repository holds every package
(a copy missing `milr/traces` once made every unmutated run fail)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import mutate  # noqa: E402

sys.path.remove(str(ROOT / "benchmarks"))

SOURCE = '''"""A module docstring: never mutated."""
import os

LIMIT = 3


def stop(score, threshold):
    """A docstring: never mutated."""
    if score is not None and score >= threshold:
        return "threshold"
    log.info("checked", score=score)
    total = score + 1
    return total > LIMIT
'''


def mutations(source: str = SOURCE) -> list[tuple[int, str]]:
    return [(m.line, m.mutation) for m in mutate.find_mutants("m.py", source)]


def test_it_proposes_the_classic_one_token_bugs():
    found = mutations()
    for expected in [
        (9, "`is not` → `is`"),
        (9, "`and` → `or`"),
        (9, "`>=` → `>`"),
        (10, "return None"),
        (12, "`+` → `-`"),
        (12, "1 → 2"),
        (12, "delete statement"),
        (13, "`>` → `>=`"),
        (4, "3 → 4"),  # module constants are logic too
    ]:
        assert expected in found
    assert not [m for m in found if m[0] in (1, 2, 8, 11)]  # docstrings, imports, logging


def test_each_mutant_changes_only_its_own_span_and_compiles():
    for mutant in mutate.find_mutants("m.py", SOURCE):
        changed = mutate.apply(SOURCE, mutant)
        compile(changed, "m.py", "exec")
        assert changed != SOURCE
        before, after = SOURCE.splitlines(), changed.splitlines()
        assert before[: mutant.start[0] - 1] == after[: mutant.start[0] - 1]  # lines above are untouched


def test_a_mutated_comparison_reads_as_written():
    [mutant] = [m for m in mutate.find_mutants("m.py", SOURCE) if m.mutation == "`>=` → `>`"]
    assert "if score is not None and score > threshold:" in mutate.apply(SOURCE, mutant)


def test_the_sample_is_capped_and_the_same_on_every_run():
    mutants = mutate.find_mutants("milr/traces/files.py", (ROOT / "milr/traces/files.py").read_text())
    first, second = mutate.sample(mutants, 10), mutate.sample(list(reversed(mutants)), 10)
    assert len(first) == 10 and first == second
    fresh = mutate.sample(mutants, 10, offset=10)  # a held-out sample: none of the first ten
    assert len(fresh) == 10 and not set(fresh) & set(first)


def test_the_copy_keeps_every_package_and_leaves_out_only_the_roots_environment():
    at_root = mutate.copy_ignore(str(ROOT), [".venv", ".git", "traces", "milr", "tests", "benchmarks"])
    assert at_root == {".venv", ".git", "traces"}
    for folder in (ROOT / "milr", ROOT / "tests", ROOT / "benchmarks"):
        assert mutate.copy_ignore(str(folder), ["traces", "results", "x.py", "__pycache__"]) == {"__pycache__"}
