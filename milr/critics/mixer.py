"""`Mixer`: several critics as one (DESIGN §4), a weighted mean over the critics that did not abstain.

The critics run concurrently in a thread pool: network judges wait on sockets and torch releases the
GIL inside its kernels, so a GPT-4o call overlaps a detector forward pass. A batch of images
(`score_batch`) goes to each critic whole, through `score_many`: one forward for a `BatchCritic`,
one thread per image otherwise. Each child's `Critique` is kept in `details["critiques"]` (as
dicts) for the trace.

A person (`HumanCritic`) is asked last, one image at a time in batch order and in the caller's thread,
seeing the machine critics' verdicts. Asking pauses the LangGraph graph (`interrupt`), and LangGraph
re-runs the node from its start on resume, so the mixer holds the machine critiques of a paused batch
and reuses them when the same images come back: no critic scores an image twice in a process.
"""

from __future__ import annotations

import contextvars
import hashlib
import math
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import structlog
from PIL import Image

from milr.critics.base import (
    Critic,
    CriticCheckError,
    Critique,
    PromptSpec,
    check_batch,
    check_critic,
    is_graph_control,
    score_many,
)
from milr.critics.human import HumanCritic

log = structlog.get_logger(__name__)

Policy = Literal["renormalize", "fail", "zero"]
POLICIES: tuple[str, ...] = ("renormalize", "fail", "zero")
MAX_HELD = 4096  # machine critiques held for paused batches (a batch abandoned at a question stays until pushed out)


