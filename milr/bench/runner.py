"""The benchmark runner: one JSONL record per (prompt, sample), appended and fsynced as it finishes,
so a killed sweep restarts where it stopped (finished keys are skipped, none is lost or redone).

Methods: `baseline` (round 0 only), `milr` (any `MILRConfig`), `best-of-n` (N generations scored by
the same reward critic, keep the best; N defaults to steps + 1 so budgets match MILR's worst case).
The evaluation critic is separate from the reward critic (reward `mixed`, evaluate `geneval`, as in
the paper's Table 6); with `curve=True` every round is evaluated, for the test-time scaling curve.
Every record names a trace folder under `out/traces` (best-of-N: its N samples as the rounds), so
the images of every method can be looked at, reported and rescored.

A folder is continued only by the same sweep (`milr.bench.folder`): other settings are refused.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import structlog
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from milr.bench.datasets import BenchItem, stratified, take_per_tag
from milr.bench.folder import choose_folder, write_settings
from milr.config import MILRConfig
from milr.critics.base import Critic, Critique, score_many
from milr.mug.janus import image_prompt
from milr.orchestrator import MILR
from milr.orchestrator.scheduler import critic_list, run_info
from milr.traces import CriticScore, RoundRecord, RunSummary, TraceWriter, new_run_id

log = structlog.get_logger(__name__)

METHODS = ("baseline", "milr", "best-of-n")
DEFAULT_BATCH = 16  # runs per decode (best-of-N: images per decode)


@dataclass
class BenchSpec:
    method: str
    config: MILRConfig
    n: int | None = None  # best-of-N budget; default steps + 1

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.method == "best-of-n" and self.n is None:
            self.n = self.config.steps + 1


def correct_of(verdict: Critique, threshold: float) -> bool:
    """GenEval-style critics say `correct` outright; others pass at the run's threshold."""
    if "correct" in verdict.details:
        return bool(verdict.details["correct"])
    return verdict.score is not None and verdict.score >= threshold


def select_items(
    items: list[BenchItem],
    *,
    tags: Iterable[str] | None = None,
    per_tag: int | None = None,
    limit: int | None = None,
    limit_seed: int = 0,
    shard: str | None = None,
) -> list[BenchItem]:
    """Filter by tag, keep the first `per_tag` of each tag, draw `limit` spread evenly over the tags
    (seeded by `limit_seed`, in file order: `datasets.stratified`), then take the shard (`i/n`: every
    n-th of those from i, so the shards of one selection partition it)."""
    if tags:
        wanted = set(tags)
        unknown = wanted - {it.tag for it in items}
        if unknown:
            raise ValueError(
                f"unknown tag(s) {', '.join(sorted(unknown))}; this set has {sorted({i.tag for i in items})}"
            )
        items = [it for it in items if it.tag in wanted]
    items = take_per_tag(items, per_tag)
    if limit is not None:
        items = stratified(items, limit, limit_seed)
    if shard:
        i, n = parse_shard(shard)
        items = items[i::n]
    return items


def describe_selection(
    benchmark: str,
    source: str | Path | None = None,
    *,
    tags: Iterable[str] | None = None,
    per_tag: int | None = None,
    limit: int | None = None,
    limit_seed: int = 0,
) -> dict:
    """The prompt selection as `bench.json` records it (`run_bench(benchmark=...)`): the benchmark,
    the file's name (never its path: no local path goes into a folder), tags, per-tag, limit and seed.
    The shard is left out on purpose: shards of one sweep may fill one folder."""
    return {
        "benchmark": benchmark,
        "file": Path(source).name if source is not None else None,
        "tags": sorted(tags) if tags else None,
        "per_tag": per_tag,
        "limit": limit,
        "limit_seed": limit_seed if limit is not None else None,
    }


def parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if not 0 <= i < n:
        raise ValueError(f"--shard {text}: need 0 <= i < n")
    return i, n


def finished_keys(results: Path) -> set[tuple[str, int]]:
    """(key, sample) pairs already on disk; a half-written last line (a crash) is ignored."""
    if not results.is_file():
        return set()
    done = set()
    for line in results.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        done.add((rec["key"], rec["sample"]))
    return done


