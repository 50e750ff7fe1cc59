"""The full ShapesEval MILR sweep batched against sequential (issue 11), side by side in one run.

    python benchmarks/bench_sweep.py [--per-tag 50] [--steps 20] [--batches 16,1] [--threads 2]

Each sweep is the same `milr bench shapes --method milr` run (shipped ShapesWorld model, exact oracle
as reward and judge, entry i seeded 1000·i), once per batch size, into a fresh temporary folder.
Records the wall time, accuracy per tag and overall, mean generations, and the share of wall time
spent writing traces (round images, latents, round lines, summaries and reports, timed around the
`TraceWriter` calls). Targets: batch 16 takes >= 4x less wall time than batch 1, and its overall
accuracy is within ±0.02 of the sequential sweep. Saves benchmarks/results/bench_sweep.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from milr.bench.datasets import load_shapes
from milr.bench.runner import BenchSpec, run_bench
from milr.bench.summary import load_records, summarize
from milr.config import MILRConfig
from milr.orchestrator.registry import build_model
from milr.shapes.oracle import ShapesOracle
from milr.traces import TraceWriter

RESULTS = Path(__file__).parent / "results"
TIMED = ("start", "write_round", "save_latents", "finish")


class TraceClock:
    """Adds up the seconds spent inside `TraceWriter`'s writing methods while it is active."""

    def __init__(self):
        self.seconds = 0.0
        self._originals = {name: getattr(TraceWriter, name) for name in TIMED}

    def __enter__(self):
        for name, method in self._originals.items():
            setattr(TraceWriter, name, self._timed(method))
        return self

    def __exit__(self, *exc):
        for name, method in self._originals.items():
            setattr(TraceWriter, name, method)

    def _timed(self, method):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        return wrapper


def sweep(mug, config: MILRConfig, per_tag: int, batch: int) -> dict:
    oracle = ShapesOracle()
    items = load_shapes(per_tag)
    with tempfile.TemporaryDirectory() as tmp, TraceClock() as clock:
        started = time.perf_counter()
        run_bench(items, mug, BenchSpec("milr", config), oracle, oracle, tmp, progress=False, batch=batch)
        seconds = time.perf_counter() - started
        records = load_records(tmp)
    summary = summarize(records)
    return {
        "batch": batch,
        "prompts": len(records),
        "seconds": round(seconds, 1),
        "prompts_per_s": round(len(records) / seconds, 3),
        "overall": summary["overall"],
        "tags": summary["tags"],
        "mean_generations": summary["mean_generations"],
        "trace_write_seconds": round(clock.seconds, 2),
        "trace_write_share": round(clock.seconds / seconds, 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-tag", type=int, default=50, help="50 → the full 300-prompt ShapesEval")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batches", default="16,1", help="batch sizes, run one after the other")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--out", type=Path, default=RESULTS / "bench_sweep.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    config = MILRConfig(steps=args.steps)
    mug = build_model("shapes", config)
    config = config.with_recommended(mug.recommended)
    load_before = os.getloadavg()
    sweeps = {f"batch={b}": sweep(mug, config, args.per_tag, int(b)) for b in args.batches.split(",")}
    result = {
        "what": f"ShapesEval MILR sweep, K={args.steps}, exact oracle, shipped ShapesWorld model",
        "sweeps": sweeps,
        "torch_threads": torch.get_num_threads(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if "batch=16" in sweeps and "batch=1" in sweeps:
        fast, slow = sweeps["batch=16"], sweeps["batch=1"]
        result["wall_time_ratio_1_over_16"] = round(slow["seconds"] / fast["seconds"], 2)
        result["overall_difference_16_minus_1"] = round(fast["overall"] - slow["overall"], 4)
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
