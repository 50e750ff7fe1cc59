"""The two targets of reward-model studies (issue 14), measured:

1. the shipped example study (examples/shapes_study.toml: 120 ShapesEval prompts, 7 reward critics,
   MILR K = 20, best-of-21, baseline) runs offline in at most 10 minutes on 2 cores;
2. rescoring a 300-prompt MILR sweep with a new cheap critic costs at most 10% of that sweep's wall time.

    python benchmarks/bench_study.py [--threads 2] [--part study,rescore]
    python benchmarks/bench_study.py --per-tag 1 --steps 1 --rescore-per-tag 1 --out DIR   # smoke size

Each part runs into a fresh temporary folder (nothing reused) and saves its JSON: part 1
benchmarks/results/bench_study.json (and the study's own study.md as bench_study.md), part 2
benchmarks/results/bench_rescore.json. Both record the torch thread count, device, torch version,
the load average before and after, and the other processes that used the CPU meanwhile (this
machine is shared): a figure measured beside other work is slower than the machine can do.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
EXAMPLE = ROOT / "examples" / "shapes_study.toml"
STUDY_TARGET_S = 600
RESCORE_TARGET = 0.10


# ----------------------------------------------------------------------------- what else ran
sys.path.insert(0, str(ROOT / "benchmarks"))
from provenance import Measured, command_line  # noqa: E402  (the one helper of every bench script)
from provenance import environment as provenance_environment  # noqa: E402


def environment() -> dict:
    """benchmarks/provenance.py's fields, flat, with `torch_threads` as this script writes it."""
    env = provenance_environment("cpu")
    return {"command": command_line(), "torch_threads": env.pop("threads"), **env}


# ----------------------------------------------------------------------------- part 1: the study
def study_part(args, tmp: Path) -> dict:
    from milr.studies.spec import load_spec
    from milr.studies.study import run_study

    spec = load_spec(EXAMPLE)
    overrides = {}
    if args.per_tag:
        overrides["prompts"] = spec.prompts.model_copy(update={"per_tag": args.per_tag})
    if args.steps is not None:
        overrides["config"] = {**spec.config, "steps": args.steps}
    spec = spec.model_copy(update=overrides)
    sweeps = []
    with Measured() as m:  # model loading included: what `milr study` costs from a cold start
        result = run_study(spec, tmp / "study", on_sweep=lambda s: sweeps.append(s.to_json(tmp / "study")))
    data = result.data
    rows = {}
    for method in ("milr", "best_of_n"):
        for label, acc in data["accuracy"].get(method, {}).items():
            rows[f"{label} {method}"] = acc["overall"]
    if "baseline" in data["accuracy"]:
        rows["baseline"] = data["accuracy"]["baseline"]["overall"]
    out = {
        "what": f"example study {EXAMPLE.name}: {data['prompts']} prompts, {len(data['critics'])} reward critics, "
        f"K={data['steps']}, methods {data['methods']}",
        **m.record(),
        "target_seconds": STUDY_TARGET_S,
        "within_target": m.seconds <= STUDY_TARGET_S,
        "sweeps": sweeps,
        "overall": rows,
        "false_pass_rate": {k: d["all"]["false_pass_rate"] for k, d in data["diagnostics"].items()},
        "auc": {k: d["all"]["auc"] for k, d in data["diagnostics"].items()},
        **environment(),
    }
    shutil.copy(tmp / "study" / "study.md", args.out / "bench_study.md")
    shutil.copy(tmp / "study" / "study.json", args.out / "bench_study.study.json")
    return out


# ----------------------------------------------------------------------------- part 2: rescore cost
def rescore_part(args, tmp: Path) -> dict:
    from milr.bench.datasets import load_shapes
    from milr.bench.runner import BenchSpec, run_bench
    from milr.config import MILRConfig
    from milr.orchestrator.registry import build_model
    from milr.shapes.oracle import ShapesOracle
    from milr.studies.rescore import rescore

    config = MILRConfig(steps=args.rescore_steps)
    mug = build_model("shapes", config)
    config = config.with_recommended(mug.recommended)
    items = load_shapes(args.rescore_per_tag)
    oracle = ShapesOracle()
    with Measured() as sweep:
        run_bench(items, mug, BenchSpec("milr", config), oracle, oracle, tmp / "sweep", progress=False, batch=16)
    rows = {}
    for critic in args.rescore_critics.split(","):
        with Measured() as m:
            [result] = rescore(tmp / "sweep", critic)
        rows[critic] = {**m.record(), "images": result.scored, "runs": result.runs,
                        "ms_per_image": round(1000 * m.seconds / max(1, result.scored), 3),
                        "ratio_to_sweep": round(m.seconds / sweep.seconds, 4)}  # fmt: skip
    worst = max(r["ratio_to_sweep"] for r in rows.values())
    return {
        "what": f"rescore a {len(items)}-prompt ShapesEval MILR sweep (K={args.rescore_steps}, batch 16, oracle "
        "reward) with a new cheap critic, against the sweep's own wall time",
        "sweep": {**sweep.record(), "prompts": len(items)},
        "rescore": rows,
        "target_ratio": RESCORE_TARGET,
        "worst_ratio": worst,
        "within_target": worst <= RESCORE_TARGET,
        **environment(),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2, help="torch threads (the target is for 2 cores)")
    ap.add_argument("--part", default="study,rescore", help="study, rescore or both")
    ap.add_argument("--per-tag", type=int, help="override the example's prompts per tag (smoke runs)")
    ap.add_argument("--steps", type=int, help="override the example's K (smoke runs)")
    ap.add_argument("--rescore-per-tag", type=int, default=50, help="50 → the 300-prompt ShapesEval")
    ap.add_argument("--rescore-steps", type=int, default=20)
    ap.add_argument("--rescore-critics", default="shapes-countblind,shapes-lenient")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    parts = args.part.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        if "study" in parts:
            result = study_part(args, Path(tmp))
            (args.out / "bench_study.json").write_text(json.dumps(result, indent=2) + "\n")
            print(json.dumps({k: result[k] for k in ("seconds", "within_target", "overall")}, indent=2), flush=True)
        if "rescore" in parts:
            result = rescore_part(args, Path(tmp))
            (args.out / "bench_rescore.json").write_text(json.dumps(result, indent=2) + "\n")
            print(json.dumps({k: result[k] for k in ("sweep", "rescore", "within_target")}, indent=2), flush=True)


if __name__ == "__main__":
    main()