class Mixer:
    """A Critic mixing other critics by weight.

    Args:
        critics (`Sequence[Critic]`): the critics; their `name`s must be distinct.
        weights (`Sequence[float] | Mapping[str, float]`, *optional*): one weight per critic (by
            position or by name; unnamed critics get 1.0). Defaults to equal weights.
        tag_weights (`Mapping[str, Mapping[str, float]]`, *optional*): per GenEval tag, weights by
            critic name that replace `weights` when `spec.tag` matches, e.g.
            `{"colors": {"detector": 0.5, "gpt4o": 0.5}}`; critics not named keep their base weight.
            A critic whose weight is 0 for a prompt is not run at all (no wasted API call).
        policy (`str`, *optional*, defaults to `"renormalize"`): what an abstention does.
            `"renormalize"`: the weighted mean over the critics that scored (abstain only if none did);
            `"fail"`: the mixer abstains as soon as any critic abstains;
            `"zero"`: an abstention counts as score 0 (the authors' "unparsable → failed" convention).
        max_workers (`int`, *optional*): threads running critics at once; defaults to one per critic
            (within a critic, a batch is `score_many`'s: one forward, or one thread per image).
        name (`str`, *optional*, defaults to `"mixed"`).

    A critic that raises becomes an abstention with the exception recorded as its `error`, and so
    does one that breaks the contract (returns no `Critique`, or a score that is NaN or outside
    [0, 1]): its error names it and what it returned, and it is never mixed in as a number.
    `check()` checks every critic (`check_critic`) and names each one that cannot work.

    A `HumanCritic` among the critics is asked after the others (see the module docstring); what it
    raises (LangGraph's pause, a person aborting) reaches the caller, never an abstention.
    """

    def __init__(
        self,
        critics: Sequence[Critic],
        weights: Sequence[float] | Mapping[str, float] | None = None,
        tag_weights: Mapping[str, Mapping[str, float]] | None = None,
        policy: Policy = "renormalize",
        max_workers: int | None = None,
        name: str = "mixed",
    ):
        self.critics = list(critics)
        if not self.critics:
            raise ValueError("Mixer needs at least one critic")
        names = [c.name for c in self.critics]
        if len(set(names)) != len(names):
            raise ValueError(f"critic names must be distinct to be weighed, got {names}; give each a distinct `name`")
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        self.weights = _weights_list(names, weights)
        self.tag_weights = {tag: dict(w) for tag, w in (tag_weights or {}).items()}
        for tag, by_name in self.tag_weights.items():
            unknown = set(by_name) - set(names)
            if unknown:
                raise ValueError(f"tag_weights[{tag!r}] names unknown critics {sorted(unknown)}; critics: {names}")
            _check_weights(
                [by_name.get(n, w) for n, w in zip(names, self.weights, strict=True)], f"tag_weights[{tag!r}]"
            )
        self.policy = policy
        self.max_workers = max_workers
        self.name = name
        self._held: dict[tuple[int, str], Critique] = {}  # (critic index, image key) -> critique, across a pause
        self._held_lock = threading.Lock()  # one mixer may serve several graph runs at once (a server)

    def check(self) -> None:
        """`check_critic` on every critic; one `CriticCheckError` naming each that cannot work."""
        failed: list[CriticCheckError] = []
        for critic in self.critics:
            try:
                check_critic(critic)
            except CriticCheckError as err:
                failed.append(err)
        if len(failed) == 1:
            raise failed[0]
        if failed:
            raise CriticCheckError(self.name, "; ".join(str(err) for err in failed))

    def weights_for(self, spec: PromptSpec | None) -> list[float]:
        """The weights used for a prompt with this spec (per-tag weights override the base ones)."""
        by_name = self.tag_weights.get(spec.tag, {}) if spec is not None else {}
        return [by_name.get(c.name, w) for c, w in zip(self.critics, self.weights, strict=True)]

    def __call__(self, image: Image.Image, prompt: str, spec: PromptSpec | None = None) -> Critique:
        return self.score_batch([image], [prompt], [spec])[0]

    def score_batch(
        self, images: Sequence[Image.Image], prompts: Sequence[str], specs: Sequence[PromptSpec | None]
    ) -> list[Critique]:
        """One mixed `Critique` per image: each critic scores, in one `score_many` call, every image whose
        spec gives it a positive weight (critics concurrently), then each image is mixed on its own."""
        started = time.perf_counter()
        images, prompts, specs = check_batch(images, prompts, specs)
        for image in images:
            image.load()  # decode a lazily opened file once, before threads share the image
        weights = [self.weights_for(spec) for spec in specs]
        people = [j for j, c in enumerate(self.critics) if isinstance(c, HumanCritic)]
        if people:
            children = self._score_machines_then_people(images, prompts, specs, weights, people)
        else:
            children = self._score_children(images, prompts, specs, weights)
        return [self._verdict(scored, w, started) for scored, w in zip(children, weights, strict=True)]

    # ------------------------------------------------------------------ internals
    def _score_children(
        self, images, prompts, specs, weights: list[list[float]], only=None, scored=None
    ) -> list[dict[int, Critique]]:
        """Per image, {critic index: its Critique} for the critics weighing it; a critic whose weight
        is 0 for an image's spec is not run on that image (no wasted API call). `only`: the critic
        indices to run (default: all); `scored`: critiques already known, kept and not run again."""
        scored = [{} for _ in images] if scored is None else scored
        indices = range(len(self.critics)) if only is None else only
        rows_of = {j: [i for i, w in enumerate(weights) if w[j] > 0 and j not in scored[i]] for j in indices}
        jobs = [(j, rows) for j, rows in rows_of.items() if rows]
        if not jobs:
            return scored
        with ThreadPoolExecutor(max_workers=self.max_workers or len(jobs), thread_name_prefix="critic") as pool:
            # contextvars do not cross threads by themselves: copy them so that the round/run ids
            # bound by the graph node reach the children's log lines
            futures = [
                pool.submit(
                    contextvars.copy_context().run,
                    score_many,
                    self.critics[j],
                    [images[i] for i in rows],
                    [prompts[i] for i in rows],
                    [specs[i] for i in rows],
                    strict=False,  # a child breaking the contract abstains, named, rather than end the round
                )
                for j, rows in jobs
            ]
            for (j, rows), future in zip(jobs, futures, strict=True):
                for i, critique in zip(rows, future.result(), strict=True):
                    scored[i][j] = critique
        return scored

    def _score_machines_then_people(self, images, prompts, specs, weights, people: list[int]):
        """The machine critics (held ones reused), then each person, image by image in order; when a
        person's question pauses the graph, the machine critiques are held for the node's re-run."""
        machines = [j for j in range(len(self.critics)) if j not in people]
        keys = [_image_key(image, prompt, spec) for image, prompt, spec in zip(images, prompts, specs, strict=True)]
        scored = [self._take_held(key, machines) for key in keys]
        self._score_children(images, prompts, specs, weights, only=machines, scored=scored)
        try:
            for i, (image, prompt, spec) in enumerate(zip(images, prompts, specs, strict=True)):
                others = [scored[i][j] for j in machines if j in scored[i]]
                shown = {self.critics[j].name: weights[i][j] for j in machines if j in scored[i]}
                for j in people:
                    if weights[i][j] > 0:
                        scored[i][j] = self.critics[j].ask(image, prompt, spec, others=others, weights=shown)
        except Exception as err:
            if is_graph_control(err):
                self._hold(keys, scored, machines)
            raise
        return scored

    def _take_held(self, key: str, machines: list[int]) -> dict[int, Critique]:
        with self._held_lock:
            return {j: c for j in machines if (c := self._held.pop((j, key), None)) is not None}

    def _hold(self, keys: list[str], scored: list[dict[int, Critique]], machines: list[int]) -> None:
        with self._held_lock:
            for key, by_critic in zip(keys, scored, strict=True):
                for j in machines:
                    if j in by_critic:
                        self._held[(j, key)] = by_critic[j]
            while len(self._held) > MAX_HELD:  # oldest first: dicts keep insertion order
                del self._held[next(iter(self._held))]

    def _verdict(self, scored: dict[int, Critique], weights: list[float], started: float) -> Critique:
        """One image's mixed Critique from its children's (critic order kept)."""
        active = [(self.critics[j], weights[j], scored[j]) for j in sorted(scored)]
        score, error = self._mix([(child, w) for _, w, child in active])
        verdict = Critique(
            critic=self.name,
            score=score,
            rationale="\n".join(_line(child, w) for _, w, child in active),
            details={
                "critiques": [child.model_dump() for _, _, child in active],
                "weights": {c.name: w for c, w, _ in active},
                "skipped": [c.name for c, w in zip(self.critics, weights, strict=True) if w <= 0],
                "policy": self.policy,
            },
            seconds=time.perf_counter() - started,
            error=error,
        )
        scores = {child.critic: child.score for _, _, child in active}
        log.info("mixed", critic=self.name, score=score, scores=scores, error=error)
        return verdict

    def _mix(self, scored: list[tuple[Critique, float]]) -> tuple[float | None, str | None]:
        abstained = [c.critic for c, _ in scored if c.score is None]
        if self.policy == "fail" and abstained:
            return None, f"policy 'fail': abstained: {', '.join(abstained)}"
        if self.policy == "zero":
            pairs = [(c.score or 0.0, w) for c, w in scored]
        else:
            pairs = [(c.score, w) for c, w in scored if c.score is not None]
        total = sum(w for _, w in pairs)
        if not pairs or total <= 0:
            return None, "every critic abstained" if scored else "every critic has weight 0 for this prompt"
        # clamp: float rounding may put a mean of scores in [0, 1] a hair outside it
        return min(1.0, max(0.0, sum(s * w for s, w in pairs) / total)), None


