"""Critics score an image against its prompt (DESIGN §4): judges, self-reward, detectors, oracles, the mixer.

Every critic is a plain object with a `name` and `__call__(image, prompt, spec=None) -> Critique`;
a score of None means it abstained. The CLI maps names to constructors; nothing here registers itself.
`score_many(critic, images, prompts, specs)` scores a batch with any critic: one forward for a
`BatchCritic` (the transformers critics and the mixer have `score_batch`), one thread per image otherwise.
`check_critic(critic)` is the cheap pre-flight (API key, reachable server, weights on disk) to run
before any decode; a critic breaking the contract (no `Critique`, a score that is NaN or outside
[0, 1]) is a `NotACritiqueError` alone and an abstention inside a `Mixer`.

- `OpenAIJudge` ("gpt4o"), `UnifiedReward` ("unified"): VLM judges behind OpenAI-compatible servers.
- `SelfReward` ("self"): the generating Janus answers yes/no about its own image.
- `DetectorCritic` ("detector"): soft GenEval-style checks from GroundingDINO and CLIP colours.
- `GenEvalOracle` ("geneval"): GenEval's rules and constants, 1/0 per image; `geneval` has the rules.
- `BlipVQACritic` ("blip_vqa"), `ClipScoreCritic` ("clip"): T2I-CompBench's model-based scorers;
  `t2i_compbench_critic(category)` picks the one a category uses.
- `WiseJudge` ("wise"): WISE's WiScore from a VLM judge, given each prompt's explanation.
- `HumanCritic` ("human"): a person scores, the graph paused by LangGraph's `interrupt` until they
  answer (`Command(resume={"score": ..., "rationale": ...})`); `ask_at_terminal` asks at a terminal.
- `Mixer`: a weighted mean of critics, run concurrently (a person last, seeing the others' verdicts).
"""

from milr.critics.base import (
    BatchCritic,
    Critic,
    CriticCheckError,
    Critique,
    NotACritiqueError,
    PromptSpec,
    SpecItem,
    check_critic,
    score_many,
)
from milr.critics.detector import DetectorCritic
from milr.critics.geneval import Detection, GenEvalOracle, GenEvalResult, evaluate, relative_position, summarize
from milr.critics.human import AnswerAborted, HumanAnswer, HumanCritic, ask_at_terminal, asks_person
from milr.critics.mixer import Mixer
from milr.critics.openai_judge import OpenAIJudge, UnifiedReward
from milr.critics.self_reward import SelfReward
from milr.critics.t2i_compbench import BlipVQACritic, ClipScoreCritic, T2ISpatialCritic, t2i_compbench_critic
from milr.critics.vision import (
    ClipColorClassifier,
    GroundingDinoDetector,
    Mask2FormerDetector,
    WeightsUnavailableError,
)
from milr.critics.wise import WiseJudge

__all__ = [
    "AnswerAborted",
    "BatchCritic",
    "BlipVQACritic",
    "ClipScoreCritic",
    "ClipColorClassifier",
    "Critic",
    "CriticCheckError",
    "Critique",
    "Detection",
    "DetectorCritic",
    "GenEvalOracle",
    "GenEvalResult",
    "GroundingDinoDetector",
    "HumanAnswer",
    "HumanCritic",
    "Mask2FormerDetector",
    "Mixer",
    "NotACritiqueError",
    "OpenAIJudge",
    "PromptSpec",
    "SelfReward",
    "WiseJudge",
    "SpecItem",
    "T2ISpatialCritic",
    "t2i_compbench_critic",
    "UnifiedReward",
    "WeightsUnavailableError",
    "ask_at_terminal",
    "asks_person",
    "check_critic",
    "evaluate",
    "relative_position",
    "score_many",
    "summarize",
]
