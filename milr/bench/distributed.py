"""Spread a benchmark sweep over Ray workers (`milr bench ... --ray [ADDRESS]`, extra `milr[ray]`).

Each worker is a Ray actor that rebuilds the model and the critics from their names (a `BenchSetup`)
once, then runs chunks of `batch` prompts (one batched graph run each) as they are handed out; one
GPU per worker when the cluster has GPUs, else one CPU thread per worker. Records come back to the
driver, which appends them to the same `results.jsonl` as a single-process run, in completion order:
a sweep killed midway resumes with or without Ray, and seeds depend only on (prompt, sample), so the
records equal a single-process run's.

Traces are written by the workers under `out/traces`: on a multi-node cluster, `out` must be on a
file system every node shares (the records still reach the driver without it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from milr.bench.datasets import BenchItem
from milr.bench.runner import DEFAULT_BATCH, BenchSpec, bench_json, collect, finished_keys, run_items, start_sweep
from milr.config import MILRConfig
from milr.orchestrator.registry import build_model, build_reward

log = structlog.get_logger(__name__)

LOCAL = "local"  # `--ray` without an address: start a Ray instance on this machine


@dataclass(frozen=True)
class BenchSetup:
    """What a worker needs to rebuild model and critics in its own process: names, not objects."""

    model: str
    critic: str
    eval_critic: str | None = None
    config: MILRConfig = field(default_factory=MILRConfig)
    # What some critics need from the benchmark: {"category": ...} (t2i_compbench), {"explanations": ...} (wise)
    context: dict | None = None

    def build(self):
        """(mug, config with the checkpoint's recommendations, reward critic, evaluation critic)."""
        mug = build_model(self.model, self.config)
        config = self.config.with_recommended(mug.recommended)
        reward = build_reward(self.critic, mug, context=self.context)
        evaluate = build_reward(self.eval_critic, mug, context=self.context) if self.eval_critic else reward
        return mug, config, reward, evaluate


class BenchWorker:
    """One Ray actor: a model and its critics, loaded once, running a chunk of (prompt, sample) pairs
    at a time as one batch."""

    def __init__(self, setup: BenchSetup, method: str, n: int | None, curve: bool, threads: int | None, batch: int):
        if threads:
            import torch

            torch.set_num_threads(threads)
        self.mug, config, self.reward, self.evaluate = setup.build()
        self.spec = BenchSpec(method, config, n)
        self.curve, self.batch = curve, batch

    def describe(self) -> dict:
        return bench_json(self.spec, self.reward, self.evaluate, curve=self.curve)

    def run(self, pairs: list[tuple[BenchItem, int]], out: str) -> list[dict]:
        args = (self.spec, self.reward, self.evaluate, Path(out), self.curve, self.batch)
        return list(run_items(self.mug, pairs, *args))


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ImportError("--ray needs Ray: pip install 'milr[ray]' (or run without --ray)") from None
    return ray


def _connect(ray, address: str, workers: int | None) -> None:
    if ray.is_initialized():
        return
    if address == LOCAL:
        ray.init(num_cpus=workers, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    else:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)


def worker_count(resources: dict, workers: int | None) -> tuple[int, bool]:
    """(how many actors, one GPU each?) from the cluster's resources: every GPU, else every CPU."""
    gpus = int(resources.get("GPU", 0))
    if workers is not None:
        if workers < 1:
            raise ValueError(f"--workers must be >= 1, got {workers}")
        return workers, gpus > 0
    return (gpus, True) if gpus else (max(1, int(resources.get("CPU", 1))), False)


def run_bench_ray(
    items: list[BenchItem],
    setup: BenchSetup,
    method: str,
    out: str | Path,
    *,
    n: int | None = None,
    samples: int = 1,
    curve: bool = False,
    address: str = LOCAL,
    workers: int | None = None,
    progress: bool = True,
    on_record: Callable[[dict], None] | None = None,
    batch: int = DEFAULT_BATCH,
    benchmark: dict | None = None,
    new_folder: bool = False,
) -> Path:
    """`run_bench` with the (prompt, sample) pairs run as Ray actor tasks, `batch` pairs per task (one
    batched decode each); returns `out/results.jsonl` (with `new_folder`, of the folder chosen). The
    folder is checked against the sweep's settings as `run_bench` does, once the first worker has
    built the config."""
    ray = _import_ray()
    _connect(ray, address, workers)
    count, per_gpu = worker_count(ray.cluster_resources(), workers)
    out = Path(out).resolve()
    # Every worker loads the model: start no more of them than there are pairs left to run.
    done_before = finished_keys(out / "results.jsonl")
    left = sum((it.key, s) not in done_before for it in items for s in range(samples))
    count = max(1, min(count, -(-left // batch)))  # no more workers than chunks of work
    actor = ray.remote(num_gpus=1 if per_gpu else 0, num_cpus=0 if per_gpu else 1)(BenchWorker)
    threads = None if per_gpu else 1  # one core per CPU worker: workers must not fight over cores
    pool = [actor.remote(setup, method, n, curve, threads, batch) for _ in range(count)]
    try:
        settings = {**ray.get(pool[0].describe.remote()), **({"benchmark": benchmark} if benchmark else {})}
        results, todo, skipped = start_sweep(items, out, settings, samples, new_folder=new_folder)
        log.info("bench_ray", workers=count, gpu_per_worker=per_gpu, todo=len(todo), skipped=skipped)
        chunks = [todo[i : i + batch] for i in range(0, len(todo), batch)]
        records = _unordered(ray, pool, chunks, str(results.parent))
        done = collect(records, results, method, len(todo), progress=progress, on_record=on_record)
    finally:  # a failed task must not leave actors holding GPUs in a long-lived cluster
        for a in pool:
            ray.kill(a)
    log.info("bench_done", method=method, records=done, skipped=skipped, workers=count)
    return results


def _unordered(ray, pool: list, chunks: list[list[tuple[BenchItem, int]]], out: str) -> Iterator[dict]:
    """Keep every worker busy with a chunk; yield each chunk's records as soon as it is finished."""
    pending, queue = {}, list(reversed(chunks))
    for a in pool:
        if queue:
            pending[a.run.remote(queue.pop(), out)] = a
    while pending:
        [ready], _ = ray.wait(list(pending), num_returns=1)
        worker = pending.pop(ready)
        if queue:
            pending[worker.run.remote(queue.pop(), out)] = worker
        yield from ray.get(ready)
