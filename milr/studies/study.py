"""`run_study`: a reward-model study, run and reported (DESIGN §7).

    from milr.studies import run_study
    result = run_study("examples/shapes_study.toml", "studies/shapes")
    result.data["accuracy"]["milr"]["oracle"]["overall"]

The same prompts and seeds run under every reward critic of the spec (`milr.studies.spec`), with
each method asked for:

- `baseline`: MILR's round 0 (critic-independent, so one sweep per seed);
- `milr`: one bench sweep per reward critic, through the bench runner (batched, resumable; on Ray
  when the spec says so), rewarded by the critic, judged by the evaluation critic;
- `best_of_n`: N = K + 1 images per prompt, MILR's most generations. The images do not depend on
  the critic (sample j of a prompt is drawn with seed `item_seed + j`), so one bench best-of-N
  sweep per seed draws them, picked by the evaluator (`samples/`: its traces hold every sample);
  each reward critic then rescores those samples and picks its best. The records equal the bench
  runner's best-of-N under that critic, at a fraction of the cost.

Every round image is scored by the evaluation critic (`rescore`), so the report can say, per critic,
how often it passes an image the evaluator fails. Layout of the study folder:

    study-spec.json                      what the sweeps depend on (another spec is refused here)
    sweeps/seed-<s>/baseline/            bench folder (bench.json, results.jsonl, traces/)
    sweeps/seed-<s>/milr/<label>/        bench folder per reward critic
    sweeps/seed-<s>/samples/             bench best-of-N folder picked by the evaluator: every sample
    sweeps/seed-<s>/best_of_n/<label>/   bench.json, results.jsonl: each critic's pick of those samples
    study.json  study.md  study.html

A study run again reuses every finished sweep and record on disk and runs only what is missing.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import structlog
import torch

from milr.bench.datasets import BenchItem, load_benchmark
from milr.bench.runner import (
    BenchSpec,
    append_record,
    bench_json,
    describe_selection,
    finished_keys,
    first_pass,
    run_bench,
    select_items,
    start_sweep,
)
from milr.bench.summary import load_records
from milr.config import MILRConfig
from milr.critics.base import Critic
from milr.studies.rescore import rescore, round_verdicts
from milr.studies.spec import StudySpec, load_spec
from milr.traces import Trace

log = structlog.get_logger(__name__)

SPEC_FILE = "study-spec.json"
SAMPLES = "samples"  # the best-of-N sweep picked by the evaluator, whose traces every critic rescores


@dataclass
class Sweep:
    """One sweep of the study: what it is, where it lives, what this invocation did to it."""

    method: str  # baseline | milr | best_of_n
    label: str | None  # the reward critic's label (None: baseline)
    seed: int
    folder: Path
    ran: int = 0  # records (best-of-N: prompts drawn) added by this invocation
    reused: int = 0  # records found on disk
    seconds: float = 0.0

    def to_json(self, root: Path) -> dict:
        return {
            "method": self.method,
            "critic": self.label,
            "seed": self.seed,
            "folder": self.folder.relative_to(root).as_posix(),
            "ran": self.ran,
            "reused": self.reused,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class StudyResult:
    path: Path
    data: dict
    sweeps: list[Sweep] = field(default_factory=list)


# ----------------------------------------------------------------------------- prompts
def select_prompts(spec: StudySpec) -> list[BenchItem]:
    """The study's prompts: the benchmark (`per_tag`: ShapesEval entries per tag, else the first N of
    each tag), then the tags, then `limit` spread evenly over the tags (seeded), as `milr bench` selects."""
    p = spec.prompts
    items = load_benchmark(p.benchmark, spec.prompts_file(), category=p.category, per_tag=p.per_tag)
    items = select_items(items, tags=p.tags, limit=p.limit, limit_seed=p.limit_seed)
    if not items:
        raise ValueError("prompts: the selection is empty; loosen prompts.tags or prompts.limit")
    return items


def selection(spec: StudySpec) -> dict:
    """The selection as `bench.json` records it (file name only, never a path)."""
    p = spec.prompts
    return describe_selection(p.benchmark, p.path, tags=p.tags, per_tag=p.per_tag, limit=p.limit,
                              limit_seed=p.limit_seed)  # fmt: skip


# ----------------------------------------------------------------------------- critics
def named_critic(text: str, mug) -> Critic:
    """The critic of a registry text; several are mixed by a `Mixer` named after the text, so that
    two different mixes never share a rescore file."""
    from milr.critics import Mixer
    from milr.orchestrator.registry import build_critics, parse_critic_list

    critics, weights = build_critics(text, mug)
    if len(critics) == 1 and weights == [1.0]:
        return critics[0]
    spelled = ",".join(f"{name}:{w:g}" for name, w in parse_critic_list(text))
    return Mixer(critics, weights=weights, name=f"mix({spelled})")


# ----------------------------------------------------------------------------- the study
def run_study(
    spec_or_path: StudySpec | str | Path,
    out: str | Path | None = None,
    *,
    mug=None,
    progress: bool = False,
    on_sweep: Callable[[Sweep], None] | None = None,
) -> StudyResult:
    """Run (or finish) the study and write `study.json`, `study.md` and `study.html` into `out`
    (default `studies/<name>`); see the module docstring. `mug`: an already loaded model (default:
    `run.model` is loaded). `on_sweep` is called with each sweep once it is done (or found done)."""
    from milr.orchestrator.registry import build_model
    from milr.studies.report import summarize_study, write_reports

    spec = spec_or_path if isinstance(spec_or_path, StudySpec) else load_spec(spec_or_path)
    out = Path(out) if out is not None else Path("studies") / spec.name
    started = time.perf_counter()
    items = select_prompts(spec)
    claim_folder(out, spec)
    mug = mug if mug is not None else build_model(spec.run.model, spec.milr_config(spec.seeds[0]))
    evaluator = named_critic(spec.eval_critic, mug)
    rewards = {label: named_critic(text, mug) for label, text in spec.critics.items()}
    sweeps: list[Sweep] = []

    def done(sweep: Sweep) -> None:
        sweeps.append(sweep)
        log.info("study_sweep", method=sweep.method, critic=sweep.label, seed=sweep.seed, ran=sweep.ran,
                 reused=sweep.reused, seconds=round(sweep.seconds, 2))  # fmt: skip
        if on_sweep is not None:
            on_sweep(sweep)

    for seed in spec.seeds:
        config = spec.milr_config(seed).with_recommended(mug.recommended)
        root = out / "sweeps" / f"seed-{seed}"
        ctx = _SweepContext(spec, items, mug, config, evaluator, progress)
        if "baseline" in spec.methods:
            done(ctx.bench("baseline", None, evaluator, root / "baseline"))
        if "milr" in spec.methods:
            for label, critic in rewards.items():
                done(ctx.bench("milr", label, critic, root / "milr" / label))
        if "best_of_n" in spec.methods:
            for sweep in ctx.best_of_n(rewards, root):
                done(sweep)
    data = summarize_study(spec, items, sweeps, out, evaluator.name, {k: c.name for k, c in rewards.items()})
    data["wall_seconds"] = round(time.perf_counter() - started, 2)
    data["sweeps"] = [s.to_json(out) for s in sweeps]
    data["environment"] = environment(mug)
    write_reports(out, data)
    return StudyResult(out, data, sweeps)


# What the finished sweeps of a study folder depend on. Critics, methods and seeds may be added or
# dropped (a new critic runs its own sweeps, beside the finished ones); a critic label naming another
# critic than before is refused here, and by its sweep folders' `bench.json` besides.
SHARED_FIELDS = ("prompts", "samples", "config", "eval_critic", "model")


def claim_folder(out: Path, spec: StudySpec) -> None:
    """Record what the study's sweeps depend on (`study-spec.json`); a folder whose sweeps were made
    with other prompts, samples, config, evaluator, model or critic under a label is refused, naming
    each difference (its records would otherwise mix with the new ones)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / SPEC_FILE
    wanted = spec.sweep_json()
    if path.is_file():
        have = json.loads(path.read_text(encoding="utf-8"))
        found = spec_differences(have, wanted)
        if found:
            raise ValueError(
                f"study folder {out.name!r} holds sweeps of another spec ({'; '.join(found[:4])}); "
                "give another --out, or delete the folder to start over"
            )
    path.write_text(json.dumps(wanted, indent=2) + "\n", encoding="utf-8")


