"""Sweep reports: several bench folders side by side, as a web page and as markdown.

`write_sweep_report(dirs)` writes one self-contained `index.html` (templates `sweep.html` on the
shared layout of `milr.traces.html`): accuracy per tag with n for every folder; the test-time scaling
curves of every folder evaluated per round, overlaid with a legend; wins and losses between folders;
and a gallery with one row per prompt (and sample) showing the final image of every folder side by
side, each linked to its run report, with filters by tag and by outcome (A right where B is wrong,
all right, all wrong, disagreeing). Images are embedded (small ones as the PNG on disk, large ones as a
thumbnail), so the page opens alone; links to run reports are relative, so `index.html` must sit in a
folder that holds every sweep. Only files inside a sweep folder are read, never through a link.

`compare_markdown(dirs)` is the same comparison as markdown for a terminal or a paper's notes: the
per-tag table with n, the wins-and-losses matrix, and every prompt on which the folders disagree.

Two folders are compared on the (prompt key, sample) pairs both hold; a win of A over B is a pair that
A's evaluation calls correct and B's does not.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from markupsafe import Markup
from PIL import Image

from milr.bench.folder import read_settings
from milr.bench.summary import scaling_curve, summarize
from milr.traces.files import UnsafePathError, atomic_write_text, is_member_file, read_member
from milr.traces.html import data_url, page_csp, render, svg_chart, svg_shape, template_source
from milr.traces.redaction import redact

REQUIRED = ("key", "tag", "correct")
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")  # fmt: skip
THUMB = 192  # px: images larger than this are embedded as a thumbnail of this size
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- loading
@dataclass
class Sweep:
    """One bench folder: its settings (`bench.json`, {} if absent) and records."""

    folder: Path
    label: str
    settings: dict
    records: list[dict]
    by_pair: dict[tuple[str, int], dict] = field(default_factory=dict)

    @property
    def method(self) -> str:
        return str(self.settings.get("method") or self.records[0].get("method") or "?")

    @property
    def reward(self) -> str:
        critics = self.settings.get("reward_critic") or []
        return ", ".join(f"{c.get('name', '?')}×{c.get('weight', 1)}" for c in critics if isinstance(c, dict)) or "?"


def read_records(folder: Path) -> list[dict]:
    """The folder's records; a line cut by a crash is skipped, a record without `key`, `tag` or
    `correct` is an error naming the line."""
    path = folder / "results.jsonl"
    if not path.is_file():
        raise ValueError(f"{folder.name}: no results.jsonl (not a milr bench folder); pass bench folders")
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a crash
        missing = [k for k in REQUIRED if not isinstance(rec, dict) or k not in rec]
        if missing:
            raise ValueError(f"{folder.name}/results.jsonl line {n}: no {', '.join(missing)}; not a milr bench record")
        records.append(rec)
    if not records:
        raise ValueError(f"{folder.name}: results.jsonl holds no records yet")
    return records


def load_sweeps(dirs: Sequence[str | Path]) -> list[Sweep]:
    """Every folder as a `Sweep`, labelled by its name (by parent/name where two names are equal)."""
    if not dirs:
        raise ValueError("name at least one bench folder")
    folders = [Path(d) for d in dirs]
    if len({f.resolve() for f in folders}) != len(folders):
        raise ValueError("a bench folder is named twice; name each once")
    names = [f.name for f in folders]
    sweeps = []
    for f in folders:
        label = f.name if names.count(f.name) == 1 else f"{f.parent.name}/{f.name}"
        records = read_records(f)
        pairs = {(str(r["key"]), int(r.get("sample", 0))): r for r in records}
        sweeps.append(Sweep(f, label, read_settings(f) or {}, records, pairs))
    return sweeps


# ----------------------------------------------------------------------------- comparisons
def pairs_of(sweeps: list[Sweep]) -> list[tuple[str, int]]:
    """Every (key, sample) of any folder, in key order."""
    return sorted({p for s in sweeps for p in s.by_pair})


def outcome(sweep: Sweep, pair: tuple[str, int]) -> bool | None:
    rec = sweep.by_pair.get(pair)
    return None if rec is None else bool(rec["correct"])


def wins_matrix(sweeps: list[Sweep]) -> list[list[int]]:
    """wins[i][j]: pairs held by both on which folder i is correct and folder j is not."""
    pairs = pairs_of(sweeps)
    table = [[0] * len(sweeps) for _ in sweeps]
    for p in pairs:
        got = [outcome(s, p) for s in sweeps]
        for i, a in enumerate(got):
            for j, b in enumerate(got):
                if a is True and b is False:
                    table[i][j] += 1
    return table


def shared_counts(sweeps: list[Sweep]) -> list[list[int]]:
    """shared[i][j]: pairs both folders hold (what wins and losses are counted over)."""
    return [[len(a.by_pair.keys() & b.by_pair.keys()) for b in sweeps] for a in sweeps]


def disagreements(sweeps: list[Sweep]) -> list[tuple[str, int]]:
    """Pairs on which at least one folder is correct and another is not."""
    return [p for p in pairs_of(sweeps) if {True, False} <= {outcome(s, p) for s in sweeps}]


def tag_table(sweeps: list[Sweep]) -> tuple[list[str], list[dict]]:
    """(tags, one row per folder: accuracy and n per tag, overall = mean of tags, mean generations)."""
    tags = sorted({str(r["tag"]) for s in sweeps for r in s.records})
    rows = []
    for s in sweeps:
        summary = summarize([{**r, "tag": str(r["tag"]), **_defaults(r)} for r in s.records])
        counts = {t: sum(str(r["tag"]) == t for r in s.records) for t in tags}
        rows.append(
            {
                "label": s.label,
                "method": s.method,
                "reward": s.reward,
                "cells": [(summary["tags"].get(t), counts[t]) for t in tags],
                "overall": summary["overall"],
                "n": len(s.records),
                "generations": summary["mean_generations"],
            }
        )
    return tags, rows


def _defaults(record: dict) -> dict:
    # summarize needs these; a hand-made or older record may lack them
    return {"generations": record.get("generations", 1), "seconds": record.get("seconds", 0.0)}


# ----------------------------------------------------------------------------- markdown
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def md_cell(value: object) -> str:
    """Text safe in one markdown table cell and in a terminal: redacted, control characters (ANSI
    escapes included) shown as `\\xNN`, whitespace runs as one space, pipes escaped."""
    text = redact(str(value))
    text = " ".join(_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", t) for t in text.split())
    return text.replace("|", "\\|")


def _row(cells: list[object]) -> str:
    return "| " + " | ".join(md_cell(c) for c in cells) + " |"


def _acc(value: float | None, n: int | None = None) -> str:
    text = "—" if value is None else f"{value:.3f}"
    return text if n is None else f"{text} (n={n})"


def compare_markdown(dirs: Sequence[str | Path]) -> str:
    """The folders compared as markdown: per-tag accuracy with n, wins and losses on shared prompts,
    and each prompt on which they disagree (✓ correct, ✗ wrong, — not run)."""
    sweeps = load_sweeps(dirs)
    tags, rows = tag_table(sweeps)
    out = ["## Accuracy per tag", "", _row(["folder", "method", "reward", *tags, "overall", "n", "generations"])]
    out.append("|---" * (len(tags) + 6) + "|")
    for r in rows:
        cells = [_acc(a, n) for a, n in r["cells"]]
        out.append(_row([r["label"], r["method"], r["reward"], *cells, _acc(r["overall"]), r["n"],
                         f"{r['generations']:.2f}"]))  # fmt: skip
    wins, shared = wins_matrix(sweeps), shared_counts(sweeps)
    out += ["", "## Wins and losses", "", "Row beats column: prompts (and samples) both ran on which the row is "
            "correct and the column is not; in brackets, how many both ran.", ""]  # fmt: skip
    out.append(_row(["", *[s.label for s in sweeps]]))
    out.append("|---" * (len(sweeps) + 1) + "|")
    for i, s in enumerate(sweeps):
        out.append(_row([s.label, *["—" if i == j else f"{wins[i][j]} ({shared[i][j]})" for j in range(len(sweeps))]]))
    split = disagreements(sweeps)
    out += ["", f"## Prompts on which they disagree ({len(split)} of {len(pairs_of(sweeps))})", ""]
    if split:
        out.append(_row(["key", "sample", "tag", "prompt", *[s.label for s in sweeps]]))
        out.append("|---" * (len(sweeps) + 4) + "|")
        for p in split:
            rec = next(s.by_pair[p] for s in sweeps if p in s.by_pair)
            marks = [{True: "✓", False: "✗", None: "—"}[outcome(s, p)] for s in sweeps]
            out.append(_row([p[0], p[1], rec["tag"], rec.get("prompt", ""), *marks]))
    else:
        out.append("None: on every shared prompt the folders agree.")
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------- the page
def scaling_chart(sweeps: list[Sweep]) -> tuple[Markup | None, list[str]]:
    """Overlaid scaling curves (accuracy of the best round so far, per optimisation step) of every
    folder evaluated per round, with title, axes and a legend; and the labels of folders without one."""
    curves = [(i, s, scaling_curve(s.records)) for i, s in enumerate(sweeps)]
    drawn = [(i, s, c) for i, s, c in curves if c]
    missing = [s.label for _, s, c in curves if not c]
    if not drawn:
        return None, missing
    width, plot_h, left, right, top = 680, 260, 56, 24, 40
    height = top + plot_h + 56 + 20 * len(drawn)
    steps = max(max(len(c) for _, _, c in drawn) - 1, 1)

    def x(k: float) -> float:
        return left + (width - left - right) * k / steps

    def y(v: float) -> float:
        return top + plot_h * (1 - v)

    shapes = [svg_shape("text", "Test-time scaling: accuracy of the best round so far", x=width / 2, y=20.0,
                        text_anchor="middle", font_size=15, font_weight="bold")]  # fmt: skip
    for v in (0.0, 0.25, 0.5, 0.75, 1.0):
        shapes.append(svg_shape("line", x1=left, y1=y(v), x2=width - right, y2=y(v), stroke="#e5e5e5"))
        shapes.append(svg_shape("text", f"{v:.2f}", x=left - 6, y=y(v) + 4, font_size=11, text_anchor="end"))
    for k in sorted({0, steps, *range(0, steps + 1, max(1, steps // 10))}):
        shapes.append(svg_shape("text", k, x=x(k) - 4, y=top + plot_h + 16, font_size=11))
    shapes.append(svg_shape("line", x1=left, y1=y(0), x2=width - right, y2=y(0), stroke="#999"))
    shapes.append(svg_shape("text", "optimisation step k (k + 1 generations)", x=width / 2, y=top + plot_h + 36,
                            text_anchor="middle", font_size=12))  # fmt: skip
    shapes.append(svg_shape("text", "accuracy", x=14, y=top + plot_h / 2, font_size=12, text_anchor="middle",
                            transform=f"rotate(-90 14 {top + plot_h / 2:.1f})"))  # fmt: skip
    levels = []  # drawn last, dashed: a curve lying on a level line still shows between its dashes
    for row, (i, s, curve) in enumerate(drawn):
        colour = COLOURS[i % len(COLOURS)]
        name = f"{s.label}: {s.method} (final {curve[-1]:.3f})"
        if len(curve) == 1:  # evaluated once (a baseline): a level line for reference
            levels.append(svg_shape("line", title=name, x1=left, y1=y(curve[0]), x2=width - right, y2=y(curve[0]),
                                    stroke=colour, stroke_width="2", stroke_dasharray="6 4"))  # fmt: skip
        else:
            points = " ".join(f"{x(k):.1f},{y(v):.1f}" for k, v in enumerate(curve))
            shapes.append(svg_shape("polyline", title=name, fill="none", stroke=colour, stroke_width="2",
                                    points=points, class_="series"))  # fmt: skip
        ly = top + plot_h + 58 + 20 * row
        shapes.append(
            svg_shape("line", x1=left, y1=ly - 4.0, x2=left + 28, y2=ly - 4.0, stroke=colour, stroke_width="3")
        )
        shapes.append(svg_shape("text", name, x=left + 36, y=float(ly), font_size=12, class_="legend"))
    shapes += levels
    return svg_chart(shapes, width=width, height=height, label="test-time scaling curves", css_class="chart"), missing


def image_cell(sweep: Sweep, pair: tuple[str, int], index_dir: Path) -> dict:
    """One gallery cell: outcome, score, generations, the embedded final image and the relative link to
    the run report (each only if it is a plain file inside the sweep folder)."""
    rec = sweep.by_pair.get(pair)
    if rec is None:
        return {"state": "absent", "note": "not run"}
    cell = {
        "state": "ok" if rec["correct"] else "bad",
        "mark": "✓" if rec["correct"] else "✗",
        "score": _number(rec.get("eval_score")),
        "generations": _number(rec.get("generations")),
        "src": None,
        "href": None,
        "note": None,
    }
    trace = rec.get("trace")
    if not trace:
        cell["note"] = "no trace folder (an older best-of-N sweep kept no images)"
        return cell
    try:
        png = read_member(sweep.folder, f"{trace}/final.png", "final image")
    except FileNotFoundError:
        cell["note"] = "final image missing"
        return cell
    except UnsafePathError:
        cell["note"] = "image refused: not a plain file inside the folder"
        return cell
    cell["src"] = embedded_image(png)
    if cell["src"] is None:
        cell["note"] = "image refused: not a PNG file"
    if is_member_file(sweep.folder, f"{trace}/report.html"):
        report = sweep.folder.resolve() / trace / "report.html"
        cell["href"] = Path(os.path.relpath(report, index_dir)).as_posix()
    return cell


def _number(value) -> float | int | None:
    """A record's number, or None: a record is read from disk and may say anything."""
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def embedded_image(png: bytes) -> Markup | None:
    """A data URL of the PNG as it is when small, else of a PNG thumbnail `THUMB` px on its long side."""
    if not png.startswith(PNG_SIGNATURE):
        return None
    try:
        with Image.open(io.BytesIO(png)) as im:
            if max(im.size) <= THUMB:
                return data_url(png)
            im.thumbnail((THUMB, THUMB))
            buf = io.BytesIO()
            im.convert("RGB").save(buf, format="PNG", optimize=True)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return data_url(buf.getvalue())


