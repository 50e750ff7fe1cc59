"""WISE's judge (Niu et al., 2025): a VLM scores Consistency, Realism and Aesthetic Quality 0–2 each
against the prompt's knowledge explanation, and WiScore = (0.7·C + 0.2·R + 0.1·A) / 2 ∈ [0, 1].

The protocol text is milr's own (`prompts/wise_system.txt`, `prompts/wise_user.txt`): WISE's data and
prompts carry no licence. The reply format and the parse (ASCII or full-width colon, optional bold)
follow WISE's evaluator, so any OpenAI-compatible VLM that can follow it works; GPT-4o at temperature 0
is the published setting. WISE prompts need their explanation: pass `explanations` (prompt →
explanation, as `milr bench wise` does from the data file) or the judge abstains for unknown prompts.
"""

from __future__ import annotations

import re

from milr import prompts
from milr.critics.base import PromptSpec
from milr.critics.openai_judge import ChatJudge

WISE_SCORE = re.compile(r"\*{0,2}(Consistency|Realism|Aesthetic Quality)\*{0,2}\s*[:：]?\s*(\d)", re.IGNORECASE)
WEIGHTS = {"consistency": 0.7, "realism": 0.2, "aesthetic quality": 0.1}


def wiscore(consistency: int, realism: int, aesthetic: int) -> float:
    """WISE's WiScore in [0, 1]: (0.7·consistency + 0.2·realism + 0.1·aesthetic) / 2, each judged 0–2."""
    for name, v in (("consistency", consistency), ("realism", realism), ("aesthetic", aesthetic)):
        if v not in (0, 1, 2):
            raise ValueError(f"{name} must be 0, 1 or 2, got {v}")
    return (0.7 * consistency + 0.2 * realism + 0.1 * aesthetic) / 2


def parse_wise_scores(text: str) -> dict[str, int]:
    """{"consistency", "realism", "aesthetic quality"} → 0–2 from a judge's reply (first of each wins)."""
    found: dict[str, int] = {}
    for name, value in WISE_SCORE.findall(text or ""):
        found.setdefault(name.lower(), int(value))
    missing = [k for k in WEIGHTS if k not in found]
    if missing:
        raise ValueError(f"the reply has no {', '.join(missing)} score")
    return found


class WiseJudge(ChatJudge):
    """WISE's WiScore from an OpenAI-compatible VLM judge (name `wise`).

    Args:
        model (`str`, *optional*, defaults to `"gpt-4o-2024-05-13"`): WISE's published judge.
        explanations (`dict[str, str]`, *optional*): prompt → WISE explanation.
        max_tokens (`int`, *optional*, defaults to 2000), temperature (defaults to 0): WISE's settings.
        Other keyword arguments go to `ChatJudge` as for `OpenAIJudge` (base_url, api_key, timeout,
        max_retries, deadline, temperature, client, name).
    """

    name = "wise"
    mode = "wiscore"

    def __init__(
        self,
        model: str = "gpt-4o-2024-05-13",
        *,
        explanations: dict[str, str] | None = None,
        max_tokens: int | None = 2000,
        **options,
    ):
        # options: base_url, api_key, timeout, max_retries, deadline, temperature, client, name (see ChatJudge)
        super().__init__(model=model, max_tokens=max_tokens, **options)
        self.explanations = dict(explanations or {})
        self.system = prompts.load("wise_system")
        self.template = prompts.load("wise_user")

    def _ask(self, client, image_url, prompt, spec: PromptSpec | None):
        explanation = self.explanations.get(prompt)
        if explanation is None:
            raise ValueError("no WISE explanation for this prompt: pass explanations={prompt: explanation}")
        text = self.template.replace("{prompt}", prompt).replace("{explanation}", explanation)
        completion = client.chat.completions.create(
            model=self.model, messages=self._messages(image_url, text, self.system), **self._sampling()
        )
        if not completion.choices:
            raise ValueError("the reply has no choices")
        reply = completion.choices[0].message.content or ""
        scores = parse_wise_scores(reply)
        score = wiscore(scores["consistency"], scores["realism"], scores["aesthetic quality"])
        usage = completion.usage.model_dump() if completion.usage else None
        return score, reply.strip(), {"scores": scores, "usage": usage}
