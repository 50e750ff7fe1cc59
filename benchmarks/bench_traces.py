"""Trace speed (issue 5): writing one round (record + latents, PNG encoding excluded and reported
apart) and building the report of a 30-round run.

    python benchmarks/bench_traces.py [--rounds 30]

Prints the figures and saves them to benchmarks/results/bench_traces.json (or `--out`), with their
provenance.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from milr.traces import CriticScore, RoundRecord, RunInfo, RunSummary, TraceWriter, write_report
from milr.traces.writer import png_bytes

sys.path.insert(0, str(Path(__file__).parent))
from provenance import Measured, save_result  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def record(k: int) -> RoundRecord:
    return RoundRecord(
        round=k,
        modality="both" if k else "none",
        reasoning="a red circle in row two, column one. a blue square in row two, column four. " * 2,
        text_prefix="a red circle",
        text_prefix_ids=list(range(6)),
        text_prefix_changed=bool(k % 3),
        image=f"round_{k:02d}.png",
        image_prefix_ids=[5],
        score=0.5,
        reward=-0.5,
        critiques=[CriticScore(critic="shapes", score=0.5, rationale="count wrong" * 5, seconds=0.001)],
        grad_norm={"text": 0.1, "image": 0.2},
        step_norm={"text": 0.03, "image": 0.03},
        seconds={"decode": 0.2, "critics": 0.01, "update": 0.002},
        latents=f"latents/round_{k:02d}.safetensors",
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--out", type=Path, default=RESULTS / "bench_traces.json")
    args = ap.parse_args()
    image = Image.new("RGB", (64, 64), "white")
    tensors = {
        "text.z": torch.randn(8, 128),
        "image.z": torch.randn(1, 2, 128),
        "generator_state": torch.zeros(5056, dtype=torch.uint8),
    }
    write_s, png_s = [], []
    with tempfile.TemporaryDirectory() as tmp, Measured() as measured:
        writer = TraceWriter(Path(tmp) / "run")
        writer.start(RunInfo(run_id="run", prompt="a photo of a red circle", config={"threshold": 0.9}))
        for k in range(args.rounds):
            t = time.perf_counter()
            png_bytes(image)
            png_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            writer.save_latents(k, tensors, {"reasoning": "x"})
            writer.write_round(record(k), image)
            write_s.append(time.perf_counter() - t)
        writer_only = [w - p for w, p in zip(write_s, png_s, strict=True)]
        summary = RunSummary(
            stop_reason="steps", best_round=0, last_round=args.rounds - 1, final_round=0, rounds=args.rounds, seconds=1
        )
        (Path(tmp) / "run" / "summary.json").write_text(summary.model_dump_json())
        t = time.perf_counter()
        write_report(Path(tmp) / "run")
        report_s = time.perf_counter() - t
    result = {
        "rounds": args.rounds,
        "write_round_ms_median_excl_png": round(statistics.median(writer_only) * 1e3, 2),
        "write_round_ms_max_excl_png": round(max(writer_only) * 1e3, 2),
        "png_encode_ms_median": round(statistics.median(png_s) * 1e3, 2),
        "report_seconds": round(report_s, 3),
        "targets": {"write_round_ms": 5, "report_seconds": 2},
        "note": "write_round includes fsync of the round log and the atomic latents file",
        "provenance": measured.provenance("cpu"),
    }
    save_result(result, args.out)


if __name__ == "__main__":
    main()
