"""Read a free-form prompt written in GenEval's grammar back into its `PromptSpec`.

GenEval writes its prompts from templates (`prompts/create_prompts.py`), and this inverts them:

    a photo of a bench                        single_object
    a photo of a cat and a dog                two_object
    a photo of two clocks                     counting   (include 2, exclude 3: exactly two)
    a photo of a blue fire hydrant            colors
    a photo of a dog right of a teddy bear    position   (include [teddy bear, dog right of #0])
    a photo of a purple cup and a red car     color_attr

and accepts their natural combinations ("two red cars and a dog", "a cat left of two benches"),
without the "a photo of" lead, with commas, with proper plurals next to GenEval's own ("benchs",
"knifes", "persons") and with a few relation synonyms ("to the left of", "under"). The tag of a
combination is the first that applies of position, counting, color_attr/colors, two_object/single_object.
Anything else raises `ValueError` saying what was not understood; spec-based critics then abstain.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from milr.critics.base import COCO_CLASSES, COLORS, PromptSpec, SpecItem

NUMBERS = {w: i for i, w in enumerate("zero one two three four five six seven eight nine ten".split())}
ARTICLES = ("a", "an")
SEPARATORS = ("and", ",")
RELATION_WORDS: dict[tuple[str, ...], str] = {
    ("left", "of"): "left of",
    ("to", "the", "left", "of"): "left of",
    ("on", "the", "left", "of"): "left of",
    ("right", "of"): "right of",
    ("to", "the", "right", "of"): "right of",
    ("on", "the", "right", "of"): "right of",
    ("above",): "above",
    ("over",): "above",
    ("on", "top", "of"): "above",
    ("below",): "below",
    ("under",): "below",
    ("beneath",): "below",
    ("underneath",): "below",
}
_LEAD = re.compile(
    r"^(?:an?\s+)?(?:photo|photograph|picture|image|painting|drawing|illustration|render)\s+of(?:\s+|$)"
)
_IRREGULAR = {"person": "people", "knife": "knives", "mouse": "mice", "sheep": "sheep", "skis": "skis"}

EXAMPLES = "e.g. 'a photo of two red cars and a dog' or 'a photo of a cat left of a bench'"


@dataclass
class _Phrase:
    cls: str
    count: int
    numbered: bool  # the count was a number word, so it is exact (GenEval's counting rule)
    color: str | None


def geneval_plural(name: str) -> str:
    """GenEval's own plural (`make_plural`): '+es' after an s, else '+s' ("benchs", "buses")."""
    return f"{name}es" if name.endswith("s") else f"{name}s"


def english_plural(name: str) -> str:
    """The usual English plural of the last word ("benches", "knives", "people")."""
    head, _, last = name.rpartition(" ")
    if last in _IRREGULAR:
        plural = _IRREGULAR[last]
    elif last.endswith(("s", "x", "z", "ch", "sh")):
        plural = last + "es"
    elif last.endswith("y") and last[-2:-1] not in "aeiou":
        plural = last[:-1] + "ies"
    else:
        plural = last + "s"
    return f"{head} {plural}" if head else plural


def _vocabulary(classes: Iterable[str]) -> dict[str, str]:
    """Every accepted spelling → class. Singular spellings win over another class's plural."""
    vocab: dict[str, str] = {}
    classes = [c.lower() for c in classes]
    for cls in classes:
        for form in (geneval_plural(cls), english_plural(cls)):
            vocab.setdefault(form, cls)
    vocab.update({cls: cls for cls in classes})
    return vocab


def _tokens(text: str) -> list[str]:
    text = re.sub(r"\s+", " ", text.strip().lower()).rstrip(".!").strip()
    text = _LEAD.sub("", text)
    return text.replace(",", " , ").split()


def _find_relation(tokens: list[str]) -> tuple[int, int, str] | None:
    """(start, end, relation) of the single relation phrase in `tokens`, or None."""
    hits = []
    for i in range(len(tokens)):
        for words, relation in sorted(RELATION_WORDS.items(), key=lambda kv: -len(kv[0])):
            if tuple(tokens[i : i + len(words)]) == words:
                hits.append((i, i + len(words), relation))
                break
    # "to the left of" also contains "left of": keep only hits not inside a longer one
    hits = [h for h in hits if not any(o[0] < h[0] and h[1] <= o[1] for o in hits)]
    if len(hits) > 1:
        raise ValueError(f"more than one relation ({', '.join(h[2] for h in hits)})")
    return hits[0] if hits else None


