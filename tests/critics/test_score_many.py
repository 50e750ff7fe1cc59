"""`score_many`: a batch scored by any critic, batched when it can be, one thread per image otherwise."""

from __future__ import annotations

import threading
import time

import pytest
import structlog
from PIL import Image

from milr.critics import BatchCritic, Critic, Critique, Mixer, score_many

IMAGES = [Image.new("RGB", (8, 8), c) for c in ("red", "green", "blue", "white")]
PROMPTS = ["p0", "p1", "p2", "p3"]
SPECS = [None] * 4


class PerImage:
    """A plain critic (no score_batch) whose score says which prompt it saw; the first images are the
    slowest, so that results finish in reverse order."""

    name = "plain"

    def __init__(self, delay: float = 0.0, fail_on: str | None = None):
        self.delay, self.fail_on = delay, fail_on
        self.threads: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, image, prompt, spec=None):
        n = int(prompt[1:])
        with self.lock:
            self.threads.append(threading.current_thread().name)
        time.sleep(self.delay * (len(PROMPTS) - n))
        if prompt == self.fail_on:
            raise RuntimeError(f"cannot judge {prompt}")
        return Critique(critic=self.name, score=n / 10, details={"color": image.getpixel((0, 0))})


class Batched(PerImage):
    """A BatchCritic that records its batches and refuses to be called per image."""

    name = "batched"

    def __init__(self, fail_batch: bool = False, **kw):
        super().__init__(**kw)
        self.batches: list[list[str]] = []
        self.fail_batch, self.per_image = fail_batch, 0

    def __call__(self, image, prompt, spec=None):
        self.per_image += 1
        return super().__call__(image, prompt, spec)

    def score_batch(self, images, prompts, specs):
        self.batches.append(list(prompts))
        if self.fail_batch:
            raise MemoryError("batch too large")
        return [Critique(critic=self.name, score=int(p[1:]) / 10) for p in prompts]


def test_plain_critic_runs_in_threads_and_keeps_input_order():
    critic = PerImage(delay=0.05)
    assert not isinstance(critic, BatchCritic) and isinstance(critic, Critic)
    started = time.perf_counter()
    critiques = score_many(critic, IMAGES, PROMPTS, SPECS)
    elapsed = time.perf_counter() - started
    assert [c.score for c in critiques] == [0.0, 0.1, 0.2, 0.3]  # in input order, though p3 finished first
    assert [tuple(c.details["color"]) for c in critiques] == [im.getpixel((0, 0)) for im in IMAGES]
    assert len(set(critic.threads)) == 4 and all(t.startswith("critic") for t in critic.threads)
    assert elapsed < 0.05 * (4 + 3 + 2 + 1) * 0.7  # serial would take the sum of the delays


def test_max_workers_bounds_the_threads():
    critic = PerImage(delay=0.01)
    assert [c.score for c in score_many(critic, IMAGES, PROMPTS, SPECS, max_workers=2)] == [0.0, 0.1, 0.2, 0.3]
    assert len(set(critic.threads)) == 2


def test_threads_see_the_callers_contextvars():
    seen = []

    class Peek:
        name = "peek"

        def __call__(self, image, prompt, spec=None):
            seen.append(structlog.contextvars.get_contextvars().get("round"))
            return Critique(critic=self.name, score=1.0)

    with structlog.contextvars.bound_contextvars(round=7):
        score_many(Peek(), IMAGES, PROMPTS, SPECS)
    assert seen == [7, 7, 7, 7]


def test_an_exception_abstains_on_its_image_only():
    with structlog.testing.capture_logs() as logs:
        critiques = score_many(PerImage(fail_on="p2"), IMAGES, PROMPTS, SPECS)
    assert [c.score for c in critiques] == [0.0, 0.1, None, 0.3]
    assert critiques[2].critic == "plain" and critiques[2].error == "RuntimeError: cannot judge p2"
    assert [c.error for c in critiques].count(None) == 3
    assert any(e["event"] == "critic_raised" and e["critic"] == "plain" for e in logs)


