"""A study with `ray = "local"` runs its MILR and baseline sweeps on Ray workers, with the records a
single-process study gets."""

from __future__ import annotations

import importlib.util
import json

import pytest

from milr.studies.study import run_study
from milr.traces import Trace

# Looked up, not imported: importing Ray costs about 2 s of CPU in every process that collects tests.
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="Ray is not installed: pip install 'milr[ray]'"
)

SPEC = """
name = "ray"
eval_critic = "shapes"
methods = ["baseline", "milr"]
[prompts]
per_tag = 1
[critics]
countblind = "shapes-countblind"
[config]
steps = 1
[run]
batch = 3
"""


def records(folder) -> dict:
    rows = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    return {r["key"]: (r["reward_scores"], r["correct"], r["generations"], r["seed"]) for r in rows}


@pytest.mark.slow
def test_a_study_on_ray_workers_gets_the_records_of_a_single_process_study(tmp_path, shapes_mug):
    (tmp_path / "plain.toml").write_text(SPEC)
    # One worker per sweep: each is an interpreter loading torch and the model (about 7 s of CPU), and
    # records from two workers equal a single process's in tests/bench/test_distributed.py.
    (tmp_path / "ray.toml").write_text(SPEC + 'ray = "local"\nworkers = 1\n')
    plain = run_study(tmp_path / "plain.toml", tmp_path / "plain", mug=shapes_mug)
    on_ray = run_study(tmp_path / "ray.toml", tmp_path / "ray", mug=shapes_mug)
    for sub in ("baseline", "milr/countblind"):
        mine = records(tmp_path / "ray" / "sweeps" / "seed-0" / sub)
        assert len(mine) == 6 and mine == records(tmp_path / "plain" / "sweeps" / "seed-0" / sub)
    assert on_ray.data["diagnostics"] == plain.data["diagnostics"]  # the evaluator rescored the workers' traces
    traces = (tmp_path / "ray" / "sweeps" / "seed-0" / "milr" / "countblind" / "traces").iterdir()
    assert {c["name"] for t in traces for c in Trace.load(t).run.critics} == {"shapes-countblind"}
