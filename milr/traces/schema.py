"""The trace schema (DESIGN §5): what `run.json`, each line of `rounds.jsonl` and `summary.json` hold.

Defined here rather than imported from `milr.critics`, because `traces` imports nothing else of milr:
a trace must stay readable by tools that never load a model or a critic.

Compatibility: `SCHEMA_VERSION` goes up when a field changes meaning or a required field is added.
Readers accept any version up to theirs (new optional fields get their defaults, unknown fields are
ignored) and refuse newer ones with a clear message (see `milr.traces.reader`).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1

Modality = Literal["none", "text", "image", "both"]


class _Record(BaseModel):
    # Unknown fields (from a newer minor writer) are dropped rather than refused. A NaN or inf
    # (a diverging gradient norm) is written as the JSON strings "NaN"/"Infinity": pydantic's default
    # writes null, which the float field then refuses, and the whole round would be lost.
    model_config = ConfigDict(extra="ignore", ser_json_inf_nan="strings")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class CriticScore(_Record):
    """One critic's verdict as stored in a round (the fields of `milr.critics.base.Critique`).

    `score` None means the critic abstained (error, refusal, not applicable); `error` says why."""

    critic: str
    score: float | None = None
    rationale: str = ""
    details: dict = Field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None


class RunInfo(_Record):
    """`run.json`: everything needed to understand and reproduce the run."""

    schema_version: int = SCHEMA_VERSION
    run_id: str
    prompt: str
    spec: dict | None = Field(None, description="GenEval metadata of the prompt, if known.")
    config: dict = Field(default_factory=dict, description="MILRConfig as JSON.")
    model: str = ""
    model_revision: str | None = None
    critics: list[dict] = Field(default_factory=list, description="[{name, weight}], in mixing order.")
    seed: int = 0
    versions: dict = Field(default_factory=dict, description="milr, torch, transformers, python.")
    device: str = "cpu"
    created: str = Field(default_factory=_now, description="ISO 8601 time the run started (UTC).")


class RoundRecord(_Record):
    """One line of `rounds.jsonl`: a finished round."""

    round: int = Field(ge=0)
    modality: Modality = Field("none", description="What the update before this round changed.")
    reasoning: str = ""
    text_prefix: str = Field("", description="The optimised text prefix, decoded.")
    text_prefix_ids: list[int] = Field(default_factory=list)
    text_prefix_changed: bool = False
    image: str = Field(description="Image file name, relative to the run folder.")
    image_prefix_ids: list[int] = Field(default_factory=list)
    score: float | None = Field(None, description="Mixed critic score in [0, 1]; None if every critic abstained.")
    reward: float | None = Field(None, description="R = score - 1, the REINFORCE reward.")
    critiques: list[CriticScore] = Field(default_factory=list)
    grad_norm: dict[str, float] = Field(default_factory=dict, description="Per modality, of the update before.")
    step_norm: dict[str, float] = Field(default_factory=dict, description="Per modality, latent change.")
    seconds: dict[str, float] = Field(default_factory=dict, description="decode, critics, update.")
    latents: str | None = Field(None, description="Latents file, relative to the run folder.")
    latents_sha256: str | None = Field(
        None, description="SHA-256 of the latents file, checked before resuming from it (None in older traces)."
    )


class RunSummary(_Record):
    """`summary.json`: how the run ended. Its presence marks a finished run."""

    stop_reason: str
    best_round: int
    last_round: int
    final_round: int = Field(description="The round whose image was returned (per `select`).")
    final_score: float | None = None
    rounds: int
    seconds: float
    select: str = "best"
