"""`SelfReward`: the generating model judges its own image (the paper's "self" critic).

Janus answers one yes/no question about the image in understanding mode; the score is
P(yes) / (P(yes) + P(no)) over the first answer token, from a single forward pass. The question
lives in `milr/prompts/self_reward.txt` with a `{prompt}` placeholder.
"""

from __future__ import annotations

import math
import time
from typing import Protocol

import structlog
from PIL import Image

from milr import prompts
from milr.critics.base import Critique, PromptSpec

log = structlog.get_logger(__name__)


class Understands(Protocol):
    """What SelfReward needs of a model: `JanusMUG.understand`."""

    def understand(self, image: Image.Image, question: str) -> float: ...


class SelfReward:
    """A Critic asking the unified model itself whether its image matches the prompt.

    Args:
        mug: any object with `understand(image, question) -> float` in [0, 1], e.g. a `JanusMUG`.
        question_prompt (`str`, *optional*, defaults to `"self_reward"`): the prompt file of the question.
        name (`str`, *optional*, defaults to `"self"`).
    """

    name = "self"

    def __init__(self, mug: Understands, *, question_prompt: str = "self_reward", name: str | None = None):
        self.mug = mug
        self.template = prompts.load(question_prompt)
        self.name = name or self.name

    def question(self, prompt: str) -> str:
        return self.template.replace("{prompt}", prompt.strip())

    def __call__(self, image: Image.Image, prompt: str, spec: PromptSpec | None = None) -> Critique:
        started = time.perf_counter()
        question = self.question(prompt)
        try:
            p_yes = float(self.mug.understand(image, question))
        except ValueError as err:  # the model cannot answer (no image processor, no yes/no tokens)
            return Critique(critic=self.name, error=str(err), seconds=time.perf_counter() - started)
        if not math.isfinite(p_yes) or not 0.0 <= p_yes <= 1.0:
            error = f"understand() gave {p_yes}, not a probability"
            return Critique(critic=self.name, error=error, seconds=time.perf_counter() - started)
        verdict = Critique(
            critic=self.name,
            score=p_yes,
            rationale=f"P(yes) / (P(yes) + P(no)) = {p_yes:.3f}",
            details={"question": question},
            seconds=time.perf_counter() - started,
        )
        log.info("self_reward_scored", critic=self.name, score=p_yes, seconds=verdict.seconds)
        return verdict