def gallery(sweeps: list[Sweep], index_dir: Path) -> list[dict]:
    rows = []
    for pair in pairs_of(sweeps):
        rec = next(s.by_pair[pair] for s in sweeps if pair in s.by_pair)
        got = [outcome(s, pair) for s in sweeps]
        rows.append(
            {
                "key": pair[0],
                "sample": pair[1],
                "tag": str(rec["tag"]),
                "prompt": rec.get("prompt", ""),
                "outcomes": " ".join({True: "1", False: "0", None: "-"}[g] for g in got),
                "cells": [image_cell(s, pair, index_dir) for s in sweeps],
            }
        )
    return rows


def default_index(dirs: list[Path]) -> Path:
    """`DIR/index.html` for one folder, else `index.html` in the folder that holds them all."""
    if len(dirs) == 1:
        return dirs[0] / "index.html"
    return Path(os.path.commonpath([d.resolve() for d in dirs])) / "index.html"


def render_sweep_report(dirs: Sequence[str | Path], index_dir: Path) -> str:
    """The sweep report page, its links relative to `index_dir`."""
    sweeps = load_sweeps(dirs)
    tags, rows = tag_table(sweeps)
    chart, no_curve = scaling_chart(sweeps)
    script = template_source("sweep.js")
    pairs = [(i, j) for i in range(len(sweeps)) for j in range(len(sweeps)) if i != j]
    return render(
        "sweep.html",
        csp=page_csp(script),
        script=Markup(script),
        sweeps=sweeps,
        colours=[COLOURS[i % len(COLOURS)] for i in range(len(sweeps))],
        tags=tags,
        rows=rows,
        chart=chart,
        no_curve=no_curve,
        wins=wins_matrix(sweeps),
        shared=shared_counts(sweeps),
        pairs=pairs,
        gallery=gallery(sweeps, index_dir),
        disagree=len(disagreements(sweeps)),
    )


def write_sweep_report(dirs: Sequence[str | Path], out: str | Path | None = None) -> Path:
    """Write the sweep report of `dirs` to `out` (default: `DIR/index.html` for one folder, else
    `index.html` in their common folder) and return its path. Every folder must lie inside the folder
    of `out`, so that each link to a run report is a relative path inside it."""
    folders = [Path(d) for d in dirs]
    index = Path(out) if out is not None else default_index(folders)
    if index.suffix != ".html":
        index = index / "index.html"
    index_dir = index.parent.resolve()
    for f in folders:
        if not f.resolve().is_relative_to(index_dir):
            raise ValueError(
                f"bench folder {f.name!r} is not inside the report's folder {index_dir.name!r}: its links would "
                "leave it; write the report into a folder that holds every sweep (e.g. --out PARENT/index.html)"
            )
    page = render_sweep_report(folders, index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(index, page)
    return index