def test_mismatched_lengths_and_empty_batches():
    critic = PerImage()
    with pytest.raises(ValueError, match="4 images, 3 prompts and 4 specs"):
        score_many(critic, IMAGES, PROMPTS[:3], SPECS)
    with pytest.raises(ValueError, match="images, prompts and specs"):
        score_many(critic, IMAGES, PROMPTS, SPECS[:1])
    with pytest.raises(TypeError, match="not a single string"):
        score_many(critic, IMAGES[:1], "p0", SPECS[:1])
    assert score_many(critic, [], [], []) == [] and critic.threads == []


def test_a_critic_returning_no_critique_is_a_type_error_naming_it():
    class Sloppy:
        name = "sloppy"

        def __call__(self, image, prompt, spec=None):
            return 0.5

    with pytest.raises(TypeError, match="critic 'sloppy' \\(Sloppy\\) returned float 0.5, not a Critique"):
        score_many(Sloppy(), IMAGES, PROMPTS, SPECS)
    # inside a mixer the broken critic abstains, named, and the others still count
    mixer = Mixer([Sloppy(), PerImage()])
    mixed = score_many(mixer, IMAGES, PROMPTS, SPECS)
    assert [c.score for c in mixed] == pytest.approx([0.0, 0.1, 0.2, 0.3])
    sloppy = [Critique.model_validate(c.details["critiques"][0]) for c in mixed]
    assert all(c.score is None and "critic 'sloppy' (Sloppy) returned float 0.5" in c.error for c in sloppy)

    class Wrapper:  # a plain critic around a broken one: scored alone, still a TypeError naming the broken one
        name = "wrapper"

        def __call__(self, image, prompt, spec=None):
            return score_many(Sloppy(), [image], [prompt], [spec])[0]

    with pytest.raises(TypeError, match="'sloppy'"):
        score_many(Wrapper(), IMAGES, PROMPTS, SPECS)
    inside = Mixer([Wrapper(), PerImage()])(IMAGES[0], "p0")  # and inside a mixer it abstains
    assert inside.details["critiques"][0]["score"] is None and "'sloppy'" in inside.details["critiques"][0]["error"]

    class ShortBatch(Batched):
        def score_batch(self, images, prompts, specs):
            return super().score_batch(images, prompts, specs)[:-1]

    with pytest.raises(TypeError, match="critic 'batched': score_batch returned 3 for 4 images"):
        score_many(ShortBatch(), IMAGES, PROMPTS, SPECS)
    short = score_many(ShortBatch(), IMAGES, PROMPTS, SPECS, strict=False)
    assert all(c.score is None and "score_batch returned 3 for 4 images" in c.error for c in short)


def test_a_batch_critic_scores_the_whole_batch_in_one_call():
    critic = Batched()
    assert isinstance(critic, BatchCritic) and isinstance(Mixer([critic]), BatchCritic)
    critiques = score_many(critic, IMAGES, PROMPTS, SPECS)
    assert [c.score for c in critiques] == [0.0, 0.1, 0.2, 0.3]
    assert critic.batches == [PROMPTS] and critic.per_image == 0


def test_a_failing_batch_is_scored_one_image_at_a_time():
    critic = Batched(fail_batch=True, fail_on="p1")
    with structlog.testing.capture_logs() as logs:
        critiques = score_many(critic, IMAGES, PROMPTS, SPECS)
    assert critic.batches == [PROMPTS] and critic.per_image == 4
    assert [c.score for c in critiques] == [0.0, None, 0.2, 0.3]
    assert critiques[1].error == "RuntimeError: cannot judge p1"
    assert any(e["event"] == "critic_batch_raised" and e["n"] == 4 for e in logs)
    alone = score_many(Batched(fail_batch=True), IMAGES[:1], PROMPTS[:1], SPECS[:1])
    assert alone[0].score is None and alone[0].error == "MemoryError: batch too large"
