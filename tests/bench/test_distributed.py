"""Ray scale-out: a sweep over 2 local Ray workers writes the same records as one process."""

from __future__ import annotations

import json

import pytest

from milr.bench.datasets import load_shapes
from milr.bench.distributed import BenchSetup, run_bench_ray, worker_count
from milr.bench.runner import BenchSpec, run_bench, select_items
from milr.config import MILRConfig

# Timings and the worker's own trace folder differ by design; everything else must match.
VARIABLE = ("seconds",)


def _records(results) -> dict:
    out = {}
    for line in results.read_text().splitlines():
        rec = json.loads(line)
        out[(rec["key"], rec["sample"])] = {k: v for k, v in rec.items() if k not in VARIABLE}
    return out


def test_worker_count_uses_every_gpu_else_every_cpu():
    assert worker_count({"CPU": 16, "GPU": 4}, None) == (4, True)
    assert worker_count({"CPU": 2}, None) == (2, False)
    assert worker_count({"CPU": 8, "GPU": 2}, 1) == (1, True)
    with pytest.raises(ValueError, match="--workers must be >= 1"):
        worker_count({"CPU": 2}, 0)


@pytest.mark.slow  # starts a local Ray cluster and two workers that load the model: about 15 s
def test_ray_on_two_local_workers_equals_a_single_process_run(tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'milr[ray]'")
    items = select_items(load_shapes(4), tags=["counting", "position", "color_attr"], limit=4)
    setup = BenchSetup("shapes", "shapes", config=MILRConfig(steps=2, seed=3))

    mug, config, reward, evaluate = setup.build()
    single = run_bench(items, mug, BenchSpec("milr", config), reward, evaluate, tmp_path / "one", progress=False)
    try:
        # Chunks of two pairs: both workers get work, each decoding its chunk as one batch.
        spread = run_bench_ray(items, setup, "milr", tmp_path / "ray", workers=2, progress=False, batch=2)
        first = spread.read_text()
        run_bench_ray(items, setup, "milr", tmp_path / "ray", workers=2, progress=False, batch=2)  # all done
        assert spread.read_text() == first  # nothing redone, nothing lost
    finally:
        ray.shutdown()

    one, many = _records(single), _records(spread)
    assert len(one) == 4 and one == many
    assert json.loads((tmp_path / "ray" / "bench.json").read_text()) == json.loads(
        (tmp_path / "one" / "bench.json").read_text()
    )
    # Every worker-written trace is where its record says.
    assert all((tmp_path / "ray" / rec["trace"] / "rounds.jsonl").is_file() for rec in many.values())
