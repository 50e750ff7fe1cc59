"""The trace schema (DESIGN §5): what `run.json`, each line of `rounds.jsonl` and `summary.json` hold.

Defined here rather than imported from `milr.critics`, because `traces` imports nothing else of milr:
a trace must stay readable by tools that never load a model or a critic.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1


class CriticScore(BaseModel):
    """One critic's verdict as stored in a round (same fields as `milr.critics.Critique`)."""

    model_config = ConfigDict(extra="ignore")

    critic: str
    score: float | None = None
    rationale: str = ""
    details: dict = Field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None


class RunInfo(BaseModel):
    """`run.json`: everything needed to understand and reproduce the run."""

    model_config = ConfigDict(extra="ignore")

    schema_version: int = SCHEMA_VERSION
    run_id: str
    prompt: str
    spec: dict | None = None
    config: dict = Field(default_factory=dict)
    model: str = ""
    model_revision: str | None = None
    critics: list[dict] = Field(default_factory=list)
    seed: int = 0
    versions: dict = Field(default_factory=dict)
    device: str = "cpu"
    created: str = ""


class RoundRecord(BaseModel):
    """One line of `rounds.jsonl`: a finished round."""

    model_config = ConfigDict(extra="ignore")

    round: int
    modality: Literal["none", "text", "image", "both"] = Field(
        "none", description="What the update before this round changed."
    )
    reasoning: str = ""
    text_prefix: str = ""
    text_prefix_ids: list[int] = Field(default_factory=list)
    text_prefix_changed: bool = False
    image: str = Field(description="Image file name, relative to the run folder.")
    image_prefix_ids: list[int] = Field(default_factory=list)
    score: float | None = None
    reward: float | None = None
    critiques: list[CriticScore] = Field(default_factory=list)
    grad_norm: dict[str, float] = Field(default_factory=dict)
    step_norm: dict[str, float] = Field(default_factory=dict)
    seconds: dict[str, float] = Field(default_factory=dict)
    latents: str | None = Field(None, description="Latents file, relative to the run folder.")


class RunSummary(BaseModel):
    """`summary.json`: how the run ended."""

    model_config = ConfigDict(extra="ignore")

    stop_reason: str
    best_round: int
    last_round: int
    final_round: int = Field(description="The round whose image was returned (per `select`).")
    final_score: float | None = None
    rounds: int
    seconds: float
    select: str = "best"
