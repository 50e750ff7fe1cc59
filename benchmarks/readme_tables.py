"""Every benchmark figure the README quotes, from the JSON under benchmarks/results/ (issue 15).

    python benchmarks/readme_tables.py           # rewrite the generated tables in README.md
    python benchmarks/readme_tables.py --check   # exit 1, naming every table or figure that disagrees

Two kinds of figures:

- tables, generated whole between `<!-- readme_tables: NAME -->` and `<!-- /readme_tables -->`
  (HTML comments: invisible on GitHub), e.g. the ShapesEval table from bench_shapes/*.json;
- figures in prose (`FIGURES`): each is a phrase of the README with its numbers filled in from the
  JSON; the README must contain the phrase exactly (line breaks count as spaces). A sentence that is
  reworded needs its phrase here reworded too, so no figure can drift away from its file unseen.

Also checked: every speed JSON (`SPEED_JSONS`) carries a provenance block (benchmarks/provenance.py).
Reads JSON only: no torch, fast enough for a unit test (tests/test_readme_figures.py).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
BEGIN = "<!-- readme_tables: {} -->"
END = "<!-- /readme_tables -->"
SHAPES_METHODS = ("baseline", "milr", "best_of_n", "milr_text_only", "milr_image_only", "milr_noisy")
TAG_COLUMNS = ("color_attr", "colors", "counting", "position", "single_object", "two_object")
# Speed JSONs written by the scripts in benchmarks/ (the study helper's only once it has run).
SPEED_JSONS = (
    "bench_mug.json",
    "bench_round_tiny.json",
    "bench_round_shapes.json",
    "bench_traces.json",
    "bench_sweep.json",
    "bench_batch.json",
    "bench_threads.json",
    "shapes_milr_cli/speed.json",
    "bench_shapes/startup.json",
    *(f"bench_shapes/{m}.json" for m in SHAPES_METHODS),
)
OPTIONAL_SPEED_JSONS = ("bench_study.json", "bench_rescore.json", "bench_gpu.json")
PROVENANCE_KEYS = ("command", "threads", "device", "torch", "cpus", "loadavg_before", "other_processes_ran")


@cache
def result(name: str) -> dict:
    """A results file, parsed once."""
    return json.loads((RESULTS / name).read_text())


def shapes(method: str) -> dict:
    return result(f"bench_shapes/{method}.json")


# ----------------------------------------------------------------------------- tables
def shapes_label(method: str, entry: dict) -> str:
    if method == "best_of_n":
        return f"best-of-N, N = {entry['config']['steps'] + 1}, oracle"
    if method == "milr_noisy":
        flip = float(re.search(r"flip ([0-9.]+)", entry["reward"]).group(1))
        return f"MILR, noisy oracle ({flip:.0%} flips)"
    return {
        "baseline": "baseline (round 0)",
        "milr": "MILR, oracle",
        "milr_text_only": "MILR text-only",
        "milr_image_only": "MILR image-only",
    }[method]


def shapes_generations(method: str, entry: dict) -> str:
    if method == "best_of_n":  # best-of-N always draws N: say what stopping at the first pass would use
        first = entry["mean_generations_if_stopped_at_first_pass"]
        return f"{entry['mean_generations']:.0f} ({first:.2f} if stopped at first pass)"
    return f"{entry['mean_generations']:.2f}"


def shapes_table() -> str:
    """The README's ShapesEval table, from bench_shapes/<method>.json."""
    short = [c.removesuffix("_object") for c in TAG_COLUMNS]
    lines = [
        "| method | " + " | ".join(short) + " | overall | mean gens | prompts/s |",
        "|" + "---|" * (len(TAG_COLUMNS) + 4),
    ]
    for method in SHAPES_METHODS:
        e = shapes(method)
        cells = [shapes_label(method, e), *(f"{e['tags'][t]:.2f}" for t in TAG_COLUMNS)]
        cells += [f"**{e['overall']:.3f}**", shapes_generations(method, e), f"{e['prompts_per_s']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


TABLES: dict[str, Callable[[], str]] = {"shapes-eval": shapes_table}


# ----------------------------------------------------------------------------- figures in prose
@dataclass(frozen=True)
class Figure:
    """A README phrase with `{}` fields, and where each field's value comes from."""

    source: str  # the JSON it is read from, for the message
    phrase: str
    values: Callable[[], tuple]

    def expected(self) -> str:
        return self.phrase.format(*self.values())


def both(a: float, b: float, fmt: str) -> str:
    """`0.860 both` when two figures agree as printed, else `0.860 vs 0.857`."""
    fa, fb = format(a, fmt), format(b, fmt)
    return f"{fa} both" if fa == fb else f"{fa} vs {fb}"


def same_or_pair(a: float, b: float, fmt: str) -> str:
    """`5.0× on both` when two figures agree as printed, else `5.0× and 4.9×`."""
    fa, fb = format(a, fmt), format(b, fmt)
    return f"{fa}× on both" if fa == fb else f"{fa}× and {fb}×"


def agree(ours: float, script: float, fmt: str) -> str:
    """One figure where two files must agree as printed; else both, which no README sentence says."""
    a, b = format(ours, fmt), format(script, fmt)
    return a if a == b else f"{a} (bench_shapes.py: {b})"


def threads_in_words(n: int) -> str:
    return {1: "one thread", 2: "two threads"}.get(n, f"{n} threads")


def threads_of(data: dict) -> int:
    return (data.get("provenance") or {}).get("threads") or data.get("threads") or data.get("torch_threads")


def sweep(batch: int) -> dict:
    return result("bench_sweep.json")["sweeps"][f"batch={batch}"]


def identical_tags() -> str:
    return "identical per tag" if sweep(16)["tags"] == sweep(1)["tags"] else "per tag: see bench_sweep.json"


def fraction_in_words(part: float, whole: float) -> str:
    return {2: "half", 3: "a third", 4: "a quarter", 5: "a fifth"}.get(round(whole / part), f"1/{whole / part:.0f}")


def checkpoint_baseline() -> dict:
    return result("shapes_checkpoint.json")["shipped"]["baseline"][0]


def mutation(name: str) -> tuple:
    """(kill rate, mutants judged, mutants run, equivalent) of a mutate.py result."""
    data = result(name)
    return data["kill_rate"], data["mutants_run"] - data["equivalent"], data["mutants_run"], data["equivalent"]


FIGURES: tuple[Figure, ...] = (
    Figure(
        "shapes_checkpoint.json",
        "**{:.2f} overall** — single object {:.2f}, two objects {:.2f}, counting {:.2f}, colours {:.2f}, "
        "position {:.2f}, colour binding {:.2f}",
        lambda: (
            checkpoint_baseline()["overall"],
            *(checkpoint_baseline()["tags"][t] for t in ("single_object", "two_object", "counting", "colors")),
            *(checkpoint_baseline()["tags"][t] for t in ("position", "color_attr")),
        ),
    ),
    Figure(
        "shapes_checkpoint.json",
        "({} random grids: {:.0%} of cells read back by the oracle)",
        lambda: (
            result("shapes_checkpoint.json")["shipped"]["decoder"]["images"],
            result("shapes_checkpoint.json")["shipped"]["decoder"]["cells"],
        ),  # fmt: skip
    ),
    Figure(
        "bench_shapes/startup.json",
        "takes {:.1f} s on {} of a shared {}-core machine (`{}`)",
        lambda: (
            result("bench_shapes/startup.json")["total_s"],
            threads_in_words(result("bench_shapes/startup.json")["provenance"]["threads"]),
            result("bench_shapes/startup.json")["provenance"]["cpus"],
            result("bench_shapes/startup.json")["provenance"]["command"],
        ),
    ),
    Figure(
        "bench_sweep.json",
        "takes {:.0f} s with `--batch 16` against {:.0f} s one run at a time, **{:.1f}× less wall time**, with "
        "the same accuracy ({}, {}) and the same {:.2f} generations per prompt; writing the traces (run.json, "
        "every round's PNG, latents and record, summaries, reports) is {:.0%} of the batched sweep's wall time",
        lambda: (
            sweep(16)["seconds"],
            sweep(1)["seconds"],
            result("bench_sweep.json")["wall_time_ratio_1_over_16"],
            both(sweep(16)["overall"], sweep(1)["overall"], ".3f"),
            identical_tags(),
            sweep(16)["mean_generations"],
            sweep(16)["trace_write_share"],
        ),
    ),
    Figure(
        "bench_threads.json",
        "a {}-prompt ShapesEval sample took {:.0f} s at batch 1 and {:.0f} s at batch 16 with one thread per "
        "node, against {:.0f} s and {:.0f} s at torch's setting ({}), {:.2f}× and {:.2f}× faster",
        lambda: (
            result("bench_threads.json")["batch=1,one_thread"]["prompts"],
            result("bench_threads.json")["batch=1,one_thread"]["seconds"],
            result("bench_threads.json")["batch=16,one_thread"]["seconds"],
            result("bench_threads.json")["batch=1,torch_default"]["seconds"],
            result("bench_threads.json")["batch=16,torch_default"]["seconds"],
            threads_in_words(result("bench_threads.json")["main_thread_threads"]),
            result("bench_threads.json")["speedup_one_thread_batch=1"],
            result("bench_threads.json")["speedup_one_thread_batch=16"],
        ),
    ),
    Figure(
        "bench_batch.json",
        "cost about {:.0f} ms of one core per 64×64 image whatever the batch (two side by side at B = 16: "
        "{:.1f} ms per image, {:.0%} of that draw)",
        lambda: (
            1000 * result("bench_batch.json")["shapes"]["B=1"]["vq_decode_seconds_median"],
            1000 * result("bench_batch.json")["shapes"]["B=16"]["vq_decode_seconds_median"] / 16,
            result("bench_batch.json")["shapes"]["B=16"]["vq_decode_share"],
        ),
    ),
    Figure(
        "bench_batch.json",
        "`python benchmarks/bench_batch.py --compile`: ShapesWorld draws {:.0f} images/s compiled against {:.0f} "
        "eager at B = 1, and {:.0f} against {:.0f} at B = 16",
        lambda: (
            result("bench_batch.json")["shapes_compile"]["B=1"]["images_per_s"],
            result("bench_batch.json")["shapes"]["B=1"]["images_per_s"],
            result("bench_batch.json")["shapes_compile"]["B=16"]["images_per_s"],
            result("bench_batch.json")["shapes"]["B=16"]["images_per_s"],
        ),
    ),
    Figure(
        "bench_batch.json",
        "({}, a shared machine: {:.1f}× at B = 16 on a {}-token bench model, {:.1f}× on ShapesWorld, whose "
        "token loop alone gains {:.1f}×, reasoning {}) and our B = 1 draw at {:.2f}× the speed of transformers'",
        lambda: (
            threads_in_words(threads_of(result("bench_batch.json"))),
            result("bench_batch.json")["bench_model"]["speedup_B16_vs_B1"],
            result("bench_batch.json")["bench_model"]["model"]["image_tokens"],
            result("bench_batch.json")["shapes"]["speedup_B16_vs_B1"],
            result("bench_batch.json")["shapes"]["token_loop_speedup_B16_vs_B1"],
            same_or_pair(
                result("bench_batch.json")["bench_model"]["reasoning"]["speedup_B16_vs_B1"],
                result("bench_batch.json")["shapes"]["reasoning"]["speedup_B16_vs_B1"],
                ".1f",
            ),
            result("bench_batch.json")["bench_model"]["vs_transformers_B=1"]["ratio_draw"],
        ),
    ),
    Figure(
        "bench_shapes/milr.json",
        "shipped checkpoint, {} prompts = {:.0f} per tag, K = {}, threshold {}, guidance {:.0f};",
        lambda: (
            shapes("milr")["prompts"],
            shapes("milr")["prompts"] / len(shapes("milr")["tags"]),
            shapes("milr")["config"]["steps"],
            shapes("milr")["config"]["threshold"],
            shapes("milr")["config"]["cfg"],
        ),
    ),
    Figure(
        "bench_shapes/milr.json, baseline.json, best_of_n.json",
        "MILR gains {:+.2f} over round 0 and beats best-of-N with {} of its generations.",
        lambda: (
            shapes("milr")["overall"] - shapes("baseline")["overall"],
            fraction_in_words(shapes("milr")["mean_generations"], shapes("best_of_n")["mean_generations"]),
        ),
    ),
    Figure(
        "bench_shapes/best_of_n.json, milr_image_only.json, milr_text_only.json",
        "so a wrong plan stays wrong (position {}); moving the text latents rewrites the plan (position {:.2f})",
        lambda: (
            both(
                shapes("best_of_n")["tags"]["position"], shapes("milr_image_only")["tags"]["position"], ".2f"
            ).removesuffix(" both"),
            shapes("milr_text_only")["tags"]["position"],
        ),
    ),
    Figure(
        "bench_shapes/milr_noisy.json, baseline.json",
        "A noisy reward still helps ({:+.2f}) but stops early on false passes ({:.2f} generations).",
        lambda: (
            shapes("milr_noisy")["overall"] - shapes("baseline")["overall"],
            shapes("milr_noisy")["mean_generations"],
        ),
    ),
    Figure(
        "bench_shapes/*.json",
        "(batch 16, {}, one method after the other",
        lambda: (threads_in_words(threads_of(shapes("milr"))),),
    ),
    Figure(
        "shapes_milr_cli/speed.json, bench_shapes/milr.json",
        "gives the same records as the MILR row ({} overall, {} generations per prompt) in {:.0f} s ({}, a shared "
        "{}-core machine)",
        lambda: (
            agree(result("shapes_milr_cli/speed.json")["overall"], shapes("milr")["overall"], ".3f"),
            agree(result("shapes_milr_cli/speed.json")["mean_generations"], shapes("milr")["mean_generations"], ".2f"),
            result("shapes_milr_cli/speed.json")["wall_seconds"],
            threads_in_words(result("shapes_milr_cli/speed.json")["provenance"]["threads"]),
            result("shapes_milr_cli/speed.json")["provenance"]["cpus"],
        ),
    ),
    Figure(
        "shapes_milr_cli/summary.json",
        "({:.2f} at step 0, {:.2f} by step 6, {:.2f} at step 20)",
        lambda: tuple(result("shapes_milr_cli/summary.json")["curve"][i] for i in (0, 6, 20)),
    ),
    Figure(
        "mutation.json, mutation_holdout.json",
        "Last run: {:.0%} of {} mutants killed ({} sampled, {} equivalent: `benchmarks/results/mutation.json`); "
        "the tests in `tests/mutation_kills/` were written for the survivors of that sample, so a second one, "
        "held out (`--offset 40 --cap 20`: {} other mutants, {} equivalent), measures the suite as it is: {:.0%} "
        "killed, {} survivors (`mutation_holdout.json`)",
        lambda: (
            *mutation("mutation.json"),
            *mutation("mutation_holdout.json")[2:],
            mutation("mutation_holdout.json")[0],
            result("mutation_holdout.json")["survived"],
        ),
    ),
)


# ----------------------------------------------------------------------------- checking and writing
def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def table_block(text: str, name: str) -> tuple[int, int] | None:
    """(start, end) of the body between a table's markers, or None."""
    begin = BEGIN.format(name)
    start = text.find(begin)
    end = text.find(END, start)
    if start < 0 or end < 0:
        return None
    return start + len(begin) + 1, end


def table_problems(text: str) -> list[str]:
    problems = []
    for name, build in TABLES.items():
        span = table_block(text, name)
        if span is None:
            problems.append(f"table {name}: markers {BEGIN.format(name)} ... {END} not found")
        elif text[span[0] : span[1]].strip() != build().strip():
            problems.append(f"table {name}: differs from benchmarks/results (run python benchmarks/readme_tables.py)")
    return problems


def figure_problems(text: str) -> list[str]:
    flat = squash(text)
    problems = []
    for figure in FIGURES:
        try:
            expected = figure.expected()
        except (OSError, KeyError, IndexError, TypeError) as err:  # a file or field is missing
            problems.append(f"figure from {figure.source}: cannot be read ({type(err).__name__}: {err})")
            continue
        if expected not in flat:
            problems.append(f"figure from {figure.source}: the README should say {expected!r}")
    return problems


def provenance_problems() -> list[str]:
    """Speed JSONs without a provenance block, or with one that lacks a field. bench_study.py writes
    its fields flat (`torch_threads` for `threads`, no `command`; bench_rescore.json's load and other
    processes under `sweep`, the run they are compared with): accepted as such."""
    problems = []
    present = [n for n in OPTIONAL_SPEED_JSONS if (RESULTS / n).is_file()]
    for name in (*SPEED_JSONS, *present):
        data = result(name)
        block = data.get("provenance")
        keys = PROVENANCE_KEYS
        if block is None and name in OPTIONAL_SPEED_JSONS:
            block = data.get("sweep", {}) | data
            if "torch_threads" in block:
                block["threads"] = block["torch_threads"]
            keys = tuple(k for k in PROVENANCE_KEYS if k != "command")
        missing = [k for k in keys if block is None or k not in block]
        if missing:
            problems.append(f"{name}: provenance lacks {', '.join(missing)}")
    return problems


def problems(text: str) -> list[str]:
    """Everything in a README text that disagrees with benchmarks/results/."""
    return table_problems(text) + figure_problems(text) + provenance_problems()


def regenerate(text: str) -> str:
    """The README text with every generated table rewritten from the JSON."""
    for name, build in TABLES.items():
        span = table_block(text, name)
        if span is None:
            raise SystemExit(f"README.md has no {BEGIN.format(name)} ... {END} block")
        text = text[: span[0]] + build() + "\n" + text[span[1] :]
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="only check; exit 1 on any disagreement")
    args = ap.parse_args(argv)
    text = README.read_text()
    if not args.check:
        README.write_text(regenerate(text))
        text = README.read_text()
    found = problems(text)
    for line in found:
        print(line, file=sys.stderr)
    if not found:
        print(f"README.md: {len(TABLES)} tables and {len(FIGURES)} figures agree with benchmarks/results/")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