def append_record(results: Path, record: dict) -> None:
    if results.is_file() and not _ends_with_newline(results):  # cut a line a crash left half-written
        data = results.read_bytes()
        results.write_bytes(data[: data.rfind(b"\n") + 1])
    with open(results, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


SAMPLE_SEED_STRIDE = 1_000_000


def item_seed(base: int, item: BenchItem, sample: int) -> int:
    """The seed of one (prompt, sample): it depends on nothing else, so shards, resumes and Ray
    workers draw exactly what a single uninterrupted run draws."""
    return base + item.seed + SAMPLE_SEED_STRIDE * sample


def _ends_with_newline(path: Path) -> bool:
    """True for an empty file too; reads one byte, not the whole (possibly large) results file."""
    with open(path, "rb") as f:
        if f.seek(0, os.SEEK_END) == 0:
            return True
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def run_items(
    mug,
    pairs: Sequence[tuple[BenchItem, int]],
    spec: BenchSpec,
    reward: Critic,
    evaluate: Critic,
    out: Path,
    curve: bool,
    batch: int = DEFAULT_BATCH,
) -> Iterator[dict]:
    """Run every (prompt, sample) pair, `batch` at a time, and yield one record per pair as it finishes."""
    if spec.method == "best-of-n":
        for chunk in _chunks(list(pairs), batch):
            yield from _best_of_n_records(mug, chunk, spec, reward, evaluate, out, curve, batch)
    else:
        yield from _milr_records(mug, pairs, spec, reward, evaluate, out, curve, batch)


def _milr_records(mug, pairs, spec: BenchSpec, reward, evaluate, out: Path, curve: bool, batch: int):
    """MILR (or its round 0: `baseline`) over all pairs as one batched graph run. Trace folders already
    under `out/traces` (a sweep killed midway) continue where they stopped."""
    config = spec.config.override(steps=0) if spec.method == "baseline" else spec.config
    milr = MILR(mug, reward, config, out=out / "traces", max_batch=batch)
    names = [f"{item.key}-s{sample}" for item, sample in pairs]
    by_run = {new_run_id(pair[0].prompt, name): pair for name, pair in zip(names, pairs, strict=True)}
    events = milr.stream_batch(
        [item.prompt for item, _ in pairs],
        [item.spec for item, _ in pairs],
        names=names,
        seeds=[item_seed(config.seed, item, sample) for item, sample in pairs],
        resume=True,
    )
    for event in events:
        if event["event"] != "done":
            continue
        item, sample = by_run[event["run_id"]]
        result = event["result"]
        rounds_images = [r.image for r in result.rounds] if curve else []
        yield _record(
            item,
            sample,
            spec,
            evaluate,
            final_image=result.image,
            reward_scores=[r.score for r in result.rounds],
            generations=len(result.rounds),
            seconds=result.seconds,
            trace=str(result.trace_dir.relative_to(out)),
            rounds_images=rounds_images if curve else None,
        )


def _best_of_n_records(mug, pairs, spec: BenchSpec, reward, evaluate, out: Path, curve: bool, batch: int):
    started = time.perf_counter()
    drawn = best_of_n(mug, pairs, spec.n, spec.config, reward, batch)
    seconds = (time.perf_counter() - started) / len(pairs)  # the chunk ran together: an equal share each
    for (item, sample), one in zip(pairs, drawn, strict=True):
        scores, images = one.scores, one.images
        best = max(range(len(scores)), key=lambda j: (scores[j] if scores[j] is not None else -1.0, -j))
        trace = write_best_of_n_trace(mug, out / "traces", item, sample, spec, reward, one, best, seconds)
        yield _record(
            item,
            sample,
            spec,
            evaluate,
            final_image=images[best],
            reward_scores=scores,
            generations=spec.n,
            seconds=seconds,
            trace=str(trace.relative_to(out)),
            rounds_images=images if curve else None,
        )


def run_name(item: BenchItem, sample: int) -> str:
    """The trace folder name of one (prompt, sample), for every method."""
    return new_run_id(item.prompt, f"{item.key}-s{sample}")


def write_best_of_n_trace(mug, traces: Path, item, sample, spec: BenchSpec, reward, drawn: BestOfN, best: int,
                          seconds: float) -> Path:  # fmt: skip
    """The N samples of one best-of-N pair as a trace folder (sample j = round j, nothing optimised),
    finished with the best sample, so its report, gallery image and rescoring work as for MILR. A
    folder left by a killed attempt (its record never reached results.jsonl) is written anew."""
    run_dir = traces / run_name(item, sample)
    if run_dir.is_dir() and not run_dir.is_symlink():
        shutil.rmtree(run_dir)  # an unrecorded attempt of this very pair: the sweep redoes it whole
    seed = item_seed(spec.config.seed, item, sample)
    entry = {"run_id": run_dir.name, "prompt": item.prompt, "spec": _spec_json(item), "seed": seed}
    with TraceWriter(run_dir) as writer:
        writer.start(run_info(_InfoContext(mug, reward, spec.config), entry))
        for j, (verdict, image) in enumerate(zip(drawn.verdicts, drawn.images, strict=True)):
            writer.write_round(_sample_record(j, verdict, drawn.reasoning), image)
        n = len(drawn.images)
        summary = RunSummary(stop_reason="best-of-n", best_round=best, last_round=n - 1, final_round=best,
                             final_score=drawn.scores[best], rounds=n, seconds=seconds, select="best")  # fmt: skip
        writer.finish(summary, drawn.images[best])
    return run_dir


def _spec_json(item: BenchItem) -> dict | None:
    return item.spec.to_geneval() if item.spec is not None else None


def _sample_record(j: int, verdict: Critique, reasoning: str) -> RoundRecord:
    children = verdict.details.get("critiques")  # a mixer's verdict carries each critic's
    if children:
        critiques = [CriticScore.model_validate(c) for c in children]
    else:
        critiques = [CriticScore(**verdict.model_dump())]
    return RoundRecord(
        round=j,
        modality="none",
        reasoning=reasoning,
        image=f"round_{j:02d}.png",
        score=verdict.score,
        reward=None if verdict.score is None else verdict.score - 1.0,
        critiques=critiques,
    )


@dataclass
class _InfoContext:
    """What `run_info` reads of a graph context, for a run made outside the graph (best-of-N)."""

    mug: object
    critic: Critic
    config: MILRConfig

    def run_config(self, entry) -> MILRConfig:
        return self.config.override(seed=entry["seed"])


def _record(item, sample, spec, evaluate, *, final_image, reward_scores, generations, seconds, trace, rounds_images):
    verdict = evaluate(final_image, item.prompt, item.spec)
    threshold = spec.config.threshold
    record = {
        "key": item.key,
        "sample": sample,
        "prompt": item.prompt,
        "tag": item.tag,
        "method": spec.method,
        "reward_scores": reward_scores,
        "eval_score": verdict.score,
        "correct": correct_of(verdict, threshold),
        "generations": generations,
        "first_pass": first_pass(reward_scores, threshold),
        "seed": item_seed(spec.config.seed, item, sample),
        "seconds": round(seconds, 3),
        "trace": trace,
    }
    if rounds_images is not None:
        record["eval_by_round"] = [
            correct_of(v, threshold)
            for v in score_many(
                evaluate, rounds_images, [item.prompt] * len(rounds_images), [item.spec] * len(rounds_images)
            )
        ]
    return record


def first_pass(scores: list[float | None], threshold: float) -> int | None:
    """How many generations it took the reward to reach the threshold (None: never): the budget a
    best-of-N that stops early would have spent."""
    return next((j + 1 for j, s in enumerate(scores) if s is not None and s >= threshold), None)


class BestOfN(NamedTuple):
    scores: list[float | None]
    images: list
    verdicts: list[Critique]
    reasoning: str


def best_of_n(mug, pairs, n: int, config: MILRConfig, reward: Critic, batch: int = DEFAULT_BATCH) -> list[BestOfN]:
    """For each (item, sample): N images under the same (greedy, so identical) reasoning, sample j
    drawn with seed `item_seed + j`; returns (reward scores, images, verdicts, reasoning) per pair.
    Reasoning is decoded for all pairs in one batch, the N·len(pairs) images `batch` at a time, scored
    in batches."""
    texts = mug.reason_batch([item.prompt for item, _ in pairs], max_new_tokens=config.max_reasoning_tokens)
    rows = [(p, j) for p in range(len(pairs)) for j in range(n)]
    images = []
    for chunk in _chunks(rows, batch):
        drawn = mug.draw_batch(
            [image_prompt(pairs[p][0].prompt, texts[p].text) for p, _ in chunk],
            cfg=config.cfg,
            temperature=config.temperature,
            generators=[
                torch.Generator(device=mug.device).manual_seed(item_seed(config.seed, *pairs[p]) + j) for p, j in chunk
            ],
        )
        images += [d.image for d in drawn]
    verdicts = score_many(reward, images, [pairs[p][0].prompt for p, _ in rows], [pairs[p][0].spec for p, _ in rows])
    return [
        BestOfN(
            [v.score for v in verdicts[p * n : (p + 1) * n]],
            images[p * n : (p + 1) * n],
            verdicts[p * n : (p + 1) * n],
            texts[p].text,
        )
        for p in range(len(pairs))
    ]


def _chunks(seq: list, size: int) -> Iterator[list]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


def _progress(method: str, total: int, enabled: bool):
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[score]}"),
        disable=not enabled,
    )
    return bar, bar.add_task(method, total=total, score="")


