"""`MILRConfig`: every knob of one MILR run, validated and documented in one place.

Defaults are the paper's (λt 0.2, λv 0.02, lr 0.03, K 20, threshold 0.9 ⇔ the authors' R > -0.1),
except `select="best"`, which returns the best round rather than the last (the paper's choice is
`select="last"`). Load from TOML or JSON with `MILRConfig.from_file`, override with `.override()`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

Modality = Literal["text", "image"]

# Upper bounds on counts: far above any useful value, low enough that a typo fails at once instead of
# running for days or past the model's context.
MAX_STEPS = 1000  # the paper uses K = 20 (the authors' scripts 30); each step is a full decode
MAX_REASONING_TOKENS = 2048  # the reasoning is a ~50-word plan; prompt, plan and image tokens share one context
MIN_TEMPERATURE = 1e-4  # see `temperature`
DEVICE_TYPES = ("cpu", "cuda", "mps")


# The MILRConfig fields that say where a process runs the model, not what a run computes: a run resumes
# under the resuming process's placement (another machine, `milr resume --device cpu`), and a sweep
# folder's settings are compared without them.
PLACEMENT_FIELDS = ("device", "dtype", "compile")


class ConfigError(ValueError):
    """A config value is out of range or contradicts another; the message names the field."""


class MILRConfig(BaseModel):
    """Settings of one MILR run (DESIGN §3). Every field is checked when the config is built."""

    # allow_inf_nan=False: inf or nan in any float field is refused with the field named, instead of
    # "probability tensor contains inf" in the middle of a run
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # > Optimisation
    steps: int = Field(
        20, ge=0, le=MAX_STEPS, description="K: the most latent updates; a run makes at most K+1 generations."
    )
    lr: float = Field(
        0.03,
        gt=0,
        le=10,
        description="Adam learning rate of both latent prefixes. At most 10: Adam moves each latent coordinate "
        "by about lr per step, and the post-norm latents are O(1), so larger steps only leave the model's range.",
    )
    lambda_text: float = Field(0.2, gt=0, le=1, description="λt: fraction of the first reasoning's tokens optimised.")
    lambda_image: float = Field(0.02, gt=0, le=1, description="λv: fraction of image tokens optimised (11 of 576).")
    threshold: float = Field(0.9, ge=0, le=1, description="Stop once the mixed critic score reaches this value.")
    strategy: Literal["joint", "alt", "t2v"] = Field(
        "joint", description="joint: both each step; alt: text on odd steps, image on even; t2v: text then image."
    )
    optimize: frozenset[Modality] = Field(
        frozenset({"text", "image"}), description="Which latents to optimise (ablations: {'text'} or {'image'})."
    )
    image_subset: Literal["prefix", "random"] = Field(
        "prefix", description="Optimise the first image latents (paper) or a seeded random subset (Table 5)."
    )
    select: Literal["best", "last"] = Field(
        "best", description="Return the best-scoring round (default) or the last one (the paper's choice)."
    )
    # > Decoding
    cfg: float = Field(
        5.0,
        gt=0,
        le=100,
        description="Classifier-free guidance scale for image tokens (Janus-Pro uses 5; at most 100, beyond "
        "which the fused logits only grow towards overflow).",
    )
    temperature: float = Field(
        1.0,
        ge=MIN_TEMPERATURE,
        description="Sampling temperature for image tokens. At least 1e-4: there sampling is already argmax "
        "(a logit gap of 0.01 becomes 100 nats), and smaller values only push the float32 logits towards "
        "overflow (1e-300 makes them inf and sampling fails).",
    )
    max_reasoning_tokens: int = Field(
        512,
        ge=1,
        le=MAX_REASONING_TOKENS,
        description="Cap on the reasoning length (stops earlier at EOS); at most 2048, since the reasoning is "
        "a short plan that shares the model's context with the prompt and the image tokens.",
    )
    seed: int = Field(0, ge=0, le=2**63 - 1, description="Seeds image sampling and the random image subset.")
    # > Placement
    device: str | None = Field(
        None,
        description="torch device ('cpu', 'cuda', 'cuda:N', 'mps'); default cuda when available, else cpu. "
        "Checked against this machine when the config is built.",
    )
    compile: bool = Field(
        False,
        description="Decode with a static KV cache and a torch.compile'd step (CUDA graphs on a GPU); "
        "off by default: on a CPU neither pays.",
    )
    dtype: Literal["float32", "bfloat16", "float16"] | None = Field(
        None, description="Model dtype; default bfloat16 on GPU, float32 on CPU."
    )

    @field_validator("optimize", mode="before")
    @classmethod
    def _as_set(cls, v):
        if isinstance(v, str):
            v = [v]
        return frozenset(v)

    @field_validator("optimize")
    @classmethod
    def _not_empty(cls, v: frozenset) -> frozenset:
        if not v:
            raise ValueError("optimize must name at least one of 'text', 'image'")
        return v

    @field_validator("device")
    @classmethod
    def _device_exists(cls, v: str | None) -> str | None:
        if v is not None:
            check_device(v)
        return v

    @model_validator(mode="after")
    def _strategy_fits_optimize(self) -> MILRConfig:
        if self.strategy in ("alt", "t2v") and self.optimize != {"text", "image"}:
            raise ValueError(
                f"strategy={self.strategy!r} alternates text and image, but optimize={sorted(self.optimize)}; "
                "use strategy='joint' for a single-modality ablation"
            )
        return self

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise ConfigError(_explain(err)) from None

    def override(self, **changes) -> MILRConfig:
        """A new config with `changes` applied (None values are ignored) and validated again.
        Fields set explicitly stay explicit; untouched defaults stay defaults."""
        data = self.model_dump(include=self.model_fields_set)
        data.update({k: v for k, v in changes.items() if v is not None})
        return MILRConfig(**data)

    @classmethod
    def from_file(cls, path: str | Path) -> MILRConfig:
        """Read a `.toml` or `.json` file; a `[milr]` table in TOML is used when present."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path.name!r} does not exist")
        text = path.read_text(encoding="utf-8")
        try:
            if path.suffix == ".toml":
                data = tomllib.loads(text)
                data = data.get("milr", data)
            elif path.suffix == ".json":
                data = json.loads(text)
            else:
                raise ConfigError(f"config file {path.name!r} must end in .toml or .json")
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
            raise ConfigError(f"config file {path.name!r} is not valid {path.suffix[1:]}: {err}") from None
        return cls(**data)

    def with_recommended(self, recommended: dict) -> MILRConfig:
        """`recommended` (a checkpoint's decoding defaults) under every field set explicitly here."""
        explicit = self.model_dump(include=self.model_fields_set)
        return MILRConfig(**{**recommended, **explicit})

    def to_json_dict(self) -> dict:
        data = self.model_dump()
        data["optimize"] = sorted(self.optimize)
        return data


