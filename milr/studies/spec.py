"""`StudySpec`: what a reward-model study runs, read from a `SPEC.toml` (DESIGN §7).

    name = "shapes-lab"
    eval_critic = "shapes"                     # the evaluator: judges every image, never steers
    methods = ["baseline", "milr", "best_of_n"]
    samples = 1                                # images per prompt and seed
    seeds = [0]                                # one sweep per seed and method

    [prompts]
    benchmark = "shapes"                       # shapes | geneval | t2i | wise
    per_tag = 20                               # shapes: entries per tag; others: the first N of each tag
    # path = "evaluation_metadata.jsonl"       # geneval / t2i / wise file, relative to SPEC.toml
    # tags = ["counting", "position"]; limit = 60   (at most 60, spread evenly over the tags, seeded)

    [critics]                                  # reward critics: label = registry name(s)
    oracle = "shapes"
    countblind = "shapes-countblind"
    mix = "shapes-countblind:0.5,shapes-colorblind:0.5"

    [config]                                   # MILRConfig fields, for every sweep
    steps = 20

    [run]
    model = "shapes"; batch = 16               # ray = "local" (or an address) spreads sweeps over Ray

Best-of-N draws K + 1 images per prompt, MILR's most generations (equal budget). Every error names
the field (`prompts.per_tag: ...`) and what to write instead.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from milr.config import ConfigError, MILRConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

METHODS = ("baseline", "milr", "best_of_n")
BENCHMARKS = ("shapes", "geneval", "t2i", "wise")
LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


class PromptSet(BaseModel):
    """Which prompts: a benchmark, then a tag filter, a per-tag cap and an overall limit."""

    model_config = ConfigDict(extra="forbid")

    benchmark: Literal["shapes", "geneval", "t2i", "wise"] = Field(
        "shapes", description="shapes (built in), geneval, t2i (T2I-CompBench) or wise."
    )
    path: str | None = Field(None, description="The benchmark's file (geneval, t2i, wise), relative to SPEC.toml.")
    category: str | None = Field(None, description="T2I-CompBench category (default: from the file name).")
    tags: list[str] | None = Field(None, description="Only these tags (GenEval tags, T2I categories, WISE ones).")
    per_tag: int | None = Field(
        None, ge=1, description="shapes: ShapesEval entries per tag (default 50); others: the first N of each tag."
    )
    limit: int | None = Field(None, ge=1, description="At most this many prompts, spread evenly over the tags.")
    limit_seed: int = Field(0, description="Seed of the spread `limit` draws.")

    @model_validator(mode="after")
    def _path_where_needed(self) -> PromptSet:
        if self.benchmark != "shapes" and not self.path:
            what = {"geneval": "evaluation_metadata.jsonl", "t2i": "{category}_val.txt", "wise": "data/*.json"}
            raise ValueError(f"benchmark {self.benchmark} needs `path` (its {what[self.benchmark]})")
        if self.benchmark == "shapes" and self.path:
            raise ValueError("benchmark shapes is built in: drop `path`")
        return self


class RunOptions(BaseModel):
    """Where and how the sweeps run."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field("shapes", description="'shapes' (packaged), 'tiny' (random), a hub id or a local folder.")
    batch: int = Field(16, ge=1, le=1024, description="Runs per decode (best-of-N: images per decode).")
    rescore_batch: int = Field(64, ge=1, le=4096, description="Images per critic call when rescoring.")
    ray: str | None = Field(None, description="'local' or a Ray address: MILR and baseline sweeps run on Ray.")
    workers: int | None = Field(None, ge=1, description="Ray workers (default: one per GPU, else per CPU).")