def start_sweep(
    items: list[BenchItem], out: Path, bench_json: dict, samples: int, *, new_folder: bool = False
) -> tuple[Path, list[tuple[BenchItem, int]], int]:
    """Check that `out` is new or holds this same sweep (else `SweepMismatchError`; with `new_folder`
    a fresh sibling folder is used), record what the sweep is, and list the (item, sample) pairs not
    yet on disk. Returns (results file, pairs to run, pairs already done)."""
    out = choose_folder(out, bench_json, new_folder)
    out.mkdir(parents=True, exist_ok=True)
    write_settings(out, bench_json, samples)
    results = out / "results.jsonl"
    done = finished_keys(results)
    return results, [(it, s) for it in items for s in range(samples) if (it.key, s) not in done], len(done)


def collect(
    records: Iterable[dict],
    results: Path,
    method: str,
    total: int,
    *,
    progress: bool,
    on_record: Callable[[dict], None] | None,
) -> int:
    """Append each record as it arrives (so a crash later loses none), with a live progress bar."""
    correct = []
    bar, task = _progress(method, total, progress)
    with bar:
        for record in records:
            append_record(results, record)
            correct.append(record["correct"])
            bar.update(task, advance=1, score=f"correct {sum(correct) / len(correct):.3f}")
            if on_record is not None:
                on_record(record)
    return len(correct)


