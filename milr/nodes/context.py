"""What the graph nodes share: the checkpointed state of a batch of runs, the run context, and the
per-run latent stores.

A *run* is one prompt's MILR loop (DESIGN §2). The graph advances a batch of runs together; the
state holds every active run's plain values (`RunState`, keyed by run id) and the queue of runs
waiting for a slot. LangGraph's serializer cannot hold tensors or images, so those live in the
in-process `LatentStore` of each run and in its trace folder; a resumed run reads them back from
`latents/round_XX.safetensors`.

Each run moves through phases, so a node knows which runs are its work:
`new` (admitted, round 0 not drawn) → `generated` → `critiqued` → `updated` → `generated` → …
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypedDict

import torch
from PIL import Image

from milr.config import MILRConfig
from milr.critics.base import Critic
from milr.mug.janus import JanusMUG, TextRollout
from milr.mug.latents import LatentPrefix, image_positions, text_prefix_length
from milr.traces import TraceWriter

Phase = Literal["new", "generated", "critiqued", "updated"]


class QueuedRun(TypedDict, total=False):
    """A run waiting for a slot. `resume`: continue the trace folder already at `out/run_id`."""

    run_id: str
    prompt: str
    spec: dict | None
    seed: int
    resume: bool


class RunState(TypedDict, total=False):
    """One active run: plain values only."""

    run_id: str
    prompt: str
    spec: dict | None
    seed: int
    phase: Phase
    round: int  # the round generated last (-1 before round 0)
    score: float | None  # mixed score of that round
    scores: list[float | None]  # every finished round's score, in order
    reasoning: str
    text_prefix_ids: list[int]
    text_prefix_changed: bool
    image_prefix_ids: list[int]
    updated: str  # modality changed by the update before this round: none | text | image | both
    update_stats: dict  # grad and step norms of that update
    seconds: dict  # decode / critics / update seconds of this round
    stop_reason: str | None
    started: float  # wall clock (time.time()) when this process took the run up


class MILRState(TypedDict, total=False):
    """Checkpointed graph state. Input: `prompt` (one run), `prompts` (+ optional `specs`, `seeds`),
    or a ready `queue`; the first scheduling step turns the first two into the queue."""

    prompt: str
    prompts: list[str]
    specs: list[dict | None]
    seeds: list[int]
    queue: list[QueuedRun]
    runs: dict[str, RunState]  # active runs (the batch), keyed by run id
    finished: list[str]  # run ids whose summary is on disk, in the order they finished


@dataclass
class MILRContext:
    """Run-time objects the nodes need; LangGraph's runtime context, never checkpointed.

    `config` holds every setting but the seed, which is per run. `max_batch` runs share a decode.
    `cpu_threads`: intra-op threads of the nodes on a CPU, off the main thread. Build one from plain
    settings with `milr.orchestrator.build_context`."""

    mug: JanusMUG
    critic: Critic
    config: MILRConfig
    out: Path
    max_batch: int = 16
    # Intra-op threads of a node's torch work on a CPU when LangGraph runs the node off the main thread
    # (it does whenever custom events are streamed); None leaves torch's setting alone. Why one:
    # `milr.orchestrator.graph.node_threads`.
    cpu_threads: int | None = 1
    stores: dict[str, LatentStore] = field(default_factory=dict)
    writers: dict[str, TraceWriter] = field(default_factory=dict)

    def __post_init__(self):
        self.out = Path(self.out)
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")
        if self.cpu_threads is not None and self.cpu_threads < 1:
            raise ValueError(f"cpu_threads must be >= 1 or None (leave torch's setting alone), got {self.cpu_threads}")

    def store(self, run_id: str) -> LatentStore:
        return self.stores.setdefault(run_id, LatentStore())

    def writer(self, run_id: str) -> TraceWriter:
        """The run's trace writer; a run this process did not start is reopened to append."""
        if run_id not in self.writers:
            self.writers[run_id] = TraceWriter(self.out / run_id, resume=True)
        return self.writers[run_id]

    def run_config(self, run: RunState | QueuedRun) -> MILRConfig:
        return self.config.override(seed=run["seed"])

    def release(self, run_id: str) -> None:
        """Free a finished run's tensors and writer, whose lock on the run folder is released (its
        slot goes to the next queued run)."""
        self.stores.pop(run_id, None)
        writer = self.writers.pop(run_id, None)
        if writer is not None:
            writer.close()

    def close(self) -> None:
        """Close every writer still open (runs cut short by an error or by a consumer that stopped
        reading), so no run folder stays locked by this process."""
        while self.writers:
            self.writers.popitem()[1].close()


