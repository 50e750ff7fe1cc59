"""How many intra-op threads the graph's nodes should use on a CPU (`MILRContext.cpu_threads`), side
by side in one run: a ShapesEval MILR sample (shipped ShapesWorld model, exact oracle, K = 20) with
the nodes at one thread (milr's default) against torch's own setting (`cpu_threads=None`), at
batch 1 and batch 16.

    python benchmarks/bench_threads.py [--per-tag 10] [--steps 20] [--batches 1,16] [--threads 2]

Why it matters: the facade streams LangGraph's custom events, so LangGraph runs every node on a
worker thread. Torch's OpenMP then holds a thread pool for that thread beside the main thread's, and
once the pools hold more threads than the machine has cores libgomp stops spinning between parallel
regions, so every small op waits for a thread to wake (see `milr.orchestrator.graph.node_threads`).
`--threads` is the main thread's torch setting (what `None` leaves the nodes at). The settings take
turns chunk by chunk (`--chunks`), so load on a shared machine hits them alike. Records wall time and
overall accuracy per (batch, setting) and the speedups of one thread. Saves
benchmarks/results/bench_threads.json, with its provenance.
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
from milr.orchestrator.facade import MILR
from milr.shapes.oracle import ShapesOracle

sys.path.insert(0, str(Path(__file__).parent))
from bench_sweep import shapes_setup  # noqa: E402
from provenance import Measured, save_result  # noqa: E402

RESULTS = Path(__file__).parent / "results"
SETTINGS = {"one_thread": 1, "torch_default": None}


class NodeThreads:
    """While active, every context the facade builds gives its nodes `threads` (None: torch's)."""

    def __init__(self, threads: int | None):
        self.threads, self._original = threads, MILR.context

    def __enter__(self):
        original, threads = self._original, self.threads

        def context(milr, *args, **kwargs):
            ctx = original(milr, *args, **kwargs)
            ctx.cpu_threads = threads
            return ctx

        MILR.context = context
        return self

    def __exit__(self, *exc):
        MILR.context = self._original


def measure(mug, config: MILRConfig, per_tag: int, batches: list[int], chunks: int) -> dict:
    oracle = ShapesOracle()
    items = load_shapes(per_tag)
    size = -(-len(items) // chunks)
    arms = [(batch, name) for batch in batches for name in SETTINGS]
    seconds = dict.fromkeys(arms, 0.0)
    with tempfile.TemporaryDirectory() as tmp:
        for start in range(0, len(items), size):
            for batch, name in arms:
                with NodeThreads(SETTINGS[name]):
                    started = time.perf_counter()
                    run_bench(items[start : start + size], mug, BenchSpec("milr", config), oracle, oracle,
                              Path(tmp) / f"b{batch}-{name}", progress=False, batch=batch)  # fmt: skip
                    seconds[(batch, name)] += time.perf_counter() - started
        out: dict = {}
        for batch, name in arms:
            summary = summarize(load_records(Path(tmp) / f"b{batch}-{name}"))
            out[f"batch={batch},{name}"] = {
                "batch": batch,
                "cpu_threads": SETTINGS[name],
                "prompts": len(items),
                "seconds": round(seconds[(batch, name)], 1),
                "overall": summary["overall"],
                "mean_generations": summary["mean_generations"],
            }
    for batch in batches:
        one, default = out[f"batch={batch},one_thread"], out[f"batch={batch},torch_default"]
        out[f"speedup_one_thread_batch={batch}"] = round(default["seconds"] / one["seconds"], 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-tag", type=int, default=10, help="prompts per ShapesEval tag (6 tags)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--chunks", type=int, default=2, help="interleave the settings over this many chunks")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(), help="the main thread's torch threads")
    ap.add_argument("--out", type=Path, default=RESULTS / "bench_threads.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    mug, config = shapes_setup(args.steps)
    with Measured() as measured:
        figures = measure(mug, config, args.per_tag, [int(b) for b in args.batches.split(",")], args.chunks)
    result = {
        "what": f"ShapesEval MILR sample, K={args.steps}, exact oracle, shipped ShapesWorld model: graph nodes "
        "at one intra-op thread against torch's setting",
        "main_thread_threads": args.threads,
        "interleaved_chunks": args.chunks,
        **figures,
        "provenance": measured.provenance("cpu"),
    }
    save_result(result, args.out)


if __name__ == "__main__":
    main()
