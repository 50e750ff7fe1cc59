"""The full ShapesEval MILR sweep batched against sequential (issue 11), side by side in one run.

    python benchmarks/bench_sweep.py [--per-tag 50] [--steps 20] [--batches 16,1] [--threads 2]

Each sweep is the same `milr bench shapes --method milr` run (shipped ShapesWorld model, exact oracle
as reward and judge, entry i seeded 1000·i), once per batch size, into fresh temporary folders; the
batch sizes take turns chunk by chunk (`--chunks`), so load on this shared machine hits them alike.
Records the wall time, accuracy per tag and overall, mean generations, and the share of wall time
spent writing traces (round images, latents, round lines, summaries and reports, timed around the
`TraceWriter` calls). Targets: batch 16 takes >= 4x less wall time than batch 1, and its overall
accuracy is within ±0.02 of the sequential sweep. Saves benchmarks/results/bench_sweep.json, with
its provenance.
"""

from __future__ import annotations

import argparse
import sys
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

sys.path.insert(0, str(Path(__file__).parent))
from provenance import Measured, save_result  # noqa: E402

RESULTS = Path(__file__).parent / "results"
TIMED = ("start", "write_round", "save_latents", "finish")


class TraceClock:
    """Wall time spent inside `TraceWriter`'s writing methods while active: the union of the calls'
    intervals, since the runs of a batch write their rounds in parallel threads."""

    def __init__(self):
        self.intervals: list[tuple[float, float]] = []
        self._originals = {name: getattr(TraceWriter, name) for name in TIMED}

    def __enter__(self):
        for name, method in self._originals.items():
            setattr(TraceWriter, name, self._timed(method))
        return self

    def __exit__(self, *exc):
        for name, method in self._originals.items():
            setattr(TraceWriter, name, method)

    @property
    def seconds(self) -> float:
        total, end = 0.0, float("-inf")
        for a, b in sorted(self.intervals):
            if b > end:
                total += b - max(a, end)
                end = b
        return total

    def _timed(self, method):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.intervals.append((started, time.perf_counter()))  # list.append is atomic

        return wrapper


def shapes_setup(steps: int):
    """The shipped ShapesWorld model and a K = `steps` config with its recommended settings."""
    config = MILRConfig(steps=steps)
    mug = build_model("shapes", config)
    return mug, config.with_recommended(mug.recommended)


def sweeps(mug, config: MILRConfig, per_tag: int, batches: list[int], chunks: int) -> dict:
    """Every batch size's sweep over the same prompts, interleaved chunk by chunk (chunk c of every
    batch size, then chunk c + 1, ...), so a change of load on this shared machine hits them alike.
    Each batch size appends to its own resumable results folder; times add up over the chunks."""
    oracle = ShapesOracle()
    items = load_shapes(per_tag)
    size = -(-len(items) // chunks)
    seconds = dict.fromkeys(batches, 0.0)
    writing = dict.fromkeys(batches, 0.0)
    with tempfile.TemporaryDirectory() as tmp:
        for start in range(0, len(items), size):
            for batch in batches:
                with TraceClock() as clock:
                    started = time.perf_counter()
                    run_bench(items[start : start + size], mug, BenchSpec("milr", config), oracle, oracle,
                              Path(tmp) / f"b{batch}", progress=False, batch=batch)  # fmt: skip
                    seconds[batch] += time.perf_counter() - started
                writing[batch] += clock.seconds
        return {f"batch={b}": _figures(load_records(Path(tmp) / f"b{b}"), b, seconds[b], writing[b]) for b in batches}


def _figures(records: list[dict], batch: int, seconds: float, writing: float) -> dict:
    summary = summarize(records)
    return {
        "batch": batch,
        "prompts": len(records),
        "seconds": round(seconds, 1),
        "prompts_per_s": round(len(records) / seconds, 3),
        "overall": summary["overall"],
        "tags": summary["tags"],
        "mean_generations": summary["mean_generations"],
        "trace_write_seconds": round(writing, 2),
        "trace_write_share": round(writing / seconds, 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-tag", type=int, default=50, help="50 → the full 300-prompt ShapesEval")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batches", default="16,1", help="batch sizes, run one after the other")
    ap.add_argument("--chunks", type=int, default=6, help="interleave the batch sizes over this many chunks")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--out", type=Path, default=RESULTS / "bench_sweep.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    mug, config = shapes_setup(args.steps)
    batches = [int(b) for b in args.batches.split(",")]
    with Measured() as measured:
        figures = sweeps(mug, config, args.per_tag, batches, args.chunks)
    result = {
        "what": f"ShapesEval MILR sweep, K={args.steps}, exact oracle, shipped ShapesWorld model",
        "sweeps": figures,
        "interleaved_chunks": args.chunks,
        "provenance": measured.provenance("cpu"),
    }
    if "batch=16" in figures and "batch=1" in figures:
        fast, slow = figures["batch=16"], figures["batch=1"]
        result["wall_time_ratio_1_over_16"] = round(slow["seconds"] / fast["seconds"], 2)
        result["overall_difference_16_minus_1"] = round(fast["overall"] - slow["overall"], 4)
    save_result(result, args.out)


if __name__ == "__main__":
    main()
