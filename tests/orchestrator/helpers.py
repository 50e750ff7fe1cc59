"""Scripted critics for loop tests: deterministic, cheap, and able to fail."""

from __future__ import annotations

import hashlib
import time

from milr.critics.base import Critique


class ScriptedCritic:
    """Returns `scores[i]` on its i-th call (the last one repeats)."""

    name = "scripted"

    def __init__(self, scores):
        self.scores = list(scores)
        self.calls = 0

    def __call__(self, image, prompt, spec=None):
        score = self.scores[min(self.calls, len(self.scores) - 1)]
        self.calls += 1
        return Critique(critic=self.name, score=score, rationale=f"call {self.calls}")


class PixelCritic:
    """A score that depends only on the image bytes (so it agrees across processes); never passes."""

    name = "pixels"

    def __call__(self, image, prompt, spec=None):
        digest = hashlib.sha256(image.tobytes()).digest()
        return Critique(critic=self.name, score=round(digest[0] / 255 * 0.8, 4), rationale="hash of pixels")


class SlowPixelCritic(PixelCritic):
    """`PixelCritic` that takes 0.4 s a round: a run it scores keeps writing for seconds."""

    def __call__(self, image, prompt, spec=None):
        time.sleep(0.4)
        return super().__call__(image, prompt, spec)
