"""Names → objects: the critic table and the model loader shared by the `milr` command and the
benchmark runner (whose Ray workers rebuild model and critics from these names in their own process).

`--critic gpt4o:0.5,detector:0.5` is parsed here; this table is the only critic registry milr has.
Constructors import lazily, so naming `shapes` never loads the GPT-4o client or a detector.
The OpenAI-compatible judges (`JUDGES`) take their server options from `context["judge"]`
(`--judge-model`, `--judge-base-url`, `--judge-timeout`, `--judge-retries`, `--judge-deadline`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog

from milr.config import MILRConfig

if TYPE_CHECKING:  # imported lazily: `milr --help` must not load torch
    from milr.critics.base import Critic
    from milr.mug.janus import JanusMUG

log = structlog.get_logger(__name__)


def _gpt4o(mug, **kw):
    from milr.critics import OpenAIJudge

    return OpenAIJudge(**kw)


def _unified(mug, **kw):
    from milr.critics import UnifiedReward

    return UnifiedReward(**kw)


def _self(mug, **kw):
    from milr.critics import SelfReward

    return SelfReward(mug, **kw)


def _detector(mug, **kw):
    from milr.critics import DetectorCritic

    return DetectorCritic(**kw)


def _geneval(mug, **kw):
    from milr.critics import GenEvalOracle

    return GenEvalOracle(**kw)


def _blip_vqa(mug, **kw):
    from milr.critics import BlipVQACritic

    return BlipVQACritic(**kw)


def _clip(mug, **kw):
    from milr.critics import ClipScoreCritic

    return ClipScoreCritic(**kw)


def _t2i_compbench(mug, category: str | None = None):
    from milr.critics import t2i_compbench_critic

    if category is None:
        raise ValueError(
            "the t2i_compbench critic scores with the metric of a T2I-CompBench category: "
            "use it in `milr bench t2i` (or name blip_vqa / clip directly)"
        )
    return t2i_compbench_critic(category)


def _wise(mug, explanations: dict[str, str] | None = None, **kw):
    from milr.critics import WiseJudge

    if explanations is None:
        raise ValueError(
            "the wise critic judges against each prompt's WISE explanation: use it in `milr bench wise` "
            "(or build WiseJudge(explanations={prompt: explanation}) in Python)"
        )
    return WiseJudge(explanations=explanations, **kw)


def _shapes(mug, **kw):
    from milr.shapes import ShapesOracle

    return ShapesOracle(**kw)


def _human(mug, **kw):
    from milr.critics import HumanCritic

    return HumanCritic(**kw)


def _lab(kind: str) -> Callable:
    """A ShapesWorld lab critic with a known blind spot (`milr.shapes.lab`); its parameters come
    from the name: `shapes-lenient:margin=0.3`."""

    def build(mug, **params):
        from milr.shapes.lab import lab_critic

        return lab_critic(kind, **params)

    return build


CRITICS: dict[str, Callable] = {
    "gpt4o": _gpt4o,
    "unified": _unified,
    "self": _self,
    "detector": _detector,
    "geneval": _geneval,
    "blip_vqa": _blip_vqa,
    "clip": _clip,
    "t2i_compbench": _t2i_compbench,
    "wise": _wise,
    "shapes": _shapes,
    "human": _human,  # a person, asked through LangGraph's interrupt (the CLI asks at the terminal)
    # the ShapesWorld critic lab: known blind spots, parameters in the name (`shapes-noisy:flip=0.3`)
    **{f"shapes-{k}": _lab(k) for k in ("countblind", "positionblind", "colorblind", "lenient", "noisy", "mixed")},
}
# Critics that take parameters in their name (`NAME:key=value`); the others take none.
PARAMETRIC = {name for name in CRITICS if name.startswith("shapes-")}


def parse_critic_list(text: str) -> list[tuple[str, float]]:
    """`"gpt4o:0.5,detector:0.5"` → [("gpt4o", 0.5), ("detector", 0.5)]; weight defaults to 1.
    Parameters come before the weight and stay in the name: `"shapes-noisy:flip=0.3:0.5"` →
    [("shapes-noisy:flip=0.3", 0.5)] (`critic_params` splits such a name)."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, *rest = part.split(":")
        if name not in CRITICS:
            raise ValueError(f"unknown critic {name!r}; valid names: {', '.join(CRITICS)}")
        params = [r for r in rest if "=" in r]
        weight = "" if not rest or "=" in rest[-1] else rest[-1]
        if len(params) + bool(rest and weight == rest[-1]) != len(rest):
            raise ValueError(f"critic {part!r}: write NAME[:key=value]...[:WEIGHT], the weight last")
        if params and name not in PARAMETRIC:
            raise ValueError(f"critic {name!r} takes no parameters, got {params[0]!r}")
        name = ":".join([name, *params])
        try:
            w = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"critic weight for {name!r} must be a number, got {weight!r}") from None
        if not math.isfinite(w) or w <= 0:
            raise ValueError(f"critic weight for {name!r} must be > 0, got {w}")
        out.append((name, w))
    if not out:
        raise ValueError("--critic needs at least one name, e.g. --critic shapes")
    return out