def spec_differences(have: dict, wanted: dict) -> list[str]:
    """`field: X there, Y now` for each shared field (and each critic label in both) that differs."""
    found = []
    for key in SHARED_FIELDS:
        old, new = have.get(key), wanted.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            found += [f"{key}.{k}: {old.get(k)!r} there, {new.get(k)!r} now"
                      for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]  # fmt: skip
        elif old != new:
            found.append(f"{key}: {old!r} there, {new!r} now")
    old_critics, new_critics = have.get("critics") or {}, wanted.get("critics") or {}
    found += [f"critics.{label}: {old_critics[label]!r} there, {new_critics[label]!r} now"
              for label in sorted(set(old_critics) & set(new_critics))
              if old_critics[label] != new_critics[label]]  # fmt: skip
    return found


def environment(mug) -> dict:
    return {
        "milr": metadata.version("milr"),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": str(mug.device),
        "python": platform.python_version(),
        "model": getattr(mug, "name", None),
    }


@dataclass
class _SweepContext:
    spec: StudySpec
    items: list[BenchItem]
    mug: object
    config: MILRConfig
    evaluator: Critic
    progress: bool

    @property
    def pairs(self) -> list[tuple[BenchItem, int]]:
        return [(it, s) for it in self.items for s in range(self.spec.samples)]

    def bench(self, method: str, label: str | None, reward: Critic, folder: Path) -> Sweep:
        """A sweep through the bench runner (`method` as the runner names it), then its round images
        rescored by the evaluator. A sweep whose records are all on disk is not started at all."""
        started = time.perf_counter()
        sweep = Sweep(method.replace("-", "_"), label, self.config.seed, folder)
        results = folder / "results.jsonl"
        before = finished_keys(results)
        sweep.reused = len(before & {(it.key, s) for it, s in self.pairs})
        if sweep.reused < len(self.pairs):
            if self.spec.run.ray:
                self._ray_sweep(method, label, folder)
            else:
                run_bench(self.items, self.mug, BenchSpec(method, self.config), reward, self.evaluator, folder,
                          samples=self.spec.samples, progress=self.progress, batch=self.spec.run.batch,
                          benchmark=selection(self.spec))  # fmt: skip
            sweep.ran = len(finished_keys(results)) - len(before)
        if (folder / "traces").is_dir() and reward.name != self.evaluator.name:
            rescore(folder / "traces", [self.evaluator], batch=self.spec.run.rescore_batch)
        sweep.seconds = time.perf_counter() - started
        return sweep

    def _ray_sweep(self, method: str, label: str | None, folder: Path) -> None:
        from milr.bench.distributed import BenchSetup, run_bench_ray

        critic = self.spec.eval_critic if label is None else self.spec.critics[label]
        setup = BenchSetup(self.spec.run.model, critic, self.spec.eval_critic, self.spec.milr_config(self.config.seed))
        run_bench_ray(self.items, setup, method, folder, samples=self.spec.samples, address=self.spec.run.ray,
                      workers=self.spec.run.workers, progress=self.progress, batch=self.spec.run.batch,
                      benchmark=selection(self.spec))  # fmt: skip

    # ------------------------------------------------------------------ best-of-N
    def best_of_n(self, rewards: dict[str, Critic], root: Path) -> list[Sweep]:
        """One bench best-of-N sweep picked by the evaluator (its traces hold every sample, judged),
        then each reward critic's pick from the same samples, rescored."""
        samples = self.bench("best-of-n", None, self.evaluator, root / SAMPLES)
        return [samples] + [self._pick(label, critic, samples.folder, root / "best_of_n" / label)
                            for label, critic in rewards.items()]  # fmt: skip

    def _pick(self, label: str, critic: Critic, samples: Path, folder: Path) -> Sweep:
        """Each prompt's best sample by `critic` (rescored onto the samples), as bench records."""
        started = time.perf_counter()
        sweep = Sweep("best_of_n", label, self.config.seed, folder)
        spec = BenchSpec("best-of-n", self.config)
        settings = bench_json(spec, critic, self.evaluator, benchmark=selection(self.spec))
        results, todo, reused = start_sweep(self.items, folder, {**settings, "picked_from": SAMPLES},
                                            self.spec.samples)  # fmt: skip
        sweep.reused = reused
        if todo:
            if critic.name != self.evaluator.name:
                rescore(samples / "traces", [critic], batch=self.spec.run.rescore_batch)
            drawn = {(r["key"], r["sample"]): r for r in load_records(samples)}
            for item, sample in todo:
                record = drawn[(item.key, sample)]
                trace = Trace.load(samples / record["trace"])
                append_record(results, picked_record(record, trace, critic.name, self.evaluator.name, spec.n))
                sweep.ran += 1
        sweep.seconds = time.perf_counter() - started
        return sweep