def check_device(device: str) -> None:
    """`ValueError` naming the fix unless `device` is a torch device that exists on this machine.
    torch is imported here, not at module level: `milr --help` must not load it."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{device!r} is not a torch device; use 'cpu', 'cuda', 'cuda:N' or 'mps'") from None
    if parsed.type not in DEVICE_TYPES:
        raise ValueError(f"milr runs on {', '.join(DEVICE_TYPES)}, not {parsed.type!r}; use 'cpu' or 'cuda'")
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                "CUDA is not available on this machine (torch.cuda.is_available() is False); "
                "use device 'cpu' (--device cpu), or leave it unset to take CUDA only where there is one"
            )
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise ValueError(
                f"this machine has {count} CUDA device{'s' * (count != 1)} (cuda:0 to cuda:{count - 1}); "
                f"use one of those, or 'cuda' for the current one"
            )
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("MPS is not available on this machine; use device 'cpu' (--device cpu) or leave it unset")


def _explain(err: ValidationError) -> str:
    # Redacted: the message shows what was given, and a key pasted into a config file (`api_key = ...`)
    # would otherwise be printed by `milr` and land in logs. Imported here: `milr --help` stays light.
    from milr.traces.redaction import redact

    lines = []
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "config"
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"{field}: {msg} (got {e.get('input')!r})")
    return redact("invalid MILRConfig: " + "; ".join(lines))
