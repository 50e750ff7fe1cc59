"""Cost of one MILR round (issue 3): a round after an update vs a fresh generation, the update step's
share of a round, and the graph's own overhead (LangGraph + trace writing) per round.

    python benchmarks/bench_round.py [--model tiny|shapes] [--steps 10] [--runs 3] [--threads N]

The critic is a cheap pixel hash that never passes, so every run makes K+1 rounds. Prints the
figures and saves them to benchmarks/results/bench_round_<model>.json (or `--out`), with their
provenance: after/fresh depends on the thread count and on what else runs (on the shared 2-core
machine it was 0.52 at one thread and 1.22 at torch's default of two), so both are recorded.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import structlog
import torch

from milr.config import MILRConfig
from milr.critics.base import Critique
from milr.orchestrator import MILR

sys.path.insert(0, str(Path(__file__).parent))
from provenance import Measured  # noqa: E402

RESULTS = Path(__file__).parent / "results"
TIMED_PHASES = ("decode", "critics", "update")


class HashCritic:
    name = "hash"

    def __call__(self, image, prompt, spec=None):
        return Critique(critic=self.name, score=hashlib.sha256(image.tobytes()).digest()[0] / 255 * 0.8)


def load(model: str):
    if model == "tiny":
        from milr.mug.tiny import tiny_mug

        return tiny_mug(seed=0, grid=4, hidden=64, max_positions=1024)
    from milr.mug.janus import JanusMUG
    from milr.orchestrator import resolve_model

    return JanusMUG.from_pretrained(resolve_model(model), device="cpu")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default: results/bench_round_<model>.json)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))  # no console lines
    mug = load(args.model)
    config = MILRConfig(steps=args.steps, threshold=1.0, max_reasoning_tokens=64)
    fresh, after, update, overhead_frac, round_s, finish_s = [], [], [], [], [], []
    with tempfile.TemporaryDirectory() as out, Measured() as around:
        milr = MILR(mug, HashCritic(), config, out=out)
        milr("a photo of a red circle left of a blue square")  # warm-up
        for i in range(args.runs):
            # The loop's wall time: from round 0's start to the last round's end, seen from the live
            # event stream (run set-up and the once-per-run report are timed apart).
            stamps, res = {}, None
            t0 = time.perf_counter()
            for ev in milr.stream("a photo of a red circle left of a blue square", name=f"run{i}"):
                stamps.setdefault(ev["event"], []).append(time.perf_counter())
                res = ev.get("result", res)
            total = time.perf_counter() - t0
            loop = stamps["round_end"][-1] - stamps["round_start"][0]
            rounds = res.rounds
            fresh.append(rounds[0].seconds["decode"])
            after += [r.seconds["decode"] for r in rounds[1:]]
            update += [r.seconds["update"] for r in rounds[1:]]
            # Only the timed phases: a round's `seconds` also holds `batch`, how many runs shared its decode.
            measured = sum(r.seconds.get(phase, 0.0) for r in rounds for phase in TIMED_PHASES)
            overhead_frac.append((loop - measured) / loop)
            round_s.append(loop / len(rounds))
            finish_s.append(total - loop)
    med = statistics.median
    result = {
        "model": args.model,
        "steps": args.steps,
        "runs": args.runs,
        "fresh_generation_s": round(med(fresh), 4),
        "round_after_update_decode_s": round(med(after), 4),
        "after_over_fresh": round(med(after) / med(fresh), 3),
        "update_step_s": round(med(update), 5),
        "update_fraction_of_round": round(med(update) / med(round_s), 4),
        "round_wall_s": round(med(round_s), 4),
        "graph_and_trace_overhead_fraction": round(med(overhead_frac), 4),
        "setup_and_finish_seconds_per_run": round(med(finish_s), 3),
        "note": "overhead = loop wall time (round 0 start to last round end) minus the decode, critic and update "
        "seconds the nodes measured: LangGraph and trace writing (PNG, latents, round log). Set-up and the "
        "once-per-run finish (summary, final image, report.html) are reported apart.",
        "provenance": around.provenance("cpu"),
    }
    print(json.dumps(result, indent=2))
    path = args.out or RESULTS / f"bench_round_{args.model}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