def picked_record(drawn: dict, trace: Trace, critic: str, evaluator: str, n: int) -> dict:
    """The bench runner's best-of-N record under `critic`, from the samples sweep's record and trace:
    the critic's best sample (the earliest on ties, abstentions last), judged by the evaluator."""
    mine, judge = round_verdicts(trace, critic), round_verdicts(trace, evaluator)
    if len(mine) < n or any(v is None for v in mine[:n] + judge[:n]):
        raise ValueError(f"samples trace {trace.path.name!r} is not fully scored by {critic!r}; rescore it")
    scores = [v["score"] for v in mine[:n]]
    best = max(range(n), key=lambda j: (scores[j] if scores[j] is not None else -1.0, -j))
    threshold = float(trace.run.config.get("threshold", 0.9))
    # the draws' share of the samples sweep, plus this critic's own scoring time
    seconds = drawn["seconds"] + sum(v["seconds"] or 0.0 for v in mine[:n])
    return {
        **{k: drawn[k] for k in ("key", "sample", "prompt", "tag", "method", "seed", "trace")},
        "reward_scores": scores,
        "eval_score": judge[best]["score"],
        "correct": bool(judge[best]["correct"]),
        "generations": n,
        "first_pass": first_pass(scores, threshold),
        "seconds": round(seconds, 3),
        "best_sample": best,
    }
