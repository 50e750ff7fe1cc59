"""The benchmark scripts run top to bottom at tiny sizes and write the JSON their readers expect
(bench_gpu.py is run on a GPU only once, unattended: a crash there costs the whole device check),
each with its provenance (benchmarks/provenance.py: threads, device, versions, load, what ran beside).
They run inside the test process (tests/scripts.py), which has already imported torch and milr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import transformers

from tests.scripts import run_script

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import provenance  # noqa: E402

sys.path.remove(str(BENCHMARKS))


def assert_provenance(block: dict, script: str, threads: int | None = None) -> None:
    """A speed JSON's provenance block: what ran it, on what, and beside what."""
    assert block["command"].startswith(f"python benchmarks/{script}")
    assert block["threads"] == threads if threads else block["threads"] >= 1
    assert block["cpus"] == os.cpu_count()
    assert block["torch"] == torch.__version__ and block["transformers"] == transformers.__version__
    assert block["device"] == "cpu" and len(block["loadavg_before"]) == len(block["loadavg_after"]) == 3
    assert isinstance(block["other_processes_ran"], bool) and isinstance(block["other_processes"], list)
    assert block["seconds"] >= 0 and str(Path.home()) not in json.dumps(block)


def test_measured_names_a_busy_process_that_ran_beside_it():
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)  # it is running before the block starts
        with provenance.Measured() as measured:
            time.sleep(1.0)
    finally:
        busy.kill()
        busy.wait()
    record = measured.record()
    mine = [row for row in record["other_processes"] if row["pid"] == busy.pid]
    assert len(mine) == 1 and mine[0]["name"].startswith("python") and mine[0]["cpu_share"] > 0.05
    assert record["other_processes_ran"] is True and record["other_cores_used"] > 0.05
    assert all(row["pid"] != os.getpid() for row in record["other_processes"])


def test_the_recorded_command_keeps_no_path_from_outside_the_repository(tmp_path):
    argv = [str(BENCHMARKS / "bench_mug.py"), "--out", str(tmp_path / "m.json"), f"--log={tmp_path}/x.txt"]
    line = provenance.command_line(argv)
    assert line == "python benchmarks/bench_mug.py --out '<outside>/m.json' '--log=<outside>/x.txt'"
    assert provenance.command_line(["benchmarks/bench_round.py", "--model", "tiny"]) == (
        "python benchmarks/bench_round.py --model tiny"
    )


SMOKE_RUNS = {
    "bench_mug.py": "--hidden 64 --layers 2 --grid 2 --codes 64 --repeats 1 --threads 1 --out {tmp}/mug.json",
    "bench_round.py": "--model tiny --steps 1 --runs 1 --threads 1 --out {tmp}/round.json",
    "bench_traces.py": "--rounds 2 --out {tmp}/traces.json",
    "bench_shapes.py": "--per-tag 1 --steps 1 --methods baseline --threads 1 --results {tmp}/shapes",
    "bench_sweep.py": "--per-tag 1 --steps 1 --chunks 1 --batches 2,1 --threads 1 --out {tmp}/sweep.json",
    "bench_cli.py": "--per-tag 1 --steps 1 --threads 1 --out {tmp}/cli",
    "bench_threads.py": "--per-tag 1 --steps 1 --chunks 1 --batches 1 --threads 1 --out {tmp}/threads.json",
}
SMOKE_JSONS = {
    "bench_mug.py": ["mug.json"],
    "bench_round.py": ["round.json"],
    "bench_traces.py": ["traces.json"],
    "bench_shapes.py": ["shapes/baseline.json"],
    "bench_sweep.py": ["sweep.json"],
    "bench_cli.py": ["cli/speed.json"],
    "bench_threads.py": ["threads.json"],
}


