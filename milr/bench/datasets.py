"""Benchmark prompt sets: GenEval, T2I-CompBench, WISE (user-supplied paths) and ShapesEval (built in).

Every loader returns `BenchItem`s with a stable `key` (used to skip finished work on restart) and,
where the benchmark has one, a GenEval-schema `PromptSpec`. A wrong path or schema is a `ValueError`
naming the file and the line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from milr.critics.base import PromptSpec

WISE_CATEGORY_WEIGHTS = {  # WISE's published Overall weights (legacy data, prompt-id ranges)
    "Culture": 0.4,
    "Time": 0.167,
    "Space": 0.133,
    "Biology": 0.1,
    "Physics": 0.1,
    "Chemistry": 0.1,
}


@dataclass(frozen=True)
class BenchItem:
    key: str  # unique within the dataset, e.g. "geneval-00042"
    prompt: str
    tag: str  # GenEval tag, T2I-CompBench category or WISE category
    spec: PromptSpec | None = None
    extra: dict | None = None
    # Added to the sweep's seed: sets whose prompts repeat (ShapesEval) draw each entry differently.
    seed: int = 0


def _need_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"benchmark file {path} does not exist")
    return path


def load_geneval(path: str | Path) -> list[BenchItem]:
    """GenEval's `evaluation_metadata.jsonl`: one JSON object per line (tag, include, exclude, prompt)."""
    path = _need_file(path)
    items = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            spec = PromptSpec.from_geneval(json.loads(line))
        except (json.JSONDecodeError, ValueError) as err:
            raise ValueError(f"{path.name} line {n}: not a GenEval metadata record ({err})") from None
        if not spec.prompt:
            raise ValueError(f"{path.name} line {n}: record has no 'prompt'")
        items.append(BenchItem(key=f"geneval-{len(items):05d}", prompt=spec.prompt, tag=spec.tag, spec=spec))
    return items


def load_t2i_compbench(path: str | Path, category: str | None = None) -> list[BenchItem]:
    """A T2I-CompBench `{category}_val.txt`: one prompt per line (some files lack the final newline)."""
    path = _need_file(path)
    category = category or path.name.removesuffix(".txt").removesuffix("_val")
    prompts = [p.strip() for p in path.read_text(encoding="utf-8").splitlines()]
    for n, p in enumerate(prompts, 1):
        if not p:
            raise ValueError(f"{path.name} line {n}: empty prompt")
    return [BenchItem(key=f"t2i-{category}-{i:06d}", prompt=p, tag=category) for i, p in enumerate(prompts)]


def wise_category(prompt_id: int) -> str:
    """WISE legacy prompt-id ranges → the six scored categories."""
    for upper, name in ((400, "Culture"), (567, "Time"), (700, "Space"), (800, "Biology"), (900, "Physics")):
        if prompt_id <= upper:
            return name
    return "Chemistry"


def load_wise(path: str | Path) -> list[BenchItem]:
    """A WISE `data/*.json` file: a JSON array of {Prompt, Explanation, Category, Subcategory, prompt_id}.
    WISE's data carries no licence, so milr never ships it: pass your own copy."""
    path = _need_file(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path.name} line {err.lineno}: not valid JSON ({err.msg})") from None
    if not isinstance(data, list):
        raise ValueError(f"{path.name}: expected a JSON array of WISE records")
    items = []
    for n, rec in enumerate(data):
        missing = {"Prompt", "Explanation", "prompt_id"} - set(rec)
        if missing:
            raise ValueError(f"{path.name} record {n}: missing WISE field(s) {', '.join(sorted(missing))}")
        pid = int(rec["prompt_id"])
        items.append(
            BenchItem(
                key=f"wise-{pid:04d}",
                prompt=rec["Prompt"],
                tag=wise_category(pid),
                extra={"explanation": rec["Explanation"], "subcategory": rec.get("Subcategory")},
            )
        )
    return items


ITEM_SEED_STRIDE = 1000  # room for best-of-N's per-sample seeds (seed + j, j < N) between entries


def load_shapes(per_tag: int = 50) -> list[BenchItem]:
    """ShapesEval (built in): 50 seeded prompts per GenEval tag in ShapesWorld."""
    from milr.shapes.eval import shapes_eval_prompts

    return [
        BenchItem(key=f"shapes-{i:04d}", prompt=s.prompt, tag=s.tag, spec=s, seed=ITEM_SEED_STRIDE * i)
        for i, s in enumerate(shapes_eval_prompts(per_tag))
    ]