# Critics whose verdict needs what the benchmark knows of its prompts, and the context keys they take.
CONTEXT_CRITICS = {"t2i_compbench": ("category",), "wise": ("explanations",)}
# The OpenAI-compatible judges, and the server options they take (constructor keywords) from context["judge"].
JUDGES = ("gpt4o", "unified", "wise")
JUDGE_OPTIONS = ("model", "base_url", "timeout", "max_retries", "deadline")


def build_critics(text: str, mug, *, context: dict | None = None) -> tuple[list[Critic], list[float]]:
    """The critics named in `text` and their weights, in order. `context` carries what some critics
    need from the benchmark (`category` for t2i_compbench, `explanations` for wise) and, under
    `judge`, options for every OpenAI-compatible judge named ({"model", "base_url", "timeout",
    "max_retries", "deadline"}: constructor keywords; None values are left to the critic's default)."""
    context = context or {}
    judge = {k: v for k, v in (context.get("judge") or {}).items() if v is not None}
    unknown = sorted(set(judge) - set(JUDGE_OPTIONS))
    if unknown:
        raise ValueError(f"unknown judge option(s) {', '.join(unknown)}; valid: {', '.join(JUDGE_OPTIONS)}")
    critics = []
    for spelled, _ in (pairs := parse_critic_list(text)):
        name, params = critic_params(spelled)
        kwargs = {key: context.get(key) for key in CONTEXT_CRITICS.get(name, ())}
        if name in JUDGES:
            kwargs.update(judge)
        critics.append(CRITICS[name](mug, **params, **kwargs))
    return critics, [w for _, w in pairs]


def critic_params(spelled: str) -> tuple[str, dict[str, str]]:
    """`"shapes-noisy:flip=0.3:seed=2"` → ("shapes-noisy", {"flip": "0.3", "seed": "2"}); the critic
    converts and checks the values."""
    name, *parts = spelled.split(":")
    params: dict[str, str] = {}
    for part in parts:
        key, _, value = part.partition("=")
        if not key.isidentifier() or key in params:
            raise ValueError(f"critic {spelled!r}: parameter {part!r} must be a new key=value")
        params[key] = value
    return name, params


def build_reward(text: str, mug, *, context: dict | None = None) -> Critic:
    """One critic for `text`: the critic itself when one is named, else their weighted `Mixer`."""
    from milr.critics import Mixer

    critics, weights = build_critics(text, mug, context=context)
    return critics[0] if len(critics) == 1 else Mixer(critics, weights=weights)


def build_model(model: str, config: MILRConfig, **load_kwargs: Any) -> JanusMUG:
    """`tiny` (random, for plumbing checks), `shapes` (packaged), a hub id or a local folder.
    `load_kwargs` (`revision`, `device_map`, `use_safetensors=False` for a trusted pickle checkpoint,
    transformers keywords) go to `load_mug`; the random `tiny` model takes none."""
    from milr.orchestrator.facade import load_mug

    if model == "tiny":
        from milr.mug.tiny import tiny_mug

        if load_kwargs:
            raise ValueError(f"the random tiny model is built, not loaded: drop {', '.join(sorted(load_kwargs))}")
        log.warning("tiny_model", message="a tiny RANDOM Janus (untrained): images are noise, for plumbing checks")
        mug = tiny_mug(seed=config.seed, grid=4, max_positions=1024)
        mug.name = "tiny"
        return mug
    return load_mug(model, config, **load_kwargs)