def _split_phrases(tokens: list[str]) -> list[list[str]]:
    phrases, current = [], []
    for tok in tokens:
        if tok in SEPARATORS:
            if current:
                phrases.append(current)
            current = []
        else:
            current.append(tok)
    if current:
        phrases.append(current)
    return phrases


def _parse_phrase(words: list[str], vocab: dict[str, str], colors: tuple[str, ...]) -> _Phrase:
    det, rest = words[0], words[1:]
    if det in ARTICLES:
        count, numbered = 1, False
    elif det in NUMBERS or det.isdigit():
        count, numbered = NUMBERS[det] if det in NUMBERS else int(det), True
    else:
        raise ValueError(f"{' '.join(words)!r} does not start with 'a', 'an' or a number")
    if count < 1:
        raise ValueError(f"{' '.join(words)!r}: a count must be at least 1")
    # a leading colour word is a colour only if the rest is still an object ("an orange" is the fruit)
    if len(rest) >= 2 and rest[0] in colors and " ".join(rest[1:]) in vocab:
        return _Phrase(vocab[" ".join(rest[1:])], count, numbered, rest[0])
    if " ".join(rest) in vocab:
        return _Phrase(vocab[" ".join(rest)], count, numbered, None)
    raise ValueError(f"unknown object {' '.join(rest)!r}")


def _tag(phrases: list[_Phrase], relation: str | None) -> str:
    if relation is not None:
        return "position"
    if any(p.numbered for p in phrases):
        return "counting"
    if any(p.color for p in phrases):
        return "color_attr" if len(phrases) > 1 else "colors"
    return "two_object" if len(phrases) > 1 else "single_object"


def _item(p: _Phrase, position: tuple[str, int] | None = None) -> SpecItem:
    return SpecItem(cls=p.cls, count=p.count, color=p.color, position=position)


def _parse(prompt: str, classes: Iterable[str], colors: tuple[str, ...]) -> PromptSpec:
    vocab = _vocabulary(classes)
    tokens = _tokens(prompt)
    if not tokens:
        raise ValueError("empty prompt")
    relation = _find_relation(tokens)
    if relation is None:
        phrases = [_parse_phrase(w, vocab, colors) for w in _split_phrases(tokens)]
        include = [_item(p) for p in phrases]
    else:
        start, end, rel = relation
        subjects = [_parse_phrase(w, vocab, colors) for w in _split_phrases(tokens[:start])]
        targets = [_parse_phrase(w, vocab, colors) for w in _split_phrases(tokens[end:])]
        if not subjects or len(targets) != 1:
            raise ValueError(f"'{rel}' needs objects before it and exactly one object after it")
        phrases = targets + subjects
        # GenEval lists the target first; the subjects point back at it (index 0)
        include = [_item(targets[0])] + [_item(p, (rel, 0)) for p in subjects]
    if not phrases:
        raise ValueError("no object found")
    exclude = [SpecItem(cls=p.cls, count=p.count + 1) for p in phrases if p.numbered]
    return PromptSpec(tag=_tag(phrases, relation and relation[2]), include=include, exclude=exclude, prompt=prompt)


def parse_prompt(prompt: str, *, classes: Iterable[str] = COCO_CLASSES, colors: Iterable[str] = COLORS) -> PromptSpec:
    """The `PromptSpec` of a prompt in GenEval's grammar, or `ValueError` saying why not.

    `classes` is the object vocabulary (GenEval's 80 COCO names by default; ShapesWorld passes its
    shapes), `colors` the colour words (GenEval's ten).
    """
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a string, got {type(prompt).__name__}")
    try:
        return _parse(prompt, classes, tuple(c.lower() for c in colors))
    except ValueError as err:
        raise ValueError(f"cannot read {prompt!r} as a GenEval-style prompt: {err} ({EXAMPLES})") from None


def spec_for(prompt: str, spec: PromptSpec | dict | None) -> PromptSpec:
    """The spec a spec-based critic scores against: the given one, else parsed from the prompt."""
    if spec is None:
        return parse_prompt(prompt)
    return spec if isinstance(spec, PromptSpec) else PromptSpec.from_geneval(spec)
