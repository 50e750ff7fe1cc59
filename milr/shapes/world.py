"""ShapesWorld (DESIGN §6): flat shapes on a 4×4 grid, 64×64 px, white background.

A scene maps cells (row, col) to (shape, colour). This module renders scenes, turns them into the
16 image codes the tiny Janus draws (one code per cell: 0 = empty, else shape × colour), writes
GenEval-style prompts with their `PromptSpec` for the six GenEval tags, samples scenes that satisfy
a spec, and writes the layout plan the model reasons with ("a red circle in row two, column one.").
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

from milr.critics.base import PromptSpec, SpecItem
from milr.critics.geneval import relative_position

GRID = 4
CELL = 16
SIZE = GRID * CELL
SHAPES = ("circle", "square", "triangle")
COLORS = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 70, 220),
    "yellow": (240, 210, 20),
    "purple": (140, 40, 170),
    "orange": (245, 130, 20),
}
COLOR_NAMES = tuple(COLORS)
NUM_CODES = 1 + len(SHAPES) * len(COLORS)  # 19: empty + every (shape, colour)
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five")
RELATIONS = ("left of", "right of", "above", "below")
TAGS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")

Cell = tuple[int, int]
Obj = tuple[str, str]  # (shape, colour)


@dataclass(frozen=True)
class Scene:
    objects: dict[Cell, Obj]

    def codes(self) -> list[int]:
        """16 image codes, row-major."""
        return [encode_cell(self.objects.get((r, c))) for r in range(GRID) for c in range(GRID)]

    @classmethod
    def from_codes(cls, codes: list[int]) -> Scene:
        objs = {}
        for i, code in enumerate(codes):
            obj = decode_cell(code)
            if obj is not None:
                objs[divmod(i, GRID)] = obj
        return cls(objs)


def encode_cell(obj: Obj | None) -> int:
    if obj is None:
        return 0
    shape, color = obj
    return 1 + SHAPES.index(shape) * len(COLORS) + COLOR_NAMES.index(color)


def decode_cell(code: int) -> Obj | None:
    if not 1 <= code < NUM_CODES:
        return None  # empty, or a code the world never uses
    shape, color = divmod(code - 1, len(COLORS))
    return SHAPES[shape], COLOR_NAMES[color]


# --------------------------------------------------------------------------- rendering
# Shapes differ in coarse features, not only in outline: the tiny VQ decoder paints soft blobs, so
# a square fills its cell (12×12 px), a circle is small (8 px across) and a triangle (12 wide, 12
# high) has its ink low in the cell. Area and vertical balance survive blur; corners do not.
SQUARE_BOX = (2, 2, 13, 13)
CIRCLE_BOX = (4, 4, 11, 11)
TRIANGLE = ((7.5, 2), (13, 13), (2, 13))


def render(scene: Scene) -> Image.Image:
    img = Image.new("RGB", (SIZE, SIZE), "white")
    draw = ImageDraw.Draw(img)
    for (row, col), (shape, color) in scene.objects.items():
        x, y = col * CELL, row * CELL
        fill = COLORS[color]
        if shape == "circle":
            draw.ellipse(_shift(CIRCLE_BOX, x, y), fill=fill)
        elif shape == "square":
            draw.rectangle(_shift(SQUARE_BOX, x, y), fill=fill)
        else:
            draw.polygon([(px + x, py + y) for px, py in TRIANGLE], fill=fill)
    return img


def _shift(box: tuple[int, int, int, int], x: int, y: int) -> tuple[int, int, int, int]:
    return box[0] + x, box[1] + y, box[2] + x, box[3] + y


# --------------------------------------------------------------------------- prompts and specs
def plural(shape: str) -> str:
    return shape + "s"


def a(word: str) -> str:
    """English article + word, as GenEval writes it ("an orange square")."""
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def make_prompt(tag: str, rng: random.Random) -> PromptSpec:
    """A random prompt of GenEval tag `tag`, in GenEval's grammar, with its spec."""
    s1, s2 = rng.sample(SHAPES, 2)
    c1, c2 = rng.sample(COLOR_NAMES, 2)
    if tag == "single_object":
        return _spec(tag, f"a photo of {a(s1)}", [SpecItem(cls=s1)])
    if tag == "two_object":
        return _spec(tag, f"a photo of {a(s1)} and {a(s2)}", [SpecItem(cls=s1), SpecItem(cls=s2)])
    if tag == "counting":
        n = rng.choice((2, 3, 4))
        return _spec(
            tag,
            f"a photo of {NUMBER_WORDS[n]} {plural(s1)}",
            [SpecItem(cls=s1, count=n)],
            [SpecItem(cls=s1, count=n + 1)],
        )
    if tag == "colors":
        return _spec(tag, f"a photo of {a(c1)} {s1}", [SpecItem(cls=s1, color=c1)])
    if tag == "position":
        rel = rng.choice(RELATIONS)
        return _spec(
            tag,
            f"a photo of {a(s1)} {rel} {a(s2)}",
            [SpecItem(cls=s2), SpecItem(cls=s1, position=(rel, 0))],
        )
    if tag == "color_attr":
        return _spec(
            tag,
            f"a photo of {a(c1)} {s1} and {a(c2)} {s2}",
            [SpecItem(cls=s1, color=c1), SpecItem(cls=s2, color=c2)],
        )
    raise ValueError(f"tag must be one of {', '.join(TAGS)}, got {tag!r}")


