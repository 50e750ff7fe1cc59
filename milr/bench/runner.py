"""The benchmark runner: one JSONL record per (prompt, sample), appended and fsynced as it finishes,
so a killed sweep restarts where it stopped (finished keys are skipped, none is lost or redone).

Methods: `baseline` (round 0 only), `milr` (any `MILRConfig`), `best-of-n` (N generations scored by
the same reward critic, keep the best; N defaults to steps + 1 so budgets match MILR's worst case).
The evaluation critic is separate from the reward critic (reward `mixed`, evaluate `geneval`, as in
the paper's Table 6); with `curve=True` every round is evaluated, for the test-time scaling curve.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from milr.bench.datasets import BenchItem
from milr.config import MILRConfig
from milr.critics.base import Critic, Critique, score_many
from milr.mug.janus import image_prompt
from milr.orchestrator import MILR
from milr.traces import new_run_id

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
    items: list[BenchItem], *, tags: Iterable[str] | None = None, limit: int | None = None, shard: str | None = None
) -> list[BenchItem]:
    """Filter by tag, shard (`i/n`: every n-th item from i), then cap at `limit`."""
    if tags:
        wanted = set(tags)
        unknown = wanted - {it.tag for it in items}
        if unknown:
            raise ValueError(
                f"unknown tag(s) {', '.join(sorted(unknown))}; this set has {sorted({i.tag for i in items})}"
            )
        items = [it for it in items if it.tag in wanted]
    if shard:
        i, n = parse_shard(shard)
        items = items[i::n]
    return items[:limit] if limit is not None else items


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
            yield from _best_of_n_records(mug, chunk, spec, reward, evaluate, curve, batch)
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


def _best_of_n_records(mug, pairs, spec: BenchSpec, reward, evaluate, curve: bool, batch: int):
    started = time.perf_counter()
    scored = best_of_n(mug, pairs, spec.n, spec.config, reward, batch)
    seconds = (time.perf_counter() - started) / len(pairs)  # the chunk ran together: an equal share each
    for (item, sample), (scores, images) in zip(pairs, scored, strict=True):
        best = max(range(len(scores)), key=lambda j: (scores[j] if scores[j] is not None else -1.0, -j))
        yield _record(
            item,
            sample,
            spec,
            evaluate,
            final_image=images[best],
            reward_scores=scores,
            generations=spec.n,
            seconds=seconds,
            trace=None,
            rounds_images=images if curve else None,
        )


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


def best_of_n(mug, pairs, n: int, config: MILRConfig, reward: Critic, batch: int = DEFAULT_BATCH):
    """For each (item, sample): N images under the same (greedy, so identical) reasoning, sample j
    drawn with seed `item_seed + j`; returns (reward scores, images) per pair. Reasoning is decoded for
    all pairs in one batch, the N·len(pairs) images `batch` at a time, scored in batches."""
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
    return [([v.score for v in verdicts[p * n : (p + 1) * n]], images[p * n : (p + 1) * n]) for p in range(len(pairs))]


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
    items: list[BenchItem], out: Path, bench_json: dict, samples: int
) -> tuple[Path, list[tuple[BenchItem, int]], int]:
    """Create `out`, record what the sweep is, and list the (item, sample) pairs not yet on disk."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps({**bench_json, "samples": samples}, indent=2))
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


def bench_json(spec: BenchSpec) -> dict:
    return {"method": spec.method, "n": spec.n, "config": spec.config.to_json_dict()}


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
) -> Path:
    """Run (or finish) a sweep in this process into `out/results.jsonl`; returns that path.

    `batch` runs share each decode (best-of-N: `batch` images per decode); records keep their shape
    and the sweep stays resumable whatever the batch.

    `milr.bench.distributed.run_bench_ray` is the same sweep spread over Ray workers."""
    out = Path(out)
    results, todo, skipped = start_sweep(items, out, bench_json(spec), samples)
    records = run_items(mug, todo, spec, reward, evaluate, out, curve, batch)
    n = collect(records, results, spec.method, len(todo), progress=progress, on_record=on_record)
    log.info("bench_done", method=spec.method, records=n, skipped=skipped)
    return results