def bench_json(
    spec: BenchSpec,
    reward: Critic | None = None,
    evaluate: Critic | None = None,
    *,
    curve: bool | None = None,
    benchmark: dict | None = None,
) -> dict:
    """The settings `bench.json` records and a rerun is checked against (`milr.bench.folder`); what is
    not given is not recorded and so not compared."""
    data = {"method": spec.method, "n": spec.n, "config": spec.config.to_json_dict()}
    if reward is not None:
        data["reward_critic"] = critic_list(reward)
    if evaluate is not None:
        data["eval_critic"] = critic_list(evaluate)
    if curve is not None:
        data["curve"] = curve
    if benchmark is not None:
        data["benchmark"] = benchmark
    return data


def run_bench(
    items: list[BenchItem],
    mug,
    spec: BenchSpec,
    reward: Critic,
    evaluate: Critic,
    out: str | Path,
    *,
    samples: int = 1,
    curve: bool = False,
    progress: bool = True,
    on_record: Callable[[dict], None] | None = None,
    batch: int = DEFAULT_BATCH,
    benchmark: dict | None = None,
    new_folder: bool = False,
) -> Path:
    """Run (or finish) a sweep in this process into `out/results.jsonl`; returns that path.

    `batch` runs share each decode (best-of-N: `batch` images per decode); records keep their shape
    and the sweep stays resumable whatever the batch. `benchmark` (`describe_selection(...)`) records
    which prompts were chosen. A folder holding a sweep with other settings is refused
    (`SweepMismatchError` naming each difference); `new_folder=True` continues in a fresh sibling
    `<out>-2`, ... instead: the returned path says which.

    `milr.bench.distributed.run_bench_ray` is the same sweep spread over Ray workers."""
    settings = bench_json(spec, reward, evaluate, curve=curve, benchmark=benchmark)
    results, todo, skipped = start_sweep(items, Path(out), settings, samples, new_folder=new_folder)
    out = results.parent
    records = run_items(mug, todo, spec, reward, evaluate, out, curve, batch)
    n = collect(records, results, spec.method, len(todo), progress=progress, on_record=on_record)
    log.info("bench_done", method=spec.method, records=n, skipped=skipped)
    return results