def _spec(tag: str, prompt: str, include: list[SpecItem], exclude: list[SpecItem] | None = None) -> PromptSpec:
    return PromptSpec(tag=tag, include=include, exclude=exclude or [], prompt=prompt)


def cell_box(cell: Cell) -> tuple[int, int, int, int]:
    row, col = cell
    return col * CELL, row * CELL, (col + 1) * CELL, (row + 1) * CELL


def _holds(rel: str, a: Cell, b: Cell) -> bool:
    """GenEval's own relative-position rule on the two cells' boxes, so data and oracle agree."""
    return rel in relative_position(cell_box(a), cell_box(b))


def sample_scene(spec: PromptSpec, rng: random.Random) -> Scene:
    """A scene that satisfies `spec` exactly, with nothing else in it."""
    cells = [(r, c) for r in range(GRID) for c in range(GRID)]
    while True:
        free = cells.copy()
        rng.shuffle(free)
        objs: dict[Cell, Obj] = {}
        placed: list[list[Cell]] = []
        for item in spec.include:
            group = [free.pop() for _ in range(item.count)]
            for cell in group:
                objs[cell] = (item.cls, item.color or rng.choice(COLOR_NAMES))
            placed.append(group)
        ok = all(
            _holds(item.position[0], a, b)
            for item, group in zip(spec.include, placed, strict=True)
            if item.position
            for a in group
            for b in placed[item.position[1]]
        )
        if ok:
            return Scene(objs)


def reasoning_for(scene: Scene) -> str:
    """The layout plan the model learns to write: one sentence per object, row-major."""
    parts = []
    for (row, col), (shape, color) in sorted(scene.objects.items()):
        parts.append(f"{a(color)} {shape} in row {NUMBER_WORDS[row + 1]}, column {NUMBER_WORDS[col + 1]}.")
    return " ".join(parts)


def vocabulary() -> list[str]:
    """Every word ShapesWorld prompts and plans use (for the word tokenizer)."""
    words = ["an", "photo", "and", "row", "column", *SHAPES, *map(plural, SHAPES), *COLOR_NAMES, *NUMBER_WORDS]
    for rel in RELATIONS:
        words += rel.split()
    return words


def parse_plan(text: str) -> Scene:
    """The scene a layout plan describes (the inverse of `reasoning_for`). Sentences that do not
    read "a <colour> <shape> in row <n>, column <n>" are skipped; a later sentence wins a cell."""
    numbers = {word: i for i, word in enumerate(NUMBER_WORDS[1 : GRID + 1])}
    objects: dict[Cell, Obj] = {}
    for sentence in text.lower().replace(",", " ").split("."):
        words = sentence.split()
        if len(words) != 8 or words[0] not in ("a", "an") or words[3:5] != ["in", "row"] or words[6] != "column":
            continue
        color, shape, row, col = words[1], words[2], words[5], words[7]
        if color in COLORS and shape in SHAPES and row in numbers and col in numbers:
            objects[(numbers[row], numbers[col])] = (shape, color)
    return Scene(objects)
