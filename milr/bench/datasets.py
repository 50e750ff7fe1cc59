"""Benchmark prompt sets: GenEval, T2I-CompBench, WISE (user-supplied paths) and ShapesEval (built in).

Every loader returns `BenchItem`s with a stable `key` (used to skip finished work on restart) and,
where the benchmark has one, a GenEval-schema `PromptSpec`. A wrong path or schema is a `ValueError`
naming the file and the line. Every loader takes `per_tag` (the first N prompts of each tag, in file
order; ShapesEval generates N per tag), and `stratified` draws a seeded sample spread evenly over the
tags (`--limit`): the first 12 GenEval prompts are all `single_object`, a stratified 12 are 2 per tag.
"""

from __future__ import annotations

import json
import random
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


def load_geneval(path: str | Path, per_tag: int | None = None) -> list[BenchItem]:
    """GenEval's `evaluation_metadata.jsonl`: one JSON object per line (tag, include, exclude, prompt)."""
    path = _need_file(path)
    items: list[BenchItem] = []
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
    return take_per_tag(items, per_tag)


def load_t2i_compbench(path: str | Path, category: str | None = None, per_tag: int | None = None) -> list[BenchItem]:
    """A T2I-CompBench `{category}_val.txt`: one prompt per line (some files lack the final newline)."""
    path = _need_file(path)
    category = category or path.name.removesuffix(".txt").removesuffix("_val")
    prompts = [p.strip() for p in path.read_text(encoding="utf-8").splitlines()]
    for n, p in enumerate(prompts, 1):
        if not p:
            raise ValueError(f"{path.name} line {n}: empty prompt")
    items = [BenchItem(key=f"t2i-{category}-{i:06d}", prompt=p, tag=category) for i, p in enumerate(prompts)]
    return take_per_tag(items, per_tag)


def wise_category(prompt_id: int) -> str:
    """WISE legacy prompt-id ranges → the six scored categories."""
    for upper, name in ((400, "Culture"), (567, "Time"), (700, "Space"), (800, "Biology"), (900, "Physics")):
        if prompt_id <= upper:
            return name
    return "Chemistry"


def load_wise(path: str | Path, per_tag: int | None = None) -> list[BenchItem]:
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
    return take_per_tag(items, per_tag)


ITEM_SEED_STRIDE = 1000  # room for best-of-N's per-sample seeds (seed + j, j < N) between entries


def load_shapes(per_tag: int | None = 50) -> list[BenchItem]:
    """ShapesEval (built in): `per_tag` (default 50) seeded prompts per GenEval tag in ShapesWorld."""
    from milr.shapes.eval import shapes_eval_prompts

    per_tag = 50 if per_tag is None else _positive(per_tag, "per_tag")

    return [
        BenchItem(key=f"shapes-{i:04d}", prompt=s.prompt, tag=s.tag, spec=s, seed=ITEM_SEED_STRIDE * i)
        for i, s in enumerate(shapes_eval_prompts(per_tag))
    ]


BENCHMARKS = ("geneval", "t2i", "wise", "shapes")


def load_benchmark(
    name: str, path: str | Path | None = None, *, category: str | None = None, per_tag: int | None = None
) -> list[BenchItem]:
    """Any benchmark by its `milr bench` name: `geneval`, `t2i`, `wise` (these need `path`: the
    metadata, prompt or data file) or `shapes` (built in)."""
    if name not in BENCHMARKS:
        raise ValueError(f"benchmark must be one of {', '.join(BENCHMARKS)}, got {name!r}")
    if name == "shapes":
        return load_shapes(per_tag)
    if path is None:
        raise ValueError(f"benchmark {name!r} needs the path of its file (milr ships only ShapesEval)")
    if name == "geneval":
        return load_geneval(path, per_tag)
    if name == "t2i":
        return load_t2i_compbench(path, category, per_tag)
    return load_wise(path, per_tag)


def _positive(n: int, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{what} must be a whole number >= 1, got {n!r}")
    return n


def take_per_tag(items: list[BenchItem], per_tag: int | None) -> list[BenchItem]:
    """The first `per_tag` items of every tag, in file order (None: all of them)."""
    if per_tag is None:
        return items
    _positive(per_tag, "per_tag")
    seen: dict[str, int] = {}
    kept = []
    for item in items:
        seen[item.tag] = seen.get(item.tag, 0) + 1
        if seen[item.tag] <= per_tag:
            kept.append(item)
    return kept


def tag_quotas(sizes: dict[str, int], limit: int, rng: random.Random) -> dict[str, int]:
    """How many items each tag gives to a sample of `limit`: equal shares, the remainder to tags drawn
    by `rng`, and what a small tag cannot give handed on to the tags that still have items."""
    quotas = dict.fromkeys(sizes, 0)
    left = min(limit, sum(sizes.values()))
    while left:
        open_tags = [t for t in sizes if quotas[t] < sizes[t]]
        share, extra = divmod(left, len(open_tags))
        lucky = set(rng.sample(open_tags, extra))
        for t in open_tags:
            give = min(share + (t in lucky), sizes[t] - quotas[t])
            quotas[t] += give
            left -= give
    return quotas


def stratified(items: list[BenchItem], limit: int, seed: int = 0) -> list[BenchItem]:
    """`limit` items spread as evenly as the tags allow, drawn at random within each tag with `seed`
    (the same seed gives the same sample), returned in file order."""
    _positive(limit, "limit")
    by_tag: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        by_tag.setdefault(item.tag, []).append(i)
    rng = random.Random(seed)
    quotas = tag_quotas({t: len(ix) for t, ix in by_tag.items()}, limit, rng)
    chosen = [i for t, ix in by_tag.items() for i in rng.sample(ix, quotas[t])]
    return [items[i] for i in sorted(chosen)]
