"""benchmarks/bench_study.py runs top to bottom at a smoke size and records what its targets need."""

from __future__ import annotations

import json

import pytest

from tests.scripts import run_script


@pytest.mark.slow
def test_bench_study_records_both_targets_with_its_environment(tmp_path):
    args = ["--threads", "1", "--per-tag", "1", "--steps", "1", "--rescore-per-tag", "1", "--rescore-steps", "1",
            "--out", str(tmp_path)]  # fmt: skip
    run_script("bench_study.py", *args)
    study = json.loads((tmp_path / "bench_study.json").read_text())
    assert study["seconds"] > 0 and study["target_seconds"] == 600 and isinstance(study["within_target"], bool)
    recorded = {"torch_threads", "device", "torch", "loadavg_before", "other_processes_ran", "other_cores_used"}
    assert recorded <= set(study)
    assert study["torch_threads"] == 1 and len(study["sweeps"]) == 1 + 7 + 1 + 7  # baseline, MILR, samples, picks
    assert "oracle milr" in study["overall"] and "baseline" in study["overall"]
    assert (tmp_path / "bench_study.md").read_text().startswith("# Study: shapes-lab")
    rescore = json.loads((tmp_path / "bench_rescore.json").read_text())
    assert rescore["sweep"]["prompts"] == 6 and rescore["target_ratio"] == 0.1
    for row in rescore["rescore"].values():
        assert row["images"] >= 6 and row["ms_per_image"] > 0
        assert row["ratio_to_sweep"] == pytest.approx(row["seconds"] / rescore["sweep"]["seconds"], abs=2e-3)
