"""Critics score an image against its prompt (DESIGN §4): judges, self-reward, detectors, oracles, the mixer.

Every critic is a plain object with a `name` and `__call__(image, prompt, spec=None) -> Critique`;
a score of None means it abstained. The CLI maps names to constructors; nothing here registers itself.
"""

from milr.critics.base import Critic, Critique, PromptSpec, SpecItem
from milr.critics.geneval import Detection, GenEvalResult, evaluate, relative_position, summarize
from milr.critics.mixer import Mixer
from milr.critics.openai_judge import OpenAIJudge, UnifiedReward

__all__ = [
    "Critic",
    "Critique",
    "Detection",
    "GenEvalResult",
    "Mixer",
    "OpenAIJudge",
    "PromptSpec",
    "SpecItem",
    "UnifiedReward",
    "evaluate",
    "relative_position",
    "summarize",
]