@dataclass
class LatentStore:
    """The optimised prefixes, their Adam states and the sampling generator of one run."""

    text: LatentPrefix | None = None
    image: LatentPrefix | None = None
    generator: torch.Generator | None = None
    reasoning: TextRollout | None = None  # last reasoning decode (reused when its prefix is unchanged)
    image_out: Image.Image | None = None  # the last round's image, until the critique writes it

    @property
    def ready(self) -> bool:
        return self.generator is not None

    def start(self, mug: JanusMUG, config: MILRConfig) -> None:
        self.generator = torch.Generator(device=mug.device).manual_seed(config.seed)

    def capture(self, mug: JanusMUG, config: MILRConfig, text: TextRollout, image_latents: torch.Tensor) -> None:
        """Round 0: keep the prefixes MILR will optimise (DESIGN §3)."""
        if "text" in config.optimize:
            lt = text_prefix_length(len(text.ids), config.lambda_text)
            self.text = LatentPrefix("text", text.latents[:lt], list(range(lt)), config.lr)
        if "image" in config.optimize:
            # A separate seeded generator picks the random subset, so the sampling stream is the same
            # for `prefix` and `random` runs.
            subset_gen = torch.Generator().manual_seed(config.seed + 1)
            pos = image_positions(mug.num_image_tokens, config.lambda_image, config.image_subset, subset_gen)
            self.image = LatentPrefix("image", image_latents[pos], pos, config.lr)
        self.reasoning = text

    def prefix(self, modality: str) -> LatentPrefix:
        found = self.text if modality == "text" else self.image
        if found is None:
            raise RuntimeError(f"no {modality} prefix: it is not in MILRConfig.optimize")
        return found

    # -------------------------------------------------------------- persistence (resume)
    def tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        out: dict[str, torch.Tensor] = {}
        for prefix in (self.text, self.image):
            if prefix is not None:
                out.update(prefix.state_tensors())
        out["generator_state"] = self.generator.get_state()
        meta = {"reasoning_ids": json.dumps(self.reasoning.ids), "reasoning": self.reasoning.text}
        return out, meta

    def restore(self, mug: JanusMUG, config: MILRConfig, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        self.start(mug, config)
        self.generator.set_state(tensors["generator_state"])
        if "text.z" in tensors:
            self.text = LatentPrefix.from_state_tensors("text", tensors, config.lr, mug.device)
        if "image.z" in tensors:
            self.image = LatentPrefix.from_state_tensors("image", tensors, config.lr, mug.device)
        ids = json.loads(meta["reasoning_ids"])
        # Latents of the full reasoning are not needed after round 0: only the optimised prefix is.
        self.reasoning = TextRollout(ids=ids, text=meta["reasoning"], latents=torch.empty(0))


MAX_WRITERS = 32


def concurrently(fn: Callable, items: Iterable) -> list:
    """`[fn(x) for x in items]`, run in threads: trace writes of different runs wait on fsyncs, which a
    file system may commit together when they come at once (a journal's group commit), so on a slow
    disk a batch's round can reach the disk in little more than one run's time. On this project's
    fast ext4 disk it neither gains nor costs: 16 fsyncs at once took what 16 in a row did (about
    0.3 ms each), and ShapesEval sweeps at batch 16 took the same time with 1, 4 or 32 threads."""
    items = list(items)
    if len(items) <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(min(len(items), MAX_WRITERS)) as pool:
        return list(pool.map(fn, items))


def active(state: MILRState, phase: Phase) -> list[RunState]:
    """The active runs in `phase`, in slot order."""
    return [run for run in state.get("runs", {}).values() if run.get("phase") == phase]


def with_runs(state: MILRState, changed: list[RunState]) -> dict:
    """The node's update: every active run, with `changed` ones replaced (state holds whole values)."""
    runs = dict(state.get("runs", {}))
    for run in changed:
        runs[run["run_id"]] = run
    return {"runs": runs}