@pytest.mark.slow
def test_every_speed_script_writes_its_provenance(tmp_path):
    """Every script at a smoke size, each into tmp_path. bench_batch and bench_gpu are checked by
    their own tests below, bench_study by tests/studies."""
    for script, args in SMOKE_RUNS.items():
        run_script(script, *args.format(tmp=tmp_path).split())
    for script, files in SMOKE_JSONS.items():
        for name in files:
            data = json.loads((tmp_path / name).read_text())
            assert_provenance(data["provenance"], script, None if script == "bench_traces.py" else 1)
    rounds = json.loads((tmp_path / "round.json").read_text())
    assert 0 <= rounds["graph_and_trace_overhead_fraction"] < 1  # seconds, not the `batch` count, are summed
    mug = json.loads((tmp_path / "mug.json").read_text())
    assert set(mug["seconds"]) == {"ours_draw", "ours_tokens_only", "transformers_generate", "vq_decode"}
    run_script("bench_shapes.py", "--startup", "--threads", "1", "--results", str(tmp_path))
    assert_provenance(json.loads((tmp_path / "startup.json").read_text())["provenance"], "bench_shapes.py", 1)


def test_every_benchmark_script_is_smoke_run_by_a_test():
    """A new bench_*.py needs a smoke run above (or a test of its own, named here)."""
    own_tests = {"bench_batch.py", "bench_gpu.py", "bench_study.py"}
    assert {p.name for p in BENCHMARKS.glob("bench_*.py")} == set(SMOKE_RUNS) | own_tests


def test_bench_gpu_runs_every_setting_at_a_tiny_size_on_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    tiny = "--hidden 64 --layers 2 --heads 4 --kv-heads 4 --intermediate 128 --vocab 512 --grid 2"
    run_script(
        "bench_gpu.py",
        *tiny.split(),
        *"--vision-hidden 32 --vision-layers 1 --device cpu --dtype float32 --batches 1,2 --repeats 1".split(),
        *("--backend", "eager", "--out", str(out)),
    )
    result = json.loads(out.read_text())
    for mode in ("eager", "compile"):
        for key in ("B=1", "B=2"):
            row = result[mode][key]
            assert row["images_per_s"] > 0 and row["seconds_median"] > 0 and len(row["seconds"]) == 1
    assert set(result["speedup_compile_vs_eager"]) == {"B=1", "B=2"} and result["skipped"] == []
    assert result["model"]["hidden"] == 64 and result["image_tokens"] == 4 and result["params_b"] > 0
    assert_provenance(result["provenance"], "bench_gpu.py")


def test_bench_gpu_defaults_are_janus_pro_7b():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import bench_gpu
    finally:
        sys.path.remove(str(BENCHMARKS))
    import argparse

    from transformers import JanusForConditionalGeneration

    from milr.mug.tiny import word_tokenizer

    defaults = dict(hidden=4096, layers=30, heads=32, kv_heads=32, intermediate=11008, vocab=102400)
    args = argparse.Namespace(**defaults, codes=16384, grid=24, vision_hidden=1024, vision_layers=24)
    with torch.device("meta"):  # shapes only, no memory
        model = JanusForConditionalGeneration(bench_gpu.janus_config(args, word_tokenizer()))
    assert 7.3e9 < sum(p.numel() for p in model.parameters()) < 7.5e9  # Janus-Pro-7B: 7.42 B
    assert model.config.vision_config.num_image_tokens == 576 and model.config.vq_config.num_embeddings == 16384


@pytest.mark.slow  # two models at every batch size: about 8 s
def test_bench_batch_quick_writes_every_batch_size(tmp_path):
    out = tmp_path / "batch.json"
    run_script("bench_batch.py", "--quick", "--threads", "1", "--out", str(out))
    result = json.loads(out.read_text())
    assert result["quick"] is True
    assert_provenance(result["provenance"], "bench_batch.py", 1)
    for model in ("bench_model", "shapes"):
        section = result[model]
        for b in (1, 4, 16):
            assert section[f"B={b}"]["images_per_s"] > 0
            assert section["reasoning"][f"B={b}"]["tokens_per_s"] > 0
        assert section["speedup_B16_vs_B1"] > 0
        assert len(set(section["B=16"]["image_prompt_tokens"])) > 1  # distinct lengths: left padding is real
    vs = result["bench_model"]["vs_transformers_B=1"]
    assert vs["ratio_draw"] > 0 and vs["ratio_tokens_only"] > 0