def _image_key(image: Image.Image, prompt: str, spec: PromptSpec | None) -> str:
    """What a machine critique depends on: the pixels, the prompt and the spec."""
    digest = hashlib.sha256(f"{image.mode} {image.size}".encode())
    digest.update(image.tobytes())
    digest.update(prompt.encode("utf-8", "surrogatepass"))
    digest.update(b"\0" + (spec.model_dump_json() if spec is not None else "").encode())
    return digest.hexdigest()


def _weights_list(names: list[str], weights: Sequence[float] | Mapping[str, float] | None) -> list[float]:
    if weights is None:
        out = [1.0] * len(names)
    elif isinstance(weights, Mapping):
        unknown = set(weights) - set(names)
        if unknown:
            raise ValueError(f"weights name unknown critics {sorted(unknown)}; critics: {names}")
        out = [float(weights.get(n, 1.0)) for n in names]
    else:
        out = [float(w) for w in weights]
        if len(out) != len(names):
            raise ValueError(f"got {len(out)} weights for {len(names)} critics {names}")
    _check_weights(out, "weights")
    return out


def _check_weights(weights: list[float], what: str) -> None:
    if any(not math.isfinite(w) or w < 0 for w in weights) or not sum(weights) > 0:
        raise ValueError(f"{what} must be finite and >= 0 with a positive sum, got {weights}")


def _line(child: Critique, weight: float) -> str:
    shown = "abstained" if child.score is None else f"{child.score:.3f}"
    why = child.error if child.score is None else child.rationale
    first = why.strip().splitlines()[0] if why and why.strip() else ""
    return f"{child.critic} (w={weight:g}): {shown}" + (f": {first}" if first else "")
