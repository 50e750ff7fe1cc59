"""The full ShapesEval MILR sweep through the command line, as a user runs it (issue 7's "milr bench"
figure), with its test-time scaling curve:

    python benchmarks/bench_cli.py [--per-tag 50] [--steps 20] [--threads N]

runs `milr bench shapes --method milr --steps 20 --curve --out TMP` in a child process (a fresh
folder, nothing reused), times it, and copies what the CLI wrote (bench.json, summary.json/md/csv,
scaling_curve.png) to benchmarks/results/shapes_milr_cli/ (or `--out`), with speed.json: the
command, wall time, prompts/s, the child's peak memory and the provenance of the run. The records
are those of `bench_shapes.py`'s milr entry (same runner, seeds and batch size).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from provenance import Measured  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "shapes_milr_cli"
COPIED = ("bench.json", "summary.json", "summary.md", "summary.csv", "scaling_curve.png")


def cli_command(per_tag: int, steps: int, out: Path) -> list[str]:
    """`milr bench shapes ...` run with this interpreter (the `milr` entry point may not be on PATH)."""
    return [sys.executable, "-m", "milr.cli", "bench", "shapes", "--method", "milr", "--steps", str(steps),
            "--per-tag", str(per_tag), "--curve", "--out", str(out)]  # fmt: skip


def run_cli(per_tag: int, steps: int, threads: int | None, tmp: Path) -> Measured:
    """Run the sweep in a child process; its own diagnostics go to this stderr."""
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)  # torch's thread count in the child
    with Measured() as measured:
        proc = subprocess.run(cli_command(per_tag, steps, tmp / "sweep"), env=env, stdout=subprocess.DEVNULL)
    if proc.returncode:
        raise SystemExit(f"milr bench shapes exited with {proc.returncode}")
    return measured


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-tag", type=int, default=50, help="50 → the full 300-prompt ShapesEval")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=None, help="torch threads of the child (default: torch's)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)  # recorded by the provenance as the child's count
    with tempfile.TemporaryDirectory() as tmp:
        measured = run_cli(args.per_tag, args.steps, args.threads, Path(tmp))
        args.out.mkdir(parents=True, exist_ok=True)
        for name in COPIED:
            shutil.copy(Path(tmp) / "sweep" / name, args.out / name)
    summary = json.loads((args.out / "summary.json").read_text())
    speed = {
        "command": f"milr bench shapes --method milr --steps {args.steps} --per-tag {args.per_tag} --curve --out OUT",
        "prompts": summary["records"],
        "wall_seconds": round(measured.seconds, 1),
        "prompts_per_s": round(summary["records"] / measured.seconds, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
        "overall": round(summary["overall"], 4),
        "mean_generations": round(summary["mean_generations"], 3),
        "provenance": measured.provenance("cpu"),
    }
    (args.out / "speed.json").write_text(json.dumps(speed, indent=2) + "\n")
    print(json.dumps(speed, indent=2))


if __name__ == "__main__":
    main()