class StudySpec(BaseModel):
    """A reward-model study (see the module docstring for the file)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("study", description="Shown in the report.")
    description: str = ""
    prompts: PromptSet = Field(default_factory=PromptSet)
    critics: dict[str, str] = Field(description="Reward critics: label → registry name(s) as --critic takes them.")
    eval_critic: str = Field(description="The evaluation critic (registry name), e.g. shapes or geneval.")
    methods: list[Literal["baseline", "milr", "best_of_n"]] = Field(default_factory=lambda: list(METHODS))
    samples: int = Field(1, ge=1, le=1000, description="Images per prompt and seed.")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1, description="One sweep per seed.")
    config: dict[str, Any] = Field(default_factory=dict, description="MILRConfig fields for every sweep.")
    run: RunOptions = Field(default_factory=RunOptions)
    _base: Path | None = PrivateAttr(None)  # the folder of the SPEC.toml: relative paths start there

    @field_validator("critics")
    @classmethod
    def _critic_labels_and_names(cls, critics: dict[str, str]) -> dict[str, str]:
        if not critics:
            raise ValueError('name at least one reward critic, e.g. [critics] oracle = "shapes"')
        for label, text in critics.items():
            if not LABEL.fullmatch(label):
                raise ValueError(f"label {label!r} must be letters, digits, _ or - (it names a folder)")
            _check_critic_text(text, f"critics.{label}")
        return critics

    @field_validator("eval_critic")
    @classmethod
    def _eval_name(cls, text: str) -> str:
        _check_critic_text(text, "eval_critic")
        return text

    @field_validator("methods")
    @classmethod
    def _methods_once(cls, methods: list[str]) -> list[str]:
        if not methods:
            raise ValueError(f"name at least one method of {', '.join(METHODS)}")
        if len(set(methods)) != len(methods):
            raise ValueError(f"each method once, got {methods}")
        return methods

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be distinct, got {seeds}")
        return seeds

    @field_validator("config")
    @classmethod
    def _milr_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        try:
            MILRConfig(**config)
        except ConfigError as err:
            raise ValueError(str(err).removeprefix("invalid MILRConfig: ")) from None
        return config

    def milr_config(self, seed: int) -> MILRConfig:
        """The sweeps' config with this seed (the checkpoint's recommendations fill the rest later)."""
        return MILRConfig(**{**self.config, "seed": seed})

    def prompts_file(self) -> Path | None:
        """`prompts.path`, taken relative to the spec file's folder when it is relative."""
        if self.prompts.path is None:
            return None
        path = Path(self.prompts.path)
        return path if path.is_absolute() or self._base is None else self._base / path

    @property
    def steps(self) -> int:
        return MILRConfig(**self.config).steps

    def sweep_json(self) -> dict:
        """What the study's sweeps depend on: a folder made for another spec must not be reused."""
        return self.model_dump(mode="json", exclude={"name", "description", "run"}) | {"model": self.run.model}


def _check_critic_text(text: str, field: str) -> None:
    from milr.orchestrator.registry import parse_critic_list

    try:
        parse_critic_list(text)
    except ValueError as err:
        raise ValueError(f"{err} (in {field})") from None


def load_spec(path: str | Path) -> StudySpec:
    """Read and check a SPEC.toml; `ValueError` naming the file, the field and the fix. A relative
    `prompts.path` is taken relative to the spec file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"study spec {path.name!r} does not exist")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path.name} is not valid TOML: {err}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path.name} is not UTF-8 text; save it as UTF-8") from None
    spec = parse_spec(data, source=path.name)
    spec._base = path.parent  # kept out of the spec's JSON: no local path goes into a study folder
    return spec


def parse_spec(data: dict, source: str = "study spec") -> StudySpec:
    """A `StudySpec` from the TOML's tables, errors naming each bad field."""
    try:
        return StudySpec.model_validate(data)
    except ValidationError as err:
        raise ValueError(f"{source}: " + "; ".join(_field_error(e) for e in err.errors())) from None


def _field_error(e: dict) -> str:
    field = ".".join(str(p) for p in e["loc"]) or "spec"
    msg = e["msg"].removeprefix("Value error, ")
    if e["type"] == "extra_forbidden":
        return f"{field}: unknown field; remove it or check its spelling"
    if e["type"] == "missing":
        return f"{field}: required; add it (e.g. {_EXAMPLES.get(field, field + ' = ...')})"
    return f"{field}: {msg}"


_EXAMPLES = {"critics": '[critics] oracle = "shapes"', "eval_critic": 'eval_critic = "shapes"'}
